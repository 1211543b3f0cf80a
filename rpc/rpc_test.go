package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dockerfuse/dockerfuse/rpc"
)

func newReply(v any) any { return reflect.New(reflect.TypeOf(v).Elem()).Interface() }

// TestRoundTrip sends every op through Client and Serve and checks that the
// handler sees the arguments and the caller the reply, field for field, and
// that an error comes back as its errno.
func TestRoundTrip(t *testing.T) {
	if got, want := len(samples), numOps(); got != want {
		t.Fatalf("samples cover %d ops, want all %d", got, want)
	}
	byOp := make(map[rpc.Op]sample)
	for _, s := range samples {
		byOp[s.op] = s
	}
	fail := false
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		s, ok := byOp[op]
		if !ok {
			t.Errorf("handler got unexpected op %v", op)
			return nil, syscall.EINVAL
		}
		if !reflect.DeepEqual(args, s.args) {
			t.Errorf("%v: handler args = %+v, want %+v", op, args, s.args)
		}
		if fail {
			return nil, &fs.PathError{Op: "test", Path: "p", Err: syscall.Errno(op)}
		}
		return s.reply, nil
	}}
	c := serve(t, h)
	ctx := context.Background()
	for _, s := range samples {
		got := newReply(s.reply)
		if err := c.Call(ctx, s.op, s.args, got); err != nil {
			t.Errorf("%v: Call = %v, want nil", s.op, err)
			continue
		}
		if r, ok := got.(*rpc.ReadReply); ok {
			// The frame its data points into is the client's to keep.
			got = &rpc.ReadReply{Data: r.Data}
		}
		if !reflect.DeepEqual(got, s.reply) {
			t.Errorf("%v: reply = %+v, want %+v", s.op, got, s.reply)
		}
	}
	fail = true // the handler runs only while a Call waits: no race
	for _, s := range samples {
		got := newReply(s.reply)
		err := c.Call(ctx, s.op, s.args, got)
		var re *rpc.Error
		if !errors.As(err, &re) {
			t.Errorf("%v: Call = %v (%T), want an *rpc.Error", s.op, err, err)
			continue
		}
		if want := syscall.Errno(s.op); re.Errno != want {
			t.Errorf("%v: errno = %d, want %d", s.op, re.Errno, want)
		}
		if want := s.op.String() + ": test p:"; !strings.HasPrefix(re.Msg, want) {
			t.Errorf("%v: message = %q, want it to start with %q", s.op, re.Msg, want)
		}
		if !reflect.DeepEqual(got, newReply(s.reply)) {
			t.Errorf("%v: reply after an error = %+v, want it untouched", s.op, got)
		}
	}
}

// TestRelease checks that the server releases a pooled reply once it has
// written it, and not before.
func TestRelease(t *testing.T) {
	released := make(chan struct{})
	data := []byte("pooled")
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		return &rpc.ReadReply{Data: data, Done: func() { close(released) }}, nil
	}}
	c := serve(t, h)
	var r rpc.ReadReply
	if err := c.Call(context.Background(), rpc.OpRead, &rpc.ReadArgs{Size: 6}, &r); err != nil {
		t.Fatalf("Call = %v, want nil", err)
	}
	if string(r.Data) != "pooled" {
		t.Errorf("read = %q, want %q", r.Data, "pooled")
	}
	<-released
}

// gates holds back the replies to chosen paths until the test opens them.
type gates struct {
	m sync.Map // path -> chan struct{}
	// entered, if not nil, receives each path as its handler starts waiting.
	entered chan string
}

// add makes the handler wait at path until the returned channel is closed.
func (g *gates) add(path string) chan struct{} {
	ch := make(chan struct{})
	g.m.Store(path, ch)
	return ch
}

// wait blocks the handler for path if a gate is set for it.
func (g *gates) wait(path string) {
	if ch, ok := g.m.Load(path); ok {
		if g.entered != nil {
			g.entered <- path
		}
		<-ch.(chan struct{})
	}
}

// TestConcurrentOutOfOrder runs 64 goroutines of 100 calls each. Half of
// them hold every other reply back until the next call has been answered, so
// replies constantly arrive out of order; each must reach its own caller.
func TestConcurrentOutOfOrder(t *testing.T) {
	const goroutines, calls = 64, 100
	g := &gates{}
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		p := args.(*rpc.PathArgs).Path
		g.wait(p)
		return &rpc.ReadlinkReply{Target: "to:" + p}, nil
	}}
	c := serve(t, h)
	ctx := context.Background()
	readlink := func(p string) error {
		var r rpc.ReadlinkReply
		if err := c.Call(ctx, rpc.OpReadlink, &rpc.PathArgs{Path: p}, &r); err != nil {
			return fmt.Errorf("readlink %s: %v", p, err)
		}
		if want := "to:" + p; r.Target != want {
			return fmt.Errorf("readlink %s = %q, want %q", p, r.Target, want)
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			for j := 0; j < calls; j++ {
				p := fmt.Sprintf("%d/%d", i, j)
				if i%2 == 1 || j+1 == calls {
					if err := readlink(p); err != nil {
						t.Error(err)
					}
					continue
				}
				// The reply to p waits until the one to the next call is in.
				open := g.add(p)
				slow := make(chan error, 1)
				go func() { slow <- readlink(p) }()
				next := fmt.Sprintf("%d/%d", i, j+1)
				if err := readlink(next); err != nil {
					t.Error(err)
				}
				close(open)
				if err := <-slow; err != nil {
					t.Error(err)
				}
				j++
			}
		})
	}
	wg.Wait()
}

