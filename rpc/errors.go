package rpc

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrShutdown is returned by every call once the stream to the satellite is
// gone, including calls that were waiting when it broke.
var ErrShutdown = errors.New("rpc: connection to the satellite is closed")

// Error is a failure reported by the satellite: the errno it got inside the
// target and its message.
type Error struct {
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Is lets errors.Is(err, fs.ErrNotExist) and errors.Is(err, syscall.ENOENT)
// work on a remote error as on a local one.
func (e *Error) Is(target error) bool {
	if errno, ok := target.(syscall.Errno); ok {
		return e.Errno == errno
	}
	return e.Errno.Is(target)
}

// Errno maps err to the errno it stands for. Errors that carry none map to
// EIO; nil maps to 0.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	// A zero errno inside a non-nil error is no errno: 0 would tell the
	// kernel that the request succeeded.
	var re *Error
	if errors.As(err, &re) && re.Errno != 0 {
		return re.Errno
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 {
		// os.PathError, os.LinkError and os.SyscallError all unwrap to it.
		return errno
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, os.ErrPermission):
		return syscall.EACCES
	}
	return syscall.EIO
}

// remoteError turns a reply header into the error it reports.
func remoteError(h *replyHeader) error {
	errno := syscall.Errno(h.Errno)
	msg := h.Msg
	if msg == "" {
		msg = errno.Error()
	}
	return &Error{Errno: errno, Msg: msg}
}

// errorReply fills h from err.
func errorReply(h *replyHeader, op Op, err error) {
	h.Errno = uint32(Errno(err))
	if h.Errno == 0 {
		h.Errno = uint32(syscall.EIO)
	}
	h.Msg = fmt.Sprintf("%s: %v", op, err)
}

var errUnknownOp = &Error{Errno: syscall.EOPNOTSUPP, Msg: "unknown operation (client and satellite versions differ?)"}

// errInvalid marks a decoding failure as EINVAL.
func errInvalid(err error) error {
	return &Error{Errno: syscall.EINVAL, Msg: err.Error()}
}
