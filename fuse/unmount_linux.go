package fuse

import (
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// unmount detaches dir. Root detaches lazily itself; anyone else goes
// through fusermount3.
func unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == nil || err == unix.EINVAL {
		// EINVAL: not a mount point any more.
		return nil
	}
	out, ferr := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if ferr != nil {
		return &unmountError{dir: dir, msg: strings.TrimSpace(string(out))}
	}
	return nil
}

// Unmount detaches a dockerfuse mount left at dir, for instance by a
// process that was killed.
func Unmount(dir string) error { return unmount(dir) }

type unmountError struct{ dir, msg string }

func (e *unmountError) Error() string { return "unmount " + e.dir + ": " + e.msg }
