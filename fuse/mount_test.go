package fuse

// The tests here mount an FS served by a satellite that runs as a local child
// process on a temporary directory, the backing directory, which stands for
// the target's view. The mount is served by a copy of this test binary
// (serveMain): a Go process that both serves a FUSE mount and touches it can
// deadlock (golang/go#21014), so the test process only touches the mount.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
	"github.com/dockerfuse/dockerfuse/rpc"
)

// serveEnv, when set, makes the test binary serve a mount described by its
// JSON value (a serveConfig) instead of running tests.
const serveEnv = "DOCKERFUSE_FUSE_TEST_SERVE"

type serveConfig struct {
	Satellite    string
	Backing      string
	Mountpoint   string
	ReadOnly     bool
	AllowOther   bool
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	// Debug logs every FUSE request and response to stderr.
	Debug bool
	// NoWatch serves without the satellite's change reports: every
	// answer is then good for AttrTimeout or EntryTimeout only.
	NoWatch bool
	// Streams is the number of satellites files are read through, as
	// the mount's Streamer gives them; 0 or 1 means the one.
	Streams int
}

var satDir string // holds the satellite executable; removed by TestMain

func TestMain(m *testing.M) {
	if cfg := os.Getenv(serveEnv); cfg != "" {
		os.Exit(serveMain(cfg))
	}
	code := m.Run()
	if satDir != "" {
		os.RemoveAll(satDir)
	}
	os.Exit(code)
}

// serveMain is the server process: it starts the satellite on the backing
// directory, mounts, prints "ready", then answers commands read from stdin
// ("counts": the calls made so far per op, as JSON) until stdin closes, and
// unmounts. Its exit status says whether serving went well.
func serveMain(cfgJSON string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "serve: "+format+"\n", args...)
		return 1
	}
	var cfg serveConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fail("bad %s: %v", serveEnv, err)
	}
	var served atomic.Pointer[FS]
	sat, c, err := startSatellite(cfg, func(m *rpc.Notify) {
		if f := served.Load(); f != nil {
			f.Notify(m)
		}
	})
	if err != nil {
		return fail("satellite: %v", err)
	}
	cc := &countingCaller{c: c}
	var extra []*exec.Cmd
	for range cfg.Streams - 1 {
		x, xc, err := startSatellite(cfg, nil)
		if err != nil {
			return fail("extra stream: %v", err)
		}
		extra = append(extra, x)
		cc.extra = append(cc.extra, &countingCaller{c: xc})
	}
	opts := Options{
		FSName:       "dockerfuse-test",
		ReadOnly:     cfg.ReadOnly,
		AllowOther:   cfg.AllowOther,
		AttrTimeout:  cfg.AttrTimeout,
		EntryTimeout: cfg.EntryTimeout,
	}
	if cfg.Debug {
		opts.Debug = func(msg any) { fmt.Fprintln(os.Stderr, msg) }
	}
	mnt, err := MountFS(cfg.Mountpoint, cc, opts)
	if err != nil {
		return fail("%v", err)
	}
	served.Store(mnt.FS)
	fmt.Println("ready")

	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	code := 0
loop:
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok {
				break loop
			}
			switch cmd {
			case "counts":
				b, _ := json.Marshal(cc.counts())
				fmt.Printf("%s\n", b)
			case "fds", "extra-fds":
				// The satellites' open files: handles leaked in them
				// show here.
				procs := []*exec.Cmd{sat}
				if cmd == "extra-fds" {
					procs = extra
				}
				n := 0
				for _, p := range procs {
					ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Process.Pid))
					if err != nil {
						fmt.Fprintf(os.Stderr, "serve: %v\n", err)
					}
					n += len(ents)
				}
				fmt.Printf("%d\n", n)
			default:
				fmt.Fprintf(os.Stderr, "serve: unknown command %q\n", cmd)
				fmt.Println("{}")
			}
		case <-mnt.Done():
			code = fail("unmounted before the test ended: %v", mnt.Err())
			break loop
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mnt.Unmount(ctx); err != nil {
		code = fail("unmount: %v", err)
	}
	if err := mnt.Err(); err != nil {
		code = fail("serve: %v", err)
	}
	c.Close()
	for _, x := range cc.extra {
		x.c.(*rpc.Client).Close()
	}
	for _, p := range append([]*exec.Cmd{sat}, extra...) {
		if err := p.Wait(); err != nil {
			code = fail("satellite: %v", err)
		}
	}
	return code
}

