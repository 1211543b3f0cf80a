package rpc_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// failConn is net/rpc's WriteFailCodec as a stream: every write fails, and
// reads wait until it is closed.
type failConn struct {
	closed    chan struct{}
	closeOnce sync.Once
}

var errWrite = errors.New("write failed for the test")

func newFailConn() *failConn { return &failConn{closed: make(chan struct{})} }

func (f *failConn) Read(p []byte) (int, error) {
	<-f.closed
	return 0, io.EOF
}

func (f *failConn) Write(p []byte) (int, error) { return 0, errWrite }

func (f *failConn) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// TestWriteFails checks that a write error fails the call, shuts the
// client down and closes the stream, so that its reader ends too.
func TestWriteFails(t *testing.T) {
	conn := newFailConn()
	c := rpc.NewClient(conn)
	err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &rpc.Attr{})
	if !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("Call = %v, want ErrShutdown", err)
	}
	if err == nil || !strings.Contains(err.Error(), errWrite.Error()) {
		t.Errorf("Call = %v, want it to say why: %q", err, errWrite)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("client still running after a failed write, want it shut down")
	}
	if err := c.Err(); !errors.Is(err, rpc.ErrShutdown) || !strings.Contains(err.Error(), errWrite.Error()) {
		t.Errorf("Err() = %v, want ErrShutdown caused by %q", err, errWrite)
	}
	select {
	case <-conn.closed:
	default:
		t.Error("stream still open after a failed write, want it closed")
	}
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &rpc.Attr{}); !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("later Call = %v, want ErrShutdown", err)
	}
}

// TestWriteFailsConcurrently races failing writes with calls too large to
// send: both read the writer's state.
func TestWriteFailsConcurrently(t *testing.T) {
	c := rpc.NewClient(newFailConn())
	tooLarge := &rpc.WriteArgs{Data: make([]byte, rpc.MaxFrame)}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			var args any = &rpc.PathArgs{Path: "x"}
			if i%2 == 0 {
				args = tooLarge
			}
			if err := c.Call(context.Background(), rpc.OpLstat, args, &rpc.Attr{}); err == nil {
				t.Errorf("Call %d = nil, want an error", i)
			}
		})
	}
	wg.Wait()
	<-c.Done()
}
