package satellite

import (
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// A watcher reports, with inotify, the changes made in the directories the
// client has looked at, so that the client can trust what it has for long
// and still show a change within milliseconds. Directories are watched from
// the first lstat or listing that reaches them until they are removed; a
// watch covers the directory's entries and their attributes, and the
// directory itself.
//
// What inotify does not see is not claimed: a directory on a filesystem
// whose changes do not pass through this kernel's VFS (procfs, sysfs,
// network and FUSE filesystems) is never watched, nor any beyond
// maxWatches, and the client falls back to its short timeouts there.
type watcher struct {
	fd   int
	f    *os.File // fd, read through the runtime's poller so that close ends run
	send func(*rpc.Notify) error

	mu   sync.Mutex
	seq  uint64 // of the last event sent; samples are taken from it
	wds  map[int32]devIno
	dirs map[devIno]int32
	fsOK map[uint64]bool // by device: whether inotify sees its changes
	own  map[ownKey]*expectation
}

// ownKey is an event the satellite is about to cause: one inotify mask
// bit about name in a directory.
type ownKey struct {
	dir  devIno
	name string
	bit  uint32
}

// expectation is the satellite's own changes of one ownKey in progress or
// just made: want counts the events still to come for them, pending the
// changes not done yet. The events matched while a change is pending are
// kept: if the change then fails, they were someone else's, and are sent
// again unmarked.
type expectation struct {
	want     int
	pending  int
	at       time.Time
	consumed []rpc.Event
}

// ownTTL bounds how long an announced change waits for its event: the
// event is queued by the time the change returns, so one not matched by
// then was merged with an earlier one.
const ownTTL = 2 * time.Second

type devIno struct{ dev, ino uint64 }

// maxWatches bounds the directories one satellite watches: about 150 bytes
// of its memory and 1 KiB of the kernel's each.
const maxWatches = 16384

const watchMask = unix.IN_ATTRIB | unix.IN_MODIFY | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// newWatcher starts a watcher sending its events with send.
func newWatcher(send func(*rpc.Notify) error) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w := &watcher{
		fd:   fd,
		f:    os.NewFile(uintptr(fd), "inotify"),
		send: send,
		// Sample 0 means "not watched": start above it.
		seq:  1,
		wds:  make(map[int32]devIno),
		dirs: make(map[devIno]int32),
		fsOK: make(map[uint64]bool),
		own:  make(map[ownKey]*expectation),
	}
	go w.run()
	return w, nil
}

// watch starts watching directory p if it is not watched yet, and returns
// the sample for attributes read from now on with p's status read after
// it, or 0 if p cannot be watched (not a directory, a filesystem inotify
// does not see, the limit). A nil watcher watches nothing.
func (w *watcher) watch(p string) (uint64, *unix.Stat_t) {
	if w == nil {
		return 0, nil
	}
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return 0, nil
	}
	return w.watchStat(p, &st)
}

// watchStat is watch for a p whose status, st, the caller just read.
func (w *watcher) watchStat(p string, st *unix.Stat_t) (uint64, *unix.Stat_t) {
	if w == nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, nil
	}
	k := devIno{st.Dev, st.Ino}
	w.mu.Lock()
	_, watched := w.dirs[k]
	sample := w.seq
	ok, known := w.fsOK[k.dev]
	full := len(w.dirs) >= maxWatches
	w.mu.Unlock()
	if !watched {
		if full {
			return 0, nil
		}
		if !known {
			ok = seenByInotify(p)
			w.mu.Lock()
			w.fsOK[k.dev] = ok
			w.mu.Unlock()
		}
		if !ok {
			return 0, nil
		}
		wd, err := unix.InotifyAddWatch(w.fd, p, watchMask)
		if err != nil {
			return 0, nil
		}
		w.mu.Lock()
		if old, ok := w.wds[int32(wd)]; ok && old != k {
			// The descriptor of a watch whose removal is not read
			// yet, or p replaced since the lstat: checked below.
			delete(w.dirs, old)
		}
		w.wds[int32(wd)] = k
		w.dirs[k] = int32(wd)
		sample = w.seq
		w.mu.Unlock()
	}
	// Read the status under the watch. The watch is on whatever p named
	// when it was added: make sure that is still the directory looked at.
	var again unix.Stat_t
	if unix.Lstat(p, &again) != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		return 0, nil
	}
	return sample, &again
}

// change is a change of the satellite's own about to be made, announced
// with expect.
type change struct {
	w    *watcher
	keys []ownKey
}

// expect announces that the caller is about to cause the event bit (an
// inotify mask bit) about name in directory dir. Call done on the result
// once the change is made or failed. Nothing is announced for a directory
// that is not watched.
func (w *watcher) expect(dir, name string, bit uint32) *change {
	if w == nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Lstat(dir, &st) != nil {
		return nil
	}
	key := ownKey{devIno{st.Dev, st.Ino}, name, bit}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.dirs[key.dir]; !ok {
		return nil
	}
	e := w.own[key]
	if e == nil {
		e = &expectation{}
		w.own[key] = e
	}
	e.want++
	e.pending++
	e.at = time.Now()
	return &change{w: w, keys: []ownKey{key}}
}

// also announces another event of the same change.
func (c *change) also(dir, name string, bit uint32) *change {
	if c == nil {
		return nil
	}
	if more := c.w.expect(dir, name, bit); more != nil {
		c.keys = append(c.keys, more.keys...)
	}
	return c
}

