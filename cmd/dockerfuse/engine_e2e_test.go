package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// privateEngine is a Docker engine of the test's own: its own socket, data
// and exec roots, pid file, configuration and containerd namespaces, and no
// networking. Restarting it disturbs no other test, nor anyone else using
// the machine's engine.
type privateEngine struct {
	root string
	host string // for DOCKER_HOST
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateEngine(t *testing.T) *privateEngine {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		testenv.Unavailable(t, "the engine restart test runs a dockerd of its own: apt-get install docker.io")
	}
	// Short: a unix socket's path must fit in 108 bytes.
	root, err := os.MkdirTemp("", "dfrel-engine-")
	if err != nil {
		t.Fatal(err)
	}
	ns := filepath.Base(root)
	e := &privateEngine{root: root, host: "unix://" + root + "/docker.sock"}
	e.args = []string{
		"-H", e.host,
		"--data-root", root + "/data",
		"--exec-root", root + "/exec",
		"--pidfile", root + "/docker.pid",
		"--config-file", root + "/daemon.json",
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns + "-plugins",
		"--bridge=none", "--iptables=false", "--ip6tables=false",
	}
	if err := os.WriteFile(root+"/daemon.json", []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.remove(t) })
	e.start(t)
	return e
}

func (e *privateEngine) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(e.root+"/dockerd.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	e.cmd = exec.Command("dockerd", e.args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	done := make(chan struct{})
	e.done = done
	go func() { e.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := e.try("version"); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("dockerd %s exited at start:\n%s", strings.Join(e.args, " "), e.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd does not answer after 2 minutes:\n%s", e.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops the engine as a service manager would, and waits for it.
func (e *privateEngine) stop(t *testing.T) {
	t.Helper()
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(2 * time.Minute):
		e.cmd.Process.Kill()
		<-e.done
		t.Errorf("dockerd did not stop within 2 minutes of SIGTERM:\n%s", e.logTail())
	}
	e.cmd = nil
}

// remove stops the engine and removes everything it made.
func (e *privateEngine) remove(t *testing.T) {
	e.stop(t)
	// What a well-behaved engine unmounts itself; a killed one may not.
	var mounts []string
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], e.root+"/") {
				mounts = append(mounts, fields[4])
			}
		}
		f.Close()
	}
	slices.Reverse(mounts)
	for _, m := range mounts {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	if err := os.RemoveAll(e.root); err != nil {
		t.Errorf("removing the private engine's files: %v", err)
	}
}

func (e *privateEngine) logTail() string {
	b, _ := os.ReadFile(e.root + "/dockerd.log")
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// try runs the docker CLI against this engine.
func (e *privateEngine) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func (e *privateEngine) docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.try(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// load copies image from the machine's engine into this one.
func (e *privateEngine) load(t *testing.T, image string) {
	t.Helper()
	save := exec.Command("docker", "save", image)
	load := exec.Command("docker", "load", "-q")
	load.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	var serr, lerr bytes.Buffer
	save.Stderr, load.Stderr = &serr, &lerr
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	if err := load.Run(); err != nil {
		save.Process.Kill()
		save.Wait()
		t.Fatalf("docker load into the private engine: %v: %s", err, lerr.String())
	}
	if err := save.Wait(); err != nil {
		t.Fatalf("docker save %s: %v: %s", image, err, serr.String())
	}
}

// The engine restarts (its containers stop with it, and a restart policy
// starts them again): the session comes back when the engine does.
func TestEngineRestart(t *testing.T) {
	bin := dockerfuseBinary(t)
	image := testenv.TargetImage(t, "amd64")
	e := startPrivateEngine(t)
	e.load(t, image)
	name := testenv.UniqueName("dfrel-engine")
	e.docker(t, "run", "--detach", "--restart", "always", "--network", "none",
		"--label", testenv.LabelKey+"=1", "--name", name, image)
	probe := func(args ...string) (string, error) {
		return e.try(append([]string{"exec", name, "/target"}, args...)...)
	}

	dir := mountDir(t)
	m := startMountEnv(t, bin, dir, []string{"DOCKER_HOST=" + e.host}, "-id", name)
	if err := os.WriteFile(dir+"/tmp/before", []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}

	e.stop(t)
	eventually(t, "listing fails with EIO while the engine is down", func() error {
		err := within(t, "readdir", func() error { _, err := os.ReadDir(dir + "/tmp"); return err })
		if !errors.Is(err, syscall.EIO) {
			return fmt.Errorf("readdir = %v, want EIO", err)
		}
		return nil
	})
	e.start(t)

	eventually(t, "listing works again after the engine restart", func() error {
		return within(t, "readdir", func() error { _, err := os.ReadDir(dir + "/tmp"); return err })
	})
	if got := readFile(t, dir+"/tmp/before"); got != "before" {
		t.Errorf("after the restart read = %q, want %q", got, "before")
	}
	if err := os.WriteFile(dir+"/tmp/after", []byte("after"), 0o644); err != nil {
		t.Fatalf("write after the engine restart: %v", err)
	}
	if got, err := probe("cat", "/tmp/after"); err != nil || got != "after" {
		t.Errorf("inside: /tmp/after = %q, %v; want %q", got, err, "after")
	}
	for _, w := range []string{"satellite lost", "satellite reconnected"} {
		if !strings.Contains(m.out.String(), w) {
			t.Errorf("log does not say %q:\n%s", w, m.out)
		}
	}
	noSatelliteCopies(t, probe)
}
