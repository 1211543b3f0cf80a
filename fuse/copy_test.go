package fuse

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"bazil.org/fuse"

	"github.com/dockerfuse/dockerfuse/rpc"
	sat "github.com/dockerfuse/dockerfuse/satellite"
)

// The tests here drive the nodes and handles of an FS directly, served by
// a satellite in this process over an in-memory pipe: no mount, so that
// they can say exactly which calls each step makes.

// recorder passes calls on and records them. A file named hidden behaves
// as one the satellite may not read: ReadFiles leaves it out and opening
// it fails with EACCES.
type recorder struct {
	c      Caller
	hidden string

	mu    sync.Mutex
	calls []recorded
}

type recorded struct {
	op   rpc.Op
	args any
}

func (r *recorder) Call(ctx context.Context, op rpc.Op, args, reply any) error {
	r.mu.Lock()
	r.calls = append(r.calls, recorded{op, args})
	r.mu.Unlock()
	if a, ok := args.(*rpc.OpenArgs); ok && r.hidden != "" && filepath.Base(a.Path) == r.hidden {
		return &rpc.Error{Errno: syscall.EACCES, Msg: "open " + a.Path + ": permission denied"}
	}
	err := r.c.Call(ctx, op, args, reply)
	if rf, ok := reply.(*rpc.ReadFilesReply); ok && r.hidden != "" {
		rf.Files = slices.DeleteFunc(rf.Files, func(f rpc.FileData) bool { return f.Name == r.hidden })
	}
	return err
}

// since returns the ops of the calls made since the n-th, but closes: the
// close of a handle released before may be on its way (see closer), and a
// close of handle 0 shows in checkHandles.
func (r *recorder) since(n int) []rpc.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ops []rpc.Op
	for _, c := range r.calls[n:] {
		if c.op != rpc.OpClose {
			ops = append(ops, c.op)
		}
	}
	return ops
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// checkHandles fails the test if a call named handle 0, which would be a
// handle opened from a copy reaching the satellite.
func (r *recorder) checkHandles(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		var bad bool
		switch a := c.args.(type) {
		case *rpc.ReadArgs:
			bad = a.Handle == 0
		case *rpc.WriteArgs:
			bad = a.Handle == 0
		case *rpc.HandleArgs:
			bad = a.Handle == 0 || slices.Contains(a.More, 0)
		case *rpc.FsyncArgs:
			bad = a.Handle == 0 && a.Path == ""
		case *rpc.SetattrArgs:
			bad = a.Handle == 0 && a.Path == ""
		}
		if bad {
			t.Errorf("%v call with handle 0: %+v", c.op, c.args)
		}
	}
}

