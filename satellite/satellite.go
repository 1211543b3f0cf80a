// Package satellite serves a directory tree of the machine it runs on over
// the rpc protocol. It is the server half of dockerfuse: a static binary
// copied into the target container and started there with docker exec,
// reading requests from stdin and writing replies to stdout.
//
// A Server is safe for concurrent use: rpc.Serve calls it from one
// goroutine per request. Handles stay valid until closed or until the
// Server is closed. Nothing is logged about file contents.
package satellite

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Config says what a Server serves.
type Config struct {
	// Root is the directory that request paths are relative to. Paths are
	// cleaned lexically, so ".." never leaves it; Confine also makes the
	// kernel keep symlinks inside it.
	Root string
}

// Server implements rpc.Handler on the local filesystem.
type Server struct {
	root string

	mu    sync.Mutex
	next  uint64
	files map[uint64]*os.File
	dirs  map[uint64]*os.File
	// dirWatch is the sample of a listing continued through a handle
	// of dirs: its later entries were read under the same watch.
	dirWatch map[uint64]uint64
	send     func(*rpc.Notify) error
	// watch is nil unless the client asked for reports; every request
	// reads it, without taking mu.
	watch atomic.Pointer[watcher]
}

var _ rpc.Handler = (*Server)(nil)

// New returns a server for cfg.
func New(cfg Config) *Server {
	root := cfg.Root
	if root == "" {
		root = "/"
	}
	return &Server{
		// Handles start at a random point so that a handle of an earlier
		// session can never name a file of this one.
		next:     rand.Uint64() >> 1,
		root:     filepath.Clean(root),
		files:    make(map[uint64]*os.File),
		dirs:     make(map[uint64]*os.File),
		dirWatch: make(map[uint64]uint64),
	}
}

var _ rpc.Notifier = (*Server)(nil)

// Notify implements rpc.Notifier: the server reports changes through send
// once a client asks for it in Hello.
func (s *Server) Notify(send func(*rpc.Notify) error) {
	s.mu.Lock()
	s.send = send
	s.mu.Unlock()
}

// Shutdown closes every handle still open.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, f := range s.files {
		f.Close()
		delete(s.files, id)
	}
	for id, f := range s.dirs {
		f.Close()
		delete(s.dirs, id)
	}
	s.watch.Swap(nil).close()
}

// watcher returns the session's watcher, nil if changes are not reported.
func (s *Server) watcher() *watcher {
	return s.watch.Load()
}

// path maps a request path to a local one. Cleaning it as an absolute path
// first drops any ".." that would climb above the root.
func (s *Server) path(p string) string {
	return filepath.Join(s.root, filepath.Clean("/"+p))
}

func (s *Server) add(m map[uint64]*os.File, f *os.File) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	m[s.next] = f
	return s.next
}

func (s *Server) file(h uint64) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[h]
	if f == nil {
		return nil, syscall.EBADF
	}
	return f, nil
}

func (s *Server) Hello(a *rpc.HelloArgs) (*rpc.HelloReply, error) {
	s.mu.Lock()
	if a.Watch && s.watch.Load() == nil && s.send != nil {
		// Without inotify (a seccomp profile may forbid it) the client
		// is told, and keeps its short timeouts.
		if w, err := newWatcher(s.send); err == nil {
			s.watch.Store(w)
		}
	}
	watching := s.watch.Load() != nil
	s.mu.Unlock()
	return &rpc.HelloReply{
		Watch:   watching,
		Version: rpc.Version,
		Pid:     os.Getpid(),
		Uid:     os.Getuid(),
		Arch:    runtime.GOARCH,
		Root:    s.root,
	}, nil
}

// Lstat also starts watching the directory holding the file, and the file
// itself if it is a directory, so that the attributes can be trusted until
// an event says otherwise (see rpc.Attr.Watch).
func (s *Server) Lstat(a *rpc.PathArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	w := s.watcher()
	var sample uint64
	if p != s.root {
		sample, _ = w.watch(parent(p))
	}
	attr, err := lstat(p)
	if err != nil || w == nil || sample == 0 && p != s.root {
		return attr, err
	}
	if attr.Mode&unix.S_IFMT == unix.S_IFDIR {
		// A directory's own changes (its entries, its mtime) are seen
		// by its own watch: its status is read again under it.
		dirSample, st := w.watch(p)
		if dirSample == 0 {
			return attr, nil
		}
		attr = toAttr(st)
		attr.Xattr = xattrState(p)
		sample = dirSample
	}
	attr.Watch = sample
	return attr, nil
}

func lstat(p string) (*rpc.Attr, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, err
	}
	a := toAttr(&st)
	a.Xattr = xattrState(p)
	return a, nil
}