// startSatellite starts a satellite of the backing directory. With
// notify, it reports changes there unless cfg.NoWatch; without, it
// watches nothing, as the extra streams of a mount do.
func startSatellite(cfg serveConfig, notify func(*rpc.Notify)) (*exec.Cmd, *rpc.Client, error) {
	sat := exec.Command(cfg.Satellite, "-keep", "-root", cfg.Backing)
	sat.Stderr = os.Stderr
	w, err := sat.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	r, err := sat.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := sat.Start(); err != nil {
		return nil, nil, err
	}
	c := rpc.NewClient(&pipeConn{r: r, w: w})
	if notify != nil {
		c.OnNotify(notify)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx, notify != nil && !cfg.NoWatch); err != nil {
		c.Close()
		sat.Wait()
		return nil, nil, err
	}
	return sat, c, nil
}

// pipeConn is the satellite's stdout and stdin as one stream.
type pipeConn struct {
	r io.ReadCloser
	w io.WriteCloser
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }

// Close closes stdin only: the satellite exits on EOF, and exec closes its
// stdout once it has. Closing stdout here could race the reader.
func (p *pipeConn) Close() error { return p.w.Close() }

// countingCaller counts the calls made per op. It also makes opens and
// listings of names starting with slowPrefix slow: they take slowDelay in
// the satellite, and one abandoned by its caller meanwhile still completes
// there, its reply dropped, as with an rpc.Client whose ctx ends.
type countingCaller struct {
	c        Caller
	extra    []*countingCaller // its Streams
	n        [64]atomic.Int64
	slow     atomic.Int64 // slow calls started
	slowDone atomic.Int64 // slow calls carried out in the satellite
}

const (
	slowPrefix = "slow-"
	slowDelay  = 300 * time.Millisecond
)

func (c *countingCaller) Call(ctx context.Context, op rpc.Op, args, reply any) error {
	if int(op) < len(c.n) {
		c.n[op].Add(1)
	}
	var p string
	switch a := args.(type) {
	case *rpc.OpenArgs:
		p = a.Path
	case *rpc.ReadDirArgs:
		p = a.Path
	}
	if strings.HasPrefix(filepath.Base(p), slowPrefix) {
		c.slow.Add(1)
		t := time.NewTimer(slowDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			go func() {
				<-t.C
				c.c.Call(context.Background(), op, args, reflect.New(reflect.TypeOf(reply).Elem()).Interface())
				c.slowDone.Add(1)
			}()
			return ctx.Err()
		}
		defer c.slowDone.Add(1)
	}
	return c.c.Call(ctx, op, args, reply)
}

// Streams implements Streamer with the extra satellites, if any.
func (c *countingCaller) Streams() []Caller {
	cs := make([]Caller, len(c.extra))
	for i, x := range c.extra {
		cs[i] = x
	}
	return cs
}

// counts returns the calls per op made through c, and those made through
// its extra streams, all together, as "extra-" and the op.
func (c *countingCaller) counts() map[string]int64 {
	m := make(map[string]int64)
	for op := range c.n {
		if n := c.n[op].Load(); n != 0 {
			m[rpc.Op(op).String()] = n
		}
		for _, x := range c.extra {
			if n := x.n[op].Load(); n != 0 {
				m["extra-"+rpc.Op(op).String()] += n
			}
		}
	}
	m["slow"] = c.slow.Load()
	m["slow-done"] = c.slowDone.Load()
	return m
}

