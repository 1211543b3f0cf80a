package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// The tests in this file take the target, its satellite, the engine and
// the command away from under a mount, and check that operations answer
// (EIO while the target is unreachable, never a hang), that the session
// comes back by itself, and that nothing stays behind in the target.

// hangDeadline is how long an operation on the mount may take before the
// test calls it hung: far longer than any answer should take, even from a
// loaded machine.
const hangDeadline = 20 * time.Second

// within runs op and returns its error, failing the test if op has not
// returned after hangDeadline.
func within(t *testing.T, what string, op func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangDeadline):
		t.Fatalf("%s: no answer after %v", what, hangDeadline)
		return nil
	}
}

// eventually polls cond until it returns nil, failing the test with cond's
// last error after a generous deadline.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 90s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// satellitePids returns the host pids of the satellites running in the
// target.
func satellitePids(t *testing.T, tg *testenv.Target) []int {
	t.Helper()
	return testenv.SatellitePids(t, tg.Pid(t))
}

// oneSatellite waits until the satellites of one mount run in the target,
// and no others: the main one, and no more than dockerfuse.DefaultStreams-1
// extra ones that files are read through (started by the first large
// read). It returns the host pid of the main one.
func oneSatellite(t *testing.T, tg *testenv.Target) int {
	t.Helper()
	main, _ := mountSatellites(t, tg, -1)
	return main
}

// mountSatellites waits until one mount's main satellite runs in the
// target, with n extra ones (any number up to dockerfuse.DefaultStreams-1
// if n < 0), and no others, and returns their host pids.
func mountSatellites(t *testing.T, tg *testenv.Target, n int) (main int, extra []int) {
	t.Helper()
	eventually(t, "one mount's satellites in the target", func() error {
		pids := satellitePids(t, tg)
		main, extra = 0, nil
		for _, pid := range pids {
			if isExtraSatellite(t, pid) {
				extra = append(extra, pid)
			} else if main == 0 {
				main = pid
			} else {
				return fmt.Errorf("two main satellites among %v", pids)
			}
		}
		if main == 0 || (n >= 0 && len(extra) != n) || len(extra) > dockerfuse.DefaultStreams-1 {
			return fmt.Errorf("satellites %v, of which extra %v; want one main and %d extra", pids, extra, n)
		}
		return nil
	})
	return main, extra
}

// isExtraSatellite tells whether pid is a satellite started for an extra
// stream: from the main one's executable, with -of naming it, or uploaded
// anew under the main one's name with "-1", "-2"... after it.
func isExtraSatellite(t *testing.T, pid int) bool {
	t.Helper()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return slices.Contains(args, "-of") || extraName.MatchString(args[0])
}

var extraName = regexp.MustCompile(`/\.dockerfuse-[0-9a-f]+-[0-9]+$`)

// noSatelliteCopies checks that no uploaded executable is left in the
// target's upload directories.
func noSatelliteCopies(t *testing.T, exec func(args ...string) (string, error)) {
	t.Helper()
	for _, d := range []string{"/", "/tmp"} {
		ls, err := exec("ls", d)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ls, ".dockerfuse-") {
			t.Errorf("inside: ls %s = %q: a copy of the satellite is left", d, ls)
		}
	}
}

// noSatelliteRuns waits until no satellite runs in the target.
func noSatelliteRuns(t *testing.T, exec func(args ...string) (string, error)) {
	t.Helper()
	eventually(t, "no satellite runs in the target", func() error {
		ps, err := exec("ps")
		if err != nil {
			return err
		}
		if strings.Contains(ps, ".dockerfuse-") {
			return fmt.Errorf("ps = %q", ps)
		}
		return nil
	})
}

// failsWithEIO runs each op and checks that it answers EIO.
func failsWithEIO(t *testing.T, ops map[string]func() error) {
	t.Helper()
	for what, op := range ops {
		if err := within(t, what, op); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s = %v, want EIO", what, err)
		}
	}
}

// unreachable waits until listing dir fails with EIO, checking that each
// try answers, and then that the usual operations fail with EIO, held
// (opened before, never read) included.
func unreachable(t *testing.T, dir string, held *os.File) {
	t.Helper()
	eventually(t, "listing fails with EIO", func() error {
		err := within(t, "readdir", func() error { _, err := os.ReadDir(dir + "/tmp"); return err })
		if !errors.Is(err, syscall.EIO) {
			return fmt.Errorf("readdir = %v, want EIO", err)
		}
		return nil
	})
	buf := make([]byte, 16)
	failsWithEIO(t, map[string]func() error{
		"stat of a name not seen before": func() error { _, err := os.Stat(dir + "/tmp/never-seen"); return err },
		"create":                         func() error { return os.WriteFile(dir+"/tmp/created-while-away", nil, 0o644) },
		"mkdir":                          func() error { return os.Mkdir(dir+"/tmp/dir-while-away", 0o755) },
		"read of a held descriptor":      func() error { _, err := held.ReadAt(buf, 0); return err },
		"write of a held descriptor":     func() error { _, err := held.WriteAt([]byte("lost"), 0); return err },
	})
}

