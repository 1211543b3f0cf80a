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
		next:  rand.Uint64() >> 1,
		root:  filepath.Clean(root),
		files: make(map[uint64]*os.File),
		dirs:  make(map[uint64]*os.File),
	}
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
	return &rpc.HelloReply{
		Version: rpc.Version,
		Pid:     os.Getpid(),
		Uid:     os.Getuid(),
		Arch:    runtime.GOARCH,
		Root:    s.root,
	}, nil
}

func (s *Server) Lstat(a *rpc.PathArgs) (*rpc.Attr, error) {
	return lstat(s.path(a.Path))
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

func (s *Server) ReadDir(a *rpc.ReadDirArgs) (*rpc.ReadDirReply, error) {
	var d *os.File
	if a.Handle != 0 {
		s.mu.Lock()
		d = s.dirs[a.Handle]
		delete(s.dirs, a.Handle)
		s.mu.Unlock()
		if d == nil {
			return nil, syscall.EBADF
		}
	} else {
		var err error
		if d, err = os.Open(s.path(a.Path)); err != nil {
			return nil, err
		}
	}
	names, err := d.Readdirnames(rpc.MaxDirEntries)
	if err != nil && len(names) == 0 {
		d.Close()
		if errors.Is(err, io.EOF) {
			return &rpc.ReadDirReply{}, nil
		}
		return nil, err
	}
	r := &rpc.ReadDirReply{Entries: make([]rpc.DirEntry, 0, len(names))}
	fd := int(d.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue // removed since it was listed
		}
		r.Entries = append(r.Entries, rpc.DirEntry{Name: name})
		a := &r.Entries[len(r.Entries)-1].Attr
		fillAttr(a, &st)
		a.Xattr = xattrState(filepath.Join(d.Name(), name))
	}
	if len(names) < rpc.MaxDirEntries {
		d.Close()
	} else {
		r.Handle = s.add(s.dirs, d)
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
	p := s.path(a.Path)
	created := false
	var f *os.File
	var err error
	if flags&unix.O_CREAT != 0 {
		// Create exclusively first, to know whether this call made the
		// file and so whether to give it to the caller.
		// A file removed between the two opens is created again.
		for range 3 {
			f, err = os.OpenFile(p, flags|unix.O_EXCL, os.FileMode(a.Mode&0o777))
			created = err == nil
			if !errors.Is(err, os.ErrExist) || flags&unix.O_EXCL != 0 {
				break
			}
			if f, err = os.OpenFile(p, flags&^unix.O_CREAT, 0); !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
	} else {
		f, err = os.OpenFile(p, flags, 0)
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
			// os.OpenFile drops setuid, setgid and sticky bits, and
			// chown clears the first two: set them last.
			f.Chmod(os.FileMode(a.Mode&0o777) | goModeBits(a.Mode))
		}
	}
	r := &rpc.OpenReply{}
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

func (s *Server) Rmdir(a *rpc.PathArgs) (*rpc.Empty, error) {
	return &rpc.Empty{}, unix.Rmdir(s.path(a.Path))
}

func (s *Server) Unlink(a *rpc.PathArgs) (*rpc.Empty, error) {
	return &rpc.Empty{}, unix.Unlink(s.path(a.Path))
}

func (s *Server) Rename(a *rpc.RenameArgs) (*rpc.Empty, error) {
	return &rpc.Empty{}, unix.Renameat2(unix.AT_FDCWD, s.path(a.Old), unix.AT_FDCWD, s.path(a.New), uint(a.Flags))
}

func (s *Server) Mkdir(a *rpc.MkdirArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	if err := unix.Mkdir(p, a.Mode&0o7777); err != nil {
		return nil, err
	}
	if err := s.own(p, a.Owner, func(uid, gid int) error { return unix.Lchown(p, uid, gid) }); err != nil {
		return nil, err
	}
	return lstat(p)
}

func (s *Server) Mknod(a *rpc.MkdirArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	if err := unix.Mknod(p, a.Mode, int(a.Dev)); err != nil {
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
	if err := unix.Symlink(a.Target, p); err != nil {
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
	if err := unix.Linkat(unix.AT_FDCWD, s.path(a.Old), unix.AT_FDCWD, p, 0); err != nil {
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
