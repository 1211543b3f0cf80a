package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ugorji/go/codec"
)

// Client issues calls to a satellite over one stream. It is safe for
// concurrent use; any number of calls may be in flight at once.
type Client struct {
	w      *frameWriter
	closer io.Closer
	grace  time.Duration

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]*call
	err     error // non-nil once the stream is gone
	done    chan struct{}

	notify atomic.Pointer[func(*Notify)]
}

type call struct {
	reply any
	err   error
	done  chan struct{}
}

// CancelGrace is how long a call whose ctx ended still waits for its reply
// before giving up. A FUSE interrupt is often no more than a signal to the
// calling thread (Go's runtime preempts goroutines with SIGURG), and the
// operation is usually done in the target by then: returning its real
// result beats EINTR for an rmdir that happened. A call stuck in the
// target is still abandoned after the grace.
const CancelGrace = 500 * time.Millisecond

// NewClient starts a client on rw: it writes requests to rw and reads the
// replies from it. Closing the client closes rw.
func NewClient(rw io.ReadWriteCloser) *Client {
	return newClient(rw, CancelGrace)
}

func newClient(rw io.ReadWriteCloser, grace time.Duration) *Client {
	c := &Client{
		grace:   grace,
		w:       newFrameWriter(rw),
		closer:  rw,
		pending: make(map[uint64]*call),
		done:    make(chan struct{}),
	}
	go c.readLoop(newFrameReader(rw))
	return c
}

// Hello checks that the satellite speaks this protocol version and returns
// what it says about itself. With watch, it asks the satellite to report
// changes (see HelloArgs; set OnNotify first).
func (c *Client) Hello(ctx context.Context, watch bool) (*HelloReply, error) {
	var r HelloReply
	if err := c.Call(ctx, OpHello, &HelloArgs{Version: Version, Watch: watch}, &r); err != nil {
		return nil, err
	}
	if r.Version != Version {
		return nil, fmt.Errorf("satellite speaks protocol version %d, this client speaks %d (use the satellite built with this client)", r.Version, Version)
	}
	return &r, nil
}

// Call sends op with args and decodes the result into reply, which must be
// a pointer to op's reply type. It returns when the reply arrives, ctx is
// done (after CancelGrace), or the stream fails. A call whose ctx ends and
// whose reply does not come within the grace is abandoned: its reply, if it
// ever comes, is dropped.
func (c *Client) Call(ctx context.Context, op Op, args, reply any) error {
	cl := &call{reply: reply, done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.seq++
	seq := c.seq
	c.pending[seq] = cl
	c.mu.Unlock()

	if err := c.w.write(&header{Seq: seq, Op: op}, args); err != nil {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
		if werr := c.w.failed(); werr != nil && err == werr {
			// The stream is broken, not just this message. Shut down
			// first, so that the reason is this error and not the end
			// of stream the reader sees once the stream is closed.
			c.shutdown(fmt.Errorf("%w: %v", ErrShutdown, err))
			c.closer.Close()
			return c.Err()
		}
		return err
	}

	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
	}
	if c.grace > 0 {
		t := time.NewTimer(c.grace)
		select {
		case <-cl.done:
			t.Stop()
			return cl.err
		case <-t.C:
		}
	}
	c.mu.Lock()
	_, waiting := c.pending[seq]
	delete(c.pending, seq)
	c.mu.Unlock()
	if !waiting {
		// The reply won the race; it is already decoded.
		<-cl.done
		return cl.err
	}
	return ctx.Err()
}

// OnNotify sets the function that receives the satellite's Notify
// messages; those that come before it is set are dropped. f is called from
// the goroutine that reads replies, in order: it must not block, nor call
// the client.
func (c *Client) OnNotify(f func(*Notify)) {
	c.notify.Store(&f)
}

// Done is closed when the stream is gone; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped, or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the stream and fails all pending calls with ErrShutdown.
func (c *Client) Close() error {
	err := c.closer.Close()
	c.shutdown(ErrShutdown)
	return err
}

func (c *Client) shutdown(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, cl := range pending {
		cl.err = err
		close(cl.done)
	}
	close(c.done)
}

func (c *Client) readLoop(fr *frameReader) {
	dec := codec.NewDecoderBytes(nil, handle)
	zdec := codec.NewDecoderBytes(nil, argsHandle)
	for {
		b, err := fr.read()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				err = ErrShutdown
			} else {
				err = fmt.Errorf("%w: %v", ErrShutdown, err)
			}
			// A corrupt stream may still be open: close it, so that the
			// satellite ends too.
			c.closer.Close()
			c.shutdown(err)
			return
		}
		kept, err := c.dispatch(dec, zdec, b)
		if !kept {
			putBuf(b)
		}
		if err != nil {
			c.shutdown(fmt.Errorf("%w: %v", ErrShutdown, err))
			c.closer.Close()
			return
		}
	}
}

// frameKeeper is a reply whose []byte may point into its frame instead of
// being copied out (ReadReply: the data of a read). The frame then belongs
// to the reply, which is given it, and is reused only if the reply hands
// it back (ReadReply.Recycle).
type frameKeeper interface {
	keepFrame(*[]byte)
}

// dispatch decodes one reply and completes its call; kept says the reply
// holds on to the frame. An error means the stream can no longer be
// trusted.
func (c *Client) dispatch(dec, zdec *codec.Decoder, frame *[]byte) (kept bool, err error) {
	b := *frame
	dec.ResetBytes(b)
	var h replyHeader
	if err := dec.Decode(&h); err != nil {
		return false, fmt.Errorf("bad reply header: %v", err)
	}
	if h.Seq == 0 {
		// No call has sequence number 0: a message of the satellite's own.
		var m Notify
		if err := dec.Decode(&m); err != nil {
			return false, fmt.Errorf("bad notification: %v", err)
		}
		if f := c.notify.Load(); f != nil {
			(*f)(&m)
		}
		return false, nil
	}
	c.mu.Lock()
	cl := c.pending[h.Seq]
	delete(c.pending, h.Seq)
	c.mu.Unlock()
	if cl == nil {
		return false, nil // abandoned by its caller
	}
	if h.Errno != 0 {
		cl.err = remoteError(&h)
	} else if cl.reply != nil {
		d := dec
		fk, ok := cl.reply.(frameKeeper)
		if ok {
			zdec.ResetBytes(b[dec.NumBytesRead():])
			d, kept = zdec, true
		}
		if err := d.Decode(cl.reply); err != nil {
			cl.err = fmt.Errorf("rpc: bad reply: %v", err)
		} else if kept {
			fk.keepFrame(frame)
		}
	}
	close(cl.done)
	return kept, nil
}