// xattrState tells whether the file at p has extended attributes. An
// error (no xattr support, a race with removal) leaves it unknown.
func xattrState(p string) rpc.XattrState {
	n, err := unix.Llistxattr(p, nil)
	switch {
	case err != nil:
		return rpc.XattrUnknown
	case n == 0:
		return rpc.XattrNone
	}
	return rpc.XattrSome
}

// fxattrState is xattrState for an open file.
func fxattrState(f *os.File) rpc.XattrState {
	rc, err := f.SyscallConn()
	if err != nil {
		return rpc.XattrUnknown
	}
	var n int
	var lerr error
	if err := rc.Control(func(fd uintptr) { n, lerr = unix.Flistxattr(int(fd), nil) }); err != nil || lerr != nil {
		return rpc.XattrUnknown
	}
	if n == 0 {
		return rpc.XattrNone
	}
	return rpc.XattrSome
}

func toAttr(st *unix.Stat_t) *rpc.Attr {
	var a rpc.Attr
	fillAttr(&a, st)
	return &a
}

func fillAttr(a *rpc.Attr, st *unix.Stat_t) {
	*a = rpc.Attr{
		Dev:     uint64(st.Dev),
		Ino:     st.Ino,
		Mode:    st.Mode,
		Nlink:   uint32(st.Nlink),
		Uid:     st.Uid,
		Gid:     st.Gid,
		Rdev:    uint64(st.Rdev),
		Size:    st.Size,
		Blocks:  st.Blocks,
		Blksize: int32(st.Blksize),
		Atime:   st.Atim.Nano(),
		Mtime:   st.Mtim.Nano(),
		Ctime:   st.Ctim.Nano(),
	}
}

// ReadDir watches the directory (see Lstat) before listing it. Entries that
// are directories are watched only if they were before: their own contents
// change their attributes.
func (s *Server) ReadDir(a *rpc.ReadDirArgs) (*rpc.ReadDirReply, error) {
	var d *os.File
	var sample uint64
	if a.Handle != 0 {
		s.mu.Lock()
		d = s.dirs[a.Handle]
		sample = s.dirWatch[a.Handle]
		delete(s.dirs, a.Handle)
		delete(s.dirWatch, a.Handle)
		s.mu.Unlock()
		if d == nil {
			return nil, syscall.EBADF
		}
	} else {
		p := s.path(a.Path)
		sample, _ = s.watcher().watch(p)
		var err error
		if d, err = os.Open(p); err != nil {
			return nil, err
		}
	}
	names, err := d.Readdirnames(rpc.MaxDirEntries)
	if err != nil && len(names) == 0 {
		d.Close()
		if errors.Is(err, io.EOF) {
			return &rpc.ReadDirReply{Watch: sample}, nil
		}
		return nil, err
	}
	r := &rpc.ReadDirReply{Entries: make([]rpc.DirEntry, 0, len(names)), Watch: sample}
	w := s.watcher()
	fd := int(d.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue // removed since it was listed
		}
		r.Entries = append(r.Entries, rpc.DirEntry{Name: name})
		a := &r.Entries[len(r.Entries)-1].Attr
		p := filepath.Join(d.Name(), name)
		watch := sample
		if sample != 0 && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// Watched too, so that the walk of a tree (ls -lR)
			// finds its directories' attributes trusted the
			// second time; read again under the watch.
			var wst *unix.Stat_t
			if watch, wst = w.watchStat(p, &st); wst != nil {
				st = *wst
			}
		}
		fillAttr(a, &st)
		a.Xattr = xattrState(p)
		a.Watch = watch
	}
	if len(names) < rpc.MaxDirEntries {
		d.Close()
	} else {
		r.Handle = s.add(s.dirs, d)
		if sample != 0 {
			s.mu.Lock()
			s.dirWatch[r.Handle] = sample
			s.mu.Unlock()
		}
	}
	return r, nil
}

// openFlags are the open(2) flags passed through; the others either make no
// sense remotely (O_NOCTTY) or would fail for reasons the caller cannot see
// (O_DIRECT alignment, O_NOATIME ownership).
const openFlags = unix.O_ACCMODE | unix.O_APPEND | unix.O_TRUNC | unix.O_CREAT |
	unix.O_EXCL | unix.O_SYNC | unix.O_DSYNC | unix.O_NONBLOCK

