package fuse

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReplacedInTarget replaces, in the target, files the kernel holds
// names for (which it trusts for a minute here) with other files, and
// checks that the mount moves on to the new file once the attributes it
// holds expire, with no error on the way: never EIO from a type that
// changed under an inode, and never the new file's attributes under the
// old file's inode number where the target gave the new file another.
func TestReplacedInTarget(t *testing.T) {
	m := mount(t, mountOptions{AttrTimeout: 50 * time.Millisecond, EntryTimeout: time.Minute})
	for _, kind := range []string{"mkdir", "symlink", "mkfifo", "link", "create", "lookup", "file over file"} {
		t.Run(kind, func(t *testing.T) {
			name := filepath.Join(m.Dir, "x-"+kind)
			back := filepath.Join(m.Backing, "x-"+kind)
			var err error
			switch kind {
			case "mkdir":
				err = os.Mkdir(name, 0o755)
			case "symlink":
				err = os.Symlink("target", name)
			case "mkfifo":
				err = sys.Mkfifo(name, 0o644)
			case "link":
				if err = os.WriteFile(name+".orig", nil, 0o644); err == nil {
					err = os.Link(name+".orig", name)
				}
			case "create", "file over file":
				err = os.WriteFile(name, []byte("old"), 0o644)
			case "lookup":
				err = os.Mkdir(back, 0o755)
			}
			if err != nil {
				t.Fatal(err)
			}
			old := lstat(t, name)
			// Replace it in the target, by a file of another type, or by
			// another regular file renamed over it.
			wantType := uint32(unix.S_IFDIR)
			switch kind {
			case "mkdir", "lookup":
				if err := os.Remove(back); err != nil {
					t.Fatal(err)
				}
				writeFile(t, back, "new")
				wantType = unix.S_IFREG
			case "file over file":
				writeFile(t, back+".new", "new")
				if err := os.Rename(back+".new", back); err != nil {
					t.Fatal(err)
				}
				wantType = unix.S_IFREG
			default:
				if err := os.Remove(back); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(back, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var failed bool
			eventually(t, "the new file", func() error {
				var st unix.Stat_t
				if err := sys.Lstat(name, &st); err != nil {
					if !failed {
						failed = true
						t.Errorf("lstat: %v", err)
					}
					return err
				}
				if st.Mode&unix.S_IFMT != wantType {
					return fmt.Errorf("type %o, want %o", st.Mode&unix.S_IFMT, wantType)
				}
				// Unless the target gave it the old one's number.
				if kind == "file over file" && st.Ino == old.Ino {
					return fmt.Errorf("inode %d, the old file's", st.Ino)
				}
				return nil
			})
			if wantType == unix.S_IFREG {
				wantContent(t, name, "new")
			}
		})
	}
}
