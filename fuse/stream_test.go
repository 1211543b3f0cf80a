package fuse

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStreamingRead reads large files through a mount as programs stream
// them, in 1 MiB reads: the bytes, the calls it takes, several readers at
// once, and a write through the mount in the middle of a read. It does so
// with the one satellite, and with three that files are read through.
func TestStreamingRead(t *testing.T) {
	t.Run("OneStream", func(t *testing.T) { testStreamingRead(t, 1) })
	t.Run("ThreeStreams", func(t *testing.T) { testStreamingRead(t, 3) })
}

func testStreamingRead(t *testing.T, streams int) {
	m := mount(t, mountOptions{AttrTimeout: time.Minute, EntryTimeout: time.Minute, Streams: streams})
	const size = 6<<20 + 777
	want := make([][]byte, 4)
	for i := range want {
		want[i] = make([]byte, size)
		for j := range want[i] {
			want[i][j] = byte(j*(i+3) + j>>12)
		}
		if err := os.WriteFile(filepath.Join(m.Backing, fmt.Sprint("f", i)), want[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func(name string) ([]byte, error) {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var got []byte
		buf := make([]byte, 1<<20)
		for {
			n, err := f.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				return got, nil
			}
			if err != nil {
				return got, err
			}
		}
	}

	t.Run("Sequential", func(t *testing.T) {
		before := m.counts(t)
		got, err := readAll(filepath.Join(m.Dir, "f0"))
		if err != nil || !bytes.Equal(got, want[0]) {
			t.Fatalf("read %d bytes, %v; want the file's %d", len(got), err, size)
		}
		after := m.counts(t)
		reads := after["read"] - before["read"]
		extra := after["extra-read"] - before["extra-read"]
		chunks := int64((size + raChunk - 1) / raChunk)
		t.Logf("%d bytes in %d read calls, %d of them on the extra streams", size, reads+extra, extra)
		// The tail, shorter than a chunk read, may be read directly.
		if reads+extra > chunks+2 {
			t.Errorf("%d bytes read with %d calls, want about one per %d byte chunk (%d)", size, reads+extra, raChunk, chunks)
		}
		// With extra streams, the chunks go through them, and the one
		// stream that carries everything else reads the tail at most.
		if streams > 1 && (extra < chunks-1 || reads > 1) {
			t.Errorf("%d chunks read on the extra streams and %d reads on the main one, want %d and at most 1", extra, reads, chunks-1)
		}
	})

	t.Run("Parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range want {
			wg.Go(func() {
				got, err := readAll(filepath.Join(m.Dir, fmt.Sprint("f", i)))
				if err != nil || !bytes.Equal(got, want[i]) {
					t.Errorf("f%d: read %d bytes, %v; want the file's %d", i, len(got), err, size)
				}
			})
		}
		wg.Wait()
	})

	t.Run("WriteWhileReading", func(t *testing.T) {
		// A file the kernel has cached nothing of yet.
		if err := os.WriteFile(filepath.Join(m.Backing, "ww"), want[3], 0o644); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(m.Dir, "ww")
		r, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 4*raChunk)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		// The chunk after those read is on its way or arrived.
		const at = 4*raChunk + 200<<10
		patch := bytes.Repeat([]byte("w"), 100<<10)
		w, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(patch, at); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		exp := bytes.Clone(want[3])
		copy(exp[at:], patch)
		// The write leaves the pages it covered in the kernel's cache:
		// drop them, so that the rest is read from the mount.
		if err := unix.Fadvise(int(r.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := append(buf, rest...); !bytes.Equal(got, exp) {
			i := 0
			for i < min(len(got), len(exp)) && got[i] == exp[i] {
				i++
			}
			t.Errorf("read after a write through the mount differs from the file at byte %d of %d", i, len(exp))
		}
	})

	if streams == 1 {
		return
	}
	t.Run("ExtraHandlesClosed", func(t *testing.T) {
		// Every file the extra streams opened is closed with the
		// handle that read it. Those of the subtests before are closed
		// in a batch (closeDelay) that may still be on its way.
		time.Sleep(100 * closeDelay)
		baseline := m.extraFiles(t)
		var wg sync.WaitGroup
		for i := range want {
			wg.Go(func() {
				if got, err := readAll(filepath.Join(m.Dir, fmt.Sprint("f", i))); err != nil || !bytes.Equal(got, want[i]) {
					t.Errorf("f%d: read %d bytes, %v", i, len(got), err)
				}
			})
		}
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for m.extraFiles(t) != baseline && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := m.extraFiles(t); n != baseline {
			t.Errorf("the extra streams' satellites have %d files open after the reads, %d before", n, baseline)
		}
	})
}

// TestStreamingReadReplaced reads through the extra streams a file whose
// name was given to another file behind the mount's back (no watch, long
// timeouts): the extra streams, which open files by name, must not read
// the other file; the bytes come from the file the handle has open.
func TestStreamingReadReplaced(t *testing.T) {
	m := mount(t, mountOptions{AttrTimeout: time.Minute, EntryTimeout: time.Minute, NoWatch: true, Streams: 3})
	const size = 3<<20 + 99
	old, other := make([]byte, size), make([]byte, size)
	for i := range old {
		old[i], other[i] = byte(i*7+i>>9), byte(i*13+1)
	}
	mnt, backing := m.path("r")
	if err := os.WriteFile(backing, old, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.WriteFile(backing+".new", other, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backing+".new", backing); err != nil {
		t.Fatal(err)
	}
	before := m.counts(t)
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, old) {
		what := "neither file"
		if bytes.Equal(got, other) {
			what = "the file that took its name"
		}
		t.Fatalf("read %d bytes of %s, want the %d of the file open", len(got), what, size)
	}
	after := m.counts(t)
	if n := after["extra-read"] - before["extra-read"]; n != 0 {
		t.Errorf("%d reads on the extra streams, want none: they found another file by the name", n)
	}
	if after["extra-open"] == before["extra-open"] {
		t.Errorf("the extra streams were not tried")
	}
}
