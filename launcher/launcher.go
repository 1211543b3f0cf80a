// Package launcher starts a satellite inside a running container through the
// Engine API and returns an rpc client connected to it.
//
// Launch inspects the target, picks the satellite built for the image's
// architecture, copies it with CopyToContainer into the first candidate
// directory where it can run, and starts it with an exec that has no TTY
// (a TTY would mangle the binary protocol). The exec's stdout carries the
// replies; its stderr is demultiplexed into Config.Stderr.
//
// Launch makes several engine calls and may take seconds (much longer for
// an emulated target): never call it with a lock held. A Session is safe
// for concurrent use.
package launcher

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Errors a caller may want to tell apart; the returned errors wrap them with
// the container's name and a remedy.
var (
	ErrNoSuchContainer = errors.New("no such container")
	ErrNotRunning      = errors.New("container is not running")
	ErrUnsupportedArch = errors.New("unsupported architecture")
	ErrNoUploadDir     = errors.New("no directory in the container accepts and runs the satellite")
	ErrBadPath         = errors.New("cannot serve the path")
	// ErrCannotReuse: LaunchMore cannot run the satellite's executable
	// again (it dropped root, or the runtime refused /proc/PID/exe);
	// Launch can still start another.
	ErrCannotReuse = errors.New("cannot run the satellite's executable again")
)

// Satellites supplies the static satellite executable for a Linux
// architecture as the engine names it ("amd64", "arm64").
type Satellites interface {
	Satellite(arch string) ([]byte, error)
}

// DefaultDirs are tried in order for the upload. Docker mounts /dev/shm
// noexec, and a FROM scratch image may have no /tmp at all, so the root of
// the container's writable layer comes last.
var DefaultDirs = []string{"/tmp", "/var/tmp", "/run", "/dev/shm", "/"}

// Config says which container to reach and how.
type Config struct {
	// Engine is the Engine API client (see NewEngineClient).
	Engine client.APIClient
	// Container is the target's name or ID.
	Container string
	// Path is the directory the satellite serves; "" means "/".
	Path string
	// User runs the satellite inside the target, as docker exec --user
	// takes it; "" means root.
	User string
	// Satellites supplies the executables.
	Satellites Satellites
	// Dirs overrides DefaultDirs.
	Dirs []string
	// Stderr receives the satellite's stderr; nil discards it.
	Stderr io.Writer
	// StartTimeout bounds the wait for the satellite's first reply; zero
	// means 30 seconds (emulated targets start slowly).
	StartTimeout time.Duration
	// Executable is the name the satellite is uploaded as, in whichever
	// directory; "" means a new one (see ExecutableName). Launches that
	// share one, the reconnects of one session, replace and remove the
	// copies an earlier one could not run.
	Executable string
	// Notify, if set, receives the changes the satellite reports in the
	// directories looked at (see rpc.Notify); nil asks for none.
	Notify func(*rpc.Notify)
}

