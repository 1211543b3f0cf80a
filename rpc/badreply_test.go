package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// TestClientBadReply plays a satellite that answers with a frame too large,
// or a reply header that does not decode: the client must fail the
// pending call with ErrShutdown, say why, and close the stream.
func TestClientBadReply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
		want  string
	}{
		{"length of 4 GiB", frameLen(1<<32 - 1), "exceeds"},
		{"length above MaxFrame", frameLen(rpc.MaxFrame + 1), "exceeds"},
		{"garbage header", append(frameLen(1), 0xc1), "bad reply header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer sc.Close()
			c := rpc.NewClient(cc)
			defer c.Close()
			errc := make(chan error, 1)
			go func() { errc <- c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &rpc.Attr{}) }()
			want := rpc.AppendRequest(nil, 1, rpc.OpLstat, &rpc.PathArgs{Path: "x"})
			got := make([]byte, len(want))
			if _, err := io.ReadFull(sc, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("request = %x, %v; want %x", got, err, want)
			}
			if _, err := sc.Write(tc.reply); err != nil {
				t.Fatalf("writing the reply: %v", err)
			}
			if err := <-errc; !errors.Is(err, rpc.ErrShutdown) {
				t.Errorf("Call = %v, want ErrShutdown", err)
			}
			<-c.Done()
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Err() = %v, want it to contain %q", err, tc.want)
			}
			// The client closed its end: the satellite sees the end of its input.
			if n, err := sc.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("satellite read after a bad reply = %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

// TestClientDropsUnknownReply checks that a reply to no pending call (an
// abandoned one) is skipped, and that a reply body that does not decode
// fails only its own call.
func TestClientDropsUnknownReply(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	c := rpc.NewClient(cc)
	defer c.Close()
	errc := make(chan error, 1)
	var got rpc.Attr
	go func() { errc <- c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &got) }()
	if _, err := io.ReadFull(sc, make([]byte, len(rpc.AppendRequest(nil, 1, rpc.OpLstat, &rpc.PathArgs{Path: "x"})))); err != nil {
		t.Fatal(err)
	}
	var stream []byte
	stream = rpc.AppendReply(stream, 99, 0, "", &rpc.Attr{Ino: 99})
	stream = rpc.AppendReply(stream, 1, 0, "", &rpc.Attr{Ino: 1})
	if _, err := sc.Write(stream); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil || got.Ino != 1 {
		t.Errorf("Call = %+v, %v; want Ino 1, nil", got, err)
	}

	go func() { errc <- c.Call(context.Background(), rpc.OpLstat, &rpc.PathArgs{Path: "x"}, &got) }()
	if _, err := io.ReadFull(sc, make([]byte, len(rpc.AppendRequest(nil, 2, rpc.OpLstat, &rpc.PathArgs{Path: "x"})))); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Write(rpc.AppendReply(nil, 2, 0, "", "not an Attr")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || errors.Is(err, rpc.ErrShutdown) || !strings.Contains(err.Error(), "bad reply") {
		t.Errorf("Call with an undecodable reply = %v, want a bad reply error", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v after one bad reply body, want nil: the stream is in step", err)
	}
}
