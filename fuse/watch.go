package fuse

import (
	"sync"
	"syscall"
	"time"

	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Watched attributes
//
// A satellite that watches the directories the client looks at (see
// rpc.Attr.Watch) reports every change in them as an rpc.Event. What came
// under such a watch is trusted, and given to the kernel, for
// Options.WatchTimeout instead of AttrTimeout and EntryTimeout: a second
// ls -lR of a tree asks nothing. An event makes the client forget what it
// knew of the entry and of its directory, and has the kernel forget it
// too, so that a change in the target shows as soon as it is reported;
// a change the satellite made for this mount (Event.Own) the kernel saw
// go through, and keeps.
//
// A file's attributes are covered by the watch of the directory it was
// found in, a directory's by its own. A hard-linked file is never trusted
// longer than AttrTimeout: a change through another of its names is
// reported to another directory. An event can overtake the reply that read
// the state before it; the sequence numbers tell (lastEvent), and the reply
// is then given the short timeouts.

// DefaultWatchTimeout is Options.WatchTimeout's default.
const DefaultWatchTimeout = time.Minute

// Notify takes in the events of the satellite connected now. It is called
// in order, from the goroutine that reads the satellite's replies: it never
// blocks on the kernel.
func (f *FS) Notify(m *rpc.Notify) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range m.Events {
		e := &m.Events[i]
		if e.Dev == 0 && e.Ino == 0 {
			f.resetLocked()
			continue
		}
		k := devIno{e.Dev, e.Ino}
		if e.Seq > f.lastEvent[k] {
			f.lastEvent[k] = e.Seq
		}
		d := f.dirLocked(k)
		if d == nil {
			continue
		}
		// A change of the satellite's own was made for a request of
		// this mount: the kernel saw it through, and keeps what it
		// learnt (telling it to forget a name it just made drops the
		// dentries, and the nodes, below it).
		kernel := !e.Own
		if e.Name == "" || e.Mask&rpc.EventEntry != 0 {
			// The directory's own attributes (mtime) changed too:
			// they are good for AttrTimeout from when they were
			// read, as without a watch. A change of an entry's
			// contents or attributes leaves them as they were, and
			// the kernel keeps them: it would ask for them again at
			// the next lookup in the directory (its permission
			// check), which for a program writing file after file
			// is every file.
			d.distrustLocked()
			if kernel {
				f.queueLocked(inval{node: d, data: e.Mask&rpc.EventEntry != 0})
			}
		}
		if e.Name == "" {
			if e.Mask&rpc.EventEntry != 0 {
				// The directory itself went or moved, or is no
				// longer watched: nothing in it is covered.
				d.listing = nil
				for _, c := range d.children {
					base(c).distrustLocked()
				}
			}
			continue
		}
		c, known := d.children[e.Name]
		if kernel {
			// Data fetched ahead of an open (see prefetch.go) is
			// no longer what the file holds.
			if a, ok := d.listing[e.Name]; ok {
				f.copies.drop(devIno{a.Dev, a.Ino})
			}
			if known {
				b := base(c)
				f.copies.drop(devIno{b.attr.Dev, b.attr.Ino})
			}
		}
		d.unknownLocked(e.Name)
		if known {
			// Its attributes too are good for AttrTimeout from when
			// they were read: those read long ago are read again at
			// once, and those read just now, often by the change
			// through the mount that the event reports, serve on.
			b := base(c)
			b.distrustLocked()
			// The contents of a file written through the mount
			// are not dropped at each of its own writes' reports:
			// while it is open for writing here, the page cache is
			// what the writes made it, as without a watch.
			data := e.Mask&rpc.EventData != 0 && b.writableHandleLocked() == nil
			if _, isDir := c.(*dir); kernel && (!isDir || e.Mask&rpc.EventEntry == 0) {
				f.queueLocked(inval{node: c, data: data})
			}
		}
		if kernel && e.Mask&rpc.EventEntry != 0 {
			f.queueLocked(inval{node: d, name: e.Name})
		}
	}
}

