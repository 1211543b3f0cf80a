package rpc_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/dockerfuse/dockerfuse/rpc"
)

func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"errno", syscall.ENOENT, syscall.ENOENT},
		{"PathError", &os.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, syscall.EACCES},
		{"LinkError", &os.LinkError{Op: "rename", Old: "a", New: "b", Err: syscall.EXDEV}, syscall.EXDEV},
		{"SyscallError", os.NewSyscallError("fsync", syscall.ENOSPC), syscall.ENOSPC},
		{"wrapped PathError", fmt.Errorf("mkdir: %w", &os.PathError{Op: "mkdir", Path: "d", Err: syscall.ENOTDIR}), syscall.ENOTDIR},
		{"twice wrapped errno", fmt.Errorf("a: %w", fmt.Errorf("b: %w", syscall.ELOOP)), syscall.ELOOP},
		{"joined", errors.Join(errors.New("first"), syscall.EROFS), syscall.EROFS},
		{"rpc.Error", &rpc.Error{Errno: syscall.ESTALE, Msg: "stale"}, syscall.ESTALE},
		{"wrapped rpc.Error", fmt.Errorf("call: %w", &rpc.Error{Errno: syscall.EDQUOT, Msg: "quota"}), syscall.EDQUOT},
		{"fs.ErrNotExist", fs.ErrNotExist, syscall.ENOENT},
		{"fs.ErrExist", fmt.Errorf("x: %w", fs.ErrExist), syscall.EEXIST},
		{"fs.ErrPermission", fs.ErrPermission, syscall.EACCES},
		{"plain", errors.New("something broke"), syscall.EIO},
		{"io.EOF", io.EOF, syscall.EIO},
		{"ErrShutdown", rpc.ErrShutdown, syscall.EIO},
		// A non-nil error is a failure: it must never map to success.
		{"zero errno", syscall.Errno(0), syscall.EIO},
		{"PathError with zero errno", &os.PathError{Op: "open", Path: "x", Err: syscall.Errno(0)}, syscall.EIO},
		{"rpc.Error with zero errno", &rpc.Error{Msg: "no errno"}, syscall.EIO},
	} {
		if got := rpc.Errno(tc.err); got != tc.want {
			t.Errorf("%s: Errno(%v) = %d (%v), want %d (%v)", tc.name, tc.err, got, got, tc.want, tc.want)
		}
	}
}

// TestErrorIs checks that a remote error matches the errno it carries and
// the fs errors a local one would.
func TestErrorIs(t *testing.T) {
	for _, tc := range []struct {
		errno  syscall.Errno
		target error
		want   bool
	}{
		{syscall.ENOENT, fs.ErrNotExist, true},
		{syscall.ENOENT, syscall.ENOENT, true},
		{syscall.ENOENT, fs.ErrExist, false},
		{syscall.ENOENT, syscall.EEXIST, false},
		{syscall.EEXIST, fs.ErrExist, true},
		{syscall.ENOTEMPTY, fs.ErrExist, true},
		{syscall.EACCES, fs.ErrPermission, true},
		{syscall.EPERM, fs.ErrPermission, true},
		{syscall.EOPNOTSUPP, errors.ErrUnsupported, true},
		{syscall.EIO, fs.ErrNotExist, false},
		{syscall.EIO, rpc.ErrShutdown, false},
	} {
		err := error(&rpc.Error{Errno: tc.errno, Msg: "remote"})
		if got := errors.Is(err, tc.target); got != tc.want {
			t.Errorf("errors.Is(remote %v, %v) = %v, want %v", tc.errno, tc.target, got, tc.want)
		}
		wrapped := fmt.Errorf("op: %w", err)
		if got := errors.Is(wrapped, tc.target); got != tc.want {
			t.Errorf("errors.Is(wrapped remote %v, %v) = %v, want %v", tc.errno, tc.target, got, tc.want)
		}
	}
	if got, want := (&rpc.Error{Errno: syscall.ENOENT, Msg: "lstat: no such file"}).Error(), "lstat: no such file"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
