package fuse

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// makeTree makes at root a tree of dirs directories with files files each,
// of varied sizes, modes, owners and nanosecond times, with symlinks, hard
// links, an empty directory and a fifo.
func makeTree(t *testing.T, root string, dirs, files int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(root, 0o755))
	modes := []os.FileMode{0o644, 0o600, 0o755, 0o444, 0o640}
	var allDirs []string
	for i := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i))
		must(os.Mkdir(dir, 0o755))
		allDirs = append(allDirs, dir)
		for j := range files {
			p := filepath.Join(dir, fmt.Sprintf("file%03d", j))
			must(os.WriteFile(p, randomBytes((i*files+j)*37%3000), 0o600))
			must(os.Chmod(p, modes[j%len(modes)]))
			if j%7 == 0 {
				must(os.Chown(p, 1000, 1000))
			}
			ts := unix.NsecToTimespec(int64(1e18) + int64(i*files+j)*1_000_000_007)
			must(unix.UtimesNano(p, []unix.Timespec{ts, ts}))
		}
		must(os.Symlink("file000", filepath.Join(dir, "link")))
		must(os.Link(filepath.Join(dir, "file001"), filepath.Join(dir, "hardlink")))
		empty := filepath.Join(dir, "empty")
		must(os.Mkdir(empty, 0o700))
		allDirs = append(allDirs, empty)
	}
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(os.WriteFile(filepath.Join(root, "top"), []byte("top\n"), 0o644))
	allDirs = append(allDirs, root)
	// Directories last: making files in them changed their times.
	for i := len(allDirs) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(int64(1.1e18) + int64(i)*999_999_937)
		must(unix.UtimesNano(allDirs[len(allDirs)-1-i], []unix.Timespec{ts, ts}))
	}
}

// sameTree fails the test unless the tree at got holds what the tree at want
// holds: names, types, modes, owners, sizes, link counts, modification
// times (truncated to prec), symlink targets and contents.
func sameTree(t *testing.T, want, got string, prec time.Duration) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(want, p)
		if err != nil {
			return err
		}
		q := filepath.Join(got, rel)
		n++
		var ws, gs unix.Stat_t
		if err := unix.Lstat(p, &ws); err != nil {
			return err
		}
		if err := unix.Lstat(q, &gs); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		type fields struct {
			Mode, Nlink, Uid, Gid uint32
			Size, Mtime           int64
		}
		f := func(st *unix.Stat_t) fields {
			return fields{st.Mode, uint32(st.Nlink), st.Uid, st.Gid, st.Size, st.Mtim.Nano() / int64(prec) * int64(prec)}
		}
		if fw, fg := f(&ws), f(&gs); fw != fg {
			t.Errorf("%s: %+v, want %+v", rel, fg, fw)
		}
		switch ws.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			a, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(q)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
			} else if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs", rel)
			}
		case unix.S_IFLNK:
			a, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if b, err := os.Readlink(q); err != nil || a != b {
				t.Errorf("%s: link to %q, %v; want %q", rel, b, err, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := 0
	filepath.WalkDir(got, func(string, fs.DirEntry, error) error { m++; return nil })
	if m != n {
		t.Errorf("%s holds %d names, want %d", got, m, n)
	}
}
