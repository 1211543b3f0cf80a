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
// once, and a write through the mount in the middle of a read.
func TestStreamingRead(t *testing.T) {
	m := mount(t, mountOptions{AttrTimeout: time.Minute, EntryTimeout: time.Minute})
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
		reads := m.counts(t)["read"] - before["read"]
		chunks := int64((size + raChunk - 1) / raChunk)
		t.Logf("%d bytes in %d read calls", size, reads)
		// The tail, shorter than a chunk read, may be read directly.
		if reads > chunks+2 {
			t.Errorf("%d bytes read with %d calls, want about one per %d byte chunk (%d)", size, reads, raChunk, chunks)
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
}