// TestStreamDies breaks the stream while calls wait for their replies: all
// of them fail at once with ErrShutdown, and so does every later call,
// without reaching the stream.
func TestStreamDies(t *testing.T) {
	const pending = 10
	g := &gates{entered: make(chan string, pending)}
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		g.wait(args.(*rpc.PathArgs).Path)
		return &rpc.Attr{}, nil
	}}
	c := serve(t, h)
	var opens []chan struct{}
	errs := make(chan error, pending)
	for i := range pending {
		p := fmt.Sprint("blocked", i)
		opens = append(opens, g.add(p))
		go func() { errs <- c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: p}, &rpc.Attr{}) }()
	}
	for range pending {
		<-g.entered
	}
	// Every call is in a handler, so every one is pending in the client.
	c.brokenBelow = true
	c.server.Close()
	for range pending {
		if err := <-errs; !errors.Is(err, rpc.ErrShutdown) {
			t.Errorf("pending call = %v, want ErrShutdown", err)
		}
	}
	<-c.Done()
	if err := c.Err(); !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("Err() = %v, want ErrShutdown", err)
	}
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "later"}, &rpc.Attr{}); !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("call after the stream died = %v, want ErrShutdown", err)
	}
	for _, ch := range opens {
		close(ch)
	}
}

// TestClose fails waiting calls with ErrShutdown.
func TestClose(t *testing.T) {
	g := &gates{entered: make(chan string, 1)}
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		g.wait(args.(*rpc.PathArgs).Path)
		return &rpc.Attr{}, nil
	}}
	c := serve(t, h)
	open := g.add("blocked")
	defer close(open)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "blocked"}, &rpc.Attr{})
	}()
	<-g.entered
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	if err := <-errc; !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("pending call = %v, want ErrShutdown", err)
	}
	<-c.Done()
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{}, &rpc.Attr{}); !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("call after Close = %v, want ErrShutdown", err)
	}
}

// TestCancel abandons a call whose handler is blocked: Call returns
// ctx.Err() at once, other calls go on, and the reply, when it finally
// comes, is dropped without harm.
func TestCancel(t *testing.T) {
	g := &gates{entered: make(chan string, 1)}
	lateWritten := make(chan struct{})
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		switch a := args.(type) {
		case *rpc.ReadArgs:
			g.wait("read")
			return &rpc.ReadReply{Data: []byte("late"), Done: func() { close(lateWritten) }}, nil
		case *rpc.PathArgs:
			if a.Path == "after-late" {
				// This reply follows the late one on the wire.
				<-lateWritten
			}
			return &rpc.ReadlinkReply{Target: a.Path}, nil
		}
		return nil, syscall.EINVAL
	}}
	c := serve(t, h)
	open := g.add("read")
	ctx, cancel := context.WithCancel(context.Background())
	var abandoned rpc.ReadReply
	errc := make(chan error, 1)
	go func() { errc <- c.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Size: 4}, &abandoned) }()
	<-g.entered
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("cancelled Call = %v, want %v", err, context.Canceled)
	}
	readlink := func(p string) {
		t.Helper()
		var r rpc.ReadlinkReply
		if err := c.Call(context.Background(), rpc.OpReadlink, &rpc.PathArgs{Path: p}, &r); err != nil || r.Target != p {
			t.Errorf("readlink %s = %q, %v; want %q, nil", p, r.Target, err, p)
		}
	}
	readlink("while-blocked")
	close(open)
	readlink("after-late")
	if abandoned.Data != nil {
		t.Errorf("abandoned reply = %q, want it untouched", abandoned.Data)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v after a dropped reply, want nil", err)
	}
	readlink("later")
}

// TestCancelBeforeCall returns the context's error for a call made with a
// context that is already done.
func TestCancelBeforeCall(t *testing.T) {
	g := &gates{}
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		g.wait("x")
		return &rpc.Attr{}, nil
	}}
	c := serve(t, h)
	open := g.add("x")
	defer close(open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Call(ctx, rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &rpc.Attr{}); err != context.Canceled {
		t.Errorf("Call = %v, want %v", err, context.Canceled)
	}
}

// TestReadReplyRecycle gives the frames of read replies back while other
// reads arrive: each reply's data stays its own until it is recycled, and
// a second Recycle does nothing.
func TestReadReplyRecycle(t *testing.T) {
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		a := args.(*rpc.ReadArgs)
		b := make([]byte, a.Size)
		for i := range b {
			b[i] = byte(a.Off) + byte(i>>10)
		}
		return &rpc.ReadReply{Data: b}, nil
	}}
	c := serve(t, h)
	ctx := context.Background()
	const size = 128 << 10
	type read struct {
		off   int
		reply *rpc.ReadReply
	}
	var held []read
	for i := range 200 {
		r := new(rpc.ReadReply)
		if err := c.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Off: int64(i), Size: size}, r); err != nil {
			t.Fatal(err)
		}
		held = append(held, read{i, r})
		// Keep a few, recycle the oldest, and check those kept.
		if len(held) > 3 {
			held[0].reply.Recycle()
			held[0].reply.Recycle()
			if held[0].reply.Data != nil {
				t.Fatal("Data still set after Recycle")
			}
			held = held[1:]
		}
		for _, h := range held {
			for j, v := range h.reply.Data {
				if want := byte(h.off) + byte(j>>10); v != want {
					t.Fatalf("byte %d of read %d is %d while held, want %d", j, h.off, v, want)
				}
			}
		}
	}
}
