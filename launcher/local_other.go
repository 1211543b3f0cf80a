//go:build !linux

package launcher

import "errors"

var errNotLocal = errors.New("container not reachable through /proc")

// placeLocal needs Linux's /proc; elsewhere the engine uploads.
func placeLocal(pid int, id, dir, base string, bin []byte, uid, gid int) error {
	return errNotLocal
}

func removeLocal(pid int, id, dir, base string) error {
	return errNotLocal
}