// memFS serves a fresh directory holding files f0..f(n-1) in d, each
// holding its name, with timeouts long enough never to expire in a test.
func memFS(t *testing.T, n int) (*FS, *recorder, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("f%d", i)
		if err := os.WriteFile(filepath.Join(root, "d", name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := sat.New(sat.Config{Root: root})
	cc, sc := net.Pipe()
	go rpc.Serve(sc, sc, s)
	c := rpc.NewClient(cc)
	t.Cleanup(func() { c.Close(); s.Shutdown() })
	r := &recorder{c: c}
	t.Cleanup(func() { r.checkHandles(t) })
	return New(r, Options{AttrTimeout: time.Hour, EntryTimeout: time.Hour}), r, root
}

// listed looks d up and lists it, as ls or tar do.
func listed(t *testing.T, f *FS) *dir {
	t.Helper()
	n, err := f.root.Lookup(context.Background(), &fuse.LookupRequest{Name: "d"}, &fuse.LookupResponse{})
	if err != nil {
		t.Fatal(err)
	}
	d := n.(*dir)
	if _, err := d.ReadDirAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func lookupFile(t *testing.T, d *dir, name string) *file {
	t.Helper()
	n, err := d.Lookup(context.Background(), &fuse.LookupRequest{Name: name}, &fuse.LookupResponse{})
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	return n.(*file)
}

func openFile(d *dir, name string, flags fuse.OpenFlags) (*handle, error) {
	n, err := d.Lookup(context.Background(), &fuse.LookupRequest{Name: name}, &fuse.LookupResponse{})
	if err != nil {
		return nil, err
	}
	h, err := n.(*file).Open(context.Background(), &fuse.OpenRequest{Flags: flags}, &fuse.OpenResponse{})
	if err != nil {
		return nil, err
	}
	return h.(*handle), nil
}

func readAll(t *testing.T, h *handle) string {
	t.Helper()
	resp := &fuse.ReadResponse{Data: make([]byte, 0, 4096)}
	if err := h.Read(context.Background(), &fuse.ReadRequest{Size: 4096}, resp); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(resp.Data)
}

func release(t *testing.T, h *handle) {
	t.Helper()
	if err := h.Flush(context.Background(), &fuse.FlushRequest{}); err != nil {
		t.Errorf("flush: %v", err)
	}
	if err := h.Release(context.Background(), &fuse.ReleaseRequest{}); err != nil {
		t.Errorf("release: %v", err)
	}
}

// fetched opens f0 and f1 read-only, the second of which fetches copies of
// the others, and releases them.
func fetched(t *testing.T, d *dir, r *recorder) {
	t.Helper()
	for _, name := range []string{"f0", "f1"} {
		h, err := openFile(d, name, fuse.OpenReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, h); got != name {
			t.Fatalf("read %s = %q, want %q", name, got, name)
		}
		release(t, h)
	}
	if !slices.Contains(r.since(0), rpc.OpReadFiles) {
		t.Fatalf("opening two files of a listed directory made calls %v, want a readfiles", r.since(0))
	}
	d.fs.closeNow()
}

// TestCopyCostsNothing opens, reads, stats, syncs, chmods and closes files
// opened from copies: none of it may send a handle to the satellite, and
// opening, reading and closing them costs no call at all.
func TestCopyCostsNothing(t *testing.T) {
	f, r, root := memFS(t, 10)
	d := listed(t, f)
	fetched(t, d, r)
	start := r.count()
	var last *handle
	for i := 2; i < 10; i++ {
		name := fmt.Sprintf("f%d", i)
		h, err := openFile(d, name, fuse.OpenReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		if h.rem.Load() != nil {
			t.Errorf("open %s: a handle in the target, want one from its copy", name)
		}
		for range 2 {
			if got := readAll(t, h); got != name {
				t.Errorf("read %s = %q, want %q", name, got, name)
			}
		}
		if i == 9 {
			last = h
			break
		}
		release(t, h)
	}
	f.closeNow()
	if ops := r.since(start); len(ops) != 0 {
		t.Errorf("opening, reading and closing 8 files from copies made calls %v, want none", ops)
	}

	// What must reach the file goes by its path.
	n := last.f
	if err := n.Fsync(context.Background(), &fuse.FsyncRequest{}); err != nil {
		t.Errorf("fsync through a handle opened from a copy: %v", err)
	}
	sreq := &fuse.SetattrRequest{Valid: fuse.SetattrMode | fuse.SetattrHandle, Mode: 0o600}
	if err := n.Setattr(context.Background(), sreq, &fuse.SetattrResponse{}); err != nil {
		t.Errorf("fchmod through a handle opened from a copy: %v", err)
	}
	if err := os.Remove(filepath.Join(root, "d", "f9")); err != nil {
		t.Fatal(err)
	}
	if a, _, _, err := n.stat(context.Background()); err != nil || a.Mode&0o777 != 0o600 {
		t.Errorf("fstat of a file removed in the target, open from its copy = %+v, %v; want its last attributes", a, err)
	}
	release(t, last)
	f.closeNow()
}

// TestCopyUnreadable: a file the satellite may not read is left out of a
// fetch; its open goes to the target and fails there as it would have,
// while the others come from their copies.
func TestCopyUnreadable(t *testing.T) {
	f, r, _ := memFS(t, 10)
	r.hidden = "f5"
	d := listed(t, f)
	fetched(t, d, r)
	start := r.count()
	for i := 2; i < 10; i++ {
		name := fmt.Sprintf("f%d", i)
		h, err := openFile(d, name, fuse.OpenReadOnly)
		if name == "f5" {
			if e, ok := err.(fuse.Errno); !ok || syscall.Errno(e) != syscall.EACCES {
				t.Errorf("open of a file the satellite may not read = %v, want EACCES", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, h); got != name {
			t.Errorf("read %s = %q, want %q", name, got, name)
		}
		release(t, h)
	}
	if ops := r.since(start); !slices.Equal(ops, []rpc.Op{rpc.OpOpen}) {
		t.Errorf("opening 8 files from copies, one unreadable, made calls %v, want one open", ops)
	}
}

// TestCopyAfterChanges checks that no change through the mount and no
// change in the target that the mount knows of leaves a copy in use.
func TestCopyAfterChanges(t *testing.T) {
	f, r, root := memFS(t, 10)
	d := listed(t, f)
	fetched(t, d, r)
	ctx := context.Background()
	back := func(name string) string { return filepath.Join(root, "d", name) }
	wantRead := func(name, want string) {
		t.Helper()
		h, err := openFile(d, name, fuse.OpenReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, h); got != want {
			t.Errorf("read %s = %q, want %q", name, got, want)
		}
		release(t, h)
	}
	write := func(name string, flags fuse.OpenFlags, data string) {
		t.Helper()
		h, err := openFile(d, name, flags)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Write(ctx, &fuse.WriteRequest{Data: []byte(data)}, &fuse.WriteResponse{}); err != nil {
			t.Fatal(err)
		}
		release(t, h)
	}

	write("f2", fuse.OpenWriteOnly, "X")
	wantRead("f2", "X2")
	write("f3", fuse.OpenWriteOnly|fuse.OpenTruncate, "new")
	wantRead("f3", "new")

	n := lookupFile(t, d, "f4")
	sreq := &fuse.SetattrRequest{Valid: fuse.SetattrSize, Size: 1}
	if err := n.Setattr(ctx, sreq, &fuse.SetattrResponse{}); err != nil {
		t.Fatal(err)
	}
	wantRead("f4", "f")

	// A handle opened from its copy reads a write through another
	// descriptor: it opens the file in the target.
	h, err := openFile(d, "f6", fuse.OpenReadOnly)
	if err != nil || h.rem.Load() != nil {
		t.Fatalf("open f6 = %v, want it from its copy", err)
	}
	write("f6", fuse.OpenReadWrite, "Y")
	if got := readAll(t, h); got != "Y6" {
		t.Errorf("read of a handle opened from a copy after a write through another = %q, want %q", got, "Y6")
	}
	if h.rem.Load() == nil {
		t.Errorf("after a write, a handle opened from a copy still has no handle in the target")
	}
	release(t, h)

	// Changed in the target, with attributes read since that show it.
	if err := os.WriteFile(back("f7"), []byte("longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	n = lookupFile(t, d, "f7")
	if _, _, _, err := n.stat(ctx); err != nil {
		t.Fatal(err)
	}
	wantRead("f7", "longer")

	// Renamed through the mount: the copy's ctime is stale.
	if err := d.Rename(ctx, &fuse.RenameRequest{OldName: "f8", NewName: "g8"}, d); err != nil {
		t.Fatal(err)
	}
	h, err = openFile(d, "g8", fuse.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if h.rem.Load() == nil {
		t.Errorf("open of a file renamed through the mount since its copy was fetched used the copy")
	}
	release(t, h)
	f.closeNow()
}
