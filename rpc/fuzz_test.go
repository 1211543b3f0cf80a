package rpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// hangLimit bounds one fuzz input: Serve and the client must be done with
// a few kilobytes long before it.
const hangLimit = 10 * time.Second

// syncCounter is a writer that may be written from several goroutines.
type syncCounter struct {
	mu sync.Mutex
	n  int
}

func (w *syncCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	return len(p), nil
}

// firstLen is the length field of the first frame of b, if it has one.
func firstLen(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// FuzzServerDecode feeds arbitrary bytes to Serve as the request stream. It
// must not panic, must return once its input ends, and must refuse a length
// field above MaxFrame rather than allocate it.
func FuzzServerDecode(f *testing.F) {
	var all []byte
	for i, s := range samples {
		frame := rpc.AppendRequest(nil, uint64(i+1), s.op, s.args)
		f.Add(frame)
		all = append(all, frame...)
	}
	f.Add(all)
	f.Add([]byte{})
	f.Add(rpc.AppendRequest(nil, 1, rpc.OpLstat, &rpc.PathArgs{Path: "panic"}))
	f.Add(rpc.AppendRequest(nil, 1, 200, &rpc.PathArgs{Path: "x"}))
	f.Add(rpc.AppendRequest(nil, 1, rpc.OpWrite, &rpc.PathArgs{Path: "wrong args"}))
	f.Add(rpc.AppendRequest(nil, 1<<64-1, rpc.OpLstat, nil))
	f.Add(append(frameLen(1<<32-1), all...))
	f.Add(append(frameLen(rpc.MaxFrame+1), all...))
	f.Add(all[:len(all)-3])
	f.Add(append(frameLen(0), all...))

	byOp := make(map[rpc.Op]any)
	for _, s := range samples {
		byOp[s.op] = s.reply
	}
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		if p, ok := args.(*rpc.PathArgs); ok && p.Path == "panic" {
			panic("fuzz")
		}
		if a, ok := args.(*rpc.WriteArgs); ok && len(a.Data) > rpc.MaxFrame {
			return nil, syscall.EFBIG
		}
		return byOp[op], nil
	}}
	f.Fuzz(func(t *testing.T, in []byte) {
		done := make(chan error, 1)
		go func() { done <- rpc.Serve(bytes.NewReader(in), &syncCounter{}, h) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(hangLimit):
			t.Fatalf("Serve still running %v after its %d byte input ended", hangLimit, len(in))
		}
		if n, ok := firstLen(in); ok && n > rpc.MaxFrame {
			if err == nil || !strings.Contains(err.Error(), "exceeds") {
				t.Errorf("Serve with a first length field of %d = %v, want a frame size error", n, err)
			}
		}
		if len(in) == 0 && err != nil {
			t.Errorf("Serve of empty input = %v, want nil", err)
		}
	})
}

// replayConn is a satellite that answers with recorded bytes once the
// client has sent its requests.
type replayConn struct {
	data   *bytes.Reader
	start  chan struct{} // closed when the replies may come
	wrote  chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (r *replayConn) Read(p []byte) (int, error) {
	select {
	case <-r.start:
	case <-r.closed:
		return 0, io.ErrClosedPipe
	}
	select {
	case <-r.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	return r.data.Read(p)
}

func (r *replayConn) Write(p []byte) (int, error) {
	select {
	case r.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (r *replayConn) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// fuzzCalls are the calls pending while the fuzzed reply stream plays:
// call i has sequence number i+1.
var fuzzCalls = []sample{
	{rpc.OpLstat, &rpc.PathArgs{Path: "a"}, &sampleAttr},
	{rpc.OpReadDir, &rpc.ReadDirArgs{Path: "d"}, samples[rpc.OpReadDir-1].reply},
	{rpc.OpRead, &rpc.ReadArgs{Handle: 1, Size: 256}, &rpc.ReadReply{Data: binary256}},
	{rpc.OpHello, &rpc.HelloArgs{Version: rpc.Version}, samples[rpc.OpHello-1].reply},
	{rpc.OpStatfs, &rpc.PathArgs{}, samples[rpc.OpStatfs-1].reply},
	{rpc.OpOpen, &rpc.OpenArgs{Path: "f"}, &rpc.OpenReply{Handle: 3, Attr: sampleAttr}},
	{rpc.OpGetxattr, &rpc.XattrArgs{Name: "user.x"}, &rpc.XattrReply{Value: binary256}},
	{rpc.OpReadFiles, &rpc.ReadFilesArgs{Dir: "d", Names: []string{"a", "b"}}, samples[rpc.OpReadFiles-1].reply},
}

// FuzzClientDecode feeds arbitrary bytes to a Client as the reply stream
// while calls of every reply shape are pending. It must not panic, every
// call must end with its reply or an error once the stream ends, and a
// length field above MaxFrame must shut the client down.
func FuzzClientDecode(f *testing.F) {
	var inOrder, reversed []byte
	for i, c := range fuzzCalls {
		frame := rpc.AppendReply(nil, uint64(i+1), 0, "", c.reply)
		f.Add(frame)
		inOrder = append(inOrder, frame...)
		reversed = append(frame, reversed...)
	}
	f.Add(inOrder)
	f.Add(reversed)
	f.Add([]byte{})
	f.Add(rpc.AppendReply(nil, 1, syscall.ENOENT, "lstat a: no such file or directory", nil))
	f.Add(rpc.AppendReply(nil, 2, syscall.EACCES, "", nil))
	f.Add(rpc.AppendReply(rpc.AppendReply(nil, 1, 0, "", &sampleAttr), 1, 0, "", &sampleAttr))
	f.Add(rpc.AppendReply(nil, 99, 0, "", &sampleAttr))
	f.Add(rpc.AppendReply(nil, 3, 0, "", &sampleAttr)) // the wrong shape
	f.Add(append(frameLen(1<<32-1), inOrder...))
	f.Add(append(frameLen(rpc.MaxFrame+1), inOrder...))
	f.Add(inOrder[:len(inOrder)-5])

	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &replayConn{
			data:   bytes.NewReader(in),
			start:  make(chan struct{}),
			wrote:  make(chan struct{}, 1),
			closed: make(chan struct{}),
		}
		c := rpc.NewClient(conn)
		defer c.Close()
		errs := make([]error, len(fuzzCalls))
		var wg sync.WaitGroup
		for i, call := range fuzzCalls {
			wg.Go(func() {
				errs[i] = c.Call(context.Background(), call.op, call.args, newReply(call.reply))
			})
			<-conn.wrote // in order, so that call i has sequence number i+1
		}
		close(conn.start)
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(hangLimit):
			t.Fatalf("calls still pending %v after a %d byte reply stream ended", hangLimit, len(in))
		}
		for i, err := range errs {
			var re *rpc.Error
			switch {
			case err == nil, errors.Is(err, rpc.ErrShutdown):
			case errors.As(err, &re):
				if re.Errno == 0 {
					t.Errorf("call %d: remote error %q without an errno", i+1, re.Msg)
				}
			case strings.HasPrefix(err.Error(), "rpc: bad reply"):
			default:
				t.Errorf("call %d = %v, want a reply, a remote error, a bad reply or ErrShutdown", i+1, err)
			}
		}
		<-c.Done() // the stream ended
		if n, ok := firstLen(in); ok && n > rpc.MaxFrame {
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), "exceeds") {
				t.Errorf("Err() after a first length field of %d = %v, want a frame size error", n, err)
			}
		}
	})
}
