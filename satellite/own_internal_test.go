package satellite

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// TestOwnSettles checks that the announcements of the satellite's own
// changes are all forgotten once their events came, whether an event comes
// before or after its change returns: a long session that makes many files
// must not keep one for each.
func TestOwnSettles(t *testing.T) {
	root := t.TempDir()
	s := New(Config{Root: root})
	defer s.Shutdown()
	s.Notify(func(*rpc.Notify) error { return nil })
	if _, err := s.Hello(&rpc.HelloArgs{Version: rpc.Version, Watch: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadDir(&rpc.ReadDirArgs{Path: "/"}); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		p := fmt.Sprintf("/f%d", i)
		r, err := s.Open(&rpc.OpenArgs{Path: p, Flags: os.O_CREATE | os.O_WRONLY, Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		s.Close(&rpc.HandleArgs{Handle: r.Handle})
		if _, err := s.Unlink(&rpc.PathArgs{Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	// A create that finds the file there announces an event that never comes.
	if err := os.WriteFile(filepath.Join(root, "there"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(&rpc.OpenArgs{Path: "/there", Flags: os.O_CREATE | os.O_WRONLY, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	w := s.watcher()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.own)
		w.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d announcements of own changes kept after their events", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
