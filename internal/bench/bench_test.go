package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/internal/testenv"
	"github.com/dockerfuse/dockerfuse/internal/testenv/pattern"
	"github.com/dockerfuse/dockerfuse/launcher"
	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite/embedded"
)

const (
	bigSize    = 256 << 20 // workloads 1 and 2
	parSize    = 64 << 20  // workload 7, per reader
	parReaders = 4
	treeDirs   = 100 // workloads 3 and 5: 10,000 files
	treeFiles  = 100
	treeSize   = 1024
	newFiles   = 1000 // workload 4
	newSize    = 4096
	idleFor    = 5 * time.Second
	fuseMagic  = 0x65735546
)

// b is one benchmark run: the target, the binary and what was measured.
type b struct {
	t    *testing.T
	bin  string
	tgt  *testenv.Target
	pid  int    // the target's main process on the host
	root string // the target's root, natively
	runs int
	// streams is the mount's -streams; DefaultStreams unless
	// DOCKERFUSE_BENCH_STREAMS says otherwise.
	streams int
	rows    []row
	satHWM  int64 // the largest satellite VmHWM seen, in kB
	cliHWM  int64 // the same for the dockerfuse process
}

// row is one line of the table. Values are seconds unless unit says
// otherwise; NaN means the method does not apply.
type row struct {
	name                 string
	unit                 string
	df, exec, cp, native float64
	// The target: ratio of df to the column ref ("exec", "cp", "native"),
	// or an absolute bound on df ("abs"); less is better unless atLeast.
	ref     string
	limit   float64
	atLeast bool
	note    string
}

func TestBench(t *testing.T) {
	if os.Getenv("DOCKERFUSE_BENCH") == "" {
		t.Skip("the benchmark runs with DOCKERFUSE_BENCH=1 (make bench)")
	}
	testenv.RequireFUSE(t)
	bin, err := filepath.Abs("../../bin/dockerfuse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: build it with make first (make bench does)", err)
	}
	runs := 5
	if s := os.Getenv("DOCKERFUSE_BENCH_RUNS"); s != "" {
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("DOCKERFUSE_BENCH_RUNS=%q: want a positive count", s)
		}
	}
	streams := dockerfuse.DefaultStreams
	if s := os.Getenv("DOCKERFUSE_BENCH_STREAMS"); s != "" {
		if streams, err = strconv.Atoi(s); err != nil || streams < 1 || streams > dockerfuse.MaxStreams {
			t.Fatalf("DOCKERFUSE_BENCH_STREAMS=%q: want a count from 1 to %d", s, dockerfuse.MaxStreams)
		}
	}
	tgt := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfbench"})
	pid := tgt.Pid(t)
	bb := &b{t: t, bin: bin, tgt: tgt, pid: pid, root: fmt.Sprintf("/proc/%d/root", pid), runs: runs, streams: streams}
	start := time.Now()
	bb.setup()
	only := os.Getenv("DOCKERFUSE_BENCH_ONLY") // e.g. "1,3" while working on one
	for i, w := range []func(){bb.seqRead, bb.seqWrite, bb.listing, bb.create, bb.tar, bb.mountTime, bb.parallel, bb.resources} {
		if only != "" && !slices.Contains(strings.Split(only, ","), strconv.Itoa(i+1)) {
			continue
		}
		w()
	}
	table := bb.table(time.Since(start))
	fmt.Print(table)
	if out := os.Getenv("DOCKERFUSE_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, r := range bb.rows {
		if r.ref != "" && !r.pass() {
			t.Errorf("%s: target %s missed", r.name, r.target())
		}
	}
}

func (bb *b) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (bb *b) fatal(err error) {
	bb.t.Helper()
	if err != nil {
		bb.t.Fatal(err)
	}
}

