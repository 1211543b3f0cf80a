package fuse

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// node is what files, directories and symlinks share. parent, name, attr,
// attrAt and handles are guarded by fs.mu.
type node struct {
	fs   *FS
	ino  uint64
	root bool
	// links are the names the node is known by; none once it is unlinked
	// or replaced (then only its handles reach it).
	links  []link
	attr   rpc.Attr
	attrAt time.Time // when attr was read from the target
	// watch is the sample of the watch that vouches for attr, 0 if
	// none; epoch is the FS's when it was taken (see watch.go).
	watch uint64
	epoch uint64
	// wroteAt is when the last write through the mount ended: attributes
	// read before it may show an old size.
	wroteAt time.Time
	// changedAt is when the last other change through the mount to the
	// file's data or attributes ended: copies fetched before it are not
	// used (see prefetch.go).
	changedAt time.Time
	// handles are the node's open handles, newest last; attributes of an
	// unlinked file are read through one.
	handles []*handle

	// self is the Node this is the base of, as the tables hold it.
	self fusefs.Node
	// forgotten says bazil called Forget, which it does when the kernel
	// has forgotten the node. A lookup may have handed the node out again
	// meanwhile: bazil then counts it into a new incarnation, and the
	// node receives calls again. So Forget leaves the node its names, and
	// a forgotten node that receives a call is put back (reviveLocked).
	forgotten bool
}

func (n *node) setAttrLocked(a *rpc.Attr, at time.Time) {
	n.attr = *a
	n.attrAt = at
	n.watchLocked(a.Watch)
}

func (n *node) setAttr(a *rpc.Attr, at time.Time) {
	n.fs.mu.Lock()
	n.setAttrLocked(a, at)
	n.fs.mu.Unlock()
}

// errGone is the answer for a node that no longer has a name.
var errGone = syscall.ENOENT

// path is the node's path in the target, relative to the served root.
func (n *node) path() (string, error) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	if h := n.pendingLocked(); h != nil {
		// Made behind, and not yet in the target.
		n.fs.mu.Unlock()
		h.remote()
		n.fs.mu.Lock()
	}
	if p := n.pathLocked(); p != "" {
		return p, nil
	}
	return "", errGone
}

// link is one name of a node.
type link struct {
	parent *dir
	name   string
}

