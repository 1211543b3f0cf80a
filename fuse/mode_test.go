package fuse

import (
	"os"
	"syscall"
	"testing"
)

func TestFileMode(t *testing.T) {
	for _, tc := range []struct {
		unix uint32
		mode os.FileMode
	}{
		{syscall.S_IFREG | 0o644, 0o644},
		{syscall.S_IFREG | 0o4755, os.ModeSetuid | 0o755},
		{syscall.S_IFREG | 0o2710, os.ModeSetgid | 0o710},
		{syscall.S_IFDIR | 0o1777, os.ModeDir | os.ModeSticky | 0o777},
		{syscall.S_IFDIR | 0o7000, os.ModeDir | os.ModeSetuid | os.ModeSetgid | os.ModeSticky},
		{syscall.S_IFLNK | 0o777, os.ModeSymlink | 0o777},
		{syscall.S_IFIFO | 0o600, os.ModeNamedPipe | 0o600},
		{syscall.S_IFSOCK | 0o755, os.ModeSocket | 0o755},
		{syscall.S_IFCHR | 0o666, os.ModeDevice | os.ModeCharDevice | 0o666},
		{syscall.S_IFBLK | 0o660, os.ModeDevice | 0o660},
	} {
		if got := fileMode(tc.unix); got != tc.mode {
			t.Errorf("fileMode(%#o) = %v, want %v", tc.unix, got, tc.mode)
		}
		if got := unixMode(tc.mode); got != tc.unix {
			t.Errorf("unixMode(%v) = %#o, want %#o", tc.mode, got, tc.unix)
		}
	}
}

// TestModeRoundTrip checks every type with every permission and special
// bit both ways.
func TestModeRoundTrip(t *testing.T) {
	types := []uint32{syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK, syscall.S_IFIFO,
		syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK}
	for _, typ := range types {
		for perm := uint32(0); perm <= 0o7777; perm++ {
			u := typ | perm
			m := fileMode(u)
			if got := unixMode(m); got != u {
				t.Fatalf("unixMode(fileMode(%#o)) = %#o (via %v)", u, got, m)
			}
			if m.Perm() != os.FileMode(perm&0o777) {
				t.Fatalf("fileMode(%#o).Perm() = %v, want %#o", u, m.Perm(), perm&0o777)
			}
			if got := fileMode(unixMode(m)); got != m {
				t.Fatalf("fileMode(unixMode(%v)) = %v", m, got)
			}
		}
	}
}
