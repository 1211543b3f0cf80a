// Package dockerfuse mounts a running container's filesystem on the host:
// it starts a satellite inside the container (launcher), speaks the rpc
// protocol with it, and serves a FUSE filesystem (fuse) that turns each
// kernel request into one call. The command-line tool and the volume plugin
// are both thin layers over Mount.
//
// A Session is safe for concurrent use. Mount does its slow work (engine
// calls, the upload, the FUSE handshake) in the caller's goroutine: callers
// must not hold locks across it.
package dockerfuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"

	"github.com/dockerfuse/dockerfuse/fuse"
	"github.com/dockerfuse/dockerfuse/launcher"
	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite/embedded"
)

// Config describes one mount.
type Config struct {
	// Engine is the Engine API client; nil means launcher.NewEngineClient
	// (the environment: DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
	Engine client.APIClient
	// Container is the target's name or ID.
	Container string
	// Path is the directory inside the target to show; "" means "/".
	Path string
	// User is who the satellite runs as inside the target; "" means root.
	User string
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// Mountpoint is the host directory to mount on. It must exist.
	Mountpoint string
	// AllowOther lets users other than the mounting one use the mount
	// (needed when other containers consume it).
	AllowOther bool
	// AttrTimeout and EntryTimeout bound how long the kernel trusts
	// attributes and names; a change made inside the target shows within
	// them. Zero means one second.
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	// NoWatch keeps the satellite from watching the directories looked
	// at for changes: everything is then trusted for AttrTimeout and
	// EntryTimeout only (see fuse.Options.WatchTimeout).
	NoWatch bool
	// Satellites supplies the satellite executables; nil means the ones
	// embedded in this binary.
	Satellites launcher.Satellites
	// Log receives the session's log, including the satellite's stderr;
	// nil discards it.
	Log *slog.Logger
	// Debug logs every FUSE request.
	Debug bool
	// Streams is how many satellites, each on an exec stream of its own,
	// the mount reads files through; the first one also carries every
	// other call. Zero means DefaultStreams, or 1 on a target with a
	// memory limit under 1 GiB or a pids limit (see streamsFor);
	// 1 uses the first one alone.
	Streams int
}

// DefaultStreams is the number of streams a mount reads files through,
// unless Config.Streams says otherwise. The engine moves each exec's
// output through one small buffer at a time, so a stream carries about
// as much as docker exec cat, whatever is asked of it; more streams move
// more (see fuse.Streamer). Each extra one is a satellite process in the
// target, idle while nothing is read, with about 3 MB of memory of its
// own. Six, not four: one reader keeps as many streams busy as it has
// chunks on their way and is no faster with more, but readers at once
// are: four cold readers took 1.73 s against 2.12 s with four streams,
// one 507 against 499 ms (16 alternating rounds, medians).
const DefaultStreams = 6

// Status is what a session reports about itself.
type Status struct {
	Container   string `json:"container"`
	ContainerID string `json:"containerID,omitempty"`
	Path        string `json:"path"`
	ReadOnly    bool   `json:"readOnly"`
	Mountpoint  string `json:"mountpoint"`
	Arch        string `json:"arch,omitempty"`
	Connected   bool   `json:"connected"`
	// Streams is how many satellites the mount reads files through (see
	// Config.Streams), once connected.
	Streams int `json:"streams,omitempty"`
	// Error says why the satellite is not connected, if it is not.
	Error string `json:"error,omitempty"`
}

// Session is a mounted container filesystem. While the mount is up it
// keeps a satellite connected: when the satellite goes away (the target
// stopped or restarted, the engine restarted, the process was killed),
// calls fail at once with EIO and the session starts a new satellite as
// soon as the target runs again. Handles opened before that fail with EIO.
type Session struct {
	cfg    Config
	log    *slog.Logger
	engine client.APIClient
	mnt    *fuse.Mount
	done   chan struct{}
	// exe is the name every satellite of the session is uploaded as, so
	// that a launch removes what an earlier one left.
	exe string

	// fs receives the satellites' change reports once mounted.
	fs atomic.Pointer[fuse.FS]

	mu     sync.Mutex
	sat    *launcher.Session   // nil while disconnected
	extra  []*launcher.Session // the other streams of sat (see addStreams)
	adding bool                // addStreams ran for sat
	// status.Streams is how many streams sat's mount uses (streamsFor).
	status Status
}

