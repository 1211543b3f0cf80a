package satellite

import (
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

var readPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func (s *Server) Read(a *rpc.ReadArgs) (*rpc.ReadReply, error) {
	f, err := s.file(a.Handle)
	if err != nil {
		return nil, err
	}
	if a.Size < 0 || a.Size > rpc.MaxData || a.Off < 0 {
		return nil, syscall.EINVAL
	}
	buf := readPool.Get().(*[]byte)
	if cap(*buf) < a.Size {
		*buf = make([]byte, a.Size)
	}
	b := (*buf)[:a.Size]
	n, err := readAt(f, b, a.Off)
	if err != nil {
		readPool.Put(buf)
		return nil, err
	}
	return &rpc.ReadReply{Data: b[:n], Done: func() { readPool.Put(buf) }}, nil
}

// readAt fills b from off, or reads once from a stream (fifo, socket,
// device), for which the offset means nothing. A short result means end of
// file.
func readAt(f *os.File, b []byte, off int64) (int, error) {
	n, err := f.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	if err == syscall.ESPIPE || isErrno(err, syscall.ESPIPE) {
		n, err = f.Read(b)
		if err == io.EOF {
			err = nil
		}
	}
	return n, err
}

func isErrno(err error, want syscall.Errno) bool {
	return rpc.Errno(err) == want
}

func (s *Server) Write(a *rpc.WriteArgs) (*rpc.WriteReply, error) {
	f, err := s.file(a.Handle)
	if err != nil {
		return nil, err
	}
	if a.Off < 0 {
		return nil, syscall.EINVAL
	}
	n, err := writeAt(f, a.Data, a.Off)
	if err != nil && n == 0 {
		return nil, err
	}
	return &rpc.WriteReply{N: n}, nil
}

// writeAt writes with pwrite(2), which on a descriptor opened O_APPEND
// appends whatever the offset (os.File.WriteAt refuses such files). On a
// stream it falls back to write(2).
func writeAt(f *os.File, b []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	err = rc.Control(func(fd uintptr) {
		for len(b) > 0 {
			m, err := unix.Pwrite(int(fd), b, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				werr = err
				return
			}
			if m == 0 {
				// Some special files accept nothing more without
				// an error; retrying would spin.
				werr = io.ErrShortWrite
				return
			}
			n += m
			b = b[m:]
			off += int64(m)
		}
	})
	if err != nil {
		return n, err
	}
	if werr == unix.ESPIPE {
		return f.Write(b)
	}
	return n, werr
}

// Setattr changes a file by path, or with a Handle through the open file
// itself (fchmod, fchown, ftruncate, futimens): that works on a file
// unlinked or renamed since it was opened, and never changes another file
// that took its name.
func (s *Server) Setattr(a *rpc.SetattrArgs) (*rpc.Attr, error) {
	p := s.path(a.Path)
	var f *os.File
	if a.Handle != 0 {
		var err error
		if f, err = s.file(a.Handle); err != nil {
			return nil, err
		}
	}
	// Each change runs on the file's descriptor when there is one.
	do := func(byFd func(fd int) error, byPath func() error) error {
		if f == nil {
			return byPath()
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var ferr error
		if err := rc.Control(func(fd uintptr) { ferr = byFd(int(fd)) }); err != nil {
			return err
		}
		return ferr
	}
	if a.Valid&rpc.SetMode != 0 {
		mode := a.Mode & 0o7777
		err := do(func(fd int) error { return unix.Fchmod(fd, mode) },
			func() error { return unix.Fchmodat(unix.AT_FDCWD, p, mode, 0) })
		if err != nil {
			return nil, err
		}
	}
	if a.Valid&(rpc.SetUid|rpc.SetGid) != 0 {
		uid, gid := -1, -1
		if a.Valid&rpc.SetUid != 0 {
			uid = int(a.Uid)
		}
		if a.Valid&rpc.SetGid != 0 {
			gid = int(a.Gid)
		}
		err := do(func(fd int) error { return unix.Fchown(fd, uid, gid) },
			func() error { return unix.Lchown(p, uid, gid) })
		if err != nil {
			return nil, err
		}
	}
	if a.Valid&rpc.SetSize != 0 {
		err := do(func(fd int) error { return unix.Ftruncate(fd, a.Size) },
			func() error { return unix.Truncate(p, a.Size) })
		if err != nil {
			return nil, err
		}
	}
	if a.Valid&(rpc.SetAtime|rpc.SetMtime|rpc.SetAtimeNow|rpc.SetMtimeNow) != 0 {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		switch {
		case a.Valid&rpc.SetAtimeNow != 0:
			ts[0].Nsec = unix.UTIME_NOW
		case a.Valid&rpc.SetAtime != 0:
			ts[0] = unix.NsecToTimespec(a.Atime)
		}
		switch {
		case a.Valid&rpc.SetMtimeNow != 0:
			ts[1].Nsec = unix.UTIME_NOW
		case a.Valid&rpc.SetMtime != 0:
			ts[1] = unix.NsecToTimespec(a.Mtime)
		}
		err := do(func(fd int) error { return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH) },
			func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW) })
		if err != nil {
			return nil, err
		}
	}
	if f != nil {
		var st unix.Stat_t
		if err := fstat(f, &st); err != nil {
			return nil, err
		}
		return toAttr(&st), nil
	}
	return lstat(p)
}

func (s *Server) Getxattr(a *rpc.XattrArgs) (*rpc.XattrReply, error) {
	p := s.path(a.Path)
	v, err := sized(func(b []byte) (int, error) { return unix.Lgetxattr(p, a.Name, b) })
	if err != nil {
		return nil, err
	}
	return &rpc.XattrReply{Value: v}, nil
}

func (s *Server) Listxattr(a *rpc.XattrArgs) (*rpc.XattrReply, error) {
	p := s.path(a.Path)
	v, err := sized(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
	if err != nil {
		return nil, err
	}
	return &rpc.XattrReply{Value: v}, nil
}

// sized calls an xattr getter that reports the needed size when given an
// empty buffer, retrying if the value grows in between.
func sized(get func([]byte) (int, error)) ([]byte, error) {
	for range 4 {
		n, err := get(nil)
		if err != nil {
			return nil, err
		}
		b := make([]byte, n)
		n, err = get(b)
		// An empty buffer is a size query: a value that was empty and
		// grew meanwhile reports its size, not ERANGE.
		if err == unix.ERANGE || n > len(b) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return b[:n], nil
	}
	return nil, unix.ERANGE
}

func (s *Server) Setxattr(a *rpc.XattrArgs) (*rpc.Empty, error) {
	return &rpc.Empty{}, unix.Lsetxattr(s.path(a.Path), a.Name, a.Value, a.Flags)
}

func (s *Server) Removexattr(a *rpc.XattrArgs) (*rpc.Empty, error) {
	return &rpc.Empty{}, unix.Lremovexattr(s.path(a.Path), a.Name)
}
