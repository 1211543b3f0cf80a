package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
)

// Mounter starts sessions. The plugin's adapts dockerfuse.Mount; tests use
// a fake.
type Mounter interface {
	// Mount shows v's target at dir (an existing, empty directory) and
	// returns once the mount serves. ctx bounds the start only, not the
	// session. The error is shown to the user after "mount <name>: ".
	Mount(ctx context.Context, v Volume, dir string) (Mounted, error)
}

// Mounted is one running session.
type Mounted interface {
	// Status must not block on the target.
	Status() SessionStatus
	// Done is closed when the mount is gone (the target stopped, the
	// satellite died, or Close was called).
	Done() <-chan struct{}
	// Close unmounts dir and stops the satellite. It may be called after
	// Done is closed.
	Close() error
}

// SessionStatus is what a session reports about itself; Get and List show
// it in the volume's status.
type SessionStatus struct {
	ContainerID string
	Arch        string
	Connected   bool
	// Streams is how many satellites files are read through, once
	// connected: fewer than the volume's default on a target with tight
	// limits.
	Streams int
	// Error says why the session is not connected, if it is not.
	Error string
}

// Config configures a Driver.
type Config struct {
	// StateDir holds volumes.json; created 0700 if missing.
	StateDir string
	// MountRoot is where volumes are mounted, one directory per volume.
	// In the managed plugin it must be config.json's propagatedMount
	// (/mnt/volumes): a mount anywhere else is invisible to the engine.
	MountRoot string
	// Mounter starts sessions. Required.
	Mounter Mounter
	// Log receives the driver's log; nil discards it.
	Log *slog.Logger
	// MountTimeout bounds the start of one session. Zero means 90s, under
	// the engine's two-minute timeout for a Mount call, so that the user
	// reads the driver's message rather than the engine's.
	MountTimeout time.Duration
}

// Driver is a volume.Driver. Create it with New.
type Driver struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // canceled by Close; parent of every Mount
	cancel context.CancelFunc

	saveMu sync.Mutex // serializes save

	mu     sync.Mutex // guards vols and the fields of each vol marked so
	vols   map[string]*vol
	closed bool
}

// vol is a volume's runtime state.
type vol struct {
	// op serializes Mount, Unmount and Remove of this volume. It is held
	// across slow work (starting and stopping the session), so it must be
	// taken before d.mu, never while holding it.
	op sync.Mutex

	// Guarded by Driver.mu.
	spec    Volume
	ids     map[string]int // Docker's mount IDs and how often each mounted
	session Mounted        // nil when not mounted
	lastErr string         // why the last start failed
	removed bool           // Remove won a race with an operation waiting on op
}

func (v *vol) mountCount() int {
	n := 0
	for _, c := range v.ids {
		n += c
	}
	return n
}

var _ volume.Driver = (*Driver)(nil)

