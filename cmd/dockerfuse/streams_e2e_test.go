package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/internal/testenv"
	"github.com/dockerfuse/dockerfuse/internal/testenv/pattern"
)

// TestStreams reads files through a mount's extra streams: the bytes are
// the target's and go through them, they go with the mount, and one of
// them lost costs no error; -streams 1 starts none.
func TestStreams(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfstreams"})
	const size = 8<<20 + 5
	want := make([][]byte, 3)
	for i := range want {
		want[i] = make([]byte, size)
		pattern.Fill(want[i], uint64(i)+40)
		tg.ExecIn(t, want[i], "write", fmt.Sprintf("/tmp/big%d", i))
	}
	// check reads file i through the mount on dir; checkExtra also
	// checks that the extra satellites carried most of it.
	check := func(t *testing.T, dir string, i int) {
		t.Helper()
		checkRead(t, fmt.Sprintf("%s/tmp/big%d", dir, i), want[i])
	}
	checkExtra := func(t *testing.T, dir string, i int, extra []int) {
		t.Helper()
		checkReadExtra(t, fmt.Sprintf("%s/tmp/big%d", dir, i), want[i], extra)
	}
	dir := mountDir(t)
	m := startMount(t, bin, dir, "-id", tg.Name)

	_, extra := mountSatellites(t, tg, dockerfuse.DefaultStreams-1)
	for _, pid := range extra {
		// Started from the main one's executable: nothing uploaded.
		if cmd := cmdline(t, pid); !strings.Contains(cmd, "/exe -root / -keep -of /") {
			t.Errorf("extra satellite's command %q, want it run from the main one's /proc/PID/exe", cmd)
		}
	}
	checkExtra(t, dir, 0, extra)

	// An extra satellite lost: the next files read through the others.
	if err := syscall.Kill(extra[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The stream of the killed one may be in use: the read that meets
	// its end is made again on the main stream.
	check(t, dir, 1)
	check(t, dir, 2)
	if s := m.out.String(); strings.Contains(s, "satellite lost") {
		t.Errorf("the loss of an extra satellite was taken for the main one's:\n%s", s)
	}

	m.unmountOutside(t)
	noSatelliteRuns(t, tg.TryExec)
	noSatelliteCopies(t, tg.TryExec)

	// A satellite that dropped root cannot be run again from /proc by
	// the engine's root: the extra ones are uploaded anew.
	t.Run("User", func(t *testing.T) {
		dir := mountDir(t)
		m := startMount(t, bin, dir, "-id", tg.Name, "-user", "1000:1000")
		_, extra := mountSatellites(t, tg, dockerfuse.DefaultStreams-1)
		checkExtra(t, dir, 2, extra)
		m.unmountOutside(t)
		noSatelliteRuns(t, tg.TryExec)
		noSatelliteCopies(t, tg.TryExec)
	})

	t.Run("OneStream", func(t *testing.T) {
		dir := mountDir(t)
		m := startMount(t, bin, dir, "-id", tg.Name, "-streams", "1")
		check(t, dir, 0)
		soleSatellite(t, tg, "-streams 1")
		m.unmountOutside(t)
		noSatelliteRuns(t, tg.TryExec)
	})
}

// checkRead reads name, a file of the target through a mount, and checks
// that it holds want.
func checkRead(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: read %d bytes that differ from the target's %d", name, len(got), len(want))
	}
}

// checkReadExtra is checkRead that also checks that the extra satellites
// extra carried most of the file.
func checkReadExtra(t *testing.T, name string, want []byte, extra []int) {
	t.Helper()
	before := readBytes(t, extra...)
	checkRead(t, name, want)
	if moved := readBytes(t, extra...) - before; moved < int64(len(want))/2 {
		t.Errorf("the extra satellites read %d bytes of the %d byte file, want most of it", moved, len(want))
	}
}

// soleSatellite checks that only the main satellite runs in the target,
// a second after a read: with, what made it so, for the message.
func soleSatellite(t *testing.T, tg *testenv.Target, with string) {
	t.Helper()
	// Extra satellites would have started by now.
	time.Sleep(time.Second)
	if pids := satellitePids(t, tg); len(pids) != 1 {
		t.Errorf("satellites %v with %s, want one", pids, with)
	}
}

// readBytes returns the bytes the processes pids have read, all together
// (rchar of /proc/<pid>/io).
func readBytes(t *testing.T, pids ...int) int64 {
	t.Helper()
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "rchar: "); ok {
				r, _ := strconv.ParseInt(v, 10, 64)
				n += r
			}
		}
	}
	return n
}

// cmdline returns the command line of process pid, its arguments joined
// by spaces.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}

// TestStreamsLimited mounts targets with a memory or pids limit, which
// every satellite counts against: by default only the main satellite
// runs, and says why; -streams asks for more.
func TestStreamsLimited(t *testing.T) {
	bin := dockerfuseBinary(t)
	for _, c := range []struct {
		name string
		args []string
		why  string
	}{
		{"Memory", []string{"--memory", "256m"}, "memory limit of 256 MiB"},
		{"Pids", []string{"--pids-limit", "300"}, "pids limit of 300"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dflimited", Args: c.args})
			want := make([]byte, 4<<20)
			pattern.Fill(want, 7)
			tg.ExecIn(t, want, "write", "/tmp/big")

			dir := mountDir(t)
			m := startMount(t, bin, dir, "-id", tg.Name)
			checkRead(t, dir+"/tmp/big", want)
			soleSatellite(t, tg, "a target with a "+c.why)
			if s := m.out.String(); !strings.Contains(s, c.why) || !strings.Contains(s, "-streams") {
				t.Errorf("the log does not say why one satellite runs (%q) and how to ask for more:\n%s", c.why, s)
			}
			m.unmountOutside(t)
			noSatelliteRuns(t, tg.TryExec)

			// Asked for, the extra ones run all the same.
			dir = mountDir(t)
			m = startMount(t, bin, dir, "-id", tg.Name, "-streams", "3")
			_, extra := mountSatellites(t, tg, 2)
			checkReadExtra(t, dir+"/tmp/big", want, extra)
			m.unmountOutside(t)
			noSatelliteRuns(t, tg.TryExec)
		})
	}
}
