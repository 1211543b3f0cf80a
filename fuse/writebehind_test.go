package fuse

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriteBehind checks what writes sent without waiting (handle.Write)
// must keep: the bytes and the size, seen from the mount and from the
// target, a rewrite of a region still in flight, and an error met by a
// write nobody waited for, reported at the latest by close.
func TestWriteBehind(t *testing.T) {
	m := mount(t, mountOptions{})
	d := pair{mnt: m.Dir, back: m.Backing}

	t.Run("Sequential", func(t *testing.T) {
		p := d.join("seq")
		want := make([]byte, 8<<20+123)
		for i := range want {
			want[i] = byte(i*7 + i>>13)
		}
		f, err := os.Create(p.mnt)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(want); off += 1 << 20 {
			if _, err := f.Write(want[off:min(off+1<<20, len(want))]); err != nil {
				t.Fatal(err)
			}
		}
		// Before close: the writes may still be in flight.
		if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(want)) {
			t.Errorf("fstat before close = %v, %v; want size %d", fi, err, len(want))
		}
		if fi, err := os.Stat(p.mnt); err != nil || fi.Size() != int64(len(want)) {
			t.Errorf("stat before close = %v, %v; want size %d", fi, err, len(want))
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		got, err := os.ReadFile(p.back)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("target has %d bytes, %v; want the %d written", len(got), err, len(want))
		}
	})

	t.Run("Rewrite", func(t *testing.T) {
		p := d.join("rewrite")
		f, err := os.Create(p.mnt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Repeat([]byte("a"), 1<<20)); err != nil {
			t.Fatal(err)
		}
		// Not where the last write ended: it must land after the ones
		// in flight that it overlaps.
		if _, err := f.WriteAt(bytes.Repeat([]byte("b"), 300<<10), 100<<10); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("c"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte("a"), 1<<20)
		copy(want[100<<10:], bytes.Repeat([]byte("b"), 300<<10))
		want[0] = 'c'
		if got, err := os.ReadFile(p.back); err != nil || !bytes.Equal(got, want) {
			t.Errorf("target's file differs from what was written (%d bytes, %v)", len(got), err)
		}
	})

	t.Run("ErrorAtClose", func(t *testing.T) {
		small := d.join("small")
		if err := os.Mkdir(small.back, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", small.back, "tmpfs", 0, "size=256k"); err != nil {
			t.Skipf("no tmpfs to fill: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(small.back, unix.MNT_DETACH) })
		f, err := os.Create(filepath.Join(small.mnt, "full"))
		if err != nil {
			t.Fatal(err)
		}
		_, werr := f.Write(make([]byte, 4<<20))
		cerr := f.Close()
		if !errors.Is(werr, syscall.ENOSPC) && !errors.Is(cerr, syscall.ENOSPC) {
			t.Errorf("write = %v, close = %v; want ENOSPC from one of them", werr, cerr)
		}
	})
}
