package fuse

import (
	"container/list"
	"context"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Reading many small files (tar, cp -r, grep -r) costs one call per file:
// the open, whose reply brings the data along (rpc.OpenArgs.Inline). From
// the second file of a directory opened read-only, an open instead fetches
// its file and the small regular files after it in the directory's last
// listing (wrapping around, so that any order of opening is covered) with
// one OpReadFiles call, and keeps what comes back as copies, by (device,
// inode). An open whose file has a copy then costs no call: its handle
// reads from the copy and has nothing open in the target (see
// handle.reopen). The first fetch after a listing asks for prefetchFirst
// files, each next one for prefetchGrowth times more, up to
// rpc.MaxDirEntries files or rpc.MaxReadFiles bytes: a program that opens
// two or three files of a large directory does not have the satellite read
// all of it. Each file of a listing is asked for at most once, until the
// directory is listed again.
//
// A copy serves one open: it is dropped when taken, used or not. It is
// taken only while younger than AttrTimeout, as attributes are, and only
// if nothing changed the file through the mount since the fetch started
// (a write, a truncate, setattr, an xattr, a rename or link: see
// node.changedLocked) and the node's attributes, if read after the fetch,
// show the same size, mtime and ctime. A file the satellite may not read is
// never copied: its open goes to the target, and fails there as it would
// have. An open for writing or with O_TRUNC never uses a copy.
const (
	prefetchFirst  = 32
	prefetchGrowth = 4
	// copyBytes bounds the data of the copies an FS keeps; the oldest go
	// first.
	copyBytes = 16 << 20
	// copyOverhead is what a copy costs beyond its data, counted against
	// copyBytes so that many empty files are bounded too.
	copyOverhead = 256
	// orderEntries bounds the names of listings an FS keeps for
	// prefetching; the directories listed longest ago lose theirs first.
	orderEntries = 1 << 16
)

// sibling is a small regular file of a directory's listing.
type sibling struct {
	name    string
	key     devIno
	size    int64
	fetched bool // asked for by a fetch since the listing
}

// smallFile tells whether attributes a are those of a file whose data an
// open brings along (see rpc.OpenArgs.Inline).
func smallFile(a *rpc.Attr) bool {
	return a.Mode&syscall.S_IFMT == syscall.S_IFREG && a.Size < rpc.MaxInline
}

// setOrderLocked keeps order, the small files of d's listing just read in
// their order, for prefetching.
func (f *FS) setOrderLocked(d *dir, order []sibling) {
	f.dropOrderLocked(d)
	if len(order) < 2 {
		return
	}
	d.order, d.orderElem = order, f.orders.PushBack(d)
	f.orderN += len(order)
	for f.orderN > orderEntries && f.orders.Front() != d.orderElem {
		f.dropOrderLocked(f.orders.Front().Value.(*dir))
	}
}

func (f *FS) dropOrderLocked(d *dir) {
	if d.orderElem != nil {
		f.orders.Remove(d.orderElem)
		f.orderN -= len(d.order)
	}
	d.order, d.orderElem, d.opened, d.opens, d.fetches = nil, nil, "", 0, 0
}

// planLocked is called at each read-only open of the small file name,
// whose key is key and size is size, and returns the files to fetch with
// it, itself first, and their keys, or nil when no fetch is due. The files
// returned are marked as being fetched, with done.
func (d *dir) planLocked(name string, key devIno, size int64, done chan struct{}) ([]string, []devIno) {
	if d.order == nil || name == d.opened {
		return nil, nil
	}
	d.opened = name
	d.opens++
	if d.opens < 2 {
		return nil, nil
	}
	i := 0
	for i < len(d.order) && d.order[i].name != name {
		i++
	}
	if i == len(d.order) || d.order[i].fetched {
		// A file asked for once and not in the reply (the satellite
		// may not read it, say) is not asked for again.
		return nil, nil
	}
	limit := prefetchFirst
	for range d.fetches {
		limit = min(limit*prefetchGrowth, rpc.MaxDirEntries)
	}
	cs := &d.fs.copies
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.busyLocked(key) {
		return nil, nil
	}
	names := []string{name}
	keys := []devIno{key}
	picked := []int{i}
	total := size
	for j := 1; j < len(d.order) && len(names) < limit; j++ {
		s := &d.order[(i+j)%len(d.order)]
		if s.fetched || cs.busyLocked(s.key) || s.key == key {
			continue
		}
		if total+s.size > rpc.MaxReadFiles {
			break
		}
		total += s.size
		names = append(names, s.name)
		keys = append(keys, s.key)
		picked = append(picked, (i+j)%len(d.order))
	}
	if len(names) == 1 {
		return nil, nil
	}
	for _, j := range picked {
		d.order[j].fetched = true
	}
	d.fetches++
	for _, k := range keys {
		cs.pending[k] = done
	}
	return names, keys
}

// fileCopy is the whole of a small file, fetched with others.
type fileCopy struct {
	key  devIno
	attr rpc.Attr
	data []byte
	at   time.Time // when its fetch started
	elem *list.Element
}

// copies are the copies of an FS. mu is taken after FS.mu, never before.
type copies struct {
	ttl time.Duration // AttrTimeout

	mu      sync.Mutex
	byKey   map[devIno]*fileCopy
	fifo    list.List // of *fileCopy, oldest first
	bytes   int
	pending map[devIno]chan struct{} // fetches in flight, closed when done
}

func (cs *copies) busyLocked(k devIno) bool {
	_, ok := cs.byKey[k]
	_, fetching := cs.pending[k]
	return ok || fetching
}

// take removes and returns the copy of key, or, if a fetch of it is in
// flight, a channel closed when it is done.
func (cs *copies) take(k devIno) (*fileCopy, <-chan struct{}) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.trimLocked()
	if c := cs.byKey[k]; c != nil {
		cs.removeLocked(c)
		return c, nil
	}
	return nil, cs.pending[k]
}

