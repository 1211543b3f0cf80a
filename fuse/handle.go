package fuse

import (
	"context"
	"sync"
	"sync/atomic"
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
type handle struct {
	f        *file
	c        Caller // the satellite that opened it (see Pinner)
	id       uint64
	writable bool
	wrote    atomic.Bool

	mu     sync.Mutex
	data   []byte // the whole file, as of dataAt
	dataAt time.Time
}

var _ fusefs.HandleReader = (*handle)(nil)

func (h *handle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	if h.inline(req, resp) {
		return nil
	}
	r := rpc.ReadReply{Data: resp.Data[:0]}
	if err := h.c.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Handle: h.id, Off: req.Offset, Size: req.Size}, &r); err != nil {
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
	resp.Data = append(resp.Data[:0], h.data[lo:hi]...)
	if hi == n {
		h.data = nil
	}
	return true
}

var _ fusefs.HandleWriter = (*handle)(nil)

func (h *handle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	var r rpc.WriteReply
	h.wrote.Store(true)
	defer h.f.dropCopies()
	if err := h.c.Call(ctx, rpc.OpWrite, &rpc.WriteArgs{Handle: h.id, Off: req.Offset, Data: req.Data}, &r); err != nil {
		return errno(err)
	}
	resp.Size = r.N
	return nil
}

var _ fusefs.HandleReleaser = (*handle)(nil)

func (h *handle) Release(ctx context.Context, req *fuse.ReleaseRequest) error {
	f := h.f
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
	// The kernel does not wait for release; an interrupt must not leak
	// the remote descriptor.
	return errno(h.c.Call(context.WithoutCancel(ctx), rpc.OpClose, &rpc.HandleArgs{Handle: h.id}, nil))
}
