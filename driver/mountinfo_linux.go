package driver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountsUnder returns the mount points strictly below root listed in a
// /proc/<pid>/mountinfo stream, deepest first (the order to unmount them).
func mountsUnder(r io.Reader, root string) ([]string, error) {
	root = filepath.Clean(root)
	var found []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if rel, err := filepath.Rel(root, mp); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			found = append(found, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(found, func(i, j int) bool {
		return strings.Count(found[i], "/") > strings.Count(found[j], "/")
	})
	return found, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detachStale lazily unmounts every mount below root: FUSE mounts left by a
// plugin process that died answer ENOTCONN and would shadow new mounts.
// Failures are logged, never fatal.
func (d *Driver) detachStale(root string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		d.log.Warn("cannot look for stale mounts", "err", err)
		return
	}
	mps, err := mountsUnder(f, root)
	f.Close()
	if err != nil {
		d.log.Warn("cannot look for stale mounts", "err", err)
		return
	}
	for _, mp := range mps {
		if err := detach(mp); err != nil {
			d.log.Error("cannot unmount stale mount", "mountpoint", mp, "err", err)
			continue
		}
		d.log.Info("unmounted stale mount", "mountpoint", mp)
	}
}

// detachIfMounted lazily unmounts dir if it is still a mount point, for
// when a session's Close failed to.
func (d *Driver) detachIfMounted(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	mps, err := mountsUnder(f, filepath.Dir(dir))
	f.Close()
	if err != nil {
		return
	}
	for _, mp := range mps {
		if mp == dir {
			if err := detach(dir); err != nil {
				d.log.Error("cannot unmount", "mountpoint", dir, "err", err)
			}
			return
		}
	}
}

// detach unmounts lazily: the mount disappears from the namespace now and
// is released when nothing uses it any more. Without CAP_SYS_ADMIN it falls
// back to fusermount3, which may unmount FUSE mounts its user owns.
func detach(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: no longer mounted
		return nil
	}
	out, ferr := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if ferr != nil {
		return fmt.Errorf("umount: %v; fusermount3 -u -z: %v: %s", err, ferr, strings.TrimSpace(string(out)))
	}
	return nil
}
