// Package fuse serves a satellite's directory tree as a FUSE filesystem with
// bazil.org/fuse. Each kernel request becomes at most one rpc call; lookups
// right after a directory listing are answered from the listing, and
// read-only opens of small files from copies fetched with their siblings
// (see Prefetching). The exception: an open whose file was left out of the
// fetch it started (the satellite may not read it) goes to the target after
// it.
//
// # Identity
//
// Nodes are keyed by the target's (device, inode) pair and get inode numbers
// of their own, handed out in order, so that /proc, /sys and /dev (each with
// its own inode 1) never merge, and a file reached by two hard links is one
// node. A node remembers the names it is known by (a directory has one);
// its path is derived from them, so renaming a directory moves its subtree.
//
// # Freshness
//
// What a satellite's watch vouches for is trusted for Options.WatchTimeout,
// until an event says otherwise (see watch.go). Otherwise the kernel trusts
// attributes for Options.AttrTimeout and names for Options.EntryTimeout;
// answers from a cached listing are given only the time they have left.
// File data stays in the page cache across opens while the file's size and
// modification time are unchanged. Data fetched ahead of an open is as old
// as attributes may be: at most AttrTimeout, and never older than a change
// made through the mount.
//
// # Prefetching
//
// From the second small file of a listed directory opened read-only, an open
// fetches, with one rpc.OpReadFiles call, that file and the small regular
// files after it in the listing, and keeps them as copies (at most 16 MiB per
// FS): tar, cp -r or grep -r of many small files then cost a few calls per
// directory instead of one per file. A copy serves one open; a handle opened
// from one has nothing open in the target until a read needs the file itself.
// See prefetch.go for the rules that keep copies from serving stale data.
//
// # Concurrency
//
// bazil serves each request in its own goroutine. FS.mu guards the node
// table and every node's names and cached attributes; it is never
// held across an rpc call; the lock of the copies fetched ahead is taken
// after it, never before. Handles are safe for concurrent reads and
// writes: the satellite uses pread and pwrite.
package fuse

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Caller issues one call to the satellite; *rpc.Client implements it.
type Caller interface {
	Call(ctx context.Context, op rpc.Op, args, reply any) error
}

// Pinner is implemented by a Caller that replaces a lost satellite with a
// new one. Pin returns a Caller bound to the satellite connected now, whose
// calls fail (with EIO) once that satellite is gone, even after another
// took its place. Open files and directory listings are pinned: a handle
// number of a lost satellite must never reach its successor, where it would
// name nothing or another file.
type Pinner interface {
	Pin() Caller
}

// lost is implemented by a pinned Caller that can tell, without a call,
// that its satellite is gone (*rpc.Client's Err): a write then fails at
// once instead of going out behind the caller's back to fail a call later.
type lost interface {
	Err() error
}

// pin returns the Caller to open a handle through (see Pinner).
func (f *FS) pin() Caller {
	if p, ok := f.c.(Pinner); ok {
		return p.Pin()
	}
	return f.c
}

// Options tune a mount.
type Options struct {
	// FSName is shown as the source in the mount table.
	FSName string
	// ReadOnly mounts read-only: the kernel refuses changes with EROFS.
	ReadOnly bool
	// AllowOther lets users other than the mounting one in; permissions
	// are then checked by the kernel against the target's modes.
	AllowOther bool
	// AttrTimeout and EntryTimeout: zero means one second.
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	// WatchTimeout is how long what a satellite's watch vouches for is
	// trusted (see watch.go); zero means DefaultWatchTimeout.
	WatchTimeout time.Duration
	// Debug, if set, receives every FUSE request and response.
	Debug func(msg any)
}

// FS is the filesystem of one satellite session.
type FS struct {
	c    Caller
	opts Options

	mu      sync.Mutex
	inodes  map[devIno]uint64 // never shrinks: an inode number is never reused
	nextIno uint64
	nodes   map[devIno]fusefs.Node
	root    *dir
	// pending are the handles of creates behind not yet made (see
	// create.go).
	pending map[*handle]bool

	// epoch counts the satellites whose watches vouched for attributes;
	// lastEvent is the sequence number of the last event about each
	// watched directory (see watch.go).
	epoch     uint64
	lastEvent map[devIno]uint64
	inval     invalidator

	closer closer // gathers the closes of released handles

	lanes lanes // the streams chunks are read through (see readahead.go)

	copies copies // of small files, fetched ahead of their opens
	// orders are the directories that keep their listing's order for
	// prefetching, listed longest ago first, and orderN the names they
	// keep. Guarded by mu.
	orders list.List
	orderN int
}

type devIno struct{ dev, ino uint64 }

var _ fusefs.FS = (*FS)(nil)