var _ io.Closer = (*Session)(nil)

// Errors about the configuration itself.
var (
	ErrNoContainer  = errors.New("no container given")
	ErrNoMountpoint = errors.New("no mountpoint given")
	ErrBadStreams   = errors.New("number of streams out of range")
)

// MaxStreams is the most streams a mount reads through.
const MaxStreams = fuse.MaxStreams

// Mount starts a satellite in cfg.Container and mounts its view on
// cfg.Mountpoint. It returns once the mount is usable; it fails, leaving
// nothing behind, if the container is missing or not running.
func Mount(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.Container == "" {
		return nil, ErrNoContainer
	}
	if cfg.Mountpoint == "" {
		return nil, ErrNoMountpoint
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Satellites == nil {
		cfg.Satellites = embedded.Satellites{}
	}
	if cfg.Streams < 0 || cfg.Streams > MaxStreams {
		return nil, fmt.Errorf("%d streams: %w (give 1 to %d)", cfg.Streams, ErrBadStreams, MaxStreams)
	}
	s := &Session{cfg: cfg, log: cfg.Log, engine: cfg.Engine, done: make(chan struct{}), exe: launcher.ExecutableName()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.engine == nil {
		c, err := launcher.NewEngineClient()
		if err != nil {
			return nil, fmt.Errorf("docker engine: %w (check DOCKER_HOST)", err)
		}
		s.engine = c
	}
	s.status = Status{Container: cfg.Container, Path: cfg.Path, ReadOnly: cfg.ReadOnly, Mountpoint: cfg.Mountpoint}

	sat, err := s.launch(ctx)
	if err != nil {
		return nil, err
	}
	opts := fuse.Options{
		FSName:       "dockerfuse:" + sat.Name + ":" + cfg.Path,
		ReadOnly:     cfg.ReadOnly,
		AllowOther:   cfg.AllowOther,
		AttrTimeout:  cfg.AttrTimeout,
		EntryTimeout: cfg.EntryTimeout,
	}
	if cfg.Debug {
		opts.Debug = func(msg any) { s.log.Debug("fuse", "msg", msg) }
	}
	s.connected(sat)
	mnt, err := fuse.MountFS(cfg.Mountpoint, s, opts)
	if err != nil {
		sat.Close()
		return nil, err
	}
	s.mnt = mnt
	s.fs.Store(mnt.FS)
	go s.supervise(sat)
	time.AfterFunc(streamsAfter, s.startStreams)
	return s, nil
}

func (s *Session) launch(ctx context.Context) (*launcher.Session, error) {
	notify := s.notify
	if s.cfg.NoWatch {
		notify = nil
	}
	return launcher.Launch(ctx, s.launchConfig(s.exe, notify))
}

func (s *Session) launchConfig(exe string, notify func(*rpc.Notify)) launcher.Config {
	return launcher.Config{
		Engine:     s.engine,
		Container:  s.cfg.Container,
		Path:       s.cfg.Path,
		User:       s.cfg.User,
		Satellites: s.cfg.Satellites,
		Stderr:     &logWriter{log: s.log},
		Executable: exe,
		Notify:     notify,
	}
}

// streamsAfter is how long after mounting the extra streams are started,
// unless a large read asks for them sooner: the requests that come at once
// after a mount (a first ls) then do not compete with their execs for the
// CPU, which made the first ls 20-30 ms later on 2 CPUs. Started together,
// they take 50-135 ms to answer there.
const streamsAfter = 50 * time.Millisecond

// startStreams starts the extra streams of the satellite connected now,
// unless they were started already.
func (s *Session) startStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startStreamsLocked()
}

func (s *Session) startStreamsLocked() {
	if !s.adding && s.sat != nil && s.status.Streams > 1 {
		s.adding = true
		go s.addStreams(s.sat, s.status.Streams)
	}
}

// addStreams starts the other satellites that files are read through
// besides sat, all at once, while sat is the one connected. They watch
// nothing and are asked only to open and read files. One that does not
// start, or is lost, is logged, and reads make do with the others until
// sat is replaced. n counts sat.
func (s *Session) addStreams(sat *launcher.Session, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sat.Done()
		cancel()
	}()
	for i := 1; i < n; i++ {
		go s.addStream(ctx, sat, i)
	}
}

