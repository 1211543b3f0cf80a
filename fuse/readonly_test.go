package fuse

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadOnly checks that a read-only mount reads and refuses every change
// with EROFS, leaving the target untouched.
func TestReadOnly(t *testing.T) {
	m := mount(t, mountOptions{ReadOnly: true})
	mustDo := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustDo(os.WriteFile(filepath.Join(m.Backing, "f"), []byte("content"), 0o644))
	mustDo(os.Mkdir(filepath.Join(m.Backing, "dir"), 0o755))
	mustDo(os.WriteFile(filepath.Join(m.Backing, "dir", "g"), nil, 0o644))
	mustDo(os.Symlink("f", filepath.Join(m.Backing, "link")))
	f, dir, link := filepath.Join(m.Dir, "f"), filepath.Join(m.Dir, "dir"), filepath.Join(m.Dir, "link")

	wantContent(t, f, "content")
	wantContent(t, link, "content")
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("readdir = %v, %v; want g", ents, err)
	}
	run(t, "ls", "-lR", m.Dir)

	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"write", func() error { return os.WriteFile(f, []byte("x"), 0o644) }},
		{"open O_RDWR", func() error {
			fd, err := os.OpenFile(f, os.O_RDWR, 0)
			if err == nil {
				fd.Close()
			}
			return err
		}},
		{"create", func() error { return os.WriteFile(filepath.Join(m.Dir, "new"), nil, 0o644) }},
		{"truncate", func() error { return os.Truncate(f, 0) }},
		{"chmod", func() error { return os.Chmod(f, 0o600) }},
		{"chown", func() error { return os.Chown(f, 1000, 1000) }},
		{"utimes", func() error { return sys.UtimesNano(f, make([]unix.Timespec, 2)) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(m.Dir, "d"), 0o755) }},
		{"rmdir", func() error { return sys.Rmdir(dir) }},
		{"unlink", func() error { return sys.Unlink(f) }},
		{"rename", func() error { return os.Rename(f, filepath.Join(m.Dir, "renamed")) }},
		{"symlink", func() error { return os.Symlink("f", filepath.Join(m.Dir, "l2")) }},
		{"link", func() error { return os.Link(f, filepath.Join(m.Dir, "hard")) }},
		{"mkfifo", func() error { return sys.Mkfifo(filepath.Join(m.Dir, "fifo"), 0o644) }},
		{"setxattr", func() error { return sys.Setxattr(f, "user.k", []byte("v"), 0) }},
		{"removexattr", func() error { return sys.Removexattr(f, "user.k") }},
	} {
		wantErrno(t, tc.what, ignoringEINTR(tc.do), syscall.EROFS)
	}
	wantContent(t, filepath.Join(m.Backing, "f"), "content")
	if st := lstat(t, filepath.Join(m.Backing, "f")); st.Mode != unix.S_IFREG|0o644 || st.Uid != 0 {
		t.Errorf("backing file changed: mode %o uid %d", st.Mode, st.Uid)
	}
	ents, err := os.ReadDir(m.Backing)
	if err != nil || len(ents) != 3 {
		t.Errorf("backing dir holds %v, %v; want f, dir and link", ents, err)
	}
}
