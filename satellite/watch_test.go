package satellite_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite"
)

// serveWatching serves root with a satellite over a pipe until the test
// ends, and returns a client and the events it receives (once it asks for
// them in Hello).
func serveWatching(t *testing.T, root string) (*rpc.Client, <-chan rpc.Event) {
	t.Helper()
	s := satellite.New(satellite.Config{Root: root})
	cc, sc := net.Pipe()
	go rpc.Serve(sc, sc, s)
	c := rpc.NewClient(cc)
	t.Cleanup(func() {
		c.Close()
		s.Shutdown()
	})
	events := make(chan rpc.Event, 100)
	c.OnNotify(func(m *rpc.Notify) {
		for _, e := range m.Events {
			events <- e
		}
	})
	return c, events
}

// TestWatch checks the satellite's side of watched attributes: once a
// client asks for it, what a lstat or a listing reached is watched, the
// replies carry a sample, and a change in the directory comes as an event
// numbered after the sample, naming the directory and the entry.
func TestWatch(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, events := serveWatching(t, root)
	ctx := context.Background()
	hello, err := c.Hello(ctx, true)
	if err != nil || !hello.Watch {
		t.Fatalf("hello = %+v, %v; want watching", hello, err)
	}
	var a rpc.Attr
	if err := c.Call(ctx, rpc.OpLstat, &rpc.PathArgs{Path: "/f"}, &a); err != nil {
		t.Fatal(err)
	}
	if a.Watch == 0 {
		t.Fatalf("lstat of a file in a watchable directory: Watch = 0")
	}
	var dir rpc.ReadDirReply
	if err := c.Call(ctx, rpc.OpReadDir, &rpc.ReadDirArgs{Path: "/"}, &dir); err != nil {
		t.Fatal(err)
	}
	if dir.Watch == 0 || len(dir.Entries) != 1 || dir.Entries[0].Attr.Watch == 0 {
		t.Fatalf("listing = %+v, want one watched entry", dir)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Dev != uint64(st.Dev) || e.Ino != st.Ino || e.Name != "f" || e.Mask&rpc.EventAttr == 0 || e.Seq <= a.Watch {
			t.Errorf("event %+v, want one about f in %d:%d numbered after %d", e, st.Dev, st.Ino, a.Watch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after a chmod in a watched directory")
	}
	if err := os.WriteFile(filepath.Join(root, "g"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Name == "g" && e.Mask&rpc.EventEntry != 0 {
				return
			}
		case <-deadline:
			t.Fatal("no entry event after a file was made in a watched directory")
		}
	}
}

// TestNoWatch checks that a client that does not ask gets no samples.
func TestNoWatch(t *testing.T) {
	root := t.TempDir()
	c, _ := serveWatching(t, root)
	hello, err := c.Hello(context.Background(), false)
	if err != nil || hello.Watch {
		t.Fatalf("hello = %+v, %v; want not watching", hello, err)
	}
	var a rpc.Attr
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "/"}, &a); err != nil || a.Watch != 0 {
		t.Fatalf("lstat = %+v, %v; want no sample", a, err)
	}
}

// TestWatchOwn checks that the events of changes the satellite makes for
// its client come marked Own, and those of others not.
func TestWatchOwn(t *testing.T) {
	root := t.TempDir()
	c, events := serveWatching(t, root)
	ctx := context.Background()
	if _, err := c.Hello(ctx, true); err != nil {
		t.Fatal(err)
	}
	var dir rpc.ReadDirReply
	if err := c.Call(ctx, rpc.OpReadDir, &rpc.ReadDirArgs{Path: "/"}, &dir); err != nil || dir.Watch == 0 {
		t.Fatalf("listing = %+v, %v; want watched", dir, err)
	}
	want := func(name string, own bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Name != name || e.Mask&rpc.EventEntry == 0 {
					continue
				}
				if e.Own != own {
					t.Errorf("event %+v: Own = %v, want %v", e, e.Own, own)
				}
				return
			case <-deadline:
				t.Fatalf("no entry event about %s", name)
			}
		}
	}
	var a rpc.Attr
	if err := c.Call(ctx, rpc.OpMkdir, &rpc.MkdirArgs{Path: "/mine", Mode: 0o755}, &a); err != nil {
		t.Fatal(err)
	}
	want("mine", true)
	if err := os.Mkdir(filepath.Join(root, "theirs"), 0o755); err != nil {
		t.Fatal(err)
	}
	want("theirs", false)
	var o rpc.OpenReply
	if err := c.Call(ctx, rpc.OpOpen, &rpc.OpenArgs{Path: "/f", Flags: os.O_CREATE | os.O_WRONLY, Mode: 0o644}, &o); err != nil {
		t.Fatal(err)
	}
	want("f", true)
	if o.Dir.Mode == 0 || o.Dir.Watch == 0 {
		t.Errorf("create: directory attributes %+v, want them watched", o.Dir)
	}
	if err := c.Call(ctx, rpc.OpRename, &rpc.RenameArgs{Old: "/f", New: "/g"}, nil); err != nil {
		t.Fatal(err)
	}
	want("f", true)
	want("g", true)
	// Made and written in one call: the making is still its own.
	if err := c.Call(ctx, rpc.OpOpen, &rpc.OpenArgs{Path: "/h", Flags: os.O_CREATE | os.O_WRONLY, Mode: 0o644, Data: []byte("data")}, &o); err != nil {
		t.Fatal(err)
	}
	want("h", true)
	// A create that finds the file there makes nothing: what it matched
	// meanwhile was someone else's, and the name is still reported.
	if err := c.Call(ctx, rpc.OpOpen, &rpc.OpenArgs{Path: "/g", Flags: os.O_CREATE | os.O_WRONLY, Mode: 0o644}, &o); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "g")); err != nil {
		t.Fatal(err)
	}
	want("g", false)
}