func (s *Server) Open(a *rpc.OpenArgs) (*rpc.OpenReply, error) {
	// The kernel resolves symlinks on the host; following one here could
	// leave the root.
	flags := a.Flags&openFlags | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if len(a.Data) > rpc.MaxData || len(a.Data) > 0 && flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, syscall.EINVAL
	}
	p := s.path(a.Path)
	created := false
	var f *os.File
	var err error
	if flags&unix.O_CREAT != 0 {
		// Create exclusively first, to know whether this call made the
		// file and so whether to give it to the caller.
		// A file removed between the two opens is created again.
		c := s.expect(p, unix.IN_CREATE)
		defer func() { c.done(created) }()
		for range 3 {
			f, err = openFile(p, flags|unix.O_EXCL, a.Mode&0o777)
			created = err == nil
			if !errors.Is(err, os.ErrExist) || flags&unix.O_EXCL != 0 {
				break
			}
			if f, err = openFile(p, flags&^unix.O_CREAT, 0); !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
	} else {
		f, err = openFile(p, flags, 0)
	}
	if err != nil {
		return nil, err
	}
	if created {
		if err := s.own(p, a.Owner, func(uid, gid int) error { return f.Chown(uid, gid) }); err != nil {
			f.Close()
			return nil, err
		}
		if a.Mode&0o7000 != 0 {
			// The file was made with the permission bits only, and
			// chown clears setuid and setgid: set those bits last.
			f.Chmod(os.FileMode(a.Mode&0o777) | goModeBits(a.Mode))
		}
	}
	if len(a.Data) > 0 {
		if _, err := writeAt(f, a.Data, 0); err != nil {
			f.Close()
			return nil, err
		}
	}
	r := &rpc.OpenReply{}
	if flags&unix.O_CREAT != 0 {
		s.dirAttr(parent(p), &r.Dir)
	}
	var st unix.Stat_t
	if err := fstat(f, &st); err != nil {
		f.Close()
		return nil, err
	}
	fillAttr(&r.Attr, &st)
	// The kernel asks for security.capability before the first write to
	// a file: say whether it has any xattrs, so that it needs no call.
	r.Attr.Xattr = fxattrState(f)
	if a.Inline > 0 && a.Flags&(unix.O_ACCMODE|unix.O_TRUNC) == unix.O_RDONLY &&
		st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size < int64(min(a.Inline, rpc.MaxInline)) {
		inline(f, r, st.Size)
	}
	r.Handle = s.add(s.files, f)
	return r, nil
}

// openFile is os.OpenFile without handing the descriptor to the runtime's
// poller, which costs three system calls per open that a regular file
// refuses anyway; a fifo's reads then wait in a thread of their own.
func openFile(p string, flags int, mode uint32) (*os.File, error) {
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// inline reads the whole of a small file into r. It reads one byte more
// than the size to see the end; a file that grew meanwhile, or a failed
// read, sends no data.
func inline(f *os.File, r *rpc.OpenReply, size int64) {
	buf := readPool.Get().(*[]byte)
	b := (*buf)[:size+1]
	n, err := readAt(f, b, 0)
	if err != nil || n == len(b) {
		readPool.Put(buf)
		return
	}
	r.Data, r.Whole = b[:n], true
	r.Done = func() { readPool.Put(buf) }
}

// own gives the file just created at p to o, as the target's kernel would
// have had o created it: its uid, and its gid unless the directory is
// setgid (then the file keeps the directory's group, already set). Only a
// satellite running as root can, and needs to.
func (s *Server) own(p string, o rpc.Owner, chown func(uid, gid int) error) error {
	if o == (rpc.Owner{}) || os.Geteuid() != 0 {
		return nil
	}
	gid := int(o.Gid)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Dir(p), &st); err == nil && st.Mode&unix.S_ISGID != 0 {
		gid = -1
	}
	if err := chown(int(o.Uid), gid); err != nil {
		os.Remove(p)
		return err
	}
	return nil
}

func goModeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

func fstat(f *os.File, st *unix.Stat_t) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), st) }); err != nil {
		return err
	}
	return serr
}

// Close closes a.Handle and every handle in a.More, and reports the first
// failure.
func (s *Server) Close(a *rpc.HandleArgs) (*rpc.Empty, error) {
	err := s.close(a.Handle)
	for _, h := range a.More {
		if e := s.close(h); err == nil {
			err = e
		}
	}
	if err != nil {
		return nil, err
	}
	return &rpc.Empty{}, nil
}

func (s *Server) close(h uint64) error {
	s.mu.Lock()
	f := s.files[h]
	delete(s.files, h)
	if f == nil {
		f = s.dirs[h]
		delete(s.dirs, h)
		delete(s.dirWatch, h)
	}
	s.mu.Unlock()
	if f == nil {
		return syscall.EBADF
	}
	return f.Close()
}

func (s *Server) Fsync(a *rpc.FsyncArgs) (*rpc.Empty, error) {
	if a.Handle == 0 {
		f, err := os.Open(s.path(a.Path))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return &rpc.Empty{}, f.Sync()
	}
	f, err := s.file(a.Handle)
	if err != nil {
		return nil, err
	}
	return &rpc.Empty{}, f.Sync()
}

func (s *Server) Fstat(a *rpc.HandleArgs) (*rpc.Attr, error) {
	f, err := s.file(a.Handle)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := fstat(f, &st); err != nil {
		return nil, err
	}
	return toAttr(&st), nil
}