// done ends the announcement. If the change failed, the events matched
// meanwhile were not its own: they are sent again as they are; if none
// was, the event it announced is no longer waited for.
func (c *change) done(ok bool) {
	if c == nil {
		return
	}
	w := c.w
	w.mu.Lock()
	var resend []rpc.Event
	for _, key := range c.keys {
		e := w.own[key]
		if e == nil {
			continue
		}
		e.pending--
		if !ok {
			if len(e.consumed) == 0 {
				e.want--
			}
			for _, ev := range e.consumed {
				w.seq++
				ev.Seq, ev.Own = w.seq, false
				resend = append(resend, ev)
			}
			e.consumed = nil
		}
		if e.pending == 0 {
			e.consumed = nil
		}
		w.settleLocked(key, e)
	}
	w.mu.Unlock()
	if len(resend) > 0 {
		w.send(&rpc.Notify{Events: resend})
	}
}

// settleLocked forgets e once it waits for nothing.
func (w *watcher) settleLocked(key ownKey, e *expectation) {
	if e.want <= 0 && e.pending <= 0 {
		delete(w.own, key)
	}
}

// ownLocked tells whether a raw event (of mask) is the satellite's own,
// and counts it off.
func (w *watcher) ownLocked(dir devIno, name string, mask uint32, ev rpc.Event) bool {
	bit := mask & (unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO)
	if bit == 0 {
		return false
	}
	key := ownKey{dir, name, bit}
	e := w.own[key]
	if e == nil || e.want <= 0 {
		return false
	}
	if e.pending == 0 && time.Since(e.at) > ownTTL {
		// Its event was merged with an earlier one and never came.
		delete(w.own, key)
		return false
	}
	e.want--
	if e.pending > 0 {
		e.consumed = append(e.consumed, ev)
	}
	w.settleLocked(key, e)
	return true
}

// seenByInotify tells whether the filesystem holding p reports its changes
// to inotify: pseudo filesystems and network ones change without this
// kernel's VFS seeing it.
func seenByInotify(p string) bool {
	var fs unix.Statfs_t
	if unix.Statfs(p, &fs) != nil {
		return false
	}
	return !pseudoFS(uint32(fs.Type)) && !remoteFS(uint32(fs.Type))
}

// notifyDelay spaces the messages of a burst of events. The first event
// after a quiet spell is sent at once; the events that follow it within
// notifyDelay are gathered and sent together once it has passed, and so
// on while they keep coming. A change made through the mount reports
// several (a file made and written: its making, and its writing), and a
// program making files one after another makes about one a millisecond:
// each message spared is a wake-up of the engine's shim, of the engine and
// of the client, on the CPUs the changes themselves run on. Over 1,000
// files made through the mount, 2 ms (a message for every two files) took
// 5-9% off the time of one for each event, and 20 ms (one for every
// twenty) took a sixth off the engine's and its shim's CPU of 2 ms. A
// change in a burst shows 20 ms late at most; the second within which it
// must show is far off.
const notifyDelay = 20 * time.Millisecond

// run reads events until the descriptor fails, and sends them in batches
// (see notifyDelay), repeats merged.
func (w *watcher) run() {
	buf := make([]byte, 64<<10)
	var sent time.Time
	for {
		n, err := w.f.Read(buf)
		if err != nil || n <= 0 {
			return
		}
		if wait := notifyDelay - time.Since(sent); wait > 0 && n < len(buf)/2 {
			time.Sleep(wait)
			// What came meanwhile, without waiting for more: the
			// descriptor is non-blocking.
			if k, err := unix.Read(w.fd, buf[n:]); err == nil && k > 0 {
				n += k
			}
		}
		sent = time.Now()
		m := w.events(buf[:n])
		if len(m.Events) > 0 && w.send(m) != nil {
			return
		}
	}
}

// events turns one read of raw events into a Notify, numbering them.
func (w *watcher) events(b []byte) *rpc.Notify {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := &rpc.Notify{}
	type key struct {
		dir  devIno
		name string
	}
	at := make(map[key]int)
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			break
		}
		name := b[unix.SizeofInotifyEvent:end]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		b = b[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			w.seq++
			m.Events = append(m.Events, rpc.Event{Seq: w.seq, Mask: rpc.EventAttr | rpc.EventData | rpc.EventEntry})
			continue
		}
		dir, ok := w.wds[ev.Wd]
		if !ok {
			continue
		}
		var mask rpc.EventMask = rpc.EventAttr
		if ev.Mask&unix.IN_MODIFY != 0 {
			mask |= rpc.EventData
		}
		if ev.Mask&(unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
			mask |= rpc.EventEntry
		}
		if ev.Mask&unix.IN_IGNORED != 0 {
			// The directory is gone (or its filesystem): what was
			// known through it is no longer watched.
			delete(w.wds, ev.Wd)
			if w.dirs[dir] == ev.Wd {
				delete(w.dirs, dir)
			}
			name = nil
		}
		w.seq++
		k := key{dir, string(name)}
		out := rpc.Event{Seq: w.seq, Dev: dir.dev, Ino: dir.ino, Name: k.name, Mask: mask}
		out.Own = w.ownLocked(dir, k.name, ev.Mask, out)
		// Events about one name merge, but only with events alike in
		// whose they are: a file made for the client and written in the
		// same call (rpc.OpenArgs.Data) reports its making as its own,
		// so that the kernel keeps the name, and its writing as not.
		if i, ok := at[k]; ok && m.Events[i].Own == out.Own {
			e := &m.Events[i]
			e.Seq, e.Mask = w.seq, e.Mask|mask
			continue
		}
		at[k] = len(m.Events)
		m.Events = append(m.Events, out)
	}
	return m
}

// close stops the watcher.
func (w *watcher) close() {
	if w != nil {
		w.f.Close()
	}
}

// parent is the directory holding p; the root is its own.
func parent(p string) string { return filepath.Dir(p) }
