package fuse

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Streaming reads come in requests of at most 128 KiB, each a call of its
// own: a round trip, a frame each way and the engine's copying for every
// 128 KiB. A read of that full size (what the kernel's readahead sends)
// is answered instead from chunks of raChunk bytes, each fetched with one
// call, and the chunks after the one in use are fetched at once, so that
// they are on their way while it is read. A chunk serves reads only while
// it is younger than AttrTimeout, as the page cache it fills would, and
// writes through the mount drop the chunks (dropCopies).
//
// The engine copies an exec's output through one small buffer at a time:
// one stream moves no more bytes for more chunks on their way on it, it
// moves fewer (two on their way: a fifth slower, see docs/bench.md). So a
// stream carries one chunk at a time. A mount whose Caller
// has extra streams to the target (Streamer) fetches chunks through those,
// and leaves the first stream to every other call, so that an ls does not
// wait behind a large read. A handle's next chunk waits for a stream; the
// chunks after it are fetched only on streams free at that moment, up to
// one per stream: one reader keeps every stream busy, and readers at once
// share them.
const (
	raChunk   = 512 << 10
	raMinRead = 128 << 10
)

// MaxStreams bounds the streams a mount reads through, its own and those
// of a Streamer together, and so the chunks a handle reads ahead and
// keeps.
const MaxStreams = 8

// A Streamer is a Caller with more streams to the same target: satellites
// started only to read files, each on an exec of its own. Streams returns
// those connected now; a lost one fails its calls.
type Streamer interface {
	Streams() []Caller
}

// chunk is raChunk bytes of a file from off (fewer at its end), fetched
// at time at; done is closed once data or err is set. Its memory is the
// reply it came in, given back (rpc.ReadReply.Recycle) when the last of
// its references goes: the handle's list of chunks, its fetch, and each
// read answered from it until bazil has written the answer to the kernel.
type chunk struct {
	off   int64
	at    time.Time
	done  chan struct{}
	data  []byte
	err   error
	reply rpc.ReadReply
	refs  atomic.Int32
}

// unref drops a reference to c.
func (c *chunk) unref() {
	if c.refs.Add(-1) == 0 {
		c.reply.Recycle()
	}
}

// dropChunksLocked drops the handle's chunks; h.mu is held.
func (h *handle) dropChunksLocked() {
	for _, c := range h.chunks {
		c.unref()
	}
	h.chunks = nil
}

// lanes are the streams chunks are fetched through, each busy with at
// most one at a time.
type lanes struct {
	mu   sync.Mutex
	cond sync.Cond
	busy map[Caller]bool
}

// take waits for a stream with no chunk on its way and marks it busy:
// one of the extra streams if there are any, else own, the one that
// carries every other call.
func (l *lanes) take(own Caller, extra []Caller) Caller {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if c := l.freeLocked(own, extra); c != nil {
			return c
		}
		l.cond.Wait()
	}
}

// tryTake is take without the wait: nil if every stream is busy.
func (l *lanes) tryTake(own Caller, extra []Caller) Caller {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.freeLocked(own, extra)
}

func (l *lanes) freeLocked(own Caller, extra []Caller) Caller {
	if len(extra) == 0 && !l.busy[own] {
		l.busy[own] = true
		return own
	}
	for _, c := range extra {
		if !l.busy[c] {
			l.busy[c] = true
			return c
		}
	}
	return nil
}

func (l *lanes) put(c Caller) {
	l.mu.Lock()
	delete(l.busy, c)
	l.mu.Unlock()
	l.cond.Broadcast()
}

// streams returns the extra streams of the mount, at most MaxStreams-1.
func (f *FS) streams() []Caller {
	s, ok := f.c.(Streamer)
	if !ok {
		return nil
	}
	cs := s.Streams()
	if len(cs) > MaxStreams-1 {
		cs = cs[:MaxStreams-1]
	}
	return cs
}

