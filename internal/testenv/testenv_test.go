package testenv_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
	"github.com/dockerfuse/dockerfuse/internal/testenv/pattern"
)

func TestTargetAMD64(t *testing.T) {
	t.Parallel()
	tg := testenv.RunTarget(t, testenv.TargetOptions{})
	if !strings.HasPrefix(tg.Image, testenv.ImageRepository+":amd64-") {
		t.Errorf("image = %q, want %s:amd64-HASH", tg.Image, testenv.ImageRepository)
	}

	want := "hello\x00world\n"
	tg.ExecIn(t, []byte(want), "write", "/tmp/hello")
	if got := tg.Exec(t, "cat", "/tmp/hello"); got != want {
		t.Errorf("cat = %q, want %q", got, want)
	}
	tg.ExecIn(t, []byte("more"), "append", "/tmp/hello")
	if got := tg.Exec(t, "cat", "/tmp/hello"); got != want+"more" {
		t.Errorf("cat after append = %q, want %q", got, want+"more")
	}
	if got := tg.Exec(t, "stat", "/tmp/hello"); !strings.HasPrefix(got, "mode=644 size=16 uid=0 gid=0 nlink=1 ") || !strings.HasSuffix(got, " type=file\n") {
		t.Errorf("stat = %q, want mode=644 size=16 uid=0 gid=0 nlink=1 ... type=file", got)
	}
	if got := tg.Exec(t, "stat", "/tmp"); !strings.HasPrefix(got, "mode=1777 ") {
		t.Errorf("stat /tmp = %q, want mode=1777", got)
	}

	tg.Exec(t, "tree", "/tmp/t", "3", "4", "100")
	if got, want := tg.Exec(t, "ls", "/tmp/t"), "d000\nd001\nd002\n"; got != want {
		t.Errorf("ls = %q, want %q", got, want)
	}
	if got, want := tg.Exec(t, "ls", "/tmp/t/d002"), "f0000\nf0001\nf0002\nf0003\n"; got != want {
		t.Errorf("ls d002 = %q, want %q", got, want)
	}
	sum := sha256.Sum256(pattern.TreeFile(2, 3, 100))
	if got, want := tg.Exec(t, "sha256", "/tmp/t/d002/f0003"), hex.EncodeToString(sum[:])+"\n"; got != want {
		t.Errorf("sha256 = %q, want %q", got, want)
	}

	// The host sees the same files natively, through the main process.
	native, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/t/d001/f0000", tg.Pid(t)))
	if err != nil {
		t.Fatal(err)
	}
	if want := pattern.TreeFile(1, 0, 100); !bytes.Equal(native, want) {
		t.Errorf("native read = %x, want %x", native, want)
	}

	tg.Exec(t, "mkfifo", "/tmp/fifo")
	if got := tg.Exec(t, "stat", "/tmp/fifo"); !strings.HasSuffix(got, " type=fifo\n") {
		t.Errorf("stat fifo = %q, want type=fifo", got)
	}
	tg.Exec(t, "symlink", "hello", "/tmp/link")
	if got := tg.Exec(t, "readlink", "/tmp/link"); got != "hello\n" {
		t.Errorf("readlink = %q, want %q", got, "hello\n")
	}
	tg.Exec(t, "rm", "/tmp/t")
	if _, err := tg.TryExec("exists", "/tmp/t"); err == nil {
		t.Error("exists /tmp/t after rm succeeded, want failure")
	}
	tg.Exec(t, "exists", "/tmp/link")

	if !strings.Contains(tg.Exec(t, "cat", "/etc/passwd"), "app:x:1000:1000:") {
		t.Error("/etc/passwd has no user app with uid 1000")
	}
	if out, err := tg.TryCommand("/bin/sh", "-c", "true"); err == nil {
		t.Errorf("/bin/sh ran (%q): the image must hold no shell", out)
	}
	if got := tg.Exec(t, "ls", "/"); strings.Contains(got, "bin") {
		t.Errorf("ls / = %q, want no bin", got)
	}
	if _, err := tg.TryExec("cat", "/nonexistent"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("cat /nonexistent: err = %v, want one that carries stderr", err)
	}
	if got := tg.Exec(t, "ps"); !strings.Contains(got, "1 /target serve\n") {
		t.Errorf("ps = %q, want pid 1 /target serve", got)
	}

	pid := tg.Pid(t)
	tg.Stop(t)
	if _, err := tg.TryExec("arch"); err == nil {
		t.Error("exec in a stopped target succeeded")
	}
	tg.Start(t)
	if got := tg.Exec(t, "cat", "/tmp/hello"); got != want+"more" {
		t.Errorf("cat after restart = %q, want %q", got, want+"more")
	}
	if tg.Pid(t) == pid {
		t.Errorf("pid after restart = %d, the same as before", pid)
	}
}

func TestTargetARM64(t *testing.T) {
	t.Parallel()
	tg := testenv.RunTarget(t, testenv.TargetOptions{Arch: "arm64"})
	if got := tg.Exec(t, "arch"); got != "arm64\n" {
		t.Errorf("arch = %q, want %q", got, "arm64\n")
	}
	tg.ExecIn(t, []byte("x"), "write", "/tmp/x")
	if got := tg.Exec(t, "cat", "/tmp/x"); got != "x" {
		t.Errorf("cat = %q, want %q", got, "x")
	}
}

func TestTargetOptions(t *testing.T) {
	t.Parallel()
	tg := testenv.RunTarget(t, testenv.TargetOptions{
		Name:           "dockerfuse-options",
		ReadOnlyRootfs: true,
		User:           "app",
		Tmpfs:          map[string]string{"/data": "mode=1777"},
	})
	if !strings.HasPrefix(tg.Name, "dockerfuse-options-") {
		t.Errorf("name = %q, want prefix dockerfuse-options-", tg.Name)
	}
	if _, err := tg.TryExec("mkdir", "/x"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("mkdir on a read-only root: err = %v, want read-only file system", err)
	}
	tg.ExecIn(t, []byte("y"), "write", "/data/y")
	if got := tg.Exec(t, "stat", "/data/y"); !strings.Contains(got, " uid=1000 gid=1000 ") {
		t.Errorf("stat = %q, want uid=1000 gid=1000", got)
	}
}

func TestSatellites(t *testing.T) {
	t.Parallel()
	s := testenv.Satellites(t)
	b, err := s.Satellite("amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Errorf("satellite starts with %q, want an ELF header", b[:min(len(b), 4)])
	}
	b[0] = 0
	if again, _ := s.Satellite("amd64"); again[0] != 0x7f {
		t.Error("a caller's change to the returned bytes reached the next caller")
	}
	if _, err := s.Satellite("mips"); err == nil {
		t.Error("Satellite(mips) succeeded, want an error")
	}
}

func TestBuildBinary(t *testing.T) {
	t.Parallel()
	p := testenv.BuildBinary(t, "./internal/testbin/target")
	if filepath.Base(p) != "target" {
		t.Errorf("path = %q, want base target", p)
	}
	out, err := exec.Command(p, "arch").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), runtime.GOARCH+"\n"; got != want {
		t.Errorf("arch = %q, want %q", got, want)
	}
}

func TestUniqueName(t *testing.T) {
	t.Setenv("DOCKERFUSE_TEST_PREFIX", "")
	seen := map[string]bool{}
	for range 100 {
		n := testenv.UniqueName("p")
		if !strings.HasPrefix(n, "p-") || seen[n] {
			t.Fatalf("UniqueName = %q after %d names, want a new p-HEX", n, len(seen))
		}
		seen[n] = true
	}
}
