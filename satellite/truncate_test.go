package satellite_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// TestTruncateHandle changes the size through a handle: it works where the
// mode no longer allows opening the file, and where the path is stale.
func TestTruncateHandle(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "0123456789")
	h := open(t, s, "f", unix.O_RDWR, 0)
	check(t, "chmod", os.Chmod(filepath.Join(root, "f"), 0))
	a, err := s.Setattr(&rpc.SetattrArgs{Path: "f", Handle: h, Valid: rpc.SetSize, Size: 3})
	check(t, "truncate through a handle", err)
	if a.Size != 3 {
		t.Errorf("truncate through a handle: size %d, want 3", a.Size)
	}
	if st := hostStat(t, filepath.Join(root, "f")); st.Size != 3 {
		t.Errorf("file size = %d after truncating through a handle, want 3", st.Size)
	}

	// Renamed behind the client's back, and the old name reused.
	check(t, "rename", os.Rename(filepath.Join(root, "f"), filepath.Join(root, "g")))
	writeFile(t, filepath.Join(root, "f"), "another file")
	a, err = s.Setattr(&rpc.SetattrArgs{Path: "f", Handle: h, Valid: rpc.SetSize, Size: 7})
	check(t, "truncate through a handle whose path is stale", err)
	g := hostStat(t, filepath.Join(root, "g"))
	if a.Size != 7 || a.Ino != g.Ino {
		t.Errorf("truncate through a handle whose path is stale = ino %d size %d, want the handle's file: %d 7", a.Ino, a.Size, g.Ino)
	}
	if got := readFile(t, filepath.Join(root, "f")); got != "another file" {
		t.Errorf("file now at the old path = %q, want it untouched", got)
	}
}
