package satellite

import (
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// readFilesPool holds the buffers ReadFiles reads into: one per call, which
// all the files of its reply share.
var readFilesPool = sync.Pool{New: func() any { b := make([]byte, rpc.MaxReadFiles+1); return &b }}

// ReadFiles reads small regular files of one directory whole (see
// rpc.ReadFilesArgs). Each file is looked at with fstatat first and opened
// only if it is a small regular file, so that nothing else (a fifo, a
// device) is ever opened; the open does not follow symlinks nor block, and
// uses the server's own credentials, so a file it may not read is left
// out. A file whose size, mtime or ctime differ after the read from before
// it changed while it was read and is left out too. Nothing is read from
// the kernel's pseudo filesystems (/proc, /sys and the like) or from FUSE
// filesystems, where reading a file may do more than read it: a file there
// is left out.
func (s *Server) ReadFiles(a *rpc.ReadFilesArgs) (*rpc.ReadFilesReply, error) {
	if len(a.Names) > rpc.MaxDirEntries || a.MaxFile < 0 || a.MaxTotal < 0 {
		return nil, syscall.EINVAL
	}
	maxFile := int64(min(a.MaxFile, rpc.MaxInline))
	maxTotal := int64(min(a.MaxTotal, rpc.MaxReadFiles))
	dfd, err := unix.Open(s.path(a.Dir), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: a.Dir, Err: err}
	}
	defer unix.Close(dfd)
	r := &rpc.ReadFilesReply{}
	if !plainFS(dfd) {
		return r, nil
	}
	buf := readFilesPool.Get().(*[]byte)
	var total int64
	for _, name := range a.Names {
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
			st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size >= maxFile {
			continue
		}
		if total+st.Size > maxTotal {
			break
		}
		f, ok := readSmall(dfd, name, &st, (*buf)[total:min(total+maxFile, int64(len(*buf)))])
		if !ok {
			continue
		}
		if total+int64(len(f.Data)) > maxTotal {
			break
		}
		total += int64(len(f.Data))
		r.Files = append(r.Files, f)
	}
	if len(r.Files) == 0 {
		readFilesPool.Put(buf)
		return r, nil
	}
	r.Done = func() { readFilesPool.Put(buf) }
	return r, nil
}

// readSmall reads the file name of dfd, which fstatat found as st, into b,
// which has room for one byte more than the largest file accepted. It
// fails if the file is not the one st describes, is too large, or changed
// while it was read.
func readSmall(dfd int, name string, st *unix.Stat_t, b []byte) (rpc.FileData, bool) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return rpc.FileData{}, false
	}
	defer unix.Close(fd)
	var before, after unix.Stat_t
	if unix.Fstat(fd, &before) != nil || before.Mode&unix.S_IFMT != unix.S_IFREG ||
		before.Dev != st.Dev || before.Ino != st.Ino || before.Size+1 > int64(len(b)) ||
		!plainFS(fd) { // a file bind-mounted from elsewhere
		return rpc.FileData{}, false
	}
	// One byte more than the size shows the end: a file that grew, or
	// says less than it holds (as /proc files do), is left out.
	n, err := preadFull(fd, b[:before.Size+1])
	if err != nil || int64(n) != before.Size || unix.Fstat(fd, &after) != nil ||
		after.Size != before.Size || after.Mtim != before.Mtim || after.Ctim != before.Ctim {
		return rpc.FileData{}, false
	}
	f := rpc.FileData{Name: name, Data: b[:n:n]}
	fillAttr(&f.Attr, &after)
	f.Attr.Xattr = rpc.XattrUnknown
	switch m, err := unix.Flistxattr(fd, nil); {
	case err != nil:
	case m == 0:
		f.Attr.Xattr = rpc.XattrNone
	default:
		f.Attr.Xattr = rpc.XattrSome
	}
	return f, true
}

// preadFull reads into b from the start of fd until b is full or the file
// ends.
func preadFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(fd, b[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// plainFS tells whether fd is on a filesystem whose files can be read
// ahead: not a pseudo filesystem (see pseudoFS).
func plainFS(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && !pseudoFS(uint32(st.Type))
}
