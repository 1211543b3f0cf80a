package fuse

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sys makes the system calls the tests make through the mount, retrying
// those that fail with EINTR as package os does. A signal to a thread
// waiting for the mount (the Go runtime preempts threads with signals)
// interrupts the request, and the mount answers EINTR (see errno).
var sys sysCalls

type sysCalls struct{}

// ignoringEINTR retries f while it fails with EINTR.
func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

// ignoringEINTR2 is ignoringEINTR for calls that also return a count.
func ignoringEINTR2(f func() (int, error)) (int, error) {
	for {
		if n, err := f(); err != syscall.EINTR {
			return n, err
		}
	}
}

func (sysCalls) Lstat(p string, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Lstat(p, st) })
}

func (sysCalls) Stat(p string, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Stat(p, st) })
}

func (sysCalls) Fstat(fd int, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Fstat(fd, st) })
}

func (sysCalls) Statfs(p string, st *unix.Statfs_t) error {
	return ignoringEINTR(func() error { return unix.Statfs(p, st) })
}

func (sysCalls) Chmod(p string, mode uint32) error {
	return ignoringEINTR(func() error { return unix.Chmod(p, mode) })
}

func (sysCalls) UtimesNano(p string, ts []unix.Timespec) error {
	return ignoringEINTR(func() error { return unix.UtimesNano(p, ts) })
}

func (sysCalls) Unlink(p string) error {
	return ignoringEINTR(func() error { return unix.Unlink(p) })
}

func (sysCalls) Rmdir(p string) error {
	return ignoringEINTR(func() error { return unix.Rmdir(p) })
}

func (sysCalls) Mkfifo(p string, mode uint32) error {
	return ignoringEINTR(func() error { return unix.Mkfifo(p, mode) })
}

func (sysCalls) Mknod(p string, mode uint32, dev int) error {
	return ignoringEINTR(func() error { return unix.Mknod(p, mode, dev) })
}

func (sysCalls) Mkdirat(dirfd int, p string, mode uint32) error {
	return ignoringEINTR(func() error { return unix.Mkdirat(dirfd, p, mode) })
}

func (sysCalls) Openat(dirfd int, p string, flags int, mode uint32) (int, error) {
	return ignoringEINTR2(func() (int, error) { return unix.Openat(dirfd, p, flags, mode) })
}

func (sysCalls) Rename(from, to string) error {
	return ignoringEINTR(func() error { return unix.Rename(from, to) })
}

func (sysCalls) Renameat2(olddirfd int, from string, newdirfd int, to string, flags uint) error {
	return ignoringEINTR(func() error { return unix.Renameat2(olddirfd, from, newdirfd, to, flags) })
}

func (sysCalls) Write(fd int, b []byte) (int, error) {
	return ignoringEINTR2(func() (int, error) { return unix.Write(fd, b) })
}

func (sysCalls) Pread(fd int, b []byte, off int64) (int, error) {
	return ignoringEINTR2(func() (int, error) { return unix.Pread(fd, b, off) })
}

func (sysCalls) Fdatasync(fd int) error {
	return ignoringEINTR(func() error { return unix.Fdatasync(fd) })
}

func (sysCalls) Msync(b []byte, flags int) error {
	return ignoringEINTR(func() error { return unix.Msync(b, flags) })
}

func (sysCalls) Setxattr(p, name string, v []byte, flags int) error {
	return ignoringEINTR(func() error { return unix.Setxattr(p, name, v, flags) })
}

func (sysCalls) Getxattr(p, name string, b []byte) (int, error) {
	return ignoringEINTR2(func() (int, error) { return unix.Getxattr(p, name, b) })
}

func (sysCalls) Listxattr(p string, b []byte) (int, error) {
	return ignoringEINTR2(func() (int, error) { return unix.Listxattr(p, b) })
}

func (sysCalls) Removexattr(p, name string) error {
	return ignoringEINTR(func() error { return unix.Removexattr(p, name) })
}
