package launcher

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// fakeEngine is the part of the Engine API that Launch uses, in memory. It
// keeps the files uploaded into the container; each exec ends at once with
// the status exit returns for its command (or fails to create with
// createErr), so no satellite ever answers.
type fakeEngine struct {
	client.APIClient // nil: any other call panics

	createErr error
	exit      func(cmd []string) int

	mu    sync.Mutex
	files map[string]int // path -> size of the last upload
	execs map[string][]string
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{files: map[string]int{}, execs: map[string][]string{}}
}

func (e *fakeEngine) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{
		ID: "c0ffee", Name: "/web", Image: "img",
		State: &container.State{Running: true, Status: "running"},
	}}, nil
}

func (e *fakeEngine) ImageInspect(ctx context.Context, img string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	return image.InspectResponse{Os: "linux", Architecture: "amd64"}, nil
}

func (e *fakeEngine) CopyToContainer(ctx context.Context, id, dir string, content io.Reader, _ container.CopyToContainerOptions) error {
	tr := tar.NewReader(content)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, tr)
		e.mu.Lock()
		e.files[path.Join(dir, hdr.Name)] = int(n)
		e.mu.Unlock()
	}
}

func (e *fakeEngine) ContainerExecCreate(ctx context.Context, id string, o container.ExecOptions) (container.ExecCreateResponse, error) {
	if e.createErr != nil {
		return container.ExecCreateResponse{}, e.createErr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	eid := fmt.Sprint("exec", len(e.execs))
	e.execs[eid] = o.Cmd
	return container.ExecCreateResponse{ID: eid}, nil
}

func (e *fakeEngine) ContainerExecAttach(ctx context.Context, eid string, _ container.ExecAttachOptions) (types.HijackedResponse, error) {
	c, peer := net.Pipe()
	peer.Close() // the process ended without a word
	return types.NewHijackedResponse(c, ""), nil
}

func (e *fakeEngine) ContainerExecInspect(ctx context.Context, eid string) (container.ExecInspect, error) {
	e.mu.Lock()
	cmd := e.execs[eid]
	e.mu.Unlock()
	return container.ExecInspect{ExecID: eid, Running: false, ExitCode: e.exit(cmd)}, nil
}

// satellites hands out a fake executable of a known size.
type satellites struct{}

const satSize = 4096

func (satellites) Satellite(arch string) ([]byte, error) { return make([]byte, satSize), nil }

func (e *fakeEngine) sizes() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.files
}

func launch(e *fakeEngine, dirs ...string) error {
	_, err := Launch(context.Background(), Config{Engine: e, Container: "web", Satellites: satellites{}, Dirs: dirs})
	return err
}

// A container that stops between the inspect and the exec must not keep
// the uploaded satellite: the engine cannot delete it, so it is emptied.
func TestLaunchStoppedBeforeExec(t *testing.T) {
	e := newFakeEngine()
	e.createErr = fmt.Errorf("Container c0ffee is not running: %w", cerrdefs.ErrConflict)
	err := launch(e, "/tmp", "/")
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "docker start web") {
		t.Errorf("Launch = %v, want ErrNotRunning with the remedy", err)
	}
	files := e.sizes()
	if len(files) != 1 {
		t.Fatalf("uploads = %v, want one, in /tmp: a stopped container is not worth trying another directory", files)
	}
	for p, n := range files {
		if n != 0 {
			t.Errorf("%s holds %d bytes after the failed start, want an empty file", p, n)
		}
	}
}

// Where the runtime cannot execute the satellite (noexec), the copy is
// emptied and the next satellite is told to remove it; where it ran and
// failed, it removed itself and nothing is written again.
func TestLaunchFailedStartsLeaveNoCopy(t *testing.T) {
	e := newFakeEngine()
	e.exit = func(cmd []string) int {
		if strings.HasPrefix(cmd[0], "/dev/shm/") {
			return 126 // noexec
		}
		return 1 // it ran, removed itself, and failed
	}
	err := launch(e, "/dev/shm", "/tmp")
	if !errors.Is(err, ErrNoUploadDir) {
		t.Errorf("Launch = %v, want ErrNoUploadDir", err)
	}
	files := e.sizes()
	var shm, tmp string
	for p := range files {
		switch path.Dir(p) {
		case "/dev/shm":
			shm = p
		case "/tmp":
			tmp = p
		}
	}
	if files[shm] != 0 {
		t.Errorf("%s (noexec) holds %d bytes after the failed start, want an empty file", shm, files[shm])
	}
	if files[tmp] != satSize {
		t.Errorf("%s holds %d bytes, want the satellite's %d, written once: it removed itself", tmp, files[tmp], satSize)
	}
	var second []string
	for _, cmd := range e.execs {
		if path.Dir(cmd[0]) == "/tmp" {
			second = cmd
		}
	}
	if !slices.Contains(second, shm) {
		t.Errorf("second satellite's command = %q, want -cleanup %s", second, shm)
	}
}

