package rpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/rpc"
)

func TestHello(t *testing.T) {
	want := rpc.HelloReply{Version: rpc.Version, Pid: 7, Uid: 1000, Arch: "arm64", Root: "/srv"}
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		if got := args.(*rpc.HelloArgs).Version; got != rpc.Version {
			t.Errorf("satellite got version %d, want %d", got, rpc.Version)
		}
		r := want
		return &r, nil
	}}
	got, err := serve(t, h).Hello(context.Background(), false)
	if err != nil {
		t.Fatalf("Hello = %v, want nil", err)
	}
	if *got != want {
		t.Errorf("Hello = %+v, want %+v", *got, want)
	}
}

// TestHelloVersionMismatch checks that a satellite of another protocol
// version is refused with an error that names both versions and the remedy.
func TestHelloVersionMismatch(t *testing.T) {
	other := rpc.Version + 1
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		return &rpc.HelloReply{Version: other}, nil
	}}
	r, err := serve(t, h).Hello(context.Background(), false)
	if err == nil {
		t.Fatalf("Hello = %+v, nil; want a version error", r)
	}
	for _, want := range []string{"version " + strconv.Itoa(other), strconv.Itoa(rpc.Version), "satellite built with this client"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Hello error = %q, want it to contain %q", err, want)
		}
	}
}

// TestHandlerPanic checks that a panic in one request becomes an EIO reply
// and that the session goes on.
func TestHandlerPanic(t *testing.T) {
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		if args.(*rpc.PathArgs).Path == "panic" {
			var m map[string]int
			m["boom"]++
		}
		return &rpc.Attr{Ino: 5}, nil
	}}
	c := serve(t, h)
	err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "panic"}, &rpc.Attr{})
	if got := rpc.Errno(err); got != syscall.EIO {
		t.Errorf("panicking call = %v (errno %d), want EIO", err, got)
	}
	if err == nil || !strings.Contains(err.Error(), "internal error") || !strings.Contains(err.Error(), "lstat") {
		t.Errorf("panicking call = %v, want an internal error of lstat", err)
	}
	var a rpc.Attr
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "ok"}, &a); err != nil || a.Ino != 5 {
		t.Errorf("call after a panic = %+v, %v; want Ino 5, nil", a, err)
	}
}

// TestUnknownOp checks that an op the server does not know gets
// EOPNOTSUPP, never ENOSYS (which would make the kernel stop asking), and
// that the session goes on.
func TestUnknownOp(t *testing.T) {
	h := &fake{serve: func(op rpc.Op, args any) (any, error) { return &rpc.Attr{Ino: 1}, nil }}
	c := serve(t, h)
	for _, op := range []rpc.Op{0, rpc.Op(numOps() + 1), 255} {
		err := c.Call(context.Background(), op, &rpc.PathArgs{Path: "x"}, &rpc.Attr{})
		if got := rpc.Errno(err); got != syscall.EOPNOTSUPP {
			t.Errorf("op %d: Call = %v (errno %d), want EOPNOTSUPP", op, err, got)
		}
		if errors.Is(err, syscall.ENOSYS) {
			t.Errorf("op %d: Call = %v, is ENOSYS; want it not to be", op, err)
		}
		if err == nil || !strings.Contains(err.Error(), "versions differ") {
			t.Errorf("op %d: Call = %v, want it to suggest a version mismatch", op, err)
		}
	}
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &rpc.Attr{}); err != nil {
		t.Errorf("known op after unknown ones = %v, want nil", err)
	}
}

// TestBadArguments checks that arguments that do not decode get EINVAL and
// do not end the session.
func TestBadArguments(t *testing.T) {
	h := &fake{serve: func(op rpc.Op, args any) (any, error) { return &rpc.Attr{}, nil }}
	c := serve(t, h)
	for _, args := range []any{"a string, not PathArgs", []int{1, 2, 3}, map[string]int{"Path": 1}} {
		err := c.Call(context.Background(), rpc.OpLstat, args, &rpc.Attr{})
		if got := rpc.Errno(err); got != syscall.EINVAL {
			t.Errorf("lstat with %#v = %v (errno %d), want EINVAL", args, err, got)
		}
	}
	if err := c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{}, &rpc.Attr{}); err != nil {
		t.Errorf("call after bad arguments = %v, want nil", err)
	}
}

// TestReplyTooLarge checks that a reply too large to send fails its call
// instead of leaving it waiting, and that the session goes on.
func TestReplyTooLarge(t *testing.T) {
	h := &fake{serve: func(op rpc.Op, args any) (any, error) {
		if args.(*rpc.XattrArgs).Name == "big" {
			return &rpc.XattrReply{Value: make([]byte, rpc.MaxFrame)}, nil
		}
		return &rpc.XattrReply{Value: []byte("small")}, nil
	}}
	c := serve(t, h)
	// Without an answer the call would wait forever: bound it to report it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.Call(ctx, rpc.OpGetxattr, &rpc.XattrArgs{Name: "big"}, &rpc.XattrReply{})
	if got := rpc.Errno(err); got != syscall.EIO || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("call with a too large reply = %v (errno %d), want EIO saying it exceeds the limit", err, got)
	}
	var r rpc.XattrReply
	if err := c.Call(ctx, rpc.OpGetxattr, &rpc.XattrArgs{Name: "small"}, &r); err != nil || string(r.Value) != "small" {
		t.Errorf("call after a too large reply = %q, %v; want %q, nil", r.Value, err, "small")
	}
}

// frameLen is a frame header claiming n bytes.
func frameLen(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// TestServeEnd checks how Serve ends: nil at a clean end of its input, an
// error for a truncated or corrupt stream.
func TestServeEnd(t *testing.T) {
	lstat := rpc.AppendRequest(nil, 1, rpc.OpLstat, &rpc.PathArgs{Path: "x"})
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string // "" for nil
	}{
		{"empty", nil, ""},
		{"one request", lstat, ""},
		{"truncated length", append(lstat[:len(lstat):len(lstat)], 0, 0), "unexpected EOF"},
		{"truncated frame", lstat[:len(lstat)-1], "unexpected EOF"},
		{"empty frame", frameLen(0), "bad request header"},
		{"garbage header", append(frameLen(1), 0xc1), "bad request header"},
		{"length above MaxFrame", append(frameLen(rpc.MaxFrame+1), lstat...), "exceeds"},
		{"length of 4 GiB", append(frameLen(1<<32-1), lstat...), "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fake{serve: func(op rpc.Op, args any) (any, error) { return &rpc.Attr{}, nil }}
			err := rpc.Serve(bytes.NewReader(tc.in), io.Discard, h)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Serve = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Serve = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestServeHugeFrame checks that a length field of 4 GiB is refused before
// anything of that size is allocated.
func TestServeHugeFrame(t *testing.T) {
	h := &fake{serve: func(op rpc.Op, args any) (any, error) { return &rpc.Attr{}, nil }}
	in := append(frameLen(1<<32-1), make([]byte, 64)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := rpc.Serve(bytes.NewReader(in), io.Discard, h)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("Serve = %v, want a frame size error", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > rpc.MaxFrame {
		t.Errorf("Serve allocated %d bytes for a 4 GiB length field, want at most %d", got, rpc.MaxFrame)
	}
}