// drop forgets the copy of key, if any: the file changed through the
// mount.
func (cs *copies) drop(k devIno) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c := cs.byKey[k]; c != nil {
		cs.removeLocked(c)
	}
}

func (cs *copies) removeLocked(c *fileCopy) {
	delete(cs.byKey, c.key)
	cs.fifo.Remove(c.elem)
	cs.bytes -= len(c.data) + copyOverhead
}

// trimLocked drops the copies too old to serve, and the oldest while they
// hold more than copyBytes.
func (cs *copies) trimLocked() {
	for cs.fifo.Len() > 0 {
		c := cs.fifo.Front().Value.(*fileCopy)
		if cs.bytes <= copyBytes && time.Since(c.at) < cs.ttl {
			break
		}
		cs.removeLocked(c)
	}
}

// put keeps the files of a fetch started at at, and ends the fetch of
// keys.
func (cs *copies) put(files []rpc.FileData, at time.Time, keys []devIno) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := range files {
		fd := &files[i]
		k := devIno{fd.Attr.Dev, fd.Attr.Ino}
		if old := cs.byKey[k]; old != nil {
			cs.removeLocked(old)
		}
		c := &fileCopy{key: k, attr: fd.Attr, data: fd.Data, at: at}
		if c.data == nil {
			c.data = []byte{} // a copy has data, if none
		}
		c.elem = cs.fifo.PushBack(c)
		cs.byKey[k] = c
		cs.bytes += len(c.data) + copyOverhead
	}
	cs.trimLocked()
	var done chan struct{}
	for _, k := range keys {
		if ch := cs.pending[k]; ch != nil {
			done = ch
			delete(cs.pending, k)
		}
	}
	if done != nil {
		close(done)
	}
}

// openCopy opens f read-only from a copy of its data, fetching one if that
// is due, or returns nil: the open then goes to the target.
func (f *file) openCopy(ctx context.Context, flags fuse.OpenFlags, resp *fuse.OpenResponse) *handle {
	f.fs.mu.Lock()
	key, a := devIno{f.attr.Dev, f.attr.Ino}, f.attr
	f.fs.mu.Unlock()
	if !smallFile(&a) {
		return nil
	}
	c, wait := f.fs.copies.take(key)
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		}
		c, _ = f.fs.copies.take(key)
	}
	if c == nil && wait == nil {
		c = f.fetch(ctx, key, a.Size)
	}
	if c == nil {
		return nil
	}
	return f.useCopy(c, flags, resp)
}

// fetch fetches copies of f and of the files after it in its directory's
// listing, if that is due, and returns f's.
func (f *file) fetch(ctx context.Context, key devIno, size int64) *fileCopy {
	done := make(chan struct{})
	f.fs.mu.Lock()
	var d *dir
	var dirPath string
	var names []string
	var keys []devIno
	if len(f.links) > 0 {
		d = f.links[0].parent
		if dirPath = d.pathLocked(); dirPath != "" {
			names, keys = d.planLocked(f.links[0].name, key, size, done)
		}
	}
	f.fs.mu.Unlock()
	if names == nil {
		return nil
	}
	at := time.Now()
	var r rpc.ReadFilesReply
	err := f.fs.c.Call(ctx, rpc.OpReadFiles, &rpc.ReadFilesArgs{Dir: dirPath, Names: names, MaxFile: rpc.MaxInline, MaxTotal: rpc.MaxReadFiles}, &r)
	if err != nil {
		r.Files = nil
	}
	f.fs.copies.put(r.Files, at, keys)
	c, _ := f.fs.copies.take(key)
	return c
}

// useCopy opens f from c if c may serve (see the top of this file), or
// returns nil.
func (f *file) useCopy(c *fileCopy, flags fuse.OpenFlags, resp *fuse.OpenResponse) *handle {
	if f.writing() {
		return nil
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if time.Since(c.at) >= f.fs.opts.AttrTimeout || !f.wroteAt.Before(c.at) || !f.changedAt.Before(c.at) {
		return nil
	}
	a, at := c.attr, c.at
	if f.attrAt.After(c.at) {
		if !sameData(&f.attr, &c.attr) {
			return nil
		}
		a, at = f.attr, f.attrAt
	}
	h := &handle{f: f, data: c.data, dataAt: c.at}
	f.registerLocked(h, &a, at, resp)
	directIfEmpty(flags, &a, resp)
	return h
}

// sameData tells whether attributes a and b, of one file, show the same
// data.
func sameData(a, b *rpc.Attr) bool {
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size && a.Mtime == b.Mtime && a.Ctime == b.Ctime
}
