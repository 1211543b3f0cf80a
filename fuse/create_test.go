package fuse

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCreateBehind checks that files made and written through the mount in
// a directory made through it cost one call each: no lookup (the
// satellite says the new directory is watched and empty, so the kernel's
// lookup before each create is answered locally), no call for the
// directory's new attributes (they come with each create), and the create
// carries the first write. The files come out in the target as made one
// call at a time would: contents, mode, owner, and the attributes the
// mount shows.
func TestCreateBehind(t *testing.T) {
	m := mount(t, mountOptions{})
	dir := filepath.Join(m.Dir, "new")
	const n = 50
	name := func(i int) string { return fmt.Sprintf("f%02d", i) }
	calls, _ := callsOf(t, m, func() {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := os.WriteFile(filepath.Join(dir, name(i)), []byte("data "+name(i)), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("mkdir and %d files made and written: %v", n, calls)
	// The first create in the directory is made at once, and its write
	// goes on its own; every other file is one open. The root may be read
	// again after the mkdir changed it, and the new directory after a
	// create: a few calls, not one per file.
	if calls["open"] != n || calls["write"] > 1 || calls["lstat"] >= n/10 {
		t.Errorf("%d files made and written cost %v, want %d opens, at most one write and no lstat per file", n, calls, n)
	}
	for i := range n {
		back := filepath.Join(m.Backing, "new", name(i))
		wantContent(t, back, "data "+name(i))
		got, want := lstat(t, filepath.Join(dir, name(i))), lstat(t, back)
		if got.Mode != unix.S_IFREG|0o640 || got.Mode != want.Mode || got.Uid != want.Uid || got.Gid != want.Gid || got.Size != want.Size {
			t.Errorf("%s through the mount: mode %o uid %d gid %d size %d; in the target: mode %o uid %d gid %d size %d",
				name(i), got.Mode, got.Uid, got.Gid, got.Size, want.Mode, want.Uid, want.Gid, want.Size)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != n {
		t.Errorf("listing: %d entries, %v; want %d", len(ents), err, n)
	}
}

// TestCreateBehindShows checks that a file made behind is in the target
// soon even while it stays open and unwritten, and at once for anything
// that asks the target about it or its directory: stat, listing, rename,
// unlink, a second open.
func TestCreateBehindShows(t *testing.T) {
	m := mount(t, mountOptions{})
	mnt := func(p string) string { return filepath.Join(m.Dir, p) }
	back := func(p string) string { return filepath.Join(m.Backing, p) }
	if err := os.Mkdir(mnt("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, mnt("d/first"), "") // made at once: the next are behind

	open := func(p string) *os.File {
		t.Helper()
		f, err := os.OpenFile(mnt(p), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	// Open and idle: in the target without a write or close.
	idle := open("d/idle")
	defer idle.Close()
	eventually(t, "a file made and left open reaching the target", func() error {
		_, err := os.Lstat(back("d/idle"))
		return err
	})

	// The kernel has its attributes; a listing and a second open find it
	// in the target at once.
	for _, c := range []struct {
		what  string
		check func(p string) error
	}{
		{"listing", func(p string) error {
			ents, err := os.ReadDir(filepath.Dir(mnt(p)))
			for _, e := range ents {
				if e.Name() == filepath.Base(p) {
					return err
				}
			}
			return fmt.Errorf("not listed (%v)", err)
		}},
		{"stat", func(p string) error {
			st, err := os.Stat(mnt(p))
			if err == nil && st.Mode() != 0o600 {
				err = fmt.Errorf("mode %v, want 0600", st.Mode())
			}
			return err
		}},
		{"second open", func(p string) error {
			f, err := os.Open(mnt(p))
			if err == nil {
				f.Close()
			}
			return err
		}},
	} {
		p := "d/" + c.what
		f := open(p)
		if err := c.check(p); err != nil {
			t.Errorf("%s of a file just made behind: %v", c.what, err)
		}
		if _, err := os.Lstat(back(p)); err != nil && c.what != "stat" {
			t.Errorf("%s of a file just made behind: not in the target: %v", c.what, err)
		}
		f.Close()
	}

	// Renamed, with its directory, and written before its close.
	f := open("d/moved")
	if err := os.Rename(mnt("d"), mnt("e")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("moved"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close of a file made behind whose directory was renamed: %v", err)
	}
	wantContent(t, back("e/moved"), "moved")

	// Removed before its close: gone, and the close is fine.
	f = open("e/gone")
	if err := os.Remove(mnt("e/gone")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("lost"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close of a file made behind and removed: %v", err)
	}
	if _, err := os.Lstat(back("e/gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file made behind and removed: %v in the target, want it gone", err)
	}
}

// TestCreateBehindFails checks a create behind that fails in the target:
// here a filesystem out of inodes. The close reports the error, the name
// is not left behind in the mount, and the directory's next create is
// made at once, so that its open fails.
func TestCreateBehindFails(t *testing.T) {
	m := mount(t, mountOptions{})
	small := filepath.Join(m.Backing, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	// Four inodes: the root and three files.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=4", "dockerfuse-test", small).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	dir := filepath.Join(m.Dir, "small")
	// A listing under a watch says which names are free.
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	var failed string
	for i := range 4 {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatalf("create %d: %v (want it answered, and the failure at close)", i, err)
		}
		f.WriteString("x")
		if err := f.Close(); err != nil {
			wantErrno(t, "close of a create behind on a full filesystem", err, syscall.ENOSPC)
			failed = p
			break
		}
	}
	if failed == "" {
		t.Fatal("four files made on a filesystem with room for three")
	}
	if _, err := os.Lstat(failed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of the file whose create failed: %v, want it missing", err)
	}
	_, err := os.OpenFile(filepath.Join(dir, "again"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	wantErrno(t, "create after a create behind failed", err, syscall.ENOSPC)
}
