package fuse

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// noCalls is a Caller for tests of the node table, which makes none.
type noCalls struct{}

func (noCalls) Call(context.Context, rpc.Op, any, any) error { return errors.New("no calls") }

// TestForgetAfterReuse: the kernel forgets a node while a lookup finds the
// same file again. bazil counts the lookup into a new incarnation of the
// node when its reply goes out after the forget was counted, and then calls
// Forget, for the old incarnation, after the lookup handed the node out
// again: the node must keep working.
func TestForgetAfterReuse(t *testing.T) {
	f := New(noCalls{}, Options{})
	dirAttr := &rpc.Attr{Dev: 1, Ino: 10, Mode: syscall.S_IFDIR | 0o755}
	fileAttr := &rpc.Attr{Dev: 1, Ino: 11, Mode: syscall.S_IFREG | 0o644}
	d := f.nodeFor(f.root, "d", dirAttr, time.Now()).(*dir)
	x := f.nodeFor(d, "x", fileAttr, time.Now()).(*file)

	if again := f.nodeFor(f.root, "d", dirAttr, time.Now()); again != d {
		t.Fatalf("lookup of a known directory made a new node")
	}
	d.Forget() // the old incarnation's
	if p, err := d.path(); p != "/d" || err != nil {
		t.Errorf("path of a directory forgotten after a lookup found it = %q, %v; want /d", p, err)
	}
	if p, err := x.path(); p != "/d/x" || err != nil {
		t.Errorf("path of a file in it = %q, %v; want /d/x", p, err)
	}
	if again := f.nodeFor(d, "x", fileAttr, time.Now()); again != x {
		t.Errorf("lookup of a file in it made a new node")
	}
	x.Forget()
	if p, err := x.path(); p != "/d/x" || err != nil {
		t.Errorf("path of a file forgotten after a lookup found it = %q, %v; want /d/x", p, err)
	}
	// Its name and its key lead to it again.
	f.moved(d, "x", d, "y")
	if p, err := x.path(); p != "/d/y" || err != nil {
		t.Errorf("path after a rename = %q, %v; want /d/y", p, err)
	}
	if again := f.nodeFor(d, "y", fileAttr, time.Now()); again != x {
		t.Errorf("lookup after a rename made a new node")
	}
}

// TestForgetGone: a node forgotten whose name another file took since stays
// gone.
func TestForgetGone(t *testing.T) {
	f := New(noCalls{}, Options{})
	a := f.nodeFor(f.root, "n", &rpc.Attr{Dev: 1, Ino: 10, Mode: syscall.S_IFREG}, time.Now()).(*file)
	a.Forget()
	b := f.nodeFor(f.root, "n", &rpc.Attr{Dev: 1, Ino: 12, Mode: syscall.S_IFREG}, time.Now()).(*file)
	if b == a {
		t.Fatal("another file got the forgotten node")
	}
	if p, err := a.path(); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("path of a forgotten node whose name was taken = %q, %v; want ENOENT", p, err)
	}
	if p, err := b.path(); p != "/n" || err != nil {
		t.Errorf("path of the new file = %q, %v; want /n", p, err)
	}
}