// setDefaults fills in what cfg leaves to the defaults.
func (cfg *Config) setDefaults() {
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.User == "" {
		// A distroless image may have no /etc/passwd to resolve "root" in.
		cfg.User = "0:0"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
}

// ExecutableName returns a new name to upload a satellite as.
func ExecutableName() string { return ".dockerfuse-" + randomHex(8) }

// NewEngineClient returns an Engine API client configured from the
// environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
// DOCKER_API_VERSION) that negotiates the API version with the engine.
func NewEngineClient() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// Session is a running satellite and the client connected to it.
type Session struct {
	*rpc.Client
	// ContainerID is the target's full ID, Name its name without "/".
	ContainerID string
	Name        string
	// Arch is the architecture of the satellite started.
	Arch string
	// Executable is where the satellite was uploaded; it removed the file
	// itself at start.
	Executable string
	// Satellite is what the satellite said about itself.
	Satellite *rpc.HelloReply
	// Limits are the target's memory and pids limits, which its
	// satellites count against.
	Limits Limits

	uid, gid int // it serves as
}

// Limits are a container's resource limits that every process in it,
// satellites included, counts against; zero means none.
type Limits struct {
	Memory int64 // bytes
	Pids   int64 // processes and threads
}

func limitsOf(ci container.InspectResponse) Limits {
	var l Limits
	if hc := ci.HostConfig; hc != nil {
		l.Memory = max(hc.Memory, 0)
		if hc.PidsLimit != nil {
			l.Pids = max(*hc.PidsLimit, 0)
		}
	}
	return l
}

// Launch starts a satellite in cfg.Container and connects to it.
func Launch(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.Engine == nil || cfg.Satellites == nil {
		return nil, errors.New("launcher: Config.Engine and Config.Satellites are required")
	}
	cfg.setDefaults()
	if !path.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("path %q is not absolute (give a directory inside the container, like /var/log)", cfg.Path)
	}
	dirs := cfg.Dirs
	if len(dirs) == 0 {
		dirs = DefaultDirs
	}

	ci, err := cfg.Engine.ContainerInspect(ctx, cfg.Container)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("container %q: %w (check the name with docker ps)", cfg.Container, ErrNoSuchContainer)
		}
		return nil, fmt.Errorf("inspect container %q: %w", cfg.Container, err)
	}
	name := strings.TrimPrefix(ci.Name, "/")
	if ci.State == nil || !ci.State.Running || ci.State.Paused || ci.State.Restarting {
		status := "unknown"
		if ci.State != nil {
			status = ci.State.Status
		}
		remedy := "start it with docker start " + name
		if ci.State != nil && ci.State.Paused {
			remedy = "unpause it with docker unpause " + name
		}
		return nil, fmt.Errorf("container %q is %s: %w (%s)", name, status, ErrNotRunning, remedy)
	}

	arch, err := imageArch(ctx, cfg.Engine, ci.Image)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", name, err)
	}
	bin, err := cfg.Satellites.Satellite(arch)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", name, err)
	}
	uid, gid, err := resolveUser(ctx, cfg.Engine, ci.ID, cfg.User)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", name, err)
	}

	base := cfg.Executable
	if base == "" {
		base = ExecutableName()
	}
	if !strings.HasPrefix(base, ".dockerfuse-") || strings.Contains(base, "/") {
		return nil, fmt.Errorf("launcher: Config.Executable %q is not a name from ExecutableName", base)
	}
	var reasons []string
	for _, dir := range dirs {
		exe := path.Join(dir, base)
		if err := place(ctx, cfg.Engine, ci, dir, base, bin, uid, gid); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", dir, oneLine(err)))
			continue
		}
		// Copies that this launch, or an earlier one of the same name,
		// could not run may be in any other directory.
		var others []string
		for _, d := range dirs {
			if d != dir {
				others = append(others, path.Join(d, base))
			}
		}
		s, err := start(ctx, cfg, ci.ID, exe, others, uid, gid)
		if err != nil {
			var ns notStarted
			if errors.As(err, &ns) || ctx.Err() != nil {
				// It cannot remove itself; or, cut short, it may
				// not have run.
				erase(cfg.Engine, ci, dir, base, uid, gid)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, ErrNotRunning) {
				return nil, fmt.Errorf("container %q: %w (start it with docker start %s)", name, err, name)
			}
			if errors.Is(err, ErrBadPath) {
				// Another directory would not help.
				return nil, fmt.Errorf("container %q: %w (give a directory that exists in the container)", name, err)
			}
			reasons = append(reasons, fmt.Sprintf("%s: %v", dir, oneLine(err)))
			continue
		}
		s.ContainerID, s.Name, s.Arch, s.Executable = ci.ID, name, arch, exe
		s.uid, s.gid = uid, gid
		s.Limits = limitsOf(ci)
		return s, nil
	}
	return nil, fmt.Errorf("container %q: %w (%s); mount a writable, exec-allowed tmpfs such as --tmpfs /tmp:exec", name, ErrNoUploadDir, strings.Join(reasons, "; "))
}