// New restores the saved volumes, lazily unmounts whatever a previous
// process left mounted under MountRoot, and returns a driver ready to serve.
func New(cfg Config) (*Driver, error) {
	if cfg.Mounter == nil {
		return nil, errors.New("driver: Config.Mounter is required")
	}
	if cfg.StateDir == "" || cfg.MountRoot == "" {
		return nil, errors.New("driver: Config.StateDir and Config.MountRoot are required")
	}
	if cfg.MountTimeout == 0 {
		cfg.MountTimeout = 90 * time.Second
	}
	d := &Driver{cfg: cfg, log: cfg.Log, vols: map[string]*vol{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	// MkdirAll keeps an existing directory's mode; state is root's only.
	if err := os.Chmod(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("securing state directory: %w", err)
	}
	if err := os.MkdirAll(cfg.MountRoot, 0o755); err != nil {
		return nil, fmt.Errorf("creating mount root: %w", err)
	}
	d.detachStale(cfg.MountRoot)

	saved, err := d.loadState()
	if err != nil {
		return nil, err
	}
	for name, spec := range saved {
		d.vols[name] = &vol{spec: spec, ids: map[string]int{}}
	}
	d.log.Info("restored volumes", "count", len(saved), "stateDir", cfg.StateDir, "mountRoot", cfg.MountRoot)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Close stops every session and makes further Mounts fail with ErrClosed.
// Volumes stay saved.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	vols := make([]*vol, 0, len(d.vols))
	for _, v := range d.vols {
		vols = append(vols, v)
	}
	d.mu.Unlock()
	d.cancel() // aborts starts in progress, so op locks free up quickly

	// Concurrently: each Close may wait seconds for the kernel, and the
	// engine gives a stopping plugin little time.
	errs := make([]error, len(vols))
	var wg sync.WaitGroup
	for i, v := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.op.Lock()
			defer v.op.Unlock()
			d.mu.Lock()
			s := v.session
			v.session = nil
			v.ids = map[string]int{}
			name := v.spec.Name
			d.mu.Unlock()
			if s == nil {
				return
			}
			if err := s.Close(); err != nil {
				errs[i] = fmt.Errorf("unmount %s: %w", name, err)
				d.detachIfMounted(d.dir(name))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *Driver) dir(name string) string { return filepath.Join(d.cfg.MountRoot, name) }

// lookup returns the volume named name.
func (d *Driver) lookup(name string) (*vol, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vols[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (create it with: docker volume create -d dockerfuse -o container=<name> %s)", ErrVolumeNotFound, name, name)
	}
	return v, nil
}

// Create records a volume. Nothing is started: the target need not exist
// yet. Creating an existing volume with the same options does nothing.
func (d *Driver) Create(req *volume.CreateRequest) error {
	spec, err := parseOptions(req.Name, req.Options)
	if err != nil {
		return err
	}
	spec.CreatedAt = time.Now().UTC().Truncate(time.Second)

	d.mu.Lock()
	if old, ok := d.vols[req.Name]; ok {
		same := old.spec.sameOptions(spec)
		oldSpec := old.spec
		d.mu.Unlock()
		if same {
			return nil
		}
		return fmt.Errorf("%w (it has %s); remove it first to change them", ErrVolumeExists, oldSpec)
	}
	v := &vol{spec: spec, ids: map[string]int{}}
	d.vols[req.Name] = v
	d.mu.Unlock()

	if err := d.save(); err != nil {
		d.mu.Lock()
		if d.vols[req.Name] == v {
			delete(d.vols, req.Name)
		}
		d.mu.Unlock()
		return err
	}
	d.log.Info("created volume", "volume", req.Name, "options", spec.String())
	return nil
}

// Remove forgets a volume that is not mounted.
func (d *Driver) Remove(req *volume.RemoveRequest) error {
	v, err := d.lookup(req.Name)
	if err != nil {
		return err
	}
	v.op.Lock()
	defer v.op.Unlock()

	d.mu.Lock()
	if n := v.mountCount(); n > 0 || v.session != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: mounted into %d container(s); stop or remove the containers using it first", ErrVolumeInUse, n)
	}
	if d.vols[req.Name] != v {
		d.mu.Unlock()
		return nil // removed by a concurrent Remove
	}
	delete(d.vols, req.Name)
	v.removed = true
	d.mu.Unlock()

	if err := d.save(); err != nil {
		d.mu.Lock()
		if _, ok := d.vols[req.Name]; !ok {
			d.vols[req.Name] = v
			v.removed = false
		}
		d.mu.Unlock()
		return err
	}
	// Only an empty directory goes; a mount still there stays visible.
	os.Remove(d.dir(req.Name))
	d.log.Info("removed volume", "volume", req.Name)
	return nil
}

// Mount counts req.ID and returns the volume's mount point, starting the
// session first if none is running. It never inspects the consumer
// container: the engine holds that container's lock during the call.
func (d *Driver) Mount(req *volume.MountRequest) (*volume.MountResponse, error) {
	v, err := d.lookup(req.Name)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", req.Name, err)
	}
	v.op.Lock()
	defer v.op.Unlock()

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("mount %s: %w (enable it again: docker plugin enable dockerfuse)", req.Name, ErrClosed)
	}
	if v.removed {
		d.mu.Unlock()
		return nil, fmt.Errorf("mount %s: %w %q: it was removed", req.Name, ErrVolumeNotFound, req.Name)
	}
	spec, s := v.spec, v.session
	d.mu.Unlock()

	dir := d.dir(req.Name)
	if s != nil && isDone(s) {
		st := s.Status()
		d.log.Warn("session ended; starting a new one", "volume", req.Name, "err", st.Error)
		if err := s.Close(); err != nil {
			d.log.Debug("closing ended session", "volume", req.Name, "err", err)
		}
		d.mu.Lock()
		v.session = nil
		d.mu.Unlock()
		s = nil
	}
	if s == nil {
		m, err := d.start(spec, dir)
		d.mu.Lock()
		if err != nil {
			v.lastErr = err.Error()
		} else {
			v.session, v.lastErr = m, ""
		}
		d.mu.Unlock()
		if err != nil {
			d.log.Error("mount failed", "volume", req.Name, "err", err)
			return nil, fmt.Errorf("mount %s: %w", req.Name, err)
		}
		d.log.Info("mounted volume", "volume", req.Name, "mountpoint", dir, "options", spec.String())
	}

	d.mu.Lock()
	v.ids[req.ID]++
	n := v.mountCount()
	d.mu.Unlock()
	d.log.Debug("mount", "volume", req.Name, "id", req.ID, "mountCount", n)
	return &volume.MountResponse{Mountpoint: dir}, nil
}