// readAhead answers req from a chunk, fetching it if needed. It returns
// false when the read is not one for chunks (too small, across two
// chunks, or the fetch failed): the caller reads directly.
func (h *handle) readAhead(ctx context.Context, rem *remote, req *fuse.ReadRequest, resp *fuse.ReadResponse) (bool, error) {
	if req.Size < raMinRead {
		return false, nil
	}
	base := req.Offset - req.Offset%raChunk
	if req.Offset+int64(req.Size) > base+raChunk {
		return false, nil
	}
	c := h.chunk(rem, base, nil, true)
	select {
	case <-c.done:
	case <-ctx.Done():
		c.unref()
		return true, ctx.Err()
	}
	if c.err != nil {
		c.unref()
		return false, nil
	}
	n := int64(len(c.data))
	lo, hi := min(req.Offset-base, n), min(req.Offset-base+int64(req.Size), n)
	// bazil writes the data to the kernel from where it is, and says
	// when it has; the chunk is never written to.
	resp.Data = c.data[lo:hi]
	resp.Done = c.unref
	if n == raChunk {
		// The next chunk waits for a stream; those after it are read
		// ahead only on streams that are free now, so that readers at
		// once share the streams instead of queueing chunks far ahead.
		h.chunk(rem, base+raChunk, nil, false)
		extra := h.f.fs.streams()
		for i := 2; i <= len(extra); i++ {
			if h.chunk(rem, base+int64(i)*raChunk, extra, false) == nil {
				break
			}
		}
	}
	return true, nil
}

// chunk returns the fresh chunk at off, starting its fetch through rem if
// there is none. With free, the mount's extra streams, it starts one only
// if one of those is free now, and returns nil if none is; without, the
// fetch waits for a stream. With use, the chunk returned has a reference
// for the caller, who drops it with unref.
func (h *handle) chunk(rem *remote, off int64, free []Caller, use bool) *chunk {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.chunks {
		if c.off == off && time.Since(c.at) < h.f.fs.opts.AttrTimeout {
			select {
			case <-c.done:
				if c.err != nil {
					continue
				}
			default:
			}
			if use {
				c.refs.Add(1)
			}
			return c
		}
	}
	fs := h.f.fs
	var s Caller
	if free != nil {
		if s = fs.lanes.tryTake(rem.c, free); s == nil {
			return nil
		}
	}
	c := &chunk{off: off, at: time.Now(), done: make(chan struct{})}
	c.refs.Store(2) // the list's and the fetch's
	if use {
		c.refs.Add(1)
	}
	if len(h.chunks) == MaxStreams+2 {
		h.chunks[0].unref()
		h.chunks = append(h.chunks[:0], h.chunks[1:]...)
	}
	h.chunks = append(h.chunks, c)
	go func() {
		defer c.unref()
		defer close(c.done)
		h.f.wait()
		if s == nil {
			s = fs.lanes.take(rem.c, fs.streams())
		}
		defer fs.lanes.put(s)
		c.reply, c.err = h.fetch(s, rem, off)
		c.data = c.reply.Data
	}()
	return c
}

// fetch reads the chunk at off through stream s: the handle's own if s is
// its stream, else the file opened again there (see on). A read that fails
// on another stream (lost meanwhile) is made again on the handle's own.
func (h *handle) fetch(s Caller, rem *remote, off int64) (rpc.ReadReply, error) {
	args := rpc.ReadArgs{Handle: rem.id, Off: off, Size: raChunk}
	if s != rem.c {
		if id, ok := h.on(s); ok {
			a := args
			a.Handle = id
			var r rpc.ReadReply
			if err := s.Call(context.Background(), rpc.OpRead, &a, &r); err == nil {
				return r, nil
			}
		}
	}
	var r rpc.ReadReply
	err := rem.c.Call(context.Background(), rpc.OpRead, &args, &r)
	return r, err
}

// on returns the handle's file as open on stream s, opening it read-only
// by its path the first time. Only a regular file is opened again, and
// its path must still lead to it (the same device and inode): a file
// removed or renamed over since its open, or a name that means another
// file to another process (/proc/self), is read through the handle's own
// stream only.
func (h *handle) on(s Caller) (uint64, bool) {
	h.mu.Lock()
	id, ok := h.aux[s]
	h.mu.Unlock()
	if ok {
		return id, id != 0
	}
	f := h.f
	f.fs.mu.Lock()
	regular := f.attr.Mode&syscall.S_IFMT == syscall.S_IFREG
	f.fs.mu.Unlock()
	// Opening a fifo or a device again is not without effects.
	if regular {
		if r, err := f.openAgain(context.Background(), s, &rpc.OpenArgs{Flags: syscall.O_RDONLY}, time.Time{}); err == nil {
			id = r.Handle
		}
	}
	h.mu.Lock()
	if h.auxClosed {
		// Released meanwhile.
		h.mu.Unlock()
		if id != 0 {
			f.fs.closeLater(s, id)
		}
		return 0, false
	}
	if h.aux == nil {
		h.aux = make(map[Caller]uint64)
	}
	h.aux[s] = id
	h.mu.Unlock()
	return id, id != 0
}