// LaunchMore starts another satellite in the target of s, as s was started
// (cfg as given to Launch), from the executable s runs: /proc/PID/exe
// still names it after s removed its file. Nothing is uploaded and the
// target is not inspected again, so it costs an exec. A satellite that
// dropped root (Config.User) cannot be reached so; LaunchMore then fails
// and Launch will do.
func LaunchMore(ctx context.Context, cfg Config, s *Session) (*Session, error) {
	if s.Satellite == nil || s.Satellite.Uid != 0 || s.Satellite.Pid <= 0 {
		return nil, fmt.Errorf("%w: it does not run as root (use Launch)", ErrCannotReuse)
	}
	cfg.setDefaults()
	exe := fmt.Sprintf("/proc/%d/exe", s.Satellite.Pid)
	// -of names the main satellite, for whoever looks at ps in the target.
	m, err := start(ctx, cfg, s.ContainerID, exe, nil, s.uid, s.gid, "-keep", "-of", s.Executable)
	if err != nil {
		var ce cannotExec
		if errors.As(err, &ce) {
			err = fmt.Errorf("%w: %v (use Launch)", ErrCannotReuse, err)
		}
		return nil, fmt.Errorf("container %q: %w", s.Name, err)
	}
	m.ContainerID, m.Name, m.Arch, m.Executable = s.ContainerID, s.Name, s.Arch, s.Executable
	m.uid, m.gid, m.Limits = s.uid, s.gid, s.Limits
	return m, nil
}

func imageArch(ctx context.Context, engine client.APIClient, image string) (string, error) {
	ii, err := engine.ImageInspect(ctx, image)
	if err != nil {
		return "", fmt.Errorf("inspect image: %w", err)
	}
	switch ii.Architecture {
	case "amd64", "arm64":
		return ii.Architecture, nil
	case "":
		// Images imported without metadata run on the engine's own
		// architecture.
		v, err := engine.ServerVersion(ctx)
		if err != nil {
			return "", fmt.Errorf("engine version: %w", err)
		}
		return v.Arch, nil
	}
	return "", fmt.Errorf("image is %s/%s: %w (dockerfuse has satellites for amd64 and arm64)", ii.Os, ii.Architecture, ErrUnsupportedArch)
}

// place puts the satellite into the target as dir/base: through this
// host's /proc when it can (placeLocal), else through the engine.
func place(ctx context.Context, engine client.APIClient, ci container.InspectResponse, dir, base string, bin []byte, uid, gid int) error {
	pid := 0
	if ci.State != nil {
		pid = ci.State.Pid
	}
	err := placeLocal(pid, ci.ID, dir, base, bin, uid, gid)
	if errors.Is(err, errNotLocal) {
		err = upload(ctx, engine, ci.ID, dir, base, bin, uid, gid)
	}
	return err
}

// upload writes the satellite as dir/base, owned by whoever will run it so
// that it can remove itself.
func upload(ctx context.Context, engine client.APIClient, id, dir, base string, bin []byte, uid, gid int) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Name:     base,
		Mode:     0o700,
		Size:     int64(len(bin)),
		Typeflag: tar.TypeReg,
		Uid:      uid,
		Gid:      gid,
		ModTime:  time.Now(),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return engine.CopyToContainer(ctx, id, dir, &buf, container.CopyToContainerOptions{})
}

// erase removes the copy dir/base, through /proc where it can. The Engine
// API cannot remove a file: through it the copy is replaced by an empty
// file, which the next satellite of that name to start removes.
func erase(engine client.APIClient, ci container.InspectResponse, dir, base string, uid, gid int) {
	pid := 0
	if ci.State != nil {
		pid = ci.State.Pid
	}
	if err := removeLocal(pid, ci.ID, dir, base); !errors.Is(err, errNotLocal) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	upload(ctx, engine, ci.ID, dir, base, nil, uid, gid)
}

