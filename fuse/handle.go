package fuse

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// handle is a file open in the target. The kernel sends one release per
// open, after the last of the caller's duplicated descriptors is closed;
// flushes (one per close(2)) leave the remote file open, so a descriptor
// that survives a dup'd copy's close keeps working. bazil answers flush
// itself: writes are sent through at once, so there is nothing to flush.
//
// A small file opened read-only arrives whole with the open: reads are
// answered from that copy while it is younger than AttrTimeout, like the
// page cache it fills, and the copy is dropped once read to the end.
//
// A handle opened from a copy fetched ahead (see prefetch.go) has nothing
// open in the target: it reads from the copy, to the end as often as
// asked, while the copy is younger than AttrTimeout and no change through
// the mount dropped it; then it opens the file in the target (reopen).
// Until it has, it sends the satellite nothing: fstat, fsync and fchmod
// through it go by the file's path instead (see anyHandle), and its
// release and flushes cost no call.
type handle struct {
	f        *file
	rem      atomic.Pointer[remote] // nil until a handle opened from a copy reopens, or a create behind is made
	writable bool
	pend     *pendingCreate // of a handle created behind (see create.go)
	wrote    atomic.Bool

	// omu serializes reopen and release, which set and use rem.
	omu      sync.Mutex
	released bool

	mu     sync.Mutex
	data   []byte // the whole file, as of dataAt
	dataAt time.Time
	chunks []*chunk // of streaming reads, oldest first (see readAhead)
	// aux are the handle's file as open on the mount's other streams, 0
	// where it cannot be (see on); auxClosed is set at release.
	aux       map[Caller]uint64
	auxClosed bool

	// Writes gathered, sent and not yet answered (see Write). wmu
	// guards them; wdone is signalled as each call ends.
	wmu      sync.Mutex
	wdone    *sync.Cond
	wbuf     *[]byte // gathered, from wbufOff; nil if nothing is
	wbufOff  int64
	wgen     int   // counts the gatherings, for their timers
	inflight int   // calls made up and not yet answered
	sending  int   // of which on their way
	next     int64 // where the last write taken ends
	werr     error // met by an asynchronous write, not yet reported
}

// remote is a file open in the target: the satellite that opened it (see
// Pinner) and its handle there.
type remote struct {
	c  Caller
	id uint64
}

var _ fusefs.HandleReader = (*handle)(nil)

func (h *handle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	if h.inline(req, resp) {
		return nil
	}
	rem, err := h.reopen(ctx)
	if err != nil {
		return errno(err)
	}
	if h.inline(req, resp) {
		return nil // the reopen brought the file whole
	}
	if ok, err := h.readAhead(ctx, rem, req, resp); ok {
		return errno(err)
	}
	h.f.wait()
	r := rpc.ReadReply{Data: resp.Data[:0]}
	if err := rem.c.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Handle: rem.id, Off: req.Offset, Size: req.Size}, &r); err != nil {
		return errno(err)
	}
	resp.Data = r.Data
	return nil
}

// inline answers a read from the copy that came with the open, if it is
// still fresh.
func (h *handle) inline(req *fuse.ReadRequest, resp *fuse.ReadResponse) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data == nil || time.Since(h.dataAt) >= h.f.fs.opts.AttrTimeout {
		h.data = nil
		return false
	}
	n := int64(len(h.data))
	lo, hi := min(req.Offset, n), min(req.Offset+int64(req.Size), n)
	resp.Data = h.data[lo:hi] // never written to; bazil copies it out
	if hi == n && h.rem.Load() != nil {
		// With the file open in the target, a read again goes there.
		h.data = nil
	}
	return true
}

// reopen returns where the handle's file is open in the target, opening it
// read-only now for a handle opened from a copy. The file is opened by its
// path, which must still lead to the same file: a real descriptor would
// still reach a file removed or replaced meanwhile, this one cannot and
// fails with ESTALE. A small file comes whole with the open, as with any
// read-only open, so that the read which needed it costs one call.
func (h *handle) reopen(ctx context.Context) (*remote, error) {
	if rem := h.rem.Load(); rem != nil {
		return rem, nil
	}
	if h.pend != nil {
		return h.remote()
	}
	h.omu.Lock()
	defer h.omu.Unlock()
	if rem := h.rem.Load(); rem != nil {
		return rem, nil
	}
	if h.released {
		return nil, syscall.EBADF
	}
	f := h.f
	f.wait()
	c := f.fs.pin()
	at := time.Now()
	r, err := f.openAgain(ctx, c, &rpc.OpenArgs{Flags: syscall.O_RDONLY, Inline: rpc.MaxInline}, at)
	if err != nil {
		return nil, err
	}
	rem := &remote{c: c, id: r.Handle}
	if r.Whole {
		h.mu.Lock()
		h.data, h.dataAt = r.Data, at
		h.mu.Unlock()
	}
	h.rem.Store(rem)
	return rem, nil
}