// dirLocked returns the directory known as k, the root included (which
// is not in the node table: it has its own inode number whatever it is in
// the target).
func (f *FS) dirLocked(k devIno) *dir {
	if r := &f.root.attr; r.Dev == k.dev && r.Ino == k.ino && r.Mode != 0 {
		return f.root
	}
	d, _ := f.nodes[k].(*dir)
	return d
}

// Reset forgets everything that was trusted on the word of a satellite:
// called when another one takes over, which watches nothing yet and did
// not see what changed meanwhile.
func (f *FS) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resetLocked()
}

func (f *FS) resetLocked() {
	f.epoch++
	clear(f.lastEvent)
	forget := func(n fusefs.Node) {
		base(n).staleLocked()
		f.queueLocked(inval{node: n, data: true})
		if d, ok := n.(*dir); ok {
			d.listing = nil
			for name := range d.children {
				f.queueLocked(inval{node: d, name: name})
			}
		}
	}
	// The root is not in the node table (see dirLocked).
	forget(f.root)
	for _, n := range f.nodes {
		forget(n)
	}
}

// trustedLocked tells whether n's attributes are covered by a watch that
// has reported nothing since they were read.
func (n *node) trustedLocked() bool {
	if n.watch == 0 || n.epoch != n.fs.epoch || n.attrAt.IsZero() {
		return false
	}
	if n.attr.Mode&syscall.S_IFMT != syscall.S_IFDIR && n.attr.Nlink > 1 {
		return false
	}
	return time.Since(n.attrAt) < n.fs.opts.WatchTimeout
}

// ttlLocked is how long n's attributes, when fresh, may be trusted.
func (n *node) ttlLocked() time.Duration {
	if n.trustedLocked() {
		return n.fs.opts.WatchTimeout
	}
	return n.fs.opts.AttrTimeout
}

// coverLocked is the directory whose watch reports changes to n: n itself
// for a directory, else the directory n was found in.
func (n *node) coverLocked() (devIno, bool) {
	if n.attr.Mode&syscall.S_IFMT == syscall.S_IFDIR || n.root {
		return devIno{n.attr.Dev, n.attr.Ino}, true
	}
	if len(n.links) == 0 {
		return devIno{}, false
	}
	p := &n.links[0].parent.node
	return devIno{p.attr.Dev, p.attr.Ino}, true
}

// watchLocked records the watch sample that came with n's attributes, if
// no event about it overtook them.
func (n *node) watchLocked(sample uint64) {
	n.watch, n.epoch = 0, n.fs.epoch
	if sample == 0 {
		return
	}
	if k, ok := n.coverLocked(); ok && n.fs.lastEvent[k] <= sample {
		n.watch = sample
	}
}

// distrustLocked drops what n's watch vouched for.
func (n *node) distrustLocked() {
	n.watch = 0
}

// inval is one thing the kernel is told to forget: the name in node (a
// directory) when name is set, else node's attributes, and with data its
// cached contents (a directory's: its listing) too.
type inval struct {
	node fusefs.Node
	name string
	data bool
}

// invalidator tells the kernel, from a goroutine of its own, what to
// forget: a notification waits for the kernel's lock on the inode, which a
// request being served may hold while it waits for the satellite.
type invalidator struct {
	mu      sync.Mutex
	queue   []inval
	pending map[inval]bool
	wake    chan struct{}
}

// queueLocked adds i to the invalidations to send, once.
func (f *FS) queueLocked(i inval) {
	v := &f.inval
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending[i] {
		return
	}
	if v.pending == nil {
		v.pending = make(map[inval]bool)
	}
	v.pending[i] = true
	v.queue = append(v.queue, i)
	if len(v.queue) == 1 {
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
}

// invalidateLoop sends the queued invalidations until done is closed.
func (f *FS) invalidateLoop(srv *fusefs.Server, done <-chan struct{}) {
	v := &f.inval
	for {
		select {
		case <-done:
			return
		case <-v.wake:
		}
		for {
			v.mu.Lock()
			q := v.queue
			v.queue = nil
			clear(v.pending)
			v.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, i := range q {
				switch {
				case i.name != "":
					srv.InvalidateEntry(i.node, i.name)
				case i.data:
					srv.InvalidateNodeData(i.node)
				default:
					srv.InvalidateNodeAttr(i.node)
				}
			}
		}
	}
}
