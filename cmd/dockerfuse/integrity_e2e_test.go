package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// The tests in this file write through the mount and compare, byte for
// byte, with the file as the target has it on its disk: read natively on
// the host through /proc/PID/root, and read back through the mount.

// randomData returns a reader of n pseudo-random bytes, the same for the
// same seed, fast enough not to be what a test of a GiB waits for.
func randomData(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func sha256Of(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, r, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return sha256Of(t, f)
}

// writeRandomFile writes n bytes of seed's data to p in writes of chunk bytes
// and returns their sha256.
func writeRandomFile(t *testing.T, p string, seed uint64, n int64, chunk int) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, chunk)
	if _, err := io.CopyBuffer(f, io.TeeReader(randomData(seed, n), h), buf); err != nil {
		f.Close()
		t.Fatalf("writing %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("closing %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestIntegrity(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-integrity"})
	dir := mountDir(t)
	startMount(t, bin, dir, "-id", tg.Name)
	native := fmt.Sprintf("/proc/%d/root", tg.Pid(t))

	t.Run("1GiB", func(t *testing.T) {
		const size = 1 << 30
		want := writeRandomFile(t, dir+"/tmp/big", 1, size, 1<<20)
		t.Cleanup(func() { os.Remove(dir + "/tmp/big") })
		if fi, err := os.Stat(native + "/tmp/big"); err != nil || fi.Size() != size {
			t.Fatalf("inside: stat = %v, %v; want %d bytes", fi, err, size)
		}
		if got := sha256File(t, native+"/tmp/big"); got != want {
			t.Errorf("inside: sha256 %s, want %s (what was written)", got, want)
		}
		// Written through the mount, the file starts from a clean page
		// cache at its next open: this reads what the satellite reads.
		if got := sha256File(t, dir+"/tmp/big"); got != want {
			t.Errorf("read back through the mount: sha256 %s, want %s", got, want)
		}
	})

	t.Run("8 concurrent writers", func(t *testing.T) {
		const writers, size = 8, 16 << 20
		want := make([]string, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				want[i] = writeRandomFile(t, fmt.Sprintf("%s/tmp/writer%d", dir, i), uint64(100+i), size, 128<<10)
			})
		}
		wg.Wait()
		for i := range writers {
			name := fmt.Sprintf("/tmp/writer%d", i)
			if got := sha256File(t, native+name); got != want[i] {
				t.Errorf("inside: %s sha256 %s, want %s", name, got, want[i])
			}
			if got := sha256File(t, dir+name); got != want[i] {
				t.Errorf("through the mount: %s sha256 %s, want %s", name, got, want[i])
			}
			os.Remove(dir + name)
		}
	})

	t.Run("random IO over a sparse 5GiB file", func(t *testing.T) { testSparse(t, dir, native) })

	t.Run("fsync", func(t *testing.T) {
		// A mount of its own, whose command is killed after the fsync:
		// what fsync acknowledged must be in the target without any
		// close, flush or unmount.
		dir := mountDir(t)
		m := startMount(t, bin, dir, "-id", tg.Name)
		f, err := os.Create(dir + "/tmp/synced")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		data := make([]byte, 64<<20)
		io.ReadFull(randomData(7, int64(len(data))), data)
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := f.Write(data[off : off+1<<20]); err != nil {
				t.Fatal(err)
			}
			if off%(8<<20) == 7<<20 {
				if err := f.Sync(); err != nil {
					t.Fatalf("fsync after %d bytes: %v", off+1<<20, err)
				}
			}
		}
		m.cmd.Process.Kill()
		m.wait(t)
		got, err := os.ReadFile(native + "/tmp/synced")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("inside after the command was killed: %d bytes, sha256 %s; want the %d bytes fsync acknowledged, sha256 %s",
				len(got), sha256Of(t, bytes.NewReader(got)), len(data), sha256Of(t, bytes.NewReader(data)))
		}
	})
}

// testSparse writes at random offsets of a 5 GiB file made sparse with
// truncate, across the 2 GiB and 4 GiB marks and at the end, then reads
// random ranges, holes included, through the mount and natively.
func testSparse(t *testing.T, dir, native string) {
	const size = 5 << 30
	p := "/tmp/sparse"
	f, err := os.OpenFile(dir+p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir + p) })
	if err := f.Truncate(size); err != nil {
		t.Fatalf("truncate to 5GiB through the mount: %v", err)
	}

	type write struct {
		off  int64
		data []byte
	}
	rng := rand.New(rand.NewPCG(5, 5))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	writes := []write{
		{0, data(4096)},
		{1<<31 - 100, data(200)},       // across 2 GiB
		{1<<32 - 3, data(128<<10 + 7)}, // across 4 GiB
		{size - 1000, data(1000)},      // up to the end
	}
	for range 200 {
		n := 1 + rng.IntN(256<<10)
		writes = append(writes, write{rng.Int64N(size - int64(n)), data(n)})
	}
	for _, w := range writes {
		if n, err := f.WriteAt(w.data, w.off); err != nil || n != len(w.data) {
			t.Fatalf("write of %d bytes at %d = %d, %v", len(w.data), w.off, n, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// expected is what [off, off+n) holds: zeros where nothing was
	// written, and the last write over each byte.
	expected := func(off int64, n int) []byte {
		b := make([]byte, n)
		for _, w := range writes {
			lo, hi := max(off, w.off), min(off+int64(n), w.off+int64(len(w.data)))
			if lo < hi {
				copy(b[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
			}
		}
		return b
	}
	var st syscall.Stat_t
	if err := syscall.Stat(native+p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Blocks*512 > 256<<20 {
		t.Errorf("inside: size %d, %d bytes allocated; want %d, sparse (well under 256MiB)", st.Size, st.Blocks*512, int64(size))
	}

	mounted, err := os.Open(dir + p)
	if err != nil {
		t.Fatal(err)
	}
	defer mounted.Close()
	inside, err := os.Open(native + p)
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	check := func(where string, r io.ReaderAt, off int64, n int) {
		t.Helper()
		got := make([]byte, n)
		m, err := r.ReadAt(got, off)
		if err != nil && !(err == io.EOF && off+int64(n) >= size) {
			t.Fatalf("%s: read of %d bytes at %d: %v", where, n, off, err)
		}
		if want := expected(off, m); !bytes.Equal(got[:m], want) || int64(m) != min(int64(n), size-off) {
			t.Errorf("%s: %d bytes at %d differ from what was written (read %d)", where, n, off, m)
		}
	}
	ranges := [][2]int64{{0, 8192}, {1<<31 - 4096, 8192}, {1<<32 - 64<<10, 256 << 10}, {size - 4096, 4096}, {size - 10, 100}}
	for _, w := range writes {
		ranges = append(ranges, [2]int64{max(0, w.off-100), int64(len(w.data) + 200)})
	}
	for range 200 {
		ranges = append(ranges, [2]int64{rng.Int64N(size), 1 + rng.Int64N(512<<10)})
	}
	for _, r := range ranges {
		n := min(r[1], size-r[0])
		check("through the mount", mounted, r[0], int(n))
		check("inside", inside, r[0], int(n))
	}
}
