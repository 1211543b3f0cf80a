package main

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// With -path the mount shows one directory of the target and nothing
// else: the kernel resolves ".." and symlinks on the host, so a rename or
// link to "../x" leaves the mount (EXDEV) instead of reaching the target's
// parent directory. Both with a root satellite (confined by chroot) and
// with one run as another user (confined by path cleaning alone).
func TestPathConfinement(t *testing.T) {
	bin := dockerfuseBinary(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-confine"})
	tg.Exec(t, "mkdir", "/srv/inner/sub")
	tg.ExecIn(t, []byte("inner"), "write", "/srv/inner/sub/f")
	tg.ExecIn(t, []byte("outside"), "write", "/srv/outside")
	tg.Exec(t, "symlink", "../outside", "/srv/inner/up")
	tg.Exec(t, "symlink", "/srv/outside", "/srv/inner/abs")
	tg.Exec(t, "chmod", "777", "/srv/inner")
	tg.Exec(t, "chmod", "777", "/srv/inner/sub")
	tg.Exec(t, "chmod", "666", "/srv/inner/sub/f")

	for _, user := range []string{"", "1000:1000"} {
		name := "root"
		if user != "" {
			name = "user " + user
		}
		t.Run(name, func(t *testing.T) {
			dir := mountDir(t)
			args := []string{"-id", tg.Name, "-path", "/srv/inner"}
			if user != "" {
				args = append(args, "-user", user)
			}
			startMount(t, bin, dir, args...)

			if err := os.Rename(dir+"/sub", dir+"/../escaped"); !errors.Is(err, syscall.EXDEV) {
				t.Errorf("rename of a directory to ../escaped = %v, want EXDEV", err)
			}
			if err := os.Rename(dir+"/sub/f", dir+"/sub/../../f"); !errors.Is(err, syscall.EXDEV) {
				t.Errorf("rename of a file to sub/../../f = %v, want EXDEV", err)
			}
			if err := os.Link(dir+"/sub/f", dir+"/../linked"); !errors.Is(err, syscall.EXDEV) {
				t.Errorf("link to ../linked = %v, want EXDEV", err)
			}
			// Inside the mount, ".." stays inside it.
			if err := os.Rename(dir+"/sub/f", dir+"/sub/../moved"); err != nil {
				t.Errorf("rename of sub/f to sub/../moved: %v", err)
			} else if got := tg.Exec(t, "cat", "/srv/inner/moved"); got != "inner" {
				t.Errorf("inside: /srv/inner/moved = %q, want %q", got, "inner")
			} else if err := os.Rename(dir+"/moved", dir+"/sub/f"); err != nil {
				t.Fatal(err)
			}
			for _, l := range []string{"up", "abs"} {
				if b, err := os.ReadFile(dir + "/" + l); err == nil && string(b) == "outside" {
					t.Errorf("reading the symlink %s leads to the target's /srv/outside", l)
				}
			}
			if ls := tg.Exec(t, "ls", "/srv"); ls != "inner\noutside\n" {
				t.Errorf("inside: ls /srv = %q, want only inner and outside", ls)
			}
			if ls := tg.Exec(t, "ls", "/srv/inner/sub"); !strings.Contains(ls, "f\n") {
				t.Errorf("inside: ls /srv/inner/sub = %q, want f still there", ls)
			}
		})
	}
}
