package satellite

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// watchingRoot returns a satellite serving a new directory, asked to watch
// and watching the directory, which it has listed.
func watchingRoot(t *testing.T) (*Server, string) {
	t.Helper()
	root := t.TempDir()
	s := New(Config{Root: root})
	t.Cleanup(s.Shutdown)
	s.Notify(func(*rpc.Notify) error { return nil })
	if _, err := s.Hello(&rpc.HelloArgs{Version: rpc.Version, Watch: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadDir(&rpc.ReadDirArgs{Path: "/"}); err != nil {
		t.Fatal(err)
	}
	return s, root
}

// TestOwnSettles checks that the announcements of the satellite's own
// changes are all forgotten once their events came, whether an event comes
// before or after its change returns: a long session that makes many files
// must not keep one for each.
func TestOwnSettles(t *testing.T) {
	s, root := watchingRoot(t)
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

// TestOwnNotMergedWithTheirs checks that one read of raw events holding a
// file's making, announced as the satellite's own, and its writing, which
// is not, reports them apart: merged, the making would lose its Own mark
// and the client would have the kernel forget a name it just made (a file
// made and written in one call, rpc.OpenArgs.Data, comes out so).
func TestOwnNotMergedWithTheirs(t *testing.T) {
	s, root := watchingRoot(t)
	w := s.watcher()
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	wd, ok := w.dirs[devIno{st.Dev, st.Ino}]
	w.mu.Unlock()
	if !ok {
		t.Fatal("root not watched after a listing")
	}
	c := w.expect(root, "h", unix.IN_CREATE)
	defer c.done(true)
	var raw []byte
	for _, mask := range []uint32{unix.IN_CREATE, unix.IN_MODIFY, unix.IN_MODIFY} {
		ev := unix.InotifyEvent{Wd: wd, Mask: mask, Len: 16}
		raw = append(raw, unsafe.Slice((*byte)(unsafe.Pointer(&ev)), unix.SizeofInotifyEvent)...)
		raw = append(raw, append([]byte("h"), make([]byte, 15)...)...)
	}
	m := w.events(raw)
	if len(m.Events) != 2 {
		t.Fatalf("events %+v, want two: the making, and the writes merged", m.Events)
	}
	if e := m.Events[0]; !e.Own || e.Mask&rpc.EventEntry == 0 {
		t.Errorf("making: %+v, want an entry event of its own", e)
	}
	if e := m.Events[1]; e.Own || e.Mask&rpc.EventData == 0 || e.Mask&rpc.EventEntry != 0 {
		t.Errorf("writing: %+v, want a data event not of its own", e)
	}
}