// A path the satellite cannot serve is not the upload directory's fault:
// the launch ends at once and says so.
func TestLaunchBadPath(t *testing.T) {
	e := newFakeEngine()
	e.exit = func(cmd []string) int { return 2 }
	err := launch(e, "/tmp", "/")
	if !errors.Is(err, ErrBadPath) || errors.Is(err, ErrNoUploadDir) || !strings.Contains(err.Error(), "exists in the container") {
		t.Errorf("Launch = %v, want ErrBadPath with a remedy", err)
	}
	if n := len(e.sizes()); n != 1 {
		t.Errorf("%d uploads, want 1: no other directory is worth trying", n)
	}
}

// The launches of one session share a name: a copy that one could not run
// is replaced by the next, which runs it and so removes it, and the copies
// of that name in the other directories are removed too.
func TestLaunchReusesExecutableName(t *testing.T) {
	e := newFakeEngine()
	name := ExecutableName()
	e.createErr = fmt.Errorf("Container c0ffee is not running: %w", cerrdefs.ErrConflict)
	if _, err := Launch(context.Background(), Config{Engine: e, Container: "web", Satellites: satellites{}, Dirs: []string{"/tmp", "/"}, Executable: name}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("first Launch = %v, want ErrNotRunning", err)
	}
	e.createErr = nil
	e.exit = func([]string) int { return 1 }
	Launch(context.Background(), Config{Engine: e, Container: "web", Satellites: satellites{}, Dirs: []string{"/tmp", "/"}, Executable: name})
	want := []string{"/tmp/" + name, "-root", "/", "-cleanup", "/" + name}
	for _, cmd := range e.execs {
		if cmd[0] == want[0] && !slices.Equal(cmd, want) {
			t.Errorf("second launch runs %q, want %q", cmd, want)
		}
	}
	if len(e.execs) == 0 {
		t.Errorf("second launch ran nothing")
	}
}

// Another satellite of a session's runs from the first one's executable
// through /proc: nothing is uploaded, and its command says whose it is.
func TestLaunchMore(t *testing.T) {
	e := newFakeEngine()
	e.exit = func([]string) int { return 1 }
	main := &Session{ContainerID: "c0ffee", Name: "web", Executable: "/tmp/.dockerfuse-ab", Satellite: &rpc.HelloReply{Pid: 42}}
	_, err := LaunchMore(context.Background(), Config{Engine: e, Container: "web", Path: "/srv"}, main)
	if err == nil || errors.Is(err, ErrCannotReuse) {
		t.Fatalf("LaunchMore of a satellite that ran and failed = %v, want an error other than ErrCannotReuse", err)
	}
	if n := len(e.sizes()); n != 0 {
		t.Errorf("%d uploads, want none", n)
	}
	var cmd []string
	for _, c := range e.execs {
		cmd = c
	}
	want := []string{"/proc/42/exe", "-root", "/srv", "-keep", "-of", "/tmp/.dockerfuse-ab"}
	if !slices.Equal(cmd, want) {
		t.Errorf("command = %q, want %q", cmd, want)
	}

	// The runtime refusing /proc/PID/exe, and a satellite that dropped
	// root (not root's to read there): Launch will do instead.
	e.exit = func([]string) int { return 126 }
	if _, err := LaunchMore(context.Background(), Config{Engine: e, Container: "web"}, main); !errors.Is(err, ErrCannotReuse) {
		t.Errorf("LaunchMore refused by the runtime = %v, want ErrCannotReuse", err)
	}
	main.Satellite.Uid = 1000
	if _, err := LaunchMore(context.Background(), Config{Engine: e, Container: "web"}, main); !errors.Is(err, ErrCannotReuse) {
		t.Errorf("LaunchMore of a non-root satellite = %v, want ErrCannotReuse", err)
	}
	// A container that stopped is no reason to upload.
	main.Satellite.Uid = 0
	e.createErr = fmt.Errorf("Container c0ffee is not running: %w", cerrdefs.ErrConflict)
	if _, err := LaunchMore(context.Background(), Config{Engine: e, Container: "web"}, main); errors.Is(err, ErrCannotReuse) || !errors.Is(err, ErrNotRunning) {
		t.Errorf("LaunchMore in a stopped container = %v, want ErrNotRunning", err)
	}
}
