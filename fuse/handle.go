package fuse

import (
	"context"
	"sync/atomic"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// handle is a file open in the target. The kernel sends one release per
// open, after the last of the caller's duplicated descriptors is closed;
// flushes (one per close(2)) leave the remote file open, so a descriptor
// that survives a dup'd copy's close keeps working. bazil answers flush
// itself: writes are sent through at once, so there is nothing to flush.
type handle struct {
	f        *file
	id       uint64
	writable bool
	wrote    atomic.Bool
}

var _ fusefs.HandleReader = (*handle)(nil)

func (h *handle) Read(ctx context.Context, req *fuse.ReadRequest, resp *fuse.ReadResponse) error {
	r := rpc.ReadReply{Data: resp.Data[:0]}
	if err := h.f.fs.c.Call(ctx, rpc.OpRead, &rpc.ReadArgs{Handle: h.id, Off: req.Offset, Size: req.Size}, &r); err != nil {
		return errno(err)
	}
	resp.Data = r.Data
	return nil
}

var _ fusefs.HandleWriter = (*handle)(nil)

func (h *handle) Write(ctx context.Context, req *fuse.WriteRequest, resp *fuse.WriteResponse) error {
	var r rpc.WriteReply
	h.wrote.Store(true)
	if err := h.f.fs.c.Call(ctx, rpc.OpWrite, &rpc.WriteArgs{Handle: h.id, Off: req.Offset, Data: req.Data}, &r); err != nil {
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
	return errno(f.fs.c.Call(context.WithoutCancel(ctx), rpc.OpClose, &rpc.HandleArgs{Handle: h.id}, nil))
}
