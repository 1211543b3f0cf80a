package fuse

import (
	"context"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Create-behind. Making a file through the mount and writing it
// (open(O_CREAT), write, close) costs two round trips through the engine:
// the create, which the kernel waits for, and the write, which close waits
// for so that it can report the write's error. When what the create would
// answer is known already, the create is answered at once and goes to the
// target with the file's first write, in one call (rpc.OpenArgs.Data), so
// that the close waits for one round trip.
//
// What the create would answer is known when
//   - a watch keeps the directory's listing true (see watch.go) and the
//     listing says the name is free: the create cannot find a file there;
//   - the last create in the directory, less than the watch's timeout ago,
//     under the same satellite and for the same caller, succeeded and gave
//     the file the mode asked for: this one has the same rights, the same
//     filesystem and, most likely, room, and its file gets the same owner
//     (which the kernel is told at once);
//   - the open neither appends nor writes synchronously, and may write;
//   - it is not exclusive (O_EXCL): a lock file must know at once.
//
// The file goes to the target with its first write, as soon as that comes
// (see handle.Write), at the latest writeDelay after the create, or as
// soon as anything needs it there: a close, fsync, stat, open or xattr
// call of the file, and a lookup, listing, removal or rename in its
// directory, wait for it first. If the create fails after all (the target made the name
// meanwhile, or its disk filled up), the error is what the file's next
// write, fsync or close returns, as for a write behind, and the name is
// dropped from the kernel's cache; the directory makes its creates one by
// one again until one succeeds.

// pendingCreate is the create of a file answered before it was made.
type pendingCreate struct {
	c    Caller
	d    *dir
	name string
	args rpc.OpenArgs // Path is set when it is sent
	sent bool         // guarded by the handle's wmu
	done chan struct{}
	err  error // set before done is closed
}

// createBehind answers req at once if it may (see above), returning the new
// file and its handle.
func (d *dir) createBehind(req *fuse.CreateRequest, resp *fuse.CreateResponse) (*file, *handle, bool) {
	const unsure = fuse.OpenAppend | fuse.OpenSync | fuse.OpenFlags(syscall.O_DSYNC) | fuse.OpenExclusive
	if req.Flags.IsReadOnly() || req.Flags&unsure != 0 || len(req.Name) > maxName {
		return nil, nil, false
	}
	fs := d.fs
	c := fs.pin()
	now := time.Now()
	o := owner(&req.Header)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !d.mayCreateBehindLocked(req.Name, now, o) {
		return nil, nil, false
	}
	mode := unixMode(req.Mode)
	// The attributes the file will have, as the last create's tell; the
	// real ones replace them when it is made.
	a := rpc.Attr{
		Mode: syscall.S_IFREG | mode&0o7777, Nlink: 1, Uid: d.last.uid, Gid: d.last.gid, Blksize: 4096,
		Atime: now.UnixNano(), Mtime: now.UnixNano(), Ctime: now.UnixNano(),
		Xattr: rpc.XattrNone,
	}
	fs.nextIno++
	f := &file{node: node{fs: fs, ino: fs.nextIno}}
	f.self = f
	f.setAttrLocked(&a, now)
	fs.placeLocked(f, d, req.Name)
	h := &handle{f: f, writable: true}
	h.wdone = sync.NewCond(&h.wmu)
	h.pend = &pendingCreate{
		c: c, d: d, name: req.Name, done: make(chan struct{}),
		args: rpc.OpenArgs{Flags: int(req.Flags) | syscall.O_CREAT, Mode: mode, Owner: o},
	}
	fs.pending[h] = true
	f.registerLocked(h, &a, now, &resp.OpenResponse)
	// Its name is no longer free; the directory's own attributes are
	// left as they are until the reply brings the new ones, as a create
	// made at once would have.
	d.changes++
	d.unknownLocked(req.Name)
	resp.EntryValid = fs.opts.EntryTimeout
	time.AfterFunc(writeDelay, func() {
		h.wmu.Lock()
		if !h.pend.sent {
			h.sendLocked()
		}
		h.wmu.Unlock()
	})
	return f, h, true
}

// mayCreateBehindLocked tells whether a create of name in d may be
// answered before it is made (see above).
func (d *dir) mayCreateBehindLocked(name string, now time.Time, o rpc.Owner) bool {
	if !d.listTrustedLocked() || d.unknown[name] || d.children[name] != nil {
		return false
	}
	if _, ok := d.listing[name]; ok {
		return false
	}
	m := &d.last
	return !m.at.IsZero() && m.epoch == d.fs.epoch && now.Sub(m.at) < d.fs.opts.WatchTimeout && m.owner == o
}

// lastCreate is what the last create in a directory tells of the next.
type lastCreate struct {
	at       time.Time // zero if it failed
	epoch    uint64
	owner    rpc.Owner // the caller it made the file for
	uid, gid uint32    // the file's owner it got
}

// createdLocked records how a create in d for o with mode ended: with the
// attributes made of the file it made, nil if it failed.
func (d *dir) createdLocked(o rpc.Owner, mode uint32, made *rpc.Attr) {
	if made == nil || made.Mode&0o7777 != mode&0o7777 {
		d.last = lastCreate{}
		return
	}
	d.last = lastCreate{at: time.Now(), epoch: d.fs.epoch, owner: o, uid: made.Uid, gid: made.Gid}
}

// pendingLocked returns the handle of the node's create behind while it is
// not yet made, nil otherwise.
func (n *node) pendingLocked() *handle {
	if len(n.fs.pending) == 0 {
		return nil
	}
	for _, h := range n.handles {
		if n.fs.pending[h] {
			return h
		}
	}
	return nil
}

// create makes the handle's file in the target, with data written from
// offset 0, and records what it became. It runs once, from sendLocked.
func (h *handle) create(data []byte) error {
	p := h.pend
	f, d := h.f, p.d
	fs := f.fs
	fs.mu.Lock()
	path := f.pathLocked()
	fs.mu.Unlock()
	var err error
	var r *rpc.OpenReply
	at := time.Now()
	if path == "" {
		err = errGone
	} else {
		args := p.args
		args.Path, args.Data = path, data
		r, err = open(context.Background(), p.c, &args)
	}
	if err == nil {
		h.rem.Store(&remote{c: p.c, id: r.Handle})
	}
	fs.mu.Lock()
	delete(fs.pending, h)
	var made *rpc.Attr
	if err == nil {
		made = &r.Attr
	}
	d.createdLocked(p.args.Owner, p.args.Mode, made)
	d.entriesChangedLocked(p.name)
	if err == nil {
		// The kernel was told what the last create's file had.
		fs.queueLocked(inval{node: f})
		k := devIno{r.Attr.Dev, r.Attr.Ino}
		fs.nodes[k] = f
		fs.inodes[k] = f.ino
		f.setAttrLocked(&r.Attr, at)
		f.cachedSize, f.cachedMtime = r.Attr.Size, r.Attr.Mtime
		if r.Dir.Mode != 0 {
			d.setAttrLocked(&r.Dir, at)
		}
	} else {
		// The kernel holds the name as made: it must ask again.
		if d.children[p.name] == f {
			fs.unlinkLocked(f, d, p.name)
		}
		fs.queueLocked(inval{node: d, name: p.name})
	}
	fs.mu.Unlock()
	p.err = err
	close(p.done)
	return err
}

// remote returns where the handle's file is open in the target, waiting
// for a create behind to be made first. It is nil, with no error, for a
// handle opened from a copy that has not needed the file yet.
func (h *handle) remote() (*remote, error) {
	if p := h.pend; p != nil {
		h.wmu.Lock()
		if !p.sent {
			h.sendLocked()
		}
		h.wmu.Unlock()
		<-p.done
		if p.err != nil {
			return nil, p.err
		}
	}
	return h.rem.Load(), nil
}

// settle makes the files still to be created behind in d, or in the
// whole mount for d nil, so that a call about their names finds them in
// the target. A rename or rmdir settles everything: a create sent with the
// old path could reach the satellite after the rename.
func (fs *FS) settle(d *dir) {
	fs.mu.Lock()
	if len(fs.pending) == 0 {
		fs.mu.Unlock()
		return
	}
	var hs []*handle
	for h := range fs.pending {
		if d == nil || h.pend.d == d {
			hs = append(hs, h)
		}
	}
	fs.mu.Unlock()
	for _, h := range hs {
		h.remote()
	}
}