// back waits until the mount works again, and checks that a descriptor
// held from before fails with EIO and did not change the file.
func back(t *testing.T, tg *testenv.Target, dir string, held *os.File, m *mountProc) {
	t.Helper()
	eventually(t, "listing works again", func() error {
		return within(t, "readdir", func() error { _, err := os.ReadDir(dir + "/tmp"); return err })
	})
	if !strings.Contains(m.out.String(), "satellite reconnected") {
		t.Errorf("log does not say the satellite reconnected:\n%s", m.out)
	}
	buf := make([]byte, 16)
	failsWithEIO(t, map[string]func() error{
		"write of a descriptor opened before the reconnect": func() error { _, err := held.WriteAt([]byte("XX"), 0); return err },
		"read of a descriptor opened before the reconnect":  func() error { _, err := held.ReadAt(buf, 0); return err },
		"fsync of a descriptor opened before the reconnect": held.Sync,
	})
	if got := tg.Exec(t, "cat", "/tmp/held"); got != "before" {
		t.Errorf("inside: /tmp/held = %q, want %q untouched", got, "before")
	}
	if err := os.WriteFile(dir+"/tmp/after", []byte("after"), 0o644); err != nil {
		t.Fatalf("write through the mount after the reconnect: %v", err)
	}
	if got := tg.Exec(t, "cat", "/tmp/after"); got != "after" {
		t.Errorf("inside: /tmp/after = %q, want %q", got, "after")
	}
}

// heldTarget starts a target holding /tmp/held, mounts it, and opens
// /tmp/held read-write through the mount.
func heldTarget(t *testing.T, name string) (*testenv.Target, string, *mountProc, *os.File) {
	t.Helper()
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: name})
	tg.ExecIn(t, []byte("before"), "write", "/tmp/held")
	dir := mountDir(t)
	m := startMount(t, bin, dir, "-id", tg.Name)
	held, err := os.OpenFile(dir+"/tmp/held", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	return tg, dir, m, held
}

func TestTargetStopsAndStarts(t *testing.T) {
	tg, dir, m, held := heldTarget(t, "dfrel-stop")
	tg.Stop(t)
	unreachable(t, dir, held)
	tg.Start(t)
	back(t, tg, dir, held, m)
	oneSatellite(t, tg)
	noSatelliteCopies(t, tg.TryExec)
}

func TestSatelliteKilled(t *testing.T) {
	tg, dir, m, held := heldTarget(t, "dfrel-satkill")
	old := oneSatellite(t, tg)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (the satellite): %v", old, err)
	}
	back(t, tg, dir, held, m)
	if now := oneSatellite(t, tg); now == old {
		t.Errorf("satellite pid %d after the kill, want a new process", now)
	}
	if !strings.Contains(m.out.String(), "satellite lost") {
		t.Errorf("log does not say the satellite was lost:\n%s", m.out)
	}
	noSatelliteCopies(t, tg.TryExec)
}

func TestTargetRemoved(t *testing.T) {
	tg, dir, m, held := heldTarget(t, "dfrel-removed")
	if out, err := exec.Command("docker", "rm", "--force", tg.ID).CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v: %s", err, out)
	}
	unreachable(t, dir, held)
	eventually(t, "the log says the target was removed", func() error {
		if !strings.Contains(m.out.String(), "was removed") {
			return errors.New(m.out.String())
		}
		return nil
	})
	// The mountpoint stays a directory one can stat and unmount.
	err := within(t, "stat of the mountpoint", func() error {
		fi, err := os.Stat(dir)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("mode %v, want a directory", fi.Mode())
		}
		return err
	})
	if err != nil {
		t.Errorf("stat of the mountpoint of a removed target: %v", err)
	}
	select {
	case <-m.done:
		t.Fatalf("dockerfuse exited when the target was removed; want it mounted until unmounted:\n%s", m.out)
	default:
	}
	held.Close()
	m.unmountOutside(t)
}