// pathLocked derives the path from the names up to the root; a node with
// no name left yields "" (gone).
func (n *node) pathLocked() string {
	if n.root {
		return "/"
	}
	var parts []string
	p := n
	for !p.root {
		if p.forgotten {
			p.reviveLocked()
		}
		if len(p.links) == 0 {
			return ""
		}
		parts = append(parts, p.links[0].name)
		p = &p.links[0].parent.node
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String()
}

// reviveLocked puts a node that receives calls after Forget back in the
// tables, under those of its names that no other file took meanwhile.
func (n *node) reviveLocked() {
	n.forgotten = false
	var keep []link
	for _, l := range n.links {
		switch old, ok := l.parent.children[l.name]; {
		case !ok:
			if l.parent.children == nil {
				l.parent.children = make(map[string]fusefs.Node)
			}
			l.parent.children[l.name] = n.self
			keep = append(keep, l)
		case old == n.self:
			keep = append(keep, l)
		}
	}
	n.links = keep
	k := devIno{n.attr.Dev, n.attr.Ino}
	if _, ok := n.fs.nodes[k]; !ok {
		n.fs.nodes[k] = n.self
	}
}

// child is the path of name inside directory n.
func (n *node) child(name string) (string, error) {
	p, err := n.path()
	if p == "/" {
		return "/" + name, nil
	}
	return p + "/" + name, err
}

// Attr answers from the attributes the last lookup, listing or change
// brought back: bazil asks for them right after each of those.
func (n *node) Attr(ctx context.Context, a *fuse.Attr) error {
	n.fs.mu.Lock()
	attr, at, stale, ttl := n.attr, n.attrAt, n.attrAt.Before(n.wroteAt), n.ttlLocked()
	if n.pendingLocked() != nil {
		// Told by a create behind, until it is made (see create.go).
		ttl = n.fs.opts.AttrTimeout
	}
	n.fs.mu.Unlock()
	if stale || n.writing() {
		// Writes through the mount ended after these attributes were
		// read, or are in flight: they may show an old size, which the
		// kernel would take over its own.
		r, rat, rttl, err := n.stat(ctx)
		if err != nil {
			return errno(err)
		}
		attr, at, ttl = *r, rat, rttl
	}
	n.fill(a, &attr, at, ttl)
	return nil
}

// fresh returns the node's attributes if they are younger than their
// time to live (ttlLocked) and no write through the mount ended after, or
// is in flight.
func (n *node) fresh() (rpc.Attr, time.Time, time.Duration, bool) {
	if n.writing() {
		return rpc.Attr{}, time.Time{}, 0, false
	}
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	ttl := n.ttlLocked()
	ok := n.pendingLocked() == nil && !n.attrAt.IsZero() && time.Since(n.attrAt) < ttl && !n.attrAt.Before(n.wroteAt)
	return n.attr, n.attrAt, ttl, ok
}

// staleLocked makes the next Getattr read the attributes again, after a
// change through the mount that changed them (a name removed or moved:
// links and ctime; an entry made or removed in a directory: its mtime).
func (n *node) staleLocked() {
	n.attrAt = time.Time{}
	n.changedLocked()
}

// changedLocked records that a change through the mount to the node's
// data or attributes just ended, and drops the copy fetched of it, if any.
func (n *node) changedLocked() {
	n.changedAt = time.Now()
	n.fs.copies.drop(devIno{n.attr.Dev, n.attr.Ino})
}

func (n *node) changed() {
	n.fs.mu.Lock()
	n.changedLocked()
	n.fs.mu.Unlock()
}

// wroteNow records that a write through the mount just ended.
func (n *node) wroteNow() {
	n.fs.mu.Lock()
	n.wroteAt = time.Now()
	n.fs.mu.Unlock()
}

// writing tells whether any handle of the node has writes in flight.
func (n *node) writing() bool {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	for _, h := range n.handles {
		if h.busy() {
			return true
		}
	}
	return false
}

// wait waits for the writes in flight on all of the node's handles (see
// handle.Write).
func (n *node) wait() {
	for _, h := range n.openHandles() {
		h.wait()
	}
}

// drain is wait that also returns, once, the first error a write met.
func (n *node) drain() error {
	var first error
	for _, h := range n.openHandles() {
		if err := h.drain(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (n *node) openHandles() []*handle {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	return append([]*handle(nil), n.handles...)
}

// fill converts attributes read at time at and good for ttl, giving the
// kernel only the validity they have left.
func (n *node) fill(a *fuse.Attr, r *rpc.Attr, at time.Time, ttl time.Duration) {
	valid := ttl - time.Since(at)
	if valid < 0 {
		valid = 0
	}
	*a = fuse.Attr{
		Valid:     valid,
		Inode:     n.ino,
		Size:      uint64(r.Size),
		Blocks:    uint64(r.Blocks),
		Atime:     time.Unix(0, r.Atime),
		Mtime:     time.Unix(0, r.Mtime),
		Ctime:     time.Unix(0, r.Ctime),
		Mode:      fileMode(r.Mode),
		Nlink:     r.Nlink,
		Uid:       r.Uid,
		Gid:       r.Gid,
		Rdev:      uint32(r.Rdev),
		BlockSize: uint32(r.Blksize),
	}
}

// Getattr is the kernel asking because its copy expired: always fresh.
// Getattr answers from the attributes last read while they are younger
// than AttrTimeout, as the kernel's cache would have: it asks again after
// each read anyway, to refresh the atime (tar's fstat after reading a
// file would cost a call per file). Changes through the mount make them
// stale (see staleLocked).
func (n *node) Getattr(ctx context.Context, req *fuse.GetattrRequest, resp *fuse.GetattrResponse) error {
	if a, at, ttl, ok := n.fresh(); ok {
		n.fill(&resp.Attr, &a, at, ttl)
		return nil
	}
	a, at, ttl, err := n.stat(ctx)
	if err != nil && n.root && errors.Is(err, rpc.ErrShutdown) {
		// While the satellite is away the mountpoint stays a directory
		// that stat, df, mountpoint and umount can work with, as it was
		// last seen; what is in it fails with EIO.
		n.fs.mu.Lock()
		last := n.attr
		n.fs.mu.Unlock()
		if last.Mode != 0 {
			n.fill(&resp.Attr, &last, time.Time{}, 0)
			return nil
		}
	}
	if err != nil {
		return errno(err)
	}
	n.fill(&resp.Attr, a, at, ttl)
	return nil
}

// stat reads the node's attributes from the target: by path, or through an
// open handle when the path is gone (a file unlinked while open).
func (n *node) stat(ctx context.Context) (*rpc.Attr, time.Time, time.Duration, error) {
	n.wait()
	at := time.Now()
	var a rpc.Attr
	p, err := n.path()
	var last *rpc.Attr
	if err == nil {
		err = n.fs.c.Call(ctx, rpc.OpLstat, &rpc.PathArgs{Path: p}, &a)
		if err == nil {
			last = n.replaced(&a)
		}
	}
	if last != nil || err != nil && rpc.Errno(err) == syscall.ENOENT {
		if h := n.anyHandle(); h != nil {
			last = nil
			r := h.rem.Load()
			err = r.c.Call(ctx, rpc.OpFstat, &rpc.HandleArgs{Handle: r.id}, &a)
		} else if last == nil && n.copiedOnly() {
			// Open from copies only (see prefetch.go): the file is as
			// it was when they were fetched.
			n.fs.mu.Lock()
			a, err = n.attr, nil
			n.fs.mu.Unlock()
			last = &a
		}
	}
	if last != nil {
		return last, time.Time{}, 0, nil
	}
	if err != nil {
		return nil, at, 0, err
	}
	n.fs.mu.Lock()
	n.setAttrLocked(&a, at)
	ttl := n.ttlLocked()
	n.fs.mu.Unlock()
	return &a, at, ttl, nil
}

// replaced tells whether attributes a, read at the node's path, are those
// of another file: the target replaced this one (rm f; mkdir f, or a rename
// over it). A file of the same type that took the inode number of the one
// removed cannot be told apart. It then returns the node's last attributes, to be answered with
// no validity, and has the kernel look the name up again, which finds the
// new file. The new file's attributes would mix two files in one inode, and
// where the type changed the kernel would fail with EIO.
func (n *node) replaced(a *rpc.Attr) *rpc.Attr {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	same := a.Dev == n.attr.Dev && a.Ino == n.attr.Ino && a.Mode&syscall.S_IFMT == n.attr.Mode&syscall.S_IFMT
	if same || n.root || n.attr.Ino == 0 || len(n.links) == 0 {
		return nil
	}
	n.fs.queueLocked(inval{node: n.links[0].parent, name: n.links[0].name})
	last := n.attr
	return &last
}

// anyHandle returns an open handle that has the file open in the target:
// not one opened from a copy that has not needed the file (see
// handle.reopen).
func (n *node) anyHandle() *handle {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	for i := len(n.handles) - 1; i >= 0; i-- {
		if n.handles[i].rem.Load() != nil {
			return n.handles[i]
		}
	}
	return nil
}

// copiedOnly tells whether the node is open, through handles opened from
// copies only.
func (n *node) copiedOnly() bool {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	for _, h := range n.handles {
		if h.rem.Load() != nil {
			return false
		}
	}
	return len(n.handles) > 0
}

// dropCopies forgets the contents that came whole with read-only opens of
// the file or were fetched ahead of them, and the chunks read ahead, after
// a change through the mount: reads must see it, and the kernel's page
// cache holds only the pages the change covered.
func (n *node) dropCopies() {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	n.changedLocked()
	for _, h := range n.handles {
		h.mu.Lock()
		h.data = nil
		h.dropChunksLocked()
		h.mu.Unlock()
	}
}

// writableHandle returns an open handle that can change the file's size.
func (n *node) writableHandle() *handle {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	return n.writableHandleLocked()
}

func (n *node) writableHandleLocked() *handle {
	for i := len(n.handles) - 1; i >= 0; i-- {
		// A writable handle is never opened from a copy.
		if n.handles[i].writable {
			return n.handles[i]
		}
	}
	return nil
}

func (n *node) Setattr(ctx context.Context, req *fuse.SetattrRequest, resp *fuse.SetattrResponse) error {
	n.wait()
	v := req.Valid
	p, err := n.path()
	args := rpc.SetattrArgs{Path: p}
	c := n.fs.c
	if v.Handle() || err != nil {
		// fchmod, ftruncate and the like, or a file with no name left:
		// change it through an open handle, which reaches it whatever
		// its name now is and where its mode no longer allows opening.
		h := n.anyHandle()
		if v.Size() {
			h = n.writableHandle()
		}
		if h != nil {
			r := h.rem.Load()
			args.Handle, c = r.id, r.c
		} else if err != nil {
			return err
		}
	}
	if v.Mode() {
		args.Valid |= rpc.SetMode
		args.Mode = unixMode(req.Mode) & 0o7777
	}
	if v.Uid() {
		args.Valid |= rpc.SetUid
		args.Uid = req.Uid
	}
	if v.Gid() {
		args.Valid |= rpc.SetGid
		args.Gid = req.Gid
	}
	if v.Size() {
		args.Valid |= rpc.SetSize
		args.Size = int64(req.Size)
	}
	if v.AtimeNow() {
		args.Valid |= rpc.SetAtimeNow
	} else if v.Atime() {
		args.Valid |= rpc.SetAtime
		args.Atime = req.Atime.UnixNano()
	}
	if v.MtimeNow() {
		args.Valid |= rpc.SetMtimeNow
	} else if v.Mtime() {
		args.Valid |= rpc.SetMtime
		args.Mtime = req.Mtime.UnixNano()
	}
	if v.Size() {
		defer n.dropCopies()
	} else {
		defer n.changed()
	}
	at := time.Now()
	var a rpc.Attr
	if err := c.Call(ctx, rpc.OpSetattr, &args, &a); err != nil {
		return errno(err)
	}
	n.setAttr(&a, at)
	return nil
}

func (n *node) Fsync(ctx context.Context, req *fuse.FsyncRequest) error {
	if err := n.drain(); err != nil {
		return errno(err)
	}
	var args rpc.FsyncArgs
	c := n.fs.c
	if h := n.anyHandle(); h != nil {
		// fsync through any descriptor of a file flushes the whole file.
		r := h.rem.Load()
		args.Handle, c = r.id, r.c
	} else {
		p, err := n.path()
		if err != nil {
			return err
		}
		args.Path = p
	}
	return errno(c.Call(ctx, rpc.OpFsync, &args, nil))
}

// askedOfEveryFile tells whether name is one of the xattrs that ls -l asks
// for each file: POSIX ACLs, which the kernel does not apply through this
// mount (bazil has no FUSE_POSIX_ACL), and the SELinux label, which the
// host's kernel answers itself where SELinux runs. For a file without
// xattrs they are answered "not supported", which GNU ls and libacl
// remember for the whole filesystem, rather than "no such attribute",
// after which they ask again for the next file: two requests per file
// less. A file with xattrs gets the real answer.
func askedOfEveryFile(name string) bool {
	switch name {
	case "system.posix_acl_access", "system.posix_acl_default", "security.selinux":
		return true
	}
	return false
}

// noXattr tells whether the node's attributes, still fresh, say it has no
// extended attributes: then getxattr and listxattr cost no call.
func (n *node) noXattr() bool {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	return n.attr.Xattr == rpc.XattrNone && time.Since(n.attrAt) < n.ttlLocked()
}

// stillNoXattr reads the attributes again when they last said the file
// has no xattrs but are too old to say so now: the kernel asks for
// security.capability before every write(2), and a stat keeps the answer
// local for the next AttrTimeout, where a getxattr would not.
func (n *node) stillNoXattr(ctx context.Context) bool {
	n.fs.mu.Lock()
	was := n.attr.Xattr == rpc.XattrNone
	n.fs.mu.Unlock()
	if !was {
		return false
	}
	a, _, _, err := n.stat(ctx)
	return err == nil && a.Xattr == rpc.XattrNone
}

// xattrChanged forgets what the attributes said about extended attributes
// after a change through the mount, and the attributes themselves: an ACL
// set as an xattr changes the mode, any xattr the ctime.
func (n *node) xattrChanged() {
	n.fs.mu.Lock()
	n.attr.Xattr = rpc.XattrUnknown
	n.staleLocked()
	n.fs.mu.Unlock()
}

func (n *node) Getxattr(ctx context.Context, req *fuse.GetxattrRequest, resp *fuse.GetxattrResponse) error {
	if n.noXattr() || n.stillNoXattr(ctx) {
		if askedOfEveryFile(req.Name) {
			return fuse.Errno(syscall.EOPNOTSUPP)
		}
		return fuse.ErrNoXattr
	}
	p, err := n.path()
	if err != nil {
		return err
	}
	var r rpc.XattrReply
	if err := n.fs.c.Call(ctx, rpc.OpGetxattr, &rpc.XattrArgs{Path: p, Name: req.Name}, &r); err != nil {
		return errno(err)
	}
	resp.Xattr = r.Value
	return nil
}

func (n *node) Listxattr(ctx context.Context, req *fuse.ListxattrRequest, resp *fuse.ListxattrResponse) error {
	if n.noXattr() {
		return nil
	}
	p, err := n.path()
	if err != nil {
		return err
	}
	var r rpc.XattrReply
	if err := n.fs.c.Call(ctx, rpc.OpListxattr, &rpc.XattrArgs{Path: p}, &r); err != nil {
		return errno(err)
	}
	resp.Xattr = r.Value
	return nil
}

func (n *node) Setxattr(ctx context.Context, req *fuse.SetxattrRequest) error {
	p, err := n.path()
	if err != nil {
		return err
	}
	args := rpc.XattrArgs{Path: p, Name: req.Name, Value: req.Xattr, Flags: int(req.Flags)}
	err = n.fs.c.Call(ctx, rpc.OpSetxattr, &args, nil)
	n.xattrChanged()
	return errno(err)
}

func (n *node) Removexattr(ctx context.Context, req *fuse.RemovexattrRequest) error {
	p, err := n.path()
	if err != nil {
		return err
	}
	err = n.fs.c.Call(ctx, rpc.OpRemovexattr, &rpc.XattrArgs{Path: p, Name: req.Name}, nil)
	n.xattrChanged()
	return errno(err)
}

var _ fusefs.NodePoller = (*node)(nil)

// Poll answers ENOSYS, which here means what it says to the kernel: never
// ask again. Regular files and directories are always ready, which the
// kernel then reports itself; fifos and sockets made in the mount are the
// host kernel's own. Go programs, and others that use epoll, would
// otherwise cost a request per file they open.
func (n *node) Poll(ctx context.Context, req *fuse.PollRequest, resp *fuse.PollResponse) error {
	return syscall.ENOSYS
}