// New returns the filesystem served through c.
func New(c Caller, opts Options) *FS {
	if opts.AttrTimeout == 0 {
		opts.AttrTimeout = time.Second
	}
	if opts.EntryTimeout == 0 {
		opts.EntryTimeout = time.Second
	}
	if opts.WatchTimeout == 0 {
		opts.WatchTimeout = DefaultWatchTimeout
	}
	f := &FS{
		c:       c,
		opts:    opts,
		inodes:  make(map[devIno]uint64),
		nextIno: 1,
		nodes:   make(map[devIno]fusefs.Node),
		pending: make(map[*handle]bool),

		lastEvent: make(map[devIno]uint64),
		inval:     invalidator{wake: make(chan struct{}, 1)},
	}
	f.lanes.cond.L = &f.lanes.mu
	f.lanes.busy = make(map[Caller]bool)
	f.copies = copies{ttl: opts.AttrTimeout, byKey: make(map[devIno]*fileCopy), pending: make(map[devIno]chan struct{})}
	f.root = &dir{node: node{fs: f, ino: 1, root: true}}
	f.root.self = f.root
	return f
}

func (f *FS) Root() (fusefs.Node, error) { return f.root, nil }

var _ fusefs.FSStatfser = (*FS)(nil)

func (f *FS) Statfs(ctx context.Context, req *fuse.StatfsRequest, resp *fuse.StatfsResponse) error {
	var r rpc.StatfsReply
	if err := f.c.Call(ctx, rpc.OpStatfs, &rpc.PathArgs{Path: "/"}, &r); err != nil {
		return errno(err)
	}
	*resp = fuse.StatfsResponse{
		Blocks:  r.Blocks,
		Bfree:   r.Bfree,
		Bavail:  r.Bavail,
		Files:   r.Files,
		Ffree:   r.Ffree,
		Bsize:   r.Bsize,
		Namelen: r.Namelen,
		Frsize:  r.Frsize,
	}
	return nil
}

// inodeLocked returns the mount's inode number for a target file,
// assigning one on first sight. The root keeps 1 whatever it is in the
// target.
func (f *FS) inodeLocked(k devIno) uint64 {
	if ino, ok := f.inodes[k]; ok {
		return ino
	}
	f.nextIno++
	f.inodes[k] = f.nextIno
	return f.nextIno
}

// nodeFor returns the node for a file just found as name in parent, with
// attributes a fetched at time at. A known node is reused and moved to this
// name; a node whose type changed (an inode number reused) is replaced.
func (f *FS) nodeFor(parent *dir, name string, a *rpc.Attr, at time.Time) fusefs.Node {
	k := devIno{a.Dev, a.Ino}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.nodes[k]; ok {
		b := base(n)
		if b.attr.Mode&syscall.S_IFMT == a.Mode&syscall.S_IFMT {
			f.placeLocked(n, parent, name)
			b.setAttrLocked(a, at)
			return n
		}
	}
	b := node{fs: f, ino: f.inodeLocked(k)}
	b.setAttrLocked(a, at)
	var n fusefs.Node
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		n = &dir{node: b}
	case syscall.S_IFLNK:
		n = &symlink{node: b}
	default:
		n = &file{node: b}
	}
	base(n).self = n
	f.nodes[k] = n
	f.placeLocked(n, parent, name)
	// Only now does it have the directory whose watch covers it.
	base(n).watchLocked(a.Watch)
	return n
}

// placeLocked records that n is reached as name in parent. A directory
// has one name, so it leaves its old one; a file gains a name (hard links),
// which goes first: the name just found is the one known to work, while
// older ones may be gone (renamed or removed in the target).
// Whatever had the name before loses it.
func (f *FS) placeLocked(n fusefs.Node, parent *dir, name string) {
	b := base(n)
	if old, ok := parent.children[name]; ok {
		if old == n {
			return
		}
		f.unlinkLocked(old, parent, name)
	}
	if _, isDir := n.(*dir); isDir {
		for len(b.links) > 0 {
			f.unlinkLocked(n, b.links[0].parent, b.links[0].name)
		}
	}
	if parent.children == nil {
		parent.children = make(map[string]fusefs.Node)
	}
	parent.children[name] = n
	b.links = append([]link{{parent, name}}, b.links...)
}

// unlinkLocked removes the name parent/name from n.
func (f *FS) unlinkLocked(n fusefs.Node, parent *dir, name string) {
	b := base(n)
	b.staleLocked()
	if parent.children[name] == n {
		delete(parent.children, name)
	}
	for i, l := range b.links {
		if l.parent == parent && l.name == name {
			b.links = append(b.links[:i], b.links[i+1:]...)
			return
		}
	}
}

