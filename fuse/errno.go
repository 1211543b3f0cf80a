package fuse

import (
	"context"
	"errors"
	"syscall"

	"bazil.org/fuse"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// errno is the one place errors become what the kernel is told. A lost
// satellite is EIO; an interrupted call EINTR. ENOSYS from the target
// becomes EOPNOTSUPP: to the kernel ENOSYS would mean "never ask again".
func errno(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fuse.Errno(syscall.EINTR)
	}
	e := rpc.Errno(err)
	switch e {
	case 0:
		e = syscall.EIO
	case syscall.ENOSYS:
		e = syscall.EOPNOTSUPP
	}
	return fuse.Errno(e)
}
