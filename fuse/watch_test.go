package fuse

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// callsOf runs f and returns the satellite calls it cost, by op.
func callsOf(t *testing.T, m *testMount, f func()) (map[string]int64, int64) {
	t.Helper()
	before := m.counts(t)
	f()
	return callsBetween(before, m.counts(t))
}

// plainTree makes dirs directories of files one-byte files each under root.
func plainTree(t *testing.T, root string, dirs, files int) {
	t.Helper()
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWatchedWalkCost checks that a second walk of a tree costs no call
// while the satellite watches it, with the default one-second timeouts:
// what the watch vouches for is trusted until an event says otherwise.
func TestWatchedWalkCost(t *testing.T) {
	m := mount(t, mountOptions{})
	plainTree(t, filepath.Join(m.Backing, "tree"), 10, 50)
	tree := filepath.Join(m.Dir, "tree")
	first := run(t, "ls", "-lR", tree)
	// The reports of the tree's making may come after the first walk and
	// make it look again: let them pass.
	time.Sleep(200 * time.Millisecond)
	if again := run(t, "ls", "-lR", tree); again != first {
		t.Errorf("second ls -lR differs:\n%s\nfirst:\n%s", again, first)
	}
	// The kernel may drop its whole cache meanwhile (memory pressure,
	// drop_caches): one pass out of three must cost nothing.
	for try := 1; ; try++ {
		calls, total := callsOf(t, m, func() {
			// Past the one-second timeouts: only the watch keeps it.
			time.Sleep(1500 * time.Millisecond)
			if again := run(t, "ls", "-lR", tree); again != first {
				t.Errorf("ls -lR differs:\n%s\nfirst:\n%s", again, first)
			}
		})
		t.Logf("ls -lR of 10×50 files, pass %d: %d calls %v", try+2, total, calls)
		if total == 0 {
			return
		}
		if try == 3 {
			t.Errorf("ls -lR of an unchanged tree made %d calls %v, want none", total, calls)
			return
		}
	}
}

// TestWatchedChanges checks that what the mount trusts because of a watch
// still follows each kind of change made in the target: attributes,
// contents of an open and cached file, names made, removed and renamed,
// in a directory and in its subdirectory.
func TestWatchedChanges(t *testing.T) {
	m := mount(t, mountOptions{})
	back := func(p string) string { return filepath.Join(m.Backing, p) }
	mnt := func(p string) string { return filepath.Join(m.Dir, p) }
	plainTree(t, back("w"), 2, 3)
	run(t, "ls", "-lR", mnt("w")) // everything looked at, and watched
	wantContent(t, mnt("w/d00/f000"), "x")

	if err := os.Chmod(back("w/d00/f000"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "chmod in the target", func() error {
		if m := lstat(t, mnt("w/d00/f000")).Mode & 0o777; m != 0o600 {
			return fmt.Errorf("mode %o", m)
		}
		return nil
	})
	writeFile(t, back("w/d00/f001"), "longer contents")
	eventually(t, "rewrite in the target", func() error {
		b, err := os.ReadFile(mnt("w/d00/f001"))
		if err != nil || string(b) != "longer contents" {
			return fmt.Errorf("read %q, %v", b, err)
		}
		return nil
	})
	// Same size, new bytes: the page cache must go.
	writeFile(t, back("w/d00/f001"), "LONGER CONTENTS")
	eventually(t, "same-size rewrite in the target", func() error {
		b, err := os.ReadFile(mnt("w/d00/f001"))
		if err != nil || string(b) != "LONGER CONTENTS" {
			return fmt.Errorf("read %q, %v", b, err)
		}
		return nil
	})
	writeFile(t, back("w/d01/new"), "new")
	eventually(t, "a file made in the target", func() error {
		out := run(t, "ls", mnt("w/d01"))
		if !strings.Contains(out, "new") {
			return fmt.Errorf("ls shows %q", out)
		}
		return nil
	})
	if err := os.Rename(back("w/d01/f000"), back("w/d00/moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(back("w/d01/f001")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a rename and a removal in the target", func() error {
		var st unix.Stat_t
		if err := unix.Lstat(mnt("w/d01/f000"), &st); err == nil {
			return fmt.Errorf("old name still there")
		}
		if err := unix.Lstat(mnt("w/d01/f001"), &st); err == nil {
			return fmt.Errorf("removed name still there")
		}
		return unix.Lstat(mnt("w/d00/moved"), &st)
	})
	if err := os.RemoveAll(back("w/d00")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(back("w/d00"), 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a directory replaced in the target", func() error {
		ents, err := os.ReadDir(mnt("w/d00"))
		if err != nil || len(ents) != 0 {
			return fmt.Errorf("readdir = %d entries, %v", len(ents), err)
		}
		if m := lstat(t, mnt("w/d00")).Mode & 0o777; m != 0o700 {
			return fmt.Errorf("mode %o", m)
		}
		return nil
	})
}

// TestWatchedChildChange checks that a change of a file's contents in the
// target leaves its directory's attributes trusted: they did not change,
// and a program writing file after file would otherwise have every one of
// its opens ask for them again.
func TestWatchedChildChange(t *testing.T) {
	m := mount(t, mountOptions{})
	plainTree(t, filepath.Join(m.Backing, "c"), 1, 2)
	dir := filepath.Join(m.Dir, "c/d00")
	run(t, "ls", "-lR", dir) // looked at, and watched
	before := lstat(t, dir)
	// Past the one-second timeouts: only the watch keeps them.
	time.Sleep(1500 * time.Millisecond)
	writeFile(t, filepath.Join(m.Backing, "c/d00/f000"), "changed in the target")
	eventually(t, "rewrite in the target", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "f000"))
		if err != nil || string(b) != "changed in the target" {
			return fmt.Errorf("read %q, %v", b, err)
		}
		return nil
	})
	var after unix.Stat_t
	calls, total := callsOf(t, m, func() { after = lstat(t, dir) })
	if total != 0 {
		t.Errorf("stat of the directory after a change of a file in it made %d calls %v, want none", total, calls)
	}
	if after.Mtim != before.Mtim || after.Size != before.Size {
		t.Errorf("directory changed: mtime %v size %d, was %v size %d", after.Mtim, after.Size, before.Mtim, before.Size)
	}
}