// start runs the uploaded satellite and waits for its hello. cleanup names
// copies that earlier attempts could not run, for the satellite to remove.
// A satellite for another user than root starts as root all the same, to
// chroot into the path, and then becomes uid:gid: confinement does not
// depend on who it serves as.
func start(ctx context.Context, cfg Config, id, exe string, cleanup []string, uid, gid int, more ...string) (*Session, error) {
	cmd := append([]string{exe, "-root", cfg.Path}, more...)
	for _, c := range cleanup {
		cmd = append(cmd, "-cleanup", c)
	}
	user := cfg.User
	if uid != 0 || gid != 0 {
		user = "0:0"
		cmd = append(cmd, "-uid", strconv.Itoa(uid), "-gid", strconv.Itoa(gid))
	}
	ec, err := cfg.Engine.ContainerExecCreate(ctx, id, container.ExecOptions{
		User:         user,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          cmd,
	})
	if err != nil {
		return nil, notStarted{fmt.Errorf("exec create: %w", execError(err))}
	}
	hj, err := cfg.Engine.ContainerExecAttach(ctx, ec.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, notStarted{fmt.Errorf("exec start: %w", execError(err))}
	}
	var stderr tailBuffer
	errw := io.Writer(&stderr)
	if cfg.Stderr != nil {
		errw = io.MultiWriter(&stderr, cfg.Stderr)
	}
	st := &stream{hj: hj, r: newDemux(replyReader(hj), errw)}
	c := rpc.NewClient(st)

	hctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if cfg.Notify != nil {
		c.OnNotify(cfg.Notify)
	}
	hello, err := c.Hello(hctx, cfg.Notify != nil)
	if err != nil {
		c.Close()
		msg := oneLine(err)
		if s := strings.TrimSpace(stderr.String()); s != "" {
			msg = oneLine(errors.New(s))
		}
		if ei, ierr := cfg.Engine.ContainerExecInspect(context.WithoutCancel(ctx), ec.ID); ierr == nil && !ei.Running {
			err := fmt.Errorf("satellite exited with status %d: %s", ei.ExitCode, msg)
			switch ei.ExitCode {
			case 126, 127:
				// The runtime could not execute it (noexec, wrong
				// architecture, not found, not permitted).
				err = notStarted{cannotExec{err}}
			case 2:
				// It ran, and could not serve cfg.Path.
				err = fmt.Errorf("%w: %s", ErrBadPath, msg)
			}
			return nil, err
		}
		return nil, fmt.Errorf("satellite did not answer: %s", msg)
	}
	return &Session{Client: c, Satellite: hello}, nil
}

// notStarted is a failure to start that never ran the satellite, whose
// executable is then still in the container.
type notStarted struct{ error }

func (e notStarted) Unwrap() error { return e.error }

// cannotExec is a start that the runtime could not execute.
type cannotExec struct{ error }

func (e cannotExec) Unwrap() error { return e.error }

// execError marks the engine's refusal to exec in a container that stopped
// since it was inspected.
func execError(err error) error {
	if errdefs.IsConflict(err) {
		return fmt.Errorf("%w: %v", ErrNotRunning, oneLine(err))
	}
	return err
}

// replyReader reads the exec's output with a buffer of 1 MiB: the engine
// sends it in frames of at most 32 KiB, and hj.Reader's 4 KiB buffer made
// three reads of the connection of each, most of a streaming read's
// client CPU. What hj.Reader holds already comes first.
func replyReader(hj types.HijackedResponse) io.Reader {
	var r io.Reader = hj.Conn
	if n := hj.Reader.Buffered(); n > 0 {
		held, _ := hj.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(held)), hj.Conn)
	}
	return bufio.NewReaderSize(r, 1<<20)
}

// stream is the exec's hijacked connection as the rpc client sees it.
type stream struct {
	hj types.HijackedResponse
	r  io.Reader
}

func (s *stream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *stream) Write(p []byte) (int, error) { return s.hj.Conn.Write(p) }

// Close ends the satellite's stdin, which makes it exit, and drops the
// connection.
func (s *stream) Close() error {
	s.hj.CloseWrite()
	s.hj.Close()
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// oneLine keeps engine errors readable inside a longer message.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// tailBuffer keeps the last few KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