// testMount is a mount served by another process for one test.
type testMount struct {
	// Dir is the mountpoint; Backing the directory the satellite serves.
	Dir, Backing string

	mu     sync.Mutex // serializes commands
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

type mountOptions struct {
	ReadOnly     bool
	AllowOther   bool
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	NoWatch      bool
	Streams      int
}

var (
	satOnce sync.Mutex
	satPath string
)

// satellite returns the path of a satellite executable for this machine,
// built once per test process.
func satellite(t *testing.T) string {
	t.Helper()
	satOnce.Lock()
	defer satOnce.Unlock()
	if satPath != "" {
		return satPath
	}
	b, err := testenv.Satellites(t).Satellite(runtime.GOARCH)
	if err != nil {
		t.Fatalf("building the satellite: %v", err)
	}
	dir, err := os.MkdirTemp("", "dockerfuse-fuse-test-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "satellite")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	satDir, satPath = dir, p
	return p
}

// mount serves a fresh backing directory on a fresh mountpoint from another
// process, until the test ends.
func mount(t *testing.T, opts mountOptions) *testMount {
	t.Helper()
	testenv.RequireFUSE(t)
	sat := satellite(t)
	m := &testMount{Backing: t.TempDir(), Dir: t.TempDir()}
	// Let other users reach the mountpoint and the served root.
	for _, d := range []string{filepath.Dir(m.Dir), m.Dir, filepath.Dir(m.Backing), m.Backing} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := json.Marshal(serveConfig{
		Satellite:    sat,
		Backing:      m.Backing,
		Mountpoint:   m.Dir,
		ReadOnly:     opts.ReadOnly,
		AllowOther:   opts.AllowOther,
		AttrTimeout:  opts.AttrTimeout,
		EntryTimeout: opts.EntryTimeout,
		NoWatch:      opts.NoWatch,
		Streams:      opts.Streams,
		Debug:        os.Getenv("DOCKERFUSE_FUSE_TEST_DEBUG") == "1",
	})
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+string(cfg))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m.stdout = bufio.NewReader(out)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// Closing stdin asks for a clean unmount; if that does not
		// come, the mount is detached and the server killed, so that
		// a failing test never leaves a mount behind.
		m.stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			exec.Command("fusermount3", "-u", "-z", m.Dir).Run()
			cmd.Process.Kill()
			<-exited
			t.Errorf("server did not exit after stdin closed\n%s", stderr.String())
		}
		if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic") {
			t.Errorf("server:\n%s", s)
		} else if t.Failed() && s != "" {
			t.Logf("server's stderr:\n%s", s)
		}
		exec.Command("fusermount3", "-u", "-z", m.Dir).Run()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := m.stdout.ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("server said %q, want %q", line, "ready\n")
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("server did not start: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("server not ready after a minute\n%s", stderr.String())
	}
	return m
}

// counts returns the calls the mount made to the satellite so far, per op.
func (m *testMount) counts(t *testing.T) map[string]int64 {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := io.WriteString(m.stdin, "counts\n"); err != nil {
		t.Fatalf("asking for counts: %v", err)
	}
	line, err := m.stdout.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading counts: %v", err)
	}
	var c map[string]int64
	if err := json.Unmarshal(line, &c); err != nil {
		t.Fatalf("counts %q: %v", line, err)
	}
	return c
}

// satelliteFiles returns how many files the satellite has open.
func (m *testMount) satelliteFiles(t *testing.T) int {
	t.Helper()
	return m.files(t, "fds")
}

// extraFiles returns how many files the extra streams' satellites have
// open, all together.
func (m *testMount) extraFiles(t *testing.T) int {
	t.Helper()
	return m.files(t, "extra-fds")
}

func (m *testMount) files(t *testing.T, cmd string) int {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := io.WriteString(m.stdin, cmd+"\n"); err != nil {
		t.Fatalf("asking for fds: %v", err)
	}
	line, err := m.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading fds: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("fds %q: %v", line, err)
	}
	return n
}

// path returns name inside the mount, and inside the backing directory.
func (m *testMount) path(name string) (mnt, backing string) {
	return filepath.Join(m.Dir, name), filepath.Join(m.Backing, name)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// run runs a command and returns its standard output, failing the test if
// it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

func tryRun(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String(), nil
}

// sh runs a shell script and returns its standard output.
func sh(t *testing.T, script string) string {
	t.Helper()
	return run(t, "bash", "-euc", script)
}

// wantErrno fails the test unless err is errno.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("%s: error %v, want %v", what, err, errno)
	}
}
