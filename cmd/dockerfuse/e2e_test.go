package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
	"github.com/dockerfuse/dockerfuse/satellite/embedded"
)

// The tests in this file run bin/dockerfuse as a user would, against the
// engine and distroless targets from testenv, and check what the target
// sees from inside with its own probe (/target).

// dockerfuseBinary builds the command with the satellites make embedded.
func dockerfuseBinary(t *testing.T) string {
	t.Helper()
	testenv.RequireFUSE(t)
	testenv.Engine(t)
	for _, arch := range []string{"amd64", "arm64"} {
		if _, err := (embedded.Satellites{}).Satellite(arch); err != nil {
			t.Fatalf("%v: run the tests with make test, which builds them first", err)
		}
	}
	return testenv.BuildBinary(t, "./cmd/dockerfuse")
}

// mountProc is a running dockerfuse command.
type mountProc struct {
	cmd  *exec.Cmd
	dir  string
	out  *testenv.Buffer
	done chan struct{}
	err  error
}

// startMount runs dockerfuse with args and waits until dir is mounted.
func startMount(t *testing.T, bin, dir string, args ...string) *mountProc {
	t.Helper()
	return startMountEnv(t, bin, dir, nil, args...)
}

// startMountEnv is startMount with env added to the environment.
func startMountEnv(t *testing.T, bin, dir string, env []string, args ...string) *mountProc {
	t.Helper()
	m := &mountProc{dir: dir, out: &testenv.Buffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(bin, append(args, "-mount", dir)...)
	m.cmd.Env = append(os.Environ(), env...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(20 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
		exec.Command("fusermount3", "-u", "-z", dir).Run()
	})
	deadline := time.Now().Add(90 * time.Second) // emulated targets start slowly
	for !isMounted(t, dir) {
		select {
		case <-m.done:
			t.Fatalf("dockerfuse %s exited before mounting: %v\n%s", strings.Join(args, " "), m.err, m.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 90s; output:\n%s", dir, m.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

// unmountOutside unmounts with fusermount3, as a user would from outside,
// and checks that the command then exits 0.
func (m *mountProc) unmountOutside(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("fusermount3", "-u", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	if code := m.wait(t); code != 0 {
		t.Errorf("exit status after fusermount3 -u = %d, want 0; output:\n%s", code, m.out)
	}
}

// wait waits for the command to exit and returns its exit status.
func (m *mountProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("dockerfuse did not exit; output:\n%s", m.out)
	}
	var ee *exec.ExitError
	if errors.As(m.err, &ee) {
		return ee.ExitCode()
	}
	if m.err != nil {
		t.Fatal(m.err)
	}
	return 0
}

func isMounted(t *testing.T, dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir && strings.Contains(sc.Text(), "fuse.dockerfuse") {
			return true
		}
	}
	return false
}

func mountDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMountDistroless(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-cli"})
	if _, err := tg.TryCommand("/bin/sh", "-c", "true"); err == nil {
		t.Fatal("target has a shell; the test wants a distroless target")
	}
	tg.ExecIn(t, []byte("written inside\n"), "write", "/tmp/inside.txt")

	dir := mountDir(t)
	m := startMount(t, bin, dir, "-id", tg.Name)

	t.Run("read what the target wrote", func(t *testing.T) {
		if got := readFile(t, dir+"/tmp/inside.txt"); got != "written inside\n" {
			t.Errorf("read = %q, want %q", got, "written inside\n")
		}
	})
	t.Run("the target sees what we write", func(t *testing.T) {
		if err := os.WriteFile(dir+"/tmp/outside.txt", []byte("written outside\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if got := tg.Exec(t, "cat", "/tmp/outside.txt"); got != "written outside\n" {
			t.Errorf("inside: cat = %q, want %q", got, "written outside\n")
		}
		st := tg.Exec(t, "stat", "/tmp/outside.txt")
		if !strings.Contains(st, "mode=640 ") {
			t.Errorf("inside: stat = %q, want mode=640", st)
		}
	})
	t.Run("edit rename delete", func(t *testing.T) {
		if err := os.MkdirAll(dir+"/srv/app", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/srv/app/a", []byte("one"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir+"/srv/app", dir+"/srv/app2"); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(dir+"/srv/app2/a", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(" two")
		f.Close()
		if got := tg.Exec(t, "cat", "/srv/app2/a"); got != "one two" {
			t.Errorf("inside: cat = %q, want %q", got, "one two")
		}
		if err := os.RemoveAll(dir + "/srv"); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.TryExec("exists", "/srv"); err == nil {
			t.Error("inside: /srv still exists after rm -rf through the mount")
		}
	})
	t.Run("changes inside show within a second", func(t *testing.T) {
		p := dir + "/tmp/inside.txt"
		readFile(t, p) // cache it
		os.ReadDir(dir + "/tmp")
		tg.ExecIn(t, []byte("changed inside, longer\n"), "write", "/tmp/inside.txt")
		tg.ExecIn(t, []byte("new\n"), "write", "/tmp/new.txt")
		time.Sleep(1100 * time.Millisecond)
		if got := readFile(t, p); got != "changed inside, longer\n" {
			t.Errorf("after 1.1s read = %q, want %q", got, "changed inside, longer\n")
		}
		if _, err := os.Stat(dir + "/tmp/new.txt"); err != nil {
			t.Errorf("after 1.1s a file created inside is not visible: %v", err)
		}
	})
	t.Run("satellite left no file", func(t *testing.T) {
		for _, d := range []string{"/", "/tmp"} {
			if ls := tg.Exec(t, "ls", d); strings.Contains(ls, ".dockerfuse-") {
				t.Errorf("inside: ls %s = %q: the satellite's executable is still there", d, ls)
			}
		}
	})
	t.Run("inode numbers of /proc /sys /dev differ", func(t *testing.T) {
		seen := map[uint64]string{}
		for _, d := range []string{"proc", "sys", "dev"} {
			var st syscall.Stat_t
			if err := syscall.Stat(dir+"/"+d, &st); err != nil {
				t.Fatal(err)
			}
			if o, ok := seen[st.Ino]; ok {
				t.Errorf("/%s and /%s share inode %d", d, o, st.Ino)
			}
			seen[st.Ino] = d
		}
	})

	m.cmd.Process.Signal(syscall.SIGTERM)
	if code := m.wait(t); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0; output:\n%s", code, m.out)
	}
	if isMounted(t, dir) {
		t.Errorf("%s still mounted after SIGTERM", dir)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps := tg.Exec(t, "ps")
		if !strings.Contains(ps, ".dockerfuse-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inside: the satellite still runs 10s after unmount:\n%s", ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTarByteExact compares tar of a 10,000-file tree through the mount
// with tar of the same tree read natively through /proc/PID/root.
func TestTarByteExact(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-tar"})
	tg.Exec(t, "tree", "/data", "100", "100", "700")
	dir := mountDir(t)
	startMount(t, bin, dir, "-id", tg.Name)

	sum := func(root string) string {
		t.Helper()
		cmd := exec.Command("tar", "-C", root, "--sort=name", "-cf", "-", "data")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tar -C %s: %v: %s", root, err, stderr.String())
		}
		if len(out) < 10000*700 {
			t.Fatalf("tar -C %s: %d bytes, want at least %d", root, len(out), 10000*700)
		}
		h := sha256.Sum256(out)
		return hex.EncodeToString(h[:])
	}
	native := fmt.Sprintf("/proc/%d/root", tg.Pid(t))
	if got, want := sum(dir), sum(native); got != want {
		t.Errorf("tar through the mount: sha256 %s, want %s (native)", got, want)
	}
}

func TestReadOnlyAndPath(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-ro"})
	tg.Exec(t, "mkdir", "/tmp/only")
	tg.ExecIn(t, []byte("x"), "write", "/tmp/only/inside")
	dir := mountDir(t)
	startMount(t, bin, dir, "-id", tg.Name, "-path", "/tmp/only", "-ro")

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "inside" {
		t.Errorf("ls of -path /tmp/only = %v, want [inside]", ents)
	}
	err = os.WriteFile(dir+"/new", []byte("y"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("write on -ro mount: %v, want EROFS", err)
	}
	if _, err := os.Stat(dir + "/../../etc/hostname"); err == nil {
		// The kernel resolves ".." on the host: this leaves the mount.
		if _, err := os.Stat(dir + "/etc"); err == nil {
			t.Error("-path view shows /etc of the container")
		}
	}
}

func TestBadTargets(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-stopped"})
	tg.Stop(t)
	tests := []struct {
		name string
		id   string
		want []string
	}{
		{"stopped", tg.Name, []string{"is exited", "not running", "docker start"}},
		{"missing", testenv.UniqueName("df-missing"), []string{"no such container", "docker ps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-id", tt.id, "-mount", mountDir(t))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("dockerfuse on a %s container: %v, want exit status 1; output:\n%s", tt.name, err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output = %q, want it to mention %q", out, w)
				}
			}
		})
	}
}

func TestExternalUnmountExitsZero(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-umount"})
	dir := mountDir(t)
	m := startMount(t, bin, dir, "-id", tg.Name)
	m.unmountOutside(t)
}

func TestDaemonize(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-daemon"})
	dir := mountDir(t)
	out, err := exec.Command(bin, "-id", tg.Name, "-mount", dir, "-daemonize").CombinedOutput()
	t.Cleanup(func() { exec.Command("fusermount3", "-u", "-z", dir).Run() })
	if err != nil {
		t.Fatalf("dockerfuse -daemonize: %v: %s", err, out)
	}
	if !isMounted(t, dir) {
		t.Fatalf("-daemonize returned before %s was mounted: %s", dir, out)
	}
	if _, err := os.Stat(dir + "/target"); err != nil {
		t.Errorf("stat through the daemon's mount: %v", err)
	}
	if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
}

func TestArm64Target(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "df-arm64", Arch: "arm64"})
	if got := strings.TrimSpace(tg.Exec(t, "arch")); got != "arm64" {
		t.Fatalf("target arch = %q, want arm64", got)
	}
	dir := mountDir(t)
	m := startMount(t, bin, dir, "-id", tg.Name)
	if err := os.WriteFile(dir+"/tmp/hello", []byte("from amd64 host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tg.Exec(t, "cat", "/tmp/hello"); got != "from amd64 host" {
		t.Errorf("inside the arm64 target: cat = %q, want %q", got, "from amd64 host")
	}
	if !strings.Contains(m.out.String(), "arch=arm64") {
		t.Errorf("log does not say the arm64 satellite started:\n%s", m.out)
	}
}
