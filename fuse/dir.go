package fuse

import (
	"container/list"
	"context"
	"os"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// dir is a directory. It is its own handle: bazil lists it through
// ReadDirAll.
type dir struct {
	node
	// listing holds the attributes the last ReadDirAll brought back, so
	// that the lookups which follow it (ls -l) cost no call. Guarded by
	// fs.mu. A listing made under a watch (listWatch, see watch.go) is
	// kept up to date by the events: a name an event mentions becomes
	// unknown, and a name neither listed nor unknown does not exist.
	listing   map[string]rpc.Attr
	names     []string // the listing's names as the satellite gave them
	listingAt time.Time
	listWatch uint64
	listEpoch uint64
	// changes counts the changes made through the mount: a listing read
	// across one is not kept true by the watch (its event may come
	// after the listing).
	changes uint64
	unknown map[string]bool
	// last is what the last create in the directory tells of the next
	// (see create.go). Guarded by fs.mu.
	last lastCreate
	// children are the nodes the kernel knows by a name in this
	// directory. Guarded by fs.mu.
	children map[string]fusefs.Node
	// order holds the small files of the last listing in its order,
	// opened the last file opened read-only, and opens and fetches count
	// the opens and fetches since the listing (see prefetch.go). Guarded
	// by fs.mu.
	order     []sibling
	orderElem *list.Element // in fs.orders
	opened    string
	opens     int
	fetches   int
}

var _ fusefs.NodeRequestLookuper = (*dir)(nil)

func (d *dir) Lookup(ctx context.Context, req *fuse.LookupRequest, resp *fuse.LookupResponse) (fusefs.Node, error) {
	d.fs.settle(d)
	a, at, found, watched := d.listed(req.Name)
	if watched && !found && len(req.Name) <= maxName {
		return nil, syscall.ENOENT
	}
	if !found {
		at = time.Now()
		p, err := d.child(req.Name)
		if err != nil {
			return nil, err
		}
		if err := d.fs.c.Call(ctx, rpc.OpLstat, &rpc.PathArgs{Path: p}, &a); err != nil {
			return nil, errno(err)
		}
	}
	n := d.fs.nodeFor(d, req.Name, &a, at)
	d.fs.mu.Lock()
	if watched || base(n).trustedLocked() {
		resp.EntryValid = d.fs.opts.WatchTimeout
	} else {
		resp.EntryValid = max(d.fs.opts.EntryTimeout-time.Since(at), 0)
	}
	d.fs.mu.Unlock()
	return n, nil
}

// maxName is the longest name the listing can speak for: the target's
// filesystem has its own answer to a longer one (ENAMETOOLONG).
const maxName = 255

// listed returns name's attributes from a listing young enough to answer;
// watched says the listing is kept up to date by a watch, so that a name
// it does not have does not exist.
func (d *dir) listed(name string) (a rpc.Attr, at time.Time, found, watched bool) {
	d.fs.mu.Lock()
	defer d.fs.mu.Unlock()
	if d.listTrustedLocked() {
		if d.unknown[name] {
			return rpc.Attr{}, time.Time{}, false, false
		}
		a, found = d.listing[name]
		return a, d.listingAt, found, true
	}
	if d.listing == nil || time.Since(d.listingAt) >= d.fs.opts.EntryTimeout {
		d.listing = nil
		return rpc.Attr{}, time.Time{}, false, false
	}
	a, found = d.listing[name]
	if found {
		// One lookup per listed name: the kernel asks again only
		// after its own copy expired, and then wants it fresh.
		delete(d.listing, name)
	}
	return a, d.listingAt, found, false
}

// listTrustedLocked tells whether the listing is kept up to date by a
// watch.
func (d *dir) listTrustedLocked() bool {
	return d.listing != nil && d.listWatch != 0 && d.listEpoch == d.fs.epoch &&
		time.Since(d.listingAt) < d.fs.opts.WatchTimeout
}

// setListingLocked installs a listing read at time at under watch sample
// (0: none), unless an event about the directory overtook it.
func (d *dir) setListingLocked(listing map[string]rpc.Attr, names []string, at time.Time, sample, changes uint64) {
	d.listing, d.names, d.listingAt, d.listWatch, d.listEpoch = listing, names, at, 0, d.fs.epoch
	clear(d.unknown)
	if sample != 0 && d.changes == changes && d.fs.lastEvent[devIno{d.attr.Dev, d.attr.Ino}] <= sample {
		d.listWatch = sample
	}
}

// unknownLocked forgets what the listing says of name: an event mentioned
// it, or it changed through the mount.
func (d *dir) unknownLocked(name string) {
	if d.listing == nil {
		return
	}
	delete(d.listing, name)
	if d.listWatch == 0 {
		return
	}
	if d.unknown == nil {
		d.unknown = make(map[string]bool)
	}
	d.unknown[name] = true
}

// changed follows a change through the mount to the names given: what the
// listing says of them is forgotten (a listing without a watch entirely),
// and the directory's own attributes (mtime, links) with it.
func (d *dir) changed(names ...string) {
	d.fs.mu.Lock()
	defer d.fs.mu.Unlock()
	d.entriesChangedLocked(names...)
}

// entriesChangedLocked is changed with fs.mu held.
func (d *dir) entriesChangedLocked(names ...string) {
	d.changes++
	if d.listWatch == 0 {
		d.listing = nil
	}
	for _, name := range names {
		d.unknownLocked(name)
	}
	d.staleLocked()
}

var _ fusefs.NodeOpener = (*dir)(nil)

// Open lets the kernel keep the listing in its cache while a watch keeps
// it true: every report of a change in the directory drops the kernel's
// copy, and the kernel drops it itself on changes made through the mount.
func (d *dir) Open(ctx context.Context, req *fuse.OpenRequest, resp *fuse.OpenResponse) (fusefs.Handle, error) {
	d.fs.mu.Lock()
	if d.listTrustedLocked() {
		resp.Flags |= fuse.OpenCacheDir | fuse.OpenKeepCache
	}
	d.fs.mu.Unlock()
	return d, nil
}

var _ fusefs.HandleReadDirAller = (*dir)(nil)

func (d *dir) ReadDirAll(ctx context.Context) ([]fuse.Dirent, error) {
	d.fs.settle(d)
	if ents, ok := d.watchedListing(); ok {
		return ents, nil
	}
	d.fs.mu.Lock()
	changes := d.changes
	d.fs.mu.Unlock()
	at := time.Now()
	p, err := d.path()
	if err != nil {
		return nil, err
	}
	args := &rpc.ReadDirArgs{Path: p}
	var names []string  // in the satellite's order
	var order []sibling // the small files, for prefetching
	listing := make(map[string]rpc.Attr)
	var sample uint64
	c := d.fs.pin() // a long listing continues through a handle
	for first := true; ; first = false {
		r, err := callOwning(ctx, c, rpc.OpReadDir, args, func(r *rpc.ReadDirReply) uint64 { return r.Handle })
		if err != nil {
			if args.Handle != 0 {
				c.Call(context.WithoutCancel(ctx), rpc.OpClose, &rpc.HandleArgs{Handle: args.Handle}, nil)
			}
			return nil, errno(err)
		}
		if first {
			sample = r.Watch
		}
		for i := range r.Entries {
			e := &r.Entries[i]
			listing[e.Name] = e.Attr
			names = append(names, e.Name)
			if smallFile(&e.Attr) {
				order = append(order, sibling{name: e.Name, key: devIno{e.Attr.Dev, e.Attr.Ino}, size: e.Attr.Size})
			}
		}
		if r.Handle == 0 {
			break
		}
		args = &rpc.ReadDirArgs{Handle: r.Handle}
	}
	d.fs.mu.Lock()
	defer d.fs.mu.Unlock()
	d.setListingLocked(listing, names, at, sample, changes)
	d.fs.setOrderLocked(d, order)
	return d.fs.direntsLocked(names, listing), nil
}

// watchedListing lists the directory from a listing a watch keeps true,
// if it has one and no name in it is unknown.
func (d *dir) watchedListing() ([]fuse.Dirent, bool) {
	d.fs.mu.Lock()
	defer d.fs.mu.Unlock()
	if !d.listTrustedLocked() || len(d.unknown) > 0 {
		return nil, false
	}
	return d.fs.direntsLocked(d.names, d.listing), true
}

// direntsLocked lists names, whose attributes listing holds, in that order.
func (f *FS) direntsLocked(names []string, listing map[string]rpc.Attr) []fuse.Dirent {
	ents := make([]fuse.Dirent, 0, len(names))
	for _, name := range names {
		a := listing[name]
		ents = append(ents, fuse.Dirent{Inode: f.inodeLocked(devIno{a.Dev, a.Ino}), Type: direntType(a.Mode), Name: name})
	}
	return ents
}

var _ fusefs.NodeCreater = (*dir)(nil)

func (d *dir) Create(ctx context.Context, req *fuse.CreateRequest, resp *fuse.CreateResponse) (fusefs.Node, fusefs.Handle, error) {
	if f, h, ok := d.createBehind(req, resp); ok {
		return f, h, nil
	}
	at := time.Now()
	p, err := d.child(req.Name)
	if err != nil {
		return nil, nil, err
	}
	args := rpc.OpenArgs{Path: p, Flags: int(req.Flags) | os.O_CREATE, Mode: unixMode(req.Mode), Owner: owner(&req.Header)}
	c := d.fs.pin()
	r, err := open(ctx, c, &args)
	var made *rpc.Attr
	if err == nil {
		made = &r.Attr
	}
	d.fs.mu.Lock()
	d.createdLocked(args.Owner, args.Mode, made)
	d.fs.mu.Unlock()
	if err != nil {
		return nil, nil, errno(err)
	}
	d.changed(req.Name)
	if r.Dir.Mode != 0 {
		// The reply says what the directory is like now: no call to
		// read it again.
		d.setAttr(&r.Dir, at)
	}
	n := d.fs.nodeFor(d, req.Name, &r.Attr, at)
	f, ok := n.(*file)
	if !ok {
		c.Call(context.WithoutCancel(ctx), rpc.OpClose, &rpc.HandleArgs{Handle: r.Handle}, nil)
		return nil, nil, syscall.EIO
	}
	resp.EntryValid = d.fs.opts.EntryTimeout
	return f, f.newHandle(c, r.Handle, req.Flags, &r.Attr, &resp.OpenResponse), nil
}

var _ fusefs.NodeMkdirer = (*dir)(nil)

func (d *dir) Mkdir(ctx context.Context, req *fuse.MkdirRequest) (fusefs.Node, error) {
	p, err := d.child(req.Name)
	if err != nil {
		return nil, err
	}
	return d.made(ctx, rpc.OpMkdir, req.Name, &rpc.MkdirArgs{Path: p, Mode: unixMode(req.Mode), Owner: owner(&req.Header)})
}

var _ fusefs.NodeMknoder = (*dir)(nil)

func (d *dir) Mknod(ctx context.Context, req *fuse.MknodRequest) (fusefs.Node, error) {
	p, err := d.child(req.Name)
	if err != nil {
		return nil, err
	}
	return d.made(ctx, rpc.OpMknod, req.Name, &rpc.MkdirArgs{Path: p, Mode: unixMode(req.Mode), Dev: uint64(req.Rdev), Owner: owner(&req.Header)})
}

var _ fusefs.NodeSymlinker = (*dir)(nil)

func (d *dir) Symlink(ctx context.Context, req *fuse.SymlinkRequest) (fusefs.Node, error) {
	p, err := d.child(req.NewName)
	if err != nil {
		return nil, err
	}
	return d.made(ctx, rpc.OpSymlink, req.NewName, &rpc.SymlinkArgs{Target: req.Target, Path: p, Owner: owner(&req.Header)})
}

var _ fusefs.NodeLinker = (*dir)(nil)

func (d *dir) Link(ctx context.Context, req *fuse.LinkRequest, old fusefs.Node) (fusefs.Node, error) {
	oldPath, err := base(old).path()
	if err != nil {
		return nil, err
	}
	p, err := d.child(req.NewName)
	if err != nil {
		return nil, err
	}
	n, err := d.made(ctx, rpc.OpLink, req.NewName, &rpc.LinkArgs{Old: oldPath, New: p})
	if err == nil {
		// Its link count and ctime changed.
		base(n).changed()
	}
	return n, err
}

// made runs a call that creates name and returns its attributes.
func (d *dir) made(ctx context.Context, op rpc.Op, name string, args any) (fusefs.Node, error) {
	at := time.Now()
	var a rpc.Attr
	if err := d.fs.c.Call(ctx, op, args, &a); err != nil {
		return nil, errno(err)
	}
	d.changed(name)
	n := d.fs.nodeFor(d, name, &a, at)
	if nd, ok := n.(*dir); ok && op == rpc.OpMkdir && a.Watch != 0 {
		// Watched since it was found empty (see rpc.Attr.Watch): the
		// creates that follow need not look their names up.
		d.fs.mu.Lock()
		nd.setListingLocked(map[string]rpc.Attr{}, nil, at, a.Watch, nd.changes)
		d.fs.mu.Unlock()
	}
	return n, nil
}

var _ fusefs.NodeRemover = (*dir)(nil)

func (d *dir) Remove(ctx context.Context, req *fuse.RemoveRequest) error {
	op := rpc.OpUnlink
	if req.Dir {
		op = rpc.OpRmdir
		d.fs.settle(nil)
	} else {
		d.fs.settle(d)
	}
	p, err := d.child(req.Name)
	if err != nil {
		return err
	}
	if err := d.checkSticky(ctx, &req.Header, p, false); err != nil {
		return err
	}
	if err := d.fs.c.Call(ctx, op, &rpc.PathArgs{Path: p}, nil); err != nil {
		return errno(err)
	}
	d.fs.removed(d, req.Name)
	d.changed(req.Name)
	return nil
}

var _ fusefs.NodeRenamer = (*dir)(nil)

func (d *dir) Rename(ctx context.Context, req *fuse.RenameRequest, newDir fusefs.Node) error {
	nd, ok := newDir.(*dir)
	if !ok {
		return syscall.ENOTDIR
	}
	d.fs.settle(nil)
	oldPath, err := d.child(req.OldName)
	if err != nil {
		return err
	}
	newPath, err := nd.child(req.NewName)
	if err != nil {
		return err
	}
	if err := d.checkSticky(ctx, &req.Header, oldPath, false); err != nil {
		return err
	}
	if err := nd.checkSticky(ctx, &req.Header, newPath, true); err != nil {
		return err
	}
	if err := d.fs.c.Call(ctx, rpc.OpRename, &rpc.RenameArgs{Old: oldPath, New: newPath}, nil); err != nil {
		return errno(err)
	}
	d.fs.moved(d, req.OldName, nd, req.NewName)
	d.changed(req.OldName)
	nd.changed(req.NewName)
	return nil
}

// checkSticky refuses what the kernel would refuse in a sticky directory:
// removing or replacing (at p) another user's file. The kernel cannot check
// it here because bazil does not pass the sticky bit on to it.
func (d *dir) checkSticky(ctx context.Context, h *fuse.Header, p string, mayBeMissing bool) error {
	d.fs.mu.Lock()
	mode, dirUid := d.attr.Mode, d.attr.Uid
	d.fs.mu.Unlock()
	if h.Uid == 0 || mode&syscall.S_ISVTX == 0 || dirUid == h.Uid {
		return nil
	}
	var a rpc.Attr
	if err := d.fs.c.Call(ctx, rpc.OpLstat, &rpc.PathArgs{Path: p}, &a); err != nil {
		if mayBeMissing && rpc.Errno(err) == syscall.ENOENT {
			return nil
		}
		return errno(err)
	}
	if a.Uid != h.Uid {
		return fuse.Errno(syscall.EPERM)
	}
	return nil
}

// owner is who asks for a new file.
func owner(h *fuse.Header) rpc.Owner {
	return rpc.Owner{Uid: h.Uid, Gid: h.Gid}
}

var _ fusefs.NodeForgetter = (*dir)(nil)

func (d *dir) Forget() { d.fs.forget(d) }

// Directories are fsynced by path.
var _ fusefs.NodeFsyncer = (*dir)(nil)

func direntType(mode uint32) fuse.DirentType {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return fuse.DT_Dir
	case syscall.S_IFLNK:
		return fuse.DT_Link
	case syscall.S_IFREG:
		return fuse.DT_File
	case syscall.S_IFIFO:
		return fuse.DT_FIFO
	case syscall.S_IFSOCK:
		return fuse.DT_Socket
	case syscall.S_IFCHR:
		return fuse.DT_Char
	case syscall.S_IFBLK:
		return fuse.DT_Block
	}
	return fuse.DT_Unknown
}