func (s *Session) addStream(ctx context.Context, sat *launcher.Session, i int) {
	start := time.Now()
	// From sat's own executable, which costs an exec; or, where that
	// cannot be (a satellite that dropped root), uploaded anew.
	x, err := launcher.LaunchMore(ctx, s.launchConfig("", nil), sat)
	if errors.Is(err, launcher.ErrCannotReuse) && ctx.Err() == nil {
		s.log.Debug("extra stream not started from the satellite's executable; uploading it", "stream", i+1, "err", oneLine(err))
		x, err = launcher.Launch(ctx, s.launchConfig(fmt.Sprintf("%s-%d", s.exe, i), nil))
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("extra stream not started; files are read through the others", "stream", i+1, "err", oneLine(err))
		}
		return
	}
	s.mu.Lock()
	if s.sat != sat {
		s.mu.Unlock()
		x.Close()
		return
	}
	s.extra = append(s.extra, x)
	s.mu.Unlock()
	s.log.Debug("extra stream started", "stream", i+1, "took", time.Since(start))
	<-x.Done()
	s.mu.Lock()
	k := slices.Index(s.extra, x)
	if k >= 0 {
		s.extra = slices.Delete(s.extra, k, k+1)
	}
	s.mu.Unlock()
	if k >= 0 {
		s.log.Warn("extra stream lost; files are read through the others", "stream", i+1, "reason", oneLine(x.Err()))
	}
}

var _ fuse.Streamer = (*Session)(nil)

// Streams implements fuse.Streamer: the other satellites of the one
// connected now. A large read asks for them: they are started then if
// streamsAfter has not yet passed since mounting.
func (s *Session) Streams() []fuse.Caller {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startStreamsLocked()
	cs := make([]fuse.Caller, len(s.extra))
	for i, x := range s.extra {
		cs[i] = x
	}
	return cs
}

// notify passes a satellite's change reports on to the filesystem.
func (s *Session) notify(m *rpc.Notify) {
	if f := s.fs.Load(); f != nil {
		f.Notify(m)
	}
}

// limitedMemory is the memory limit under which a target gets one
// stream unless more are asked for: six satellites hold 20-25 MB of
// memory of their own, which counts against the target's limit.
const limitedMemory = 1 << 30

// streamsFor returns how many streams a mount of sat's target uses:
// Config.Streams if given, else DefaultStreams, or 1 on a target whose
// limits the extra satellites would weigh on (a memory limit under
// limitedMemory, or a pids limit: each satellite runs five or six
// threads), with the reason.
func (s *Session) streamsFor(sat *launcher.Session) (int, string) {
	if s.cfg.Streams != 0 {
		return s.cfg.Streams, ""
	}
	switch l := sat.Limits; {
	case l.Memory > 0 && l.Memory < limitedMemory:
		return 1, fmt.Sprintf("the container has a memory limit of %d MiB", l.Memory>>20)
	case l.Pids > 0:
		return 1, fmt.Sprintf("the container has a pids limit of %d", l.Pids)
	}
	return DefaultStreams, ""
}

func (s *Session) connected(sat *launcher.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, why := s.streamsFor(sat)
	if why != "" && n != s.status.Streams {
		s.log.Info(why+": files are read through one satellite, which the limit counts; -streams (volume option streams) asks for more", "container", sat.Name)
	}
	s.status.Streams = n
	s.sat = sat
	s.adding = false
	s.status.ContainerID = sat.ContainerID
	s.status.Arch = sat.Arch
	s.status.Connected = true
	s.status.Error = ""
}

// errDisconnected answers calls while no satellite is connected: EIO, as
// to the calls that were waiting when the satellite was lost.
var errDisconnected = fmt.Errorf("%w (no satellite connected)", rpc.ErrShutdown)

// Call implements fuse.Caller on whichever satellite is connected.
func (s *Session) Call(ctx context.Context, op rpc.Op, args, reply any) error {
	return s.Pin().Call(ctx, op, args, reply)
}

var _ fuse.Pinner = (*Session)(nil)

// Pin implements fuse.Pinner: the satellite connected now, whose client
// fails every call once it is lost, so that files opened through it fail
// with EIO after a reconnect instead of reaching the new satellite.
func (s *Session) Pin() fuse.Caller {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sat == nil {
		return disconnected{}
	}
	return s.sat
}

// disconnected answers while no satellite is connected.
type disconnected struct{}

func (disconnected) Call(context.Context, rpc.Op, any, any) error { return errDisconnected }

func (disconnected) Err() error { return errDisconnected }

