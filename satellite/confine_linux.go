package satellite

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Confine makes root the process's root directory with chroot(2), so that
// no path, symlink or rename can reach outside it, and returns the root to
// serve from then on ("/"). Without the privilege to chroot it returns root
// unchanged and confinement rests on lexical path cleaning alone.
func Confine(root string) (string, error) {
	if root == "" || root == "/" {
		return "/", nil
	}
	fi, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("path %s: %w", root, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("path %s is not a directory", root)
	}
	if err := unix.Chroot(root); err != nil {
		if err == unix.EPERM {
			return root, nil
		}
		return "", fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return "", err
	}
	return "/", nil
}