// start runs the slow part of a first Mount; the caller holds v.op only.
func (d *Driver) start(spec Volume, dir string) (Mounted, error) {
	d.detachIfMounted(dir) // a dead FUSE mount would fail every stat below
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating mount point: %w", err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.MountTimeout)
	defer cancel()
	m, err := d.cfg.Mounter.Mount(ctx, spec, dir)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("container %q did not answer within %s (is it running and healthy?): %w", spec.Container, d.cfg.MountTimeout, err)
	}
	return m, err
}

func isDone(m Mounted) bool {
	select {
	case <-m.Done():
		return true
	default:
		return false
	}
}

// Unmount forgets req.ID; the last one stops the session. An ID the driver
// does not know (mounted before the plugin restarted) is not an error.
func (d *Driver) Unmount(req *volume.UnmountRequest) error {
	v, err := d.lookup(req.Name)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", req.Name, err)
	}
	v.op.Lock()
	defer v.op.Unlock()

	d.mu.Lock()
	if v.ids[req.ID] == 0 {
		d.mu.Unlock()
		d.log.Warn("unmount of an unknown mount ID; ignored", "volume", req.Name, "id", req.ID)
		return nil
	}
	v.ids[req.ID]--
	if v.ids[req.ID] == 0 {
		delete(v.ids, req.ID)
	}
	n := v.mountCount()
	var s Mounted
	if n == 0 {
		s, v.session = v.session, nil
	}
	d.mu.Unlock()
	d.log.Debug("unmount", "volume", req.Name, "id", req.ID, "mountCount", n)

	if s == nil {
		return nil
	}
	if err := s.Close(); err != nil {
		d.detachIfMounted(d.dir(req.Name))
		return fmt.Errorf("unmount %s: %w", req.Name, err)
	}
	d.log.Info("unmounted volume", "volume", req.Name)
	return nil
}

// Path returns the mount point while the volume is mounted, "" otherwise.
func (d *Driver) Path(req *volume.PathRequest) (*volume.PathResponse, error) {
	v, err := d.lookup(req.Name)
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", req.Name, err)
	}
	d.mu.Lock()
	mounted := v.session != nil
	d.mu.Unlock()
	if !mounted {
		return &volume.PathResponse{}, nil
	}
	return &volume.PathResponse{Mountpoint: d.dir(req.Name)}, nil
}

// Get describes one volume. It never waits for a mount in progress.
func (d *Driver) Get(req *volume.GetRequest) (*volume.GetResponse, error) {
	v, err := d.lookup(req.Name)
	if err != nil {
		return nil, err
	}
	return &volume.GetResponse{Volume: d.describe(v)}, nil
}

// List describes every volume, sorted by name.
func (d *Driver) List() (*volume.ListResponse, error) {
	d.mu.Lock()
	vols := make([]*vol, 0, len(d.vols))
	for _, v := range d.vols {
		vols = append(vols, v)
	}
	d.mu.Unlock()
	resp := &volume.ListResponse{Volumes: make([]*volume.Volume, 0, len(vols))}
	for _, v := range vols {
		resp.Volumes = append(resp.Volumes, d.describe(v))
	}
	sort.Slice(resp.Volumes, func(i, j int) bool { return resp.Volumes[i].Name < resp.Volumes[j].Name })
	return resp, nil
}

// describe builds a volume's answer for Get and List; the status keys are
// what `docker volume inspect` shows under Status.
func (d *Driver) describe(v *vol) *volume.Volume {
	d.mu.Lock()
	spec, s, n, lastErr := v.spec, v.session, v.mountCount(), v.lastErr
	d.mu.Unlock()

	var st SessionStatus
	mounted := false
	if s != nil {
		st = s.Status() // outside d.mu: it belongs to the session
		mounted = !isDone(s)
		if !mounted && st.Error == "" {
			st.Error = "the session ended; the next container to mount the volume starts a new one"
		}
	}
	if st.Error == "" {
		st.Error = lastErr
	}
	streams := spec.streams()
	if mounted && st.Connected && st.Streams > 0 {
		streams = st.Streams
	}
	out := &volume.Volume{
		Name:      spec.Name,
		CreatedAt: spec.CreatedAt.Format(time.RFC3339),
		Status: map[string]any{
			"container":   spec.Container,
			"path":        spec.Path,
			"ro":          spec.ReadOnly,
			"user":        spec.user(),
			"streams":     streams,
			"mounted":     mounted,
			"mountCount":  n,
			"connected":   mounted && st.Connected,
			"error":       st.Error,
			"containerID": st.ContainerID,
			"arch":        st.Arch,
		},
	}
	if mounted {
		out.Mountpoint = d.dir(spec.Name)
	}
	return out
}

// Capabilities reports local scope: a volume lives on one engine.
func (d *Driver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}