// openAgain opens f by its path through c, with args, and returns the
// reply if the path still leads to f (the same device and inode); another
// file found there is closed again and ESTALE returned. With at not zero,
// f's attributes are refreshed from the open, read at time at.
func (f *file) openAgain(ctx context.Context, c Caller, args *rpc.OpenArgs, at time.Time) (*rpc.OpenReply, error) {
	p, err := f.path()
	if err != nil {
		return nil, syscall.ESTALE
	}
	args.Path = p
	r, err := open(ctx, c, args)
	if err != nil {
		return nil, err
	}
	f.fs.mu.Lock()
	same := r.Attr.Dev == f.attr.Dev && r.Attr.Ino == f.attr.Ino
	if same && !at.IsZero() {
		f.setAttrLocked(&r.Attr, at)
	}
	f.fs.mu.Unlock()
	if !same {
		f.fs.closeLater(c, r.Handle)
		return nil, syscall.ESTALE
	}
	return r, nil
}

var _ fusefs.HandleWriter = (*handle)(nil)

// Writes that continue one another are gathered into calls of up to
// writeChunk bytes: a call goes out when it is full, when the next write
// does not continue it, when anything waits for the writes (wait, drain),
// or writeDelay after its first write, whichever comes first. At most
// writesInFlight calls of a handle are on their way at once.
const (
	writesInFlight = 4
	writeChunk     = 512 << 10
	writeDelay     = 20 * time.Millisecond
)

// writeBufs hold the data of writes gathered or in flight: bazil reuses
// the request's memory once Write returns.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

// Write sends the data behind the caller's back when it continues the
// handle's last write (or nothing is in flight), so that a sequential
// write keeps several calls on the stream instead of waiting a round trip
// for each 128 KiB the kernel sends. Writes in flight never overlap, so
// the order the satellite runs them in does not matter. An asynchronous
// write's error is returned by the handle's next write, flush (close) or
// fsync, as NFS does. Everything that reads the file back or its
// attributes sends what is gathered and waits for the writes in flight
// first (wait, drain).
func (h *handle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	h.wrote.Store(true)
	defer h.f.dropCopies()
	if req.FileFlags&fuse.OpenAppend == 0 && len(req.Data) <= writeChunk {
		sent, err := h.writeBehind(req)
		if err != nil {
			return errno(err)
		}
		if sent {
			resp.Size = len(req.Data)
			return nil
		}
	}
	if err := h.drain(); err != nil {
		return errno(err)
	}
	var r rpc.WriteReply
	defer h.f.wroteNow()
	// A writable handle is never opened from a copy.
	rem, err := h.remote()
	if err != nil {
		return errno(err)
	}
	if err := rem.c.Call(ctx, rpc.OpWrite, &rpc.WriteArgs{Handle: rem.id, Off: req.Offset, Data: req.Data}, &r); err != nil {
		return errno(err)
	}
	resp.Size = r.N
	return nil
}

