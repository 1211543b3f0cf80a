package fuse

import (
	"context"
	"os"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// file is any node that is not a directory or a symlink: regular files,
// and fifos and devices, which the kernel serves itself once looked up.
type file struct {
	node
	// cached is the size and mtime the kernel's page cache holds data
	// for; it is kept across an open only if the file still has them.
	// Guarded by fs.mu.
	cached      bool
	cachedSize  int64
	cachedMtime int64
}

var _ fusefs.NodeOpener = (*file)(nil)

func (f *file) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	p, err := f.path()
	if err != nil {
		return nil, err
	}
	if req.Flags.IsReadOnly() && req.Flags&fuse.OpenTruncate == 0 {
		if h := f.openCopy(ctx, req.Flags, resp); h != nil {
			return h, nil
		}
	}
	args := rpc.OpenArgs{Path: p, Flags: int(req.Flags)}
	if req.Flags.IsReadOnly() {
		args.Inline = rpc.MaxInline
	}
	// The open reads the file's attributes, and a small file whole: the
	// writes other descriptors still have on their way must land first.
	f.wait()
	c := f.fs.pin()
	r, err := open(ctx, c, &args)
	if err != nil {
		return nil, errno(err)
	}
	h := f.newHandle(c, r.Handle, req.Flags, &r.Attr, resp)
	directIfEmpty(req.Flags, &r.Attr, resp)
	if r.Whole {
		h.data, h.dataAt = r.Data, time.Now()
	}
	return h, nil
}

// open opens a file in the target through c, pinned.
func open(ctx context.Context, c Caller, args *rpc.OpenArgs) (*rpc.OpenReply, error) {
	return callOwning(ctx, c, rpc.OpOpen, args, func(r *rpc.OpenReply) uint64 { return r.Handle })
}

// directIfEmpty has the kernel bypass its cache for a read-only open of
// a regular file that says it is empty: files of /proc and the like say
// so and are not, and the kernel reads no further than the size it knows
// unless told to bypass its cache. An empty file reads the same.
func directIfEmpty(flags fuse.OpenFlags, a *rpc.Attr, resp *fuse.OpenResponse) {
	if flags.IsReadOnly() && a.Size == 0 && a.Mode&syscall.S_IFMT == syscall.S_IFREG {
		resp.Flags |= fuse.OpenDirectIO
	}
}

// newHandle registers a handle just opened through c with attributes a,
// and tells the kernel whether its cached pages are still good.
func (f *file) newHandle(c Caller, id uint64, flags fuse.OpenFlags, a *rpc.Attr, resp *fuse.OpenResponse) *handle {
	h := &handle{f: f, writable: !flags.IsReadOnly()}
	h.rem.Store(&remote{c: c, id: id})
	f.fs.mu.Lock()
	f.registerLocked(h, a, time.Now(), resp)
	f.fs.mu.Unlock()
	if flags&fuse.OpenTruncate != 0 {
		// The open emptied the file.
		f.dropCopies()
	}
	return h
}

// registerLocked registers h, opened with attributes a read at time at,
// and tells the kernel whether its cached pages are still good.
func (f *file) registerLocked(h *handle, a *rpc.Attr, at time.Time, resp *fuse.OpenResponse) {
	f.setAttrLocked(a, at)
	if f.cached && f.cachedSize == a.Size && f.cachedMtime == a.Mtime {
		resp.Flags |= fuse.OpenKeepCache
	}
	f.cached, f.cachedSize, f.cachedMtime = true, a.Size, a.Mtime
	f.handles = append(f.handles, h)
}

var _ fusefs.NodeForgetter = (*file)(nil)

func (f *file) Forget() { f.fs.forget(f) }

var _ fusefs.NodeFsyncer = (*file)(nil)

// unixMode converts a mode from bazil to st_mode bits.
func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		u |= 0o1000
	}
	switch {
	case m&os.ModeDir != 0:
		u |= 0o040000
	case m&os.ModeSymlink != 0:
		u |= 0o120000
	case m&os.ModeNamedPipe != 0:
		u |= 0o010000
	case m&os.ModeSocket != 0:
		u |= 0o140000
	case m&os.ModeCharDevice != 0:
		u |= 0o020000
	case m&os.ModeDevice != 0:
		u |= 0o060000
	case m&os.ModeType == 0:
		u |= 0o100000
	}
	return u
}

// fileMode converts st_mode bits to the os.FileMode bazil takes.
func fileMode(u uint32) os.FileMode {
	m := os.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= os.ModeSticky
	}
	switch u & 0o170000 {
	case 0o040000:
		m |= os.ModeDir
	case 0o120000:
		m |= os.ModeSymlink
	case 0o010000:
		m |= os.ModeNamedPipe
	case 0o140000:
		m |= os.ModeSocket
	case 0o020000:
		m |= os.ModeDevice | os.ModeCharDevice
	case 0o060000:
		m |= os.ModeDevice
	}
	return m
}
