package launcher

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// errNotLocal says the target cannot be reached through this host's /proc:
// the engine is elsewhere, or the container's ids are remapped.
var errNotLocal = errors.New("container not reachable through /proc")

// placeLocal writes the satellite as dir/base straight into the target's
// filesystem through /proc/PID/root, which saves CopyToContainer's
// round trip through the engine (most of the time a mount takes). It works
// only where the engine runs on this host and its container uses no user
// namespace; otherwise it returns errNotLocal and writes nothing.
// Resolution stays inside the container's root (RESOLVE_IN_ROOT), so its
// symlinks cannot lead the write onto the host.
func placeLocal(pid int, id, dir, base string, bin []byte, uid, gid int) error {
	d, err := localDir(pid, id, dir)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	// A copy of this name that an earlier launch could not run.
	unix.Unlinkat(d, base, 0)
	fd, err := unix.Openat(d, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o700)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	_, err = f.Write(bin)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(0o700)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(d, base, 0)
	}
	return err
}

// removeLocal removes dir/base from the target through /proc/PID/root,
// or returns errNotLocal as placeLocal does.
func removeLocal(pid int, id, dir, base string) error {
	d, err := localDir(pid, id, dir)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Unlinkat(d, base, 0)
}

// localDir opens dir of the target's filesystem through /proc/PID/root
// (O_PATH), or returns errNotLocal.
func localDir(pid int, id, dir string) (int, error) {
	if pid <= 0 {
		return -1, errNotLocal
	}
	proc := fmt.Sprintf("/proc/%d", pid)
	cg, err := os.ReadFile(proc + "/cgroup")
	if err != nil || !strings.Contains(string(cg), id) {
		// Not this container, or not this host's pid.
		return -1, errNotLocal
	}
	for _, m := range []string{"uid_map", "gid_map"} {
		b, err := os.ReadFile(proc + "/" + m)
		if err != nil || strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295" {
			return -1, errNotLocal
		}
	}
	root, err := unix.Open(proc+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errNotLocal
	}
	defer unix.Close(root)
	d, err := unix.Openat2(root, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err == unix.ENOSYS {
		return -1, errNotLocal
	}
	return d, err
}