// expect announces a change of the entry p about to be made for the
// client (see watcher.expect), so that its event reaches the client marked
// as its own: the kernel saw the change go through it, and need not be
// told to forget the name.
func (s *Server) expect(p string, bits uint32) *change {
	return s.watcher().expect(parent(p), filepath.Base(p), bits)
}

func (s *Server) Rmdir(a *rpc.PathArgs) (*rpc.Empty, error) {
	p := s.path(a.Path)
	c := s.expect(p, unix.IN_DELETE)
	err := unix.Rmdir(p)
	c.done(err == nil)
	return &rpc.Empty{}, err
}

func (s *Server) Unlink(a *rpc.PathArgs) (*rpc.Empty, error) {
	p := s.path(a.Path)
	c := s.expect(p, unix.IN_DELETE)
	err := unix.Unlink(p)
	c.done(err == nil)
	return &rpc.Empty{}, err
}

func (s *Server) Rename(a *rpc.RenameArgs) (*rpc.Empty, error) {
	oldPath, newPath := s.path(a.Old), s.path(a.New)
	c := s.expect(oldPath, unix.IN_MOVED_FROM).also(parent(newPath), filepath.Base(newPath), unix.IN_MOVED_TO)
	err := unix.Renameat2(unix.AT_FDCWD, oldPath, unix.AT_FDCWD, newPath, uint(a.Flags))
	c.done(err == nil)
	return &rpc.Empty{}, err
}

func (s *Server) Mkdir(a *rpc.MkdirArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	c := s.expect(p, unix.IN_CREATE)
	err := unix.Mkdir(p, a.Mode&0o7777)
	c.done(err == nil)
	if err != nil {
		return nil, err
	}
	if err := s.own(p, a.Owner, func(uid, gid int) error { return unix.Lchown(p, uid, gid) }); err != nil {
		return nil, err
	}
	sample, _ := s.watcher().watch(p)
	attr, err := lstat(p)
	if err != nil || sample == 0 {
		return attr, err
	}
	// Watched from sample on, and empty after it: the client may take it
	// as an empty listing (see rpc.Attr.Watch).
	if empty, err := isEmpty(p); err == nil && empty {
		attr.Watch = sample
	}
	return attr, nil
}

// isEmpty tells whether directory p has no entries.
func isEmpty(p string) (bool, error) {
	d, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// dirAttr reads the attributes of directory p into a, under its watch
// if there is one; it leaves a zero if p cannot be read.
func (s *Server) dirAttr(p string, a *rpc.Attr) {
	if sample, st := s.watcher().watch(p); st != nil {
		fillAttr(a, st)
		a.Watch = sample
		return
	}
	var st unix.Stat_t
	if unix.Lstat(p, &st) == nil {
		fillAttr(a, &st)
	}
}

func (s *Server) Mknod(a *rpc.MkdirArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	c := s.expect(p, unix.IN_CREATE)
	err := unix.Mknod(p, a.Mode, int(a.Dev))
	c.done(err == nil)
	if err != nil {
		return nil, err
	}
	if err := s.own(p, a.Owner, func(uid, gid int) error { return unix.Lchown(p, uid, gid) }); err != nil {
		return nil, err
	}
	if a.Mode&0o6000 != 0 {
		unix.Chmod(p, a.Mode&0o7777)
	}
	return lstat(p)
}

func (s *Server) Symlink(a *rpc.SymlinkArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	c := s.expect(p, unix.IN_CREATE)
	err := unix.Symlink(a.Target, p)
	c.done(err == nil)
	if err != nil {
		return nil, err
	}
	if err := s.own(p, a.Owner, func(uid, gid int) error { return unix.Lchown(p, uid, gid) }); err != nil {
		return nil, err
	}
	return lstat(p)
}

func (s *Server) Readlink(a *rpc.PathArgs) (*rpc.ReadlinkReply, error) {
	t, err := os.Readlink(s.path(a.Path))
	if err != nil {
		return nil, err
	}
	return &rpc.ReadlinkReply{Target: t}, nil
}

func (s *Server) Link(a *rpc.LinkArgs) (*rpc.Attr, error) {
	p := s.path(a.New)
	c := s.expect(p, unix.IN_CREATE)
	err := unix.Linkat(unix.AT_FDCWD, s.path(a.Old), unix.AT_FDCWD, p, 0)
	c.done(err == nil)
	if err != nil {
		return nil, err
	}
	return lstat(p)
}

func (s *Server) Statfs(a *rpc.PathArgs) (*rpc.StatfsReply, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.path(a.Path), &st); err != nil {
		return nil, err
	}
	return &rpc.StatfsReply{
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Bsize:   uint32(st.Bsize),
		Namelen: uint32(st.Namelen),
		Frsize:  uint32(st.Frsize),
	}, nil
}