// writeBehind gathers req into the call being made up, or starts one, if
// it may; it returns the error of an earlier asynchronous write instead,
// if any.
func (h *handle) writeBehind(req *fuse.WriteRequest) (bool, error) {
	if l, ok := h.caller().(lost); ok {
		if err := l.Err(); err != nil {
			return false, err
		}
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.wdone == nil {
		h.wdone = sync.NewCond(&h.wmu)
	}
	if err := h.werr; err != nil {
		h.werr = nil
		return false, err
	}
	end := req.Offset + int64(len(req.Data))
	if b := h.wbuf; b != nil && req.Offset == h.wbufOff+int64(len(*b)) && len(*b)+len(req.Data) <= writeChunk {
		*b = append(*b, req.Data...)
		h.next = end
		if len(*b) == writeChunk {
			h.sendLocked()
		}
		return true, nil
	}
	if h.wbuf != nil {
		// What is gathered goes first. With nothing gathered there is
		// nothing to send, not even a create behind (see create.go):
		// it waits for the write being gathered now, to carry it.
		h.sendLocked()
	}
	if h.inflight > 0 && req.Offset != h.next {
		return false, nil
	}
	b := writeBufs.Get().(*[]byte)
	*b = append((*b)[:0], req.Data...)
	h.wbuf, h.wbufOff, h.next = b, req.Offset, end
	if p := h.pend; p != nil && !p.sent && req.Offset == 0 {
		// The file's first write goes with its create at once,
		// instead of waiting for more: the close that most often
		// follows then finds the call under way. Writes that do
		// follow are gathered into a call of their own.
		h.sendLocked()
		return true, nil
	}
	h.wgen++
	gen := h.wgen
	time.AfterFunc(writeDelay, func() {
		h.wmu.Lock()
		if h.wgen == gen {
			h.sendLocked()
		}
		h.wmu.Unlock()
	})
	return true, nil
}

// sendLocked sends what is gathered, if anything, once fewer than
// writesInFlight calls are on their way. It counts as in flight from the
// start, so that nothing waiting for the writes misses it.
func (h *handle) sendLocked() {
	b, off := h.wbuf, h.wbufOff
	create := h.pend != nil && !h.pend.sent
	if b == nil && !create {
		return
	}
	h.wbuf = nil
	if create {
		h.pend.sent = true
	}
	h.inflight++
	for h.sending >= writesInFlight {
		h.wdone.Wait()
	}
	h.sending++
	go func() {
		var err error
		switch {
		case create && (b == nil || off == 0):
			// A create behind takes the first write with it.
			var data []byte
			if b != nil {
				data = *b
			}
			err = h.create(data)
		case create:
			if err = h.create(nil); err == nil {
				err = h.writeOut(*b, off)
			}
		default:
			err = h.writeOut(*b, off)
		}
		if b != nil {
			writeBufs.Put(b)
		}
		h.f.wroteNow()
		h.wmu.Lock()
		if err != nil && h.werr == nil {
			h.werr = err
		}
		h.sending--
		h.inflight--
		h.wmu.Unlock()
		h.wdone.Broadcast()
	}()
}

// caller returns the Caller the writable handle's file is open through, or
// is being created through (see create.go).
func (h *handle) caller() Caller {
	if h.pend != nil {
		return h.pend.c
	}
	return h.rem.Load().c
}

// writeOut writes b at off, once a create behind the write waits for is
// made.
func (h *handle) writeOut(b []byte, off int64) error {
	if p := h.pend; p != nil {
		<-p.done
		if p.err != nil {
			return p.err
		}
	}
	var r rpc.WriteReply
	rem := h.rem.Load()
	err := rem.c.Call(context.Background(), rpc.OpWrite, &rpc.WriteArgs{Handle: rem.id, Off: off, Data: b}, &r)
	if err == nil && r.N < len(b) {
		err = syscall.EIO
	}
	return err
}

// drain waits for the handle's writes and returns the first error one of
// them met, once.
func (h *handle) drain() error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.waitLocked()
	err := h.werr
	h.werr = nil
	return err
}

// wait waits for the handle's writes, leaving their error to be reported.
func (h *handle) wait() {
	h.wmu.Lock()
	h.waitLocked()
	h.wmu.Unlock()
}

func (h *handle) waitLocked() {
	h.sendLocked()
	for h.inflight > 0 {
		h.wdone.Wait()
	}
}

// busy tells whether the handle has writes gathered or in flight. A
// create behind not yet sent does not count: the attributes it was
// answered with are good until the file is written.
func (h *handle) busy() bool {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	return h.inflight > 0 || h.wbuf != nil
}

var _ fusefs.HandleFlusher = (*handle)(nil)

// Flush reports, at close(2), the error of a write sent behind the
// caller's back.
func (h *handle) Flush(ctx context.Context, req *fuse.FlushRequest) error {
	return errno(h.drain())
}

var _ fusefs.HandleReleaser = (*handle)(nil)

func (h *handle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	h.drain()
	h.mu.Lock()
	h.data = nil
	h.dropChunksLocked()
	aux := h.aux
	h.aux, h.auxClosed = nil, true
	h.mu.Unlock()
	f := h.f
	for c, id := range aux {
		if id != 0 {
			f.fs.closeLater(c, id)
		}
	}
	f.fs.mu.Lock()
	for i, o := range f.handles {
		if o == h {
			f.handles = append(f.handles[:i], f.handles[i+1:]...)
			break
		}
	}
	if h.wrote.Load() {
		// Our own writes changed the mtime; the next open cannot tell
		// them from the target's, so it starts from a clean cache.
		f.cached = false
	}
	f.fs.mu.Unlock()
	h.omu.Lock()
	h.released = true
	rem := h.rem.Load()
	h.omu.Unlock()
	if rem != nil {
		// The kernel does not wait for release, and an interrupt must
		// not leak the remote descriptor: it is closed with the next
		// batch.
		f.fs.closeLater(rem.c, rem.id)
	}
	return nil
}
