package fuse

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"bazil.org/fuse"

	"github.com/dockerfuse/dockerfuse/rpc"
)

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{context.Canceled, syscall.EINTR},
		{fmt.Errorf("read: %w", context.Canceled), syscall.EINTR},
		{context.DeadlineExceeded, syscall.EINTR},
		{&rpc.Error{Errno: syscall.ENOSYS, Msg: "setxattr: not implemented"}, syscall.EOPNOTSUPP},
		{syscall.ENOSYS, syscall.EOPNOTSUPP},
		{rpc.ErrShutdown, syscall.EIO},
		{fmt.Errorf("%w: unexpected EOF", rpc.ErrShutdown), syscall.EIO},
		{&rpc.Error{Errno: syscall.ENOENT, Msg: "lstat /x: no such file"}, syscall.ENOENT},
		{&rpc.Error{Errno: syscall.ENOTEMPTY}, syscall.ENOTEMPTY},
		{&rpc.Error{Errno: syscall.EXDEV}, syscall.EXDEV},
		{&rpc.Error{Errno: 0, Msg: "no number"}, syscall.EIO},
		{syscall.EACCES, syscall.EACCES},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.EEXIST}, syscall.EEXIST},
		{&os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EXDEV}, syscall.EXDEV},
		{fs.ErrNotExist, syscall.ENOENT},
		{errors.New("something else"), syscall.EIO},
	} {
		got := errno(tc.err)
		var en fuse.ErrorNumber
		if !errors.As(got, &en) {
			t.Errorf("errno(%v) = %v (%T), which carries no errno", tc.err, got, got)
			continue
		}
		if en.Errno() != fuse.Errno(tc.want) {
			t.Errorf("errno(%v) = %v, want %v", tc.err, syscall.Errno(en.Errno()), tc.want)
		}
	}
	if got := errno(nil); got != nil {
		t.Errorf("errno(nil) = %v, want nil", got)
	}
}

// TestErrnoNeverENOSYS: to the kernel ENOSYS means "never ask again", so no
// failure may become it.
func TestErrnoNeverENOSYS(t *testing.T) {
	for e := syscall.Errno(1); e < 200; e++ {
		for _, err := range []error{e, &rpc.Error{Errno: e}, fmt.Errorf("wrapped: %w", e)} {
			var en fuse.ErrorNumber
			if errors.As(errno(err), &en) && en.Errno() == fuse.Errno(syscall.ENOSYS) {
				t.Errorf("errno(%v) = ENOSYS", err)
			}
		}
	}
}
