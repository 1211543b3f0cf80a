package satellite_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// buildSatellite builds cmd/satellite as the Makefile does, static, into a
// temporary directory.
func buildSatellite(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	exe := filepath.Join(t.TempDir(), "satellite")
	cmd := exec.Command(gobin, "build", "-trimpath", "-tags", "codec.notfastpath", "-o", exe, "../cmd/satellite")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/satellite: %v\n%s", err, out)
	}
	return exe
}

// pipeStream is the satellite's stdin and stdout as one stream; it keeps a
// copy of everything read.
type pipeStream struct {
	r    io.Reader
	w    *os.File
	seen bytes.Buffer
}

func (p *pipeStream) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.seen.Write(b[:n])
	return n, err
}
func (p *pipeStream) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeStream) Close() error                { return p.w.Close() }

// TestSatelliteBinary runs the satellite as the launcher does: it must
// remove its executable at start, serve on stdin and stdout, write nothing
// but frames to stdout, and exit 0 when stdin closes.
func TestSatelliteBinary(t *testing.T) {
	t.Parallel()
	exe := buildSatellite(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "hello.txt"), "hello from the target")

	stdinR, stdinW, err := os.Pipe()
	check(t, "pipe", err)
	stdoutR, stdoutW, err := os.Pipe()
	check(t, "pipe", err)
	var stderr bytes.Buffer
	cmd := exec.Command(exe, "-root", root)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, &stderr
	check(t, "start the satellite", cmd.Start())
	stdinR.Close()
	stdoutW.Close()
	defer stdoutR.Close()
	stream := &pipeStream{r: stdoutR, w: stdinW}
	c := rpc.NewClient(stream)
	defer c.Close()

	ctx := context.Background()
	calls := 0
	hello, err := c.Hello(ctx, false)
	calls++
	check(t, "hello", err)
	wantRoot := "/" // chrooted
	if os.Geteuid() != 0 {
		wantRoot = root
	}
	if hello.Pid != cmd.Process.Pid || hello.Version != rpc.Version || hello.Root != wantRoot || hello.Arch != runtime.GOARCH {
		t.Errorf("hello = %+v, want pid %d, version %d, root %s, arch %s", *hello, cmd.Process.Pid, rpc.Version, wantRoot, runtime.GOARCH)
	}
	// It answered, so it is past its start: the executable is gone.
	if _, err := os.Stat(exe); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of the satellite's executable after start = %v, want not exist", err)
	}

	var o rpc.OpenReply
	calls++
	check(t, "open", c.Call(ctx, rpc.OpOpen, &rpc.OpenArgs{Path: "hello.txt"}, &o))
	var r rpc.ReadReply
	calls++
	check(t, "read", c.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Handle: o.Handle, Size: 100}, &r))
	if string(r.Data) != "hello from the target" {
		t.Errorf("read = %q, want %q", r.Data, "hello from the target")
	}
	calls++
	err = c.Call(ctx, rpc.OpLstat, &rpc.PathArgs{Path: "missing"}, &rpc.Attr{})
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("lstat missing = %v, want ENOENT", err)
	}
	calls++
	err = c.Call(ctx, rpc.Op(250), &rpc.PathArgs{}, nil)
	if rpc.Errno(err) != syscall.EOPNOTSUPP {
		t.Errorf("unknown op = %v, want EOPNOTSUPP", err)
	}

	// The end of stdin ends the satellite, with status 0.
	stdinW.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("satellite exit after stdin closed = %v, want status 0; stderr:\n%s", err, stderr.Bytes())
	}
	<-c.Done() // the reader has seen the end of stdout: stream.seen is complete

	out := stream.seen.Bytes()
	frames := 0
	for len(out) > 0 {
		if len(out) < 4 {
			t.Fatalf("stdout ends with %d stray bytes %q, want only whole frames", len(out), out)
		}
		n := binary.BigEndian.Uint32(out)
		if n > rpc.MaxFrame || int(n) > len(out)-4 {
			t.Fatalf("stdout frame %d claims %d bytes with %d left: %q, want only frames", frames, n, len(out)-4, out[:min(len(out), 64)])
		}
		out = out[4+n:]
		frames++
	}
	if frames != calls {
		t.Errorf("stdout held %d frames, want one reply per call: %d", frames, calls)
	}
	if stderr.Len() > 0 {
		t.Logf("satellite stderr:\n%s", stderr.Bytes())
	}
}