// A SIGKILLed command cannot unmount or say goodbye: the satellite must
// notice its closed stream and exit, leaving nothing in the target.
func TestClientKilled(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-clientkill"})
	dir := mountDir(t)
	m := startMount(t, bin, dir, "-id", tg.Name)
	if err := os.WriteFile(dir+"/tmp/x", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	oneSatellite(t, tg)
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	noSatelliteRuns(t, tg.TryExec)
	noSatelliteCopies(t, tg.TryExec)
}

// A call that never ends in the target (the open of a fifo, which waits for
// a writer) blocks nothing else; an interrupt (Ctrl-C) ends the caller's
// wait, and the satellite's death fails it with EIO.
func TestStuckOperation(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-stuck"})
	tg.ExecIn(t, []byte("regular"), "write", "/tmp/slow")
	tg.ExecIn(t, []byte("other"), "write", "/tmp/other")
	dir := mountDir(t)
	// The kernel keeps what it learns for an hour and hears of no change:
	// /tmp/slow stays a regular file to it, whose open goes to the
	// satellite, after the target turned it into a fifo.
	m := startMount(t, bin, dir, "-id", tg.Name, "-attr-timeout", "1h", "-entry-timeout", "1h", "-no-watch")
	if _, err := os.Stat(dir + "/tmp/slow"); err != nil {
		t.Fatal(err)
	}
	tg.Exec(t, "rm", "/tmp/slow")
	tg.Exec(t, "mkfifo", "/tmp/slow")
	sat := oneSatellite(t, tg)

	// blocked counts the satellite's threads waiting in the fifo's open.
	// It also says where each thread waits, for a failure's message.
	blocked := func() (int, string) {
		n := 0
		var where []string
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", sat))
		for _, w := range tasks {
			b, err := os.ReadFile(w)
			if err == nil && strings.Contains(string(b), "wait_for_partner") {
				n++
			}
			where = append(where, string(b))
		}
		return n, strings.Join(where, " ")
	}
	stuckCat := func(want int) (*exec.Cmd, chan error, *testenv.Buffer) {
		t.Helper()
		out := &testenv.Buffer{}
		cmd := exec.Command("cat", dir+"/tmp/slow")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		exited := make(chan struct{})
		go func() { err := cmd.Wait(); close(exited); done <- err }()
		t.Cleanup(func() { cmd.Process.Kill() })
		eventually(t, "the open of the fifo waits in the satellite", func() error {
			select {
			case <-exited:
				t.Fatalf("cat %s/tmp/slow exited instead of waiting: %q\nlog:\n%s", dir, out, m.out)
			default:
			}
			if n, where := blocked(); n != want {
				return fmt.Errorf("%d threads of the satellite wait in a fifo's open, want %d (threads wait in: %s)", n, want, where)
			}
			return nil
		})
		return cmd, done, out
	}
	waitExit := func(what string, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(hangDeadline):
			t.Fatalf("%s: cat still waits after %v", what, hangDeadline)
			return nil
		}
	}

	cat, done, _ := stuckCat(1)
	t.Run("other operations go on", func(t *testing.T) {
		if err := within(t, "readdir", func() error { _, err := os.ReadDir(dir + "/tmp"); return err }); err != nil {
			t.Errorf("readdir while an open is stuck: %v", err)
		}
		var got []byte
		if err := within(t, "read", func() (err error) { got, err = os.ReadFile(dir + "/tmp/other"); return err }); err != nil || string(got) != "other" {
			t.Errorf("read while an open is stuck = %q, %v; want %q", got, err, "other")
		}
		if err := within(t, "write", func() error { return os.WriteFile(dir+"/tmp/new", []byte("new"), 0o644) }); err != nil {
			t.Errorf("write while an open is stuck: %v", err)
		}
	})
	t.Run("Ctrl-C ends the wait", func(t *testing.T) {
		cat.Process.Signal(syscall.SIGINT)
		err := waitExit("after SIGINT", done)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
			t.Errorf("cat after SIGINT: %v, want killed by SIGINT", err)
		}
	})
	t.Run("a lost satellite fails the call with EIO", func(t *testing.T) {
		// The first open still waits in the satellite: nothing cancels it there.
		_, done, out := stuckCat(2)
		if err := syscall.Kill(sat, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := waitExit("after the satellite was killed", done)
		if err == nil || !strings.Contains(out.String(), "Input/output error") {
			t.Errorf("cat when the satellite died: %v, %q; want it to fail with EIO", err, out)
		}
	})
	if !isMounted(t, dir) {
		t.Errorf("%s is no longer mounted:\n%s", dir, m.out)
	}
}

// A satellite that cannot run in /tmp (a noexec tmpfs) runs from another
// directory and removes the copy it could not run; a -path that is not
// there is reported as such, and leaves nothing behind.
func TestNoSatelliteCopyLeft(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-noexec", Tmpfs: map[string]string{"/tmp": "mode=1777"}})
	if mounts := tg.Exec(t, "cat", "/proc/mounts"); !strings.Contains(mounts, " /tmp tmpfs rw,nosuid,nodev,noexec") {
		t.Fatalf("/tmp is not a noexec tmpfs in the target:\n%s", mounts)
	}
	t.Run("bad -path", func(t *testing.T) {
		out, err := exec.Command(bin, "-id", tg.Name, "-mount", mountDir(t), "-path", "/nonexistent").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("dockerfuse -path /nonexistent: %v, want exit status 1; output:\n%s", err, out)
		}
		for _, w := range []string{"/nonexistent", "exists in the container"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("output = %q, want it to mention %q", out, w)
			}
		}
		noSatelliteCopies(t, tg.TryExec)
	})
	t.Run("noexec /tmp", func(t *testing.T) {
		dir := mountDir(t)
		startMount(t, bin, dir, "-id", tg.Name)
		if _, err := os.Stat(dir + "/target"); err != nil {
			t.Fatal(err)
		}
		noSatelliteCopies(t, tg.TryExec)
	})
}