// supervise follows the mount and the satellite until the mount is gone,
// starting a new satellite whenever the current one is lost.
func (s *Session) supervise(sat *launcher.Session) {
	defer close(s.done)
	for {
		select {
		case <-s.mnt.Done():
			s.disconnect(sat, "unmounted")
			if err := s.mnt.Err(); err != nil {
				s.log.Error("serving stopped", "err", err)
			}
			return
		case <-sat.Done():
		}
		reason := oneLine(sat.Err())
		s.log.Warn("satellite lost; operations fail with EIO until it is back", "container", s.cfg.Container, "reason", reason)
		s.disconnect(sat, "satellite lost: "+reason)
		if sat = s.reconnect(); sat == nil {
			return
		}
	}
}

// reconnect launches satellites with backoff until one answers, or returns
// nil when the mount goes away first. Status says why it fails; the log
// says it each time the reason changes.
func (s *Session) reconnect() *launcher.Session {
	delay := 200 * time.Millisecond
	lastKind := ""
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.mnt.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		sat, err := s.launch(ctx)
		cancel()
		if err == nil {
			// Nothing the lost satellite vouched for holds: changes
			// went unreported meanwhile.
			s.fs.Load().Reset()
			s.connected(sat)
			s.log.Info("satellite reconnected", "container", sat.Name, "id", sat.ContainerID[:12])
			s.startStreams()
			return sat
		}
		kind, reason := s.why(err)
		s.mu.Lock()
		s.status.Error = reason
		s.mu.Unlock()
		if kind != lastKind {
			s.log.Warn("satellite not reconnected; retrying", "container", s.cfg.Container, "reason", reason)
			lastKind = kind
		} else {
			s.log.Debug("reconnect failed", "err", err)
		}
		select {
		case <-s.mnt.Done():
			return nil
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// why says why a satellite could not be started again, with a remedy,
// and what kind of reason it is.
func (s *Session) why(err error) (kind, reason string) {
	switch {
	case errors.Is(err, launcher.ErrNoSuchContainer):
		return "removed", fmt.Sprintf("container %q was removed (operations fail with EIO; the mount reconnects if a container of that name runs again)", s.cfg.Container)
	case errors.Is(err, launcher.ErrNotRunning):
		// The launcher says in what state and how to start it.
		return "not running", oneLine(err) + "; the mount reconnects when it runs again"
	case client.IsErrConnectionFailed(err):
		return "engine", "docker engine unreachable: " + oneLine(err) + "; the mount reconnects when it answers"
	}
	return "other", oneLine(err)
}

func (s *Session) disconnect(sat *launcher.Session, reason string) {
	s.mu.Lock()
	var extra []*launcher.Session
	if s.sat == sat {
		s.sat = nil
		extra, s.extra = s.extra, nil
	}
	s.status.Connected = false
	s.status.Error = reason
	s.mu.Unlock()
	sat.Close()
	for _, x := range extra {
		x.Close()
	}
}

// Status reports the session's state.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Done is closed when the mount is gone (unmounted from outside, or by
// Close) and the satellite stopped.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close unmounts and stops the satellite. It waits up to ten seconds for
// the kernel to let go of the mount.
func (s *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.mnt.Unmount(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	return err
}

// logWriter turns the satellite's stderr into log records, a line each.
type logWriter struct {
	log *slog.Logger
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Info("satellite", "stderr", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.log.Info("satellite", "stderr", string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// SetMaxProcs gives the runtime one P for every two CPUs it would use, at
// least one, unless GOMAXPROCS is set. The bytes a mount moves are copied
// as many times again by the engine and its shim, on the same CPUs; a
// client with a P for every CPU kept threads spinning for work, and waking
// each other, at every request, on CPUs the engine needed at that moment.
// The fuse device is waited for in the runtime's poller, so that a P is
// not held by a goroutine waiting for a request. On 2 CPUs, one P against
// four (two more than CPUs, the setting before the poller) took a fifth
// off a cold read of 256 MiB and a fifth off the client's and the engine's
// CPU for it, a quarter off one cold reader of 64 MiB and a sixth off four
// at once, 6-8% off writing 256 MiB and making 1,000 files; a cold
// ls -lR of 10,000 files took 0.92 s against 0.88 (5 alternating runs
// each, within this machine's noise). A process that serves mounts calls
// it once, first.
func SetMaxProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
	}
}