// removed follows an unlink or rmdir through the mount.
func (f *FS) removed(parent *dir, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := parent.children[name]; ok {
		f.unlinkLocked(n, parent, name)
	}
}

// moved follows a rename through the mount.
func (f *FS) moved(from *dir, oldName string, to *dir, newName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := from.children[oldName]
	if old, ok := to.children[newName]; ok && old != n {
		f.unlinkLocked(old, to, newName)
	}
	if !ok {
		return
	}
	f.unlinkLocked(n, from, oldName)
	f.placeLocked(n, to, newName)
}

// callOwning runs a call whose reply names a handle in the satellite (got
// by handle; 0 for none). A call abandoned when ctx ends (the caller was
// interrupted) would still open the handle there and drop the reply, the
// only record of it: the call is left to finish in the background instead
// and the handle closed, so that nothing leaks.
func callOwning[R any](ctx context.Context, c Caller, op rpc.Op, args any, handle func(*R) uint64) (*R, error) {
	if ctx.Done() == nil {
		// It cannot be abandoned (a create behind's): no goroutine
		// needs to stand by.
		r := new(R)
		return r, c.Call(ctx, op, args, r)
	}
	type result struct {
		r   R
		err error
	}
	done := make(chan *result, 1)
	go func() {
		res := new(result)
		res.err = c.Call(context.WithoutCancel(ctx), op, args, &res.r)
		done <- res
	}()
	select {
	case res := <-done:
		return &res.r, res.err
	case <-ctx.Done():
		go func() {
			res := <-done
			if h := handle(&res.r); res.err == nil && h != 0 {
				c.Call(context.WithoutCancel(ctx), rpc.OpClose, &rpc.HandleArgs{Handle: h}, nil)
			}
		}()
		return nil, ctx.Err()
	}
}

// forget drops n from the table unless a newer node took its key.
func (f *FS) forget(n fusefs.Node) {
	b := base(n)
	f.mu.Lock()
	defer f.mu.Unlock()
	k := devIno{b.attr.Dev, b.attr.Ino}
	if f.nodes[k] == n {
		delete(f.nodes, k)
	}
	// The directories let go of the node; it keeps its names in case it
	// is back (see node.forgotten).
	for _, l := range b.links {
		if l.parent.children[l.name] == n {
			delete(l.parent.children, l.name)
		}
	}
	b.forgotten = true
	if d, ok := n.(*dir); ok {
		f.dropOrderLocked(d)
	}
}

func base(n fusefs.Node) *node {
	switch n := n.(type) {
	case *dir:
		return &n.node
	case *file:
		return &n.node
	case *symlink:
		return &n.node
	}
	panic(fmt.Sprintf("fuse: unexpected node type %T", n))
}

// Mount is a mounted FS being served.
type Mount struct {
	Dir  string
	FS   *FS
	conn *fuse.Conn
	srv  *fusefs.Server
	done chan struct{}
	err  error
}

// Mount mounts a filesystem served through c on dir, which must exist, and
// serves it in the background until it is unmounted.
func MountFS(dir string, c Caller, opts Options) (*Mount, error) {
	f := New(c, opts)
	mo := []fuse.MountOption{
		fuse.FSName(opts.FSName),
		fuse.Subtype("dockerfuse"),
		// The kernel checks permissions against the target's modes, as
		// the target's own kernel would.
		fuse.DefaultPermissions(),
		fuse.AsyncRead(),
		fuse.MaxReadahead(1 << 20),
		fuse.MaxBackground(64),
		fuse.CongestionThreshold(48),
	}
	if opts.ReadOnly {
		mo = append(mo, fuse.ReadOnly())
	}
	if opts.AllowOther {
		mo = append(mo, fuse.AllowOther())
	}
	if opts.FSName == "" {
		mo[0] = fuse.FSName("dockerfuse")
	}
	conn, err := fuse.Mount(dir, mo...)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	m := &Mount{Dir: dir, FS: f, conn: conn, done: make(chan struct{})}
	m.srv = fusefs.New(conn, &fusefs.Config{Debug: opts.Debug})
	go f.invalidateLoop(m.srv, m.done)
	go func() {
		m.err = m.srv.Serve(f)
		conn.Close()
		close(m.done)
	}()
	return m, nil
}

// Done is closed when the mount is gone and serving has stopped.
func (m *Mount) Done() <-chan struct{} { return m.done }

// Err reports why serving stopped, after Done is closed; nil after a clean
// unmount.
func (m *Mount) Err() error { return m.err }

// Unmount detaches the mount (lazily, so that a busy mount does not refuse)
// and waits until serving has stopped or ctx ends.
func (m *Mount) Unmount(ctx context.Context) error {
	err := unmount(m.Dir)
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
}