// setup writes the files every workload reads, natively into the target.
func (bb *b) setup() {
	bb.logf("setting up %s", bb.tgt.Name)
	bb.fatal(os.MkdirAll(bb.root+"/bench", 0o755))
	buf := make([]byte, 1<<20)
	write := func(name string, size int, seed uint64) {
		f, err := os.Create(bb.root + name)
		bb.fatal(err)
		for off := 0; off < size; off += len(buf) {
			pattern.Fill(buf, seed+uint64(off))
			_, err := f.Write(buf)
			bb.fatal(err)
		}
		bb.fatal(f.Close())
	}
	write("/bench/big", bigSize, 1)
	for i := range parReaders {
		write(fmt.Sprintf("/bench/par%d", i), parSize, uint64(i+2)<<40)
	}
	bb.tgt.Exec(bb.t, "tree", "/tree", strconv.Itoa(treeDirs), strconv.Itoa(treeFiles), strconv.Itoa(treeSize))
}

// mount is one bin/dockerfuse process serving a mount of the target.
type mount struct {
	dir  string
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

// mount starts bin/dockerfuse and returns once `ls` of the mount succeeds,
// with the time that took.
func (bb *b) mount() (*mount, time.Duration) {
	bb.t.Helper()
	m := &mount{dir: filepath.Join(bb.t.TempDir(), "mnt"), done: make(chan struct{})}
	bb.fatal(os.Mkdir(m.dir, 0o755))
	m.cmd = exec.Command(bb.bin, "-id", bb.tgt.ID, "-mount", m.dir, "-streams", strconv.Itoa(bb.streams))
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	start := time.Now()
	bb.fatal(m.cmd.Start())
	go func() { m.cmd.Wait(); close(m.done) }()
	bb.t.Cleanup(func() { m.close(bb) })
	for {
		var st unix.Statfs_t
		if unix.Statfs(m.dir, &st) == nil && st.Type == fuseMagic {
			if ents, err := os.ReadDir(m.dir); err == nil && len(ents) > 0 {
				break
			}
		}
		select {
		case <-m.done:
			bb.t.Fatalf("dockerfuse exited before mounting:\n%s", m.out.String())
		default:
		}
		if time.Since(start) > time.Minute {
			bb.t.Fatalf("no mount after a minute:\n%s", m.out.String())
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	return m, took
}

// waitStreams waits until every stream of the mount has its satellite.
// They start one after another from 50 ms after mounting, each exec
// taking the engine 60-70 ms on 2 CPUs: a run begun before they are all
// up shares the CPU with their starts, which weighs on a short run (one
// reader of workload 7) more than on a long one (four readers).
func (bb *b) waitStreams() {
	bb.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(bb.satellitePids()) < bb.streams {
		if time.Now().After(deadline) {
			bb.t.Fatalf("%d of %d satellites running 20 s after mounting", len(bb.satellitePids()), bb.streams)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// close records the peak memory of both processes and unmounts.
func (m *mount) close(bb *b) {
	select {
	case <-m.done:
		return
	default:
	}
	for _, pid := range bb.satellitePids() {
		bb.satHWM = max(bb.satHWM, vmHWM(pid))
	}
	bb.cliHWM = max(bb.cliHWM, vmHWM(m.cmd.Process.Pid))
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	exec.Command("fusermount3", "-u", "-z", m.dir).Run()
	// Its satellites see their stdin close and exit; the next mount's
	// are then the only ones (waitStreams counts them).
	for deadline := time.Now().Add(5 * time.Second); len(bb.satellitePids()) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// satellitePids finds the satellites among the processes of the target's
// pid namespace.
func (bb *b) satellitePids() []int {
	return testenv.SatellitePids(bb.t, bb.pid)
}

// vmHWM is a process's peak resident set in kB, or 0 once it is gone.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks is a process's utime+stime in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// dropCaches empties the host's page, dentry and inode caches, which the
// target's files live in too.
func (bb *b) dropCaches() {
	unix.Sync()
	bb.fatal(os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200))
}

// method is one way of doing a workload's work; prep runs untimed before
// each run of it.
type method struct {
	prep func()
	run  func() error
}

// measure runs each method once to warm up and then runs times, taking
// turns, and returns each one's median in seconds (NaN for a nil method).
// settleAfterPrep is the pause between a run's preparation and the run.
const settleAfterPrep = 300 * time.Millisecond

func (bb *b) measure(ms ...*method) []float64 {
	bb.t.Helper()
	times := make([][]float64, len(ms))
	for i := 0; i <= bb.runs; i++ {
		for j, m := range ms {
			if m == nil {
				continue
			}
			if m.prep != nil {
				m.prep()
				// What the preparation set going is its own cost,
				// not the run's: the engine's and the mount's
				// handling of its changes (a mount takes in the
				// reports of 1,000 removals, say).
				time.Sleep(settleAfterPrep)
			}
			start := time.Now()
			if err := m.run(); err != nil {
				bb.t.Fatal(err)
			}
			if i > 0 {
				times[j] = append(times[j], time.Since(start).Seconds())
			}
		}
	}
	med := make([]float64, len(ms))
	for j := range ms {
		med[j] = median(times[j])
	}
	return med
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// docker runs the docker CLI with stdout on /dev/null, so that the CLI
// moves the bytes itself; stdin is nil or a file.
func docker(stdin io.Reader, args ...string) error {
	return run(stdin, nil, "docker", args...)
}

// run runs a command with stdin (nil for none) and stdout sent to w (nil
// for /dev/null).
func run(stdin io.Reader, w io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	if w != nil {
		cmd.Stdout = w
	} else {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer null.Close()
		cmd.Stdout = null
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// readFile reads name to the end in 1 MiB reads and checks its size.
func readFile(name string, want int64) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := f.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != want {
		return fmt.Errorf("read %d bytes of %s, want %d", n, name, want)
	}
	return nil
}

// writeFile writes size bytes to name in 1 MiB writes and fsyncs it.
func writeFile(name string, size int) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	pattern.Fill(buf, 7)
	for off := 0; off < size; off += len(buf) {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// relaunch ends session s (if any) and starts a satellite of its own in
// the target through engine, as the mount does, to be called without FUSE.
func (bb *b) relaunch(engine *client.Client, s *launcher.Session) *launcher.Session {
	bb.t.Helper()
	if s != nil {
		s.Close()
	}
	s, err := launcher.Launch(context.Background(), launcher.Config{Engine: engine, Container: bb.tgt.ID, Satellites: embedded.Satellites{}})
	bb.fatal(err)
	return s
}

// streamChunk is the size of the mount's calls for streaming reads
// (fuse.raChunk).
const streamChunk = 512 << 10

// streamFile reads name through s as the mount streams a file, in calls of
// streamChunk one after the other, and drops the data.
func streamFile(s *launcher.Session, name string, want int64) error {
	ctx := context.Background()
	var o rpc.OpenReply
	if err := s.Call(ctx, rpc.OpOpen, &rpc.OpenArgs{Path: name}, &o); err != nil {
		return err
	}
	var n int64
	for {
		var r rpc.ReadReply
		if err := s.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Handle: o.Handle, Off: n, Size: streamChunk}, &r); err != nil {
			return err
		}
		n += int64(len(r.Data))
		if len(r.Data) < streamChunk {
			break
		}
	}
	if err := s.Call(ctx, rpc.OpClose, &rpc.HandleArgs{Handle: o.Handle}, nil); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("streamed %d bytes of %s, want %d", n, name, want)
	}
	return nil
}

// remount replaces *m with a fresh mount, once all its satellites run
// (see waitStreams): what a cold run measures is the mount's work, not
// its start, which workload 6 times.
func (bb *b) remount(m **mount) {
	(*m).close(bb)
	*m, _ = bb.mount()
	bb.waitStreams()
}

// 1. Sequential read of 256 MiB: cold, then warm.
func (bb *b) seqRead() {
	bb.logf("1: sequential read of 256 MiB")
	m, _ := bb.mount()
	defer func() { m.close(bb) }()
	cold := func() { bb.remount(&m); bb.dropCaches() }
	engine, err := launcher.NewEngineClient()
	bb.fatal(err)
	defer engine.Close()
	var s *launcher.Session
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	med := bb.measure(
		&method{prep: cold, run: func() error { return readFile(m.dir+"/bench/big", bigSize) }},
		&method{prep: bb.dropCaches, run: func() error { return docker(nil, "exec", bb.tgt.ID, "/target", "cat", "/bench/big") }},
		&method{prep: bb.dropCaches, run: func() error { return readFile(bb.root+"/bench/big", bigSize) }},
		&method{prep: func() { s = bb.relaunch(engine, s); bb.dropCaches() }, run: func() error { return streamFile(s, "/bench/big", bigSize) }},
	)
	bb.add(row{name: "1 read 256 MiB, cold", df: med[0], exec: med[1], cp: math.NaN(), native: med[2], ref: "exec", limit: 1.0})
	bb.add(row{name: "1 the same, the satellite's stream alone", df: med[3], exec: med[1], cp: math.NaN(), native: med[2],
		note: "one stream, no FUSE: calls of 512 KiB, one at a time, data dropped"})
	med = bb.measure(
		&method{run: func() error { return readFile(m.dir+"/bench/big", bigSize) }},
		&method{run: func() error { return docker(nil, "exec", bb.tgt.ID, "/target", "cat", "/bench/big") }},
		&method{run: func() error { return readFile(bb.root+"/bench/big", bigSize) }},
	)
	bb.add(row{name: "1 read 256 MiB, warm", df: med[0], exec: med[1], cp: math.NaN(), native: med[2], ref: "exec", limit: 0.2})
}

// 2. Sequential write of 256 MiB with fsync at the end.
func (bb *b) seqWrite() {
	bb.logf("2: sequential write of 256 MiB + fsync")
	m, _ := bb.mount()
	defer m.close(bb)
	src := filepath.Join(bb.t.TempDir(), "src")
	bb.fatal(writeFile(src, bigSize))
	rm := func() { os.Remove(bb.root + "/bench/w") }
	med := bb.measure(
		&method{prep: rm, run: func() error { return writeFile(m.dir+"/bench/w", bigSize) }},
		&method{prep: rm, run: func() error {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			return docker(f, "exec", "-i", bb.tgt.ID, "/target", "writesync", "/bench/w")
		}},
		&method{prep: rm, run: func() error { return writeFile(bb.root+"/bench/w", bigSize) }},
	)
	rm()
	bb.add(row{name: "2 write 256 MiB + fsync", df: med[0], exec: med[1], cp: math.NaN(), native: med[2], ref: "exec", limit: 1.25})
}

// 3. ls -lR and find over 10,000 files in 100 directories.
func (bb *b) listing() {
	bb.logf("3: ls -lR and find over %d files", treeDirs*treeFiles)
	m, _ := bb.mount()
	defer func() { m.close(bb) }()
	cold := func() { bb.remount(&m); bb.dropCaches() }
	for _, c := range []struct {
		name     string
		host     []string
		inTarget string
	}{
		{"ls -lR", []string{"ls", "-lR"}, "lsr"},
		{"find", []string{"find"}, "find"},
	} {
		host := func(dir string) error { return run(nil, nil, c.host[0], append(c.host[1:], dir)...) }
		inTarget := func() error { return docker(nil, "exec", bb.tgt.ID, "/target", c.inTarget, "/tree") }
		med := bb.measure(
			&method{prep: cold, run: func() error { return host(m.dir + "/tree") }},
			&method{prep: bb.dropCaches, run: inTarget},
			&method{prep: bb.dropCaches, run: func() error { return host(bb.root + "/tree") }},
		)
		bb.add(row{name: "3 " + c.name + " 10k files, cold", df: med[0], exec: med[1], cp: math.NaN(), native: med[2], ref: "exec", limit: 3})
		med = bb.measure(
			&method{run: func() error { return host(m.dir + "/tree") }},
			&method{run: inTarget},
			&method{run: func() error { return host(bb.root + "/tree") }},
		)
		bb.add(row{name: "3 " + c.name + " 10k files, warm", df: med[0], exec: med[1], cp: math.NaN(), native: med[2], ref: "native", limit: 2})
	}
}

// 4. Creating 1,000 files of 4 KiB.
func (bb *b) create() {
	bb.logf("4: creating %d files of %d bytes", newFiles, newSize)
	m, _ := bb.mount()
	defer m.close(bb)
	src := filepath.Join(bb.t.TempDir(), "new")
	bb.fatal(os.Mkdir(src, 0o755))
	for i := range newFiles {
		bb.fatal(os.WriteFile(filepath.Join(src, pattern.FileName(i)), pattern.TreeFile(1, i, newSize), 0o644))
	}
	rm := func() { bb.fatal(os.RemoveAll(bb.root + "/new")) }
	write := func(dir string) error {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		for i := range newFiles {
			if err := os.WriteFile(filepath.Join(dir, pattern.FileName(i)), pattern.TreeFile(1, i, newSize), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	med := bb.measure(
		&method{prep: rm, run: func() error { return write(m.dir + "/new") }},
		&method{prep: rm, run: func() error { return docker(nil, "cp", src, bb.tgt.ID+":/new") }},
		&method{prep: rm, run: func() error { return write(bb.root + "/new") }},
	)
	rm()
	bb.add(row{name: "4 create 1,000 files of 4 KiB", df: med[0], exec: math.NaN(), cp: med[1], native: med[2], ref: "cp", limit: 2})
}

// 5. tar c of the 10,000-file tree, cold, checked against the native tar.
func (bb *b) tar() {
	bb.logf("5: tar c of %d files", treeDirs*treeFiles)
	m, _ := bb.mount()
	defer func() { m.close(bb) }()
	cold := func() { bb.remount(&m); bb.dropCaches() }
	var dfSum, nativeSum string
	tarOf := func(dir func() string, sum *string) func() error {
		return func() error {
			h := sha256.New()
			err := run(nil, h, "tar", "--sort=name", "-C", dir(), "-cf", "-", "tree")
			*sum = hex.EncodeToString(h.Sum(nil))
			return err
		}
	}
	med := bb.measure(
		&method{prep: cold, run: tarOf(func() string { return m.dir }, &dfSum)},
		&method{prep: bb.dropCaches, run: func() error { return docker(nil, "cp", bb.tgt.ID+":/tree", "-") }},
		&method{prep: bb.dropCaches, run: tarOf(func() string { return bb.root }, &nativeSum)},
	)
	r := row{name: "5 tar c 10k files, cold", df: med[0], exec: math.NaN(), cp: med[1], native: med[2], ref: "cp", limit: 3}
	if dfSum != nativeSum {
		r.note = "BYTES DIFFER from native tar"
		r.df = math.Inf(1)
	} else {
		r.note = "byte-exact"
	}
	bb.add(r)
}

// 6. From starting dockerfuse to the first successful ls.
func (bb *b) mountTime() {
	bb.logf("6: mount to first ls")
	var ms []float64
	for i := 0; i <= bb.runs; i++ {
		m, took := bb.mount()
		m.close(bb)
		if i > 0 {
			ms = append(ms, took.Seconds())
		}
	}
	med := bb.measure(&method{run: func() error { return docker(nil, "exec", bb.tgt.ID, "/target", "ls", "/") }})
	bb.add(row{name: "6 mount to first ls", df: median(ms), exec: med[0], cp: math.NaN(), native: math.NaN(), ref: "abs", limit: 0.15, note: "exec: docker exec ls /"})
}

// 7. Four parallel readers of four 64 MiB files, against one, cold.
func (bb *b) parallel() {
	bb.logf("7: %d parallel readers of %d MiB", parReaders, parSize>>20)
	m, _ := bb.mount()
	defer func() { m.close(bb) }()
	cold := func() { bb.remount(&m); bb.dropCaches() }
	readers := func(n int, read func(i int) error) func() error {
		return func() error {
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = read(i) })
			}
			wg.Wait()
			return errors.Join(errs...)
		}
	}
	dfRead := func(i int) error { return readFile(fmt.Sprintf("%s/bench/par%d", m.dir, i), parSize) }
	execRead := func(i int) error {
		return docker(nil, "exec", bb.tgt.ID, "/target", "cat", fmt.Sprintf("/bench/par%d", i))
	}
	nativeRead := func(i int) error { return readFile(fmt.Sprintf("%s/bench/par%d", bb.root, i), parSize) }
	// One reader and four take turns within each run, as the methods do,
	// so that the machine's drift over the runs weighs on both alike.
	med := bb.measure(
		&method{prep: cold, run: readers(1, dfRead)},
		&method{prep: cold, run: readers(parReaders, dfRead)},
		&method{prep: bb.dropCaches, run: readers(1, execRead)},
		&method{prep: bb.dropCaches, run: readers(parReaders, execRead)},
		&method{prep: bb.dropCaches, run: readers(1, nativeRead)},
		&method{prep: bb.dropCaches, run: readers(parReaders, nativeRead)},
	)
	one := []float64{med[0], med[2], med[4]}
	four := []float64{med[1], med[3], med[5]}
	mbs := func(n int, s float64) float64 { return float64(n*parSize) / s / 1e6 }
	bb.add(row{name: "7 one reader, 64 MiB, cold", unit: "MB/s", df: mbs(1, one[0]), exec: mbs(1, one[1]), cp: math.NaN(), native: mbs(1, one[2])})
	bb.add(row{name: "7 four readers, aggregate", unit: "MB/s", df: mbs(parReaders, four[0]), exec: mbs(parReaders, four[1]), cp: math.NaN(), native: mbs(parReaders, four[2]),
		ref: "one", limit: mbs(1, one[0]), atLeast: true, note: "target: ≥ one reader's, no errors"})
}

// 8. Sizes, peak memory and idle CPU.
func (bb *b) resources() {
	bb.logf("8: size, memory, idle CPU")
	m, _ := bb.mount()
	// Some work first, so that idle means after use.
	bb.fatal(run(nil, nil, "ls", "-lR", m.dir+"/tree"))
	bb.fatal(readFile(m.dir+"/bench/par0", parSize))
	// The read ends with its handles closed in a batch after the close
	// (fuse's closeDelay) on each satellite that read: that is still the
	// use, as settleAfterPrep is elsewhere.
	time.Sleep(settleAfterPrep)
	// Every stream's satellite, now that the read started them all.
	sats := bb.satellitePids()
	if len(sats) == 0 {
		bb.t.Fatalf("no satellite process in %s", bb.tgt.Name)
	}
	ticks := func() (n int64) {
		for _, pid := range sats {
			n += cpuTicks(pid)
		}
		return n
	}
	before := ticks()
	time.Sleep(idleFor)
	idle := ticks() - before
	m.close(bb)
	sat := filepath.Join(filepath.Dir(filepath.Dir(bb.bin)), "satellite/embedded/satellite-linux-"+runtime.GOARCH)
	fi, err := os.Stat(sat)
	bb.fatal(err)
	nan := math.NaN()
	bb.add(row{name: "8 satellite binary", unit: "MB", df: float64(fi.Size()) / 1e6, exec: nan, cp: nan, native: nan, ref: "abs", limit: 6})
	bb.add(row{name: "8 satellite peak RSS (VmHWM)", unit: "MB", df: float64(bb.satHWM) / 1e3, exec: nan, cp: nan, native: nan, ref: "abs", limit: 16, note: "max over all satellites and mounts"})
	bb.add(row{name: "8 client peak RSS (VmHWM)", unit: "MB", df: float64(bb.cliHWM) / 1e3, exec: nan, cp: nan, native: nan, note: "max over all mounts"})
	bb.add(row{name: fmt.Sprintf("8 idle satellite CPU over %v", idleFor), unit: "ticks", df: float64(idle), exec: nan, cp: nan, native: nan, ref: "abs", limit: 0,
		note: fmt.Sprintf("utime+stime of all %d satellites, from 0.3 s after use, 1 tick = 10 ms", len(sats))})
}

func (bb *b) add(r row) {
	bb.rows = append(bb.rows, r)
	bb.logf("  %s: %s", r.name, r.cells()[0])
}

// ratio is df against the target's reference.
func (r *row) ratio() float64 {
	switch r.ref {
	case "exec":
		return r.df / r.exec
	case "cp":
		return r.df / r.cp
	case "native":
		return r.df / r.native
	case "one":
		return r.df / r.limit
	}
	return math.NaN()
}

func (r *row) pass() bool {
	switch r.ref {
	case "abs":
		return r.df <= r.limit
	case "one":
		return r.df >= r.limit
	}
	return r.ratio() <= r.limit
}

func (r *row) target() string {
	switch r.ref {
	case "":
		return ""
	case "abs":
		return fmt.Sprintf("≤ %s %s", num(r.limit), r.unitName())
	case "one":
		return "≥ 1.0x one reader"
	}
	return fmt.Sprintf("≤ %sx %s", strconv.FormatFloat(r.limit, 'f', -1, 64), r.ref)
}

func (r *row) unitName() string {
	if r.unit == "" {
		return "s"
	}
	return r.unit
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.IsInf(v, 0):
		return "∞"
	case v == math.Trunc(v) && math.Abs(v) < 1e6:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func (r *row) cells() []string {
	u := ""
	if r.unit != "" {
		u = " " + r.unit
	}
	val := func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return num(v) + u
	}
	res := ""
	if r.ref != "" {
		res = "FAIL"
		if r.pass() {
			res = "PASS"
		}
		if r.ref != "abs" && r.ref != "one" {
			res = fmt.Sprintf("%s (%.2fx)", res, r.ratio())
		} else if r.ref == "one" {
			res = fmt.Sprintf("%s (%.2fx)", res, r.ratio())
		}
	}
	return []string{val(r.df), val(r.exec), val(r.cp), val(r.native),
		ratio(r.df, r.exec), ratio(r.df, r.cp), ratio(r.df, r.native), r.target(), res, r.note}
}

// table renders the rows as a Markdown table, with the machine it ran on.
func (bb *b) table(took time.Duration) string {
	var w strings.Builder
	fmt.Fprintf(&w, "dockerfuse benchmark: median of %d runs after a warm-up; times in seconds; %s\n\n", bb.runs, machine())
	fmt.Fprintln(&w, "| workload | dockerfuse | docker exec | docker cp | native | ÷ exec | ÷ cp | ÷ native | target | result | note |")
	fmt.Fprintln(&w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
	for _, r := range bb.rows {
		fmt.Fprintf(&w, "| %s | %s |\n", r.name, strings.Join(r.cells(), " | "))
	}
	fmt.Fprintf(&w, "\nwhole benchmark: %s\n", took.Round(time.Second))
	return w.String()
}

// machine says what the benchmark ran on.
func machine() string {
	model := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	unix.Uname(&u)
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	ver, _ := exec.Command("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").Output()
	return fmt.Sprintf("%d CPUs (%s), %d GiB RAM, Linux %s, Docker %s, %s",
		runtime.NumCPU(), model, si.Totalram*uint64(si.Unit)>>30, unix.ByteSliceToString(u.Release[:]),
		strings.TrimSpace(string(ver)), runtime.Version())
}
