package satellite_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite"
)

// TestConfineLexical sends paths that climb with ".." or look absolute:
// all of them must resolve under the root, the root itself at most.
func TestConfineLexical(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	check(t, "mkdir", os.MkdirAll(filepath.Join(root, "etc", "sub"), 0o755))
	writeFile(t, filepath.Join(root, "etc", "passwd"), "inside")
	writeFile(t, filepath.Join(base, "secret"), "outside")
	s := satellite.New(satellite.Config{Root: root})
	t.Cleanup(s.Shutdown)

	inoRoot := hostStat(t, root).Ino
	inoPasswd := hostStat(t, filepath.Join(root, "etc", "passwd")).Ino
	for _, tc := range []struct {
		path string
		ino  uint64 // 0: must not exist
	}{
		{"..", inoRoot},
		{"../..", inoRoot},
		{"/", inoRoot},
		{"/..", inoRoot},
		{"../../etc/passwd", inoPasswd},
		{"/etc/passwd", inoPasswd},
		{"//etc//passwd", inoPasswd},
		{"./../etc/./passwd", inoPasswd},
		{"etc/sub/../../../../etc/passwd", inoPasswd},
		{"../secret", 0},
		{"/../secret", 0},
		{"etc/../../secret", 0},
		{"../../../../../../" + strings.TrimPrefix(filepath.Join(base, "secret"), "/"), 0},
	} {
		a, err := s.Lstat(&rpc.PathArgs{Path: tc.path})
		switch {
		case tc.ino == 0:
			wantErrno(t, "lstat "+tc.path, err, syscall.ENOENT)
		case err != nil:
			t.Errorf("lstat %q = %v, want ino %d under the root", tc.path, err, tc.ino)
		case a.Ino != tc.ino:
			t.Errorf("lstat %q = ino %d, want %d under the root", tc.path, a.Ino, tc.ino)
		}
	}

	// What the requests create lands under the root, whatever their paths
	// say; nothing beside it is touched.
	_, err := s.Mkdir(&rpc.MkdirArgs{Path: "../mkdir", Mode: 0o755})
	check(t, "mkdir ../mkdir", err)
	r, err := s.Open(&rpc.OpenArgs{Path: "../../created", Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o644})
	check(t, "create ../../created", err)
	s.Close(&rpc.HandleArgs{Handle: r.Handle})
	_, err = s.Symlink(&rpc.SymlinkArgs{Target: "../secret", Path: "/../symlink"})
	check(t, "symlink /../symlink", err)
	_, err = s.Mknod(&rpc.MkdirArgs{Path: "../fifo", Mode: unix.S_IFIFO | 0o600})
	check(t, "mknod ../fifo", err)
	_, err = s.Link(&rpc.LinkArgs{Old: "../../etc/passwd", New: "../link"})
	check(t, "link ../link", err)
	_, err = s.Rename(&rpc.RenameArgs{Old: "../created", New: "../../renamed"})
	check(t, "rename ../created ../../renamed", err)
	_, err = s.Unlink(&rpc.PathArgs{Path: "../secret"})
	wantErrno(t, "unlink ../secret", err, syscall.ENOENT)
	_, err = s.Setattr(&rpc.SetattrArgs{Path: "../secret", Valid: rpc.SetMode, Mode: 0o777})
	wantErrno(t, "chmod ../secret", err, syscall.ENOENT)
	_, err = s.Setxattr(&rpc.XattrArgs{Path: "../secret", Name: "user.x", Value: []byte("x")})
	wantErrno(t, "setxattr ../secret", err, syscall.ENOENT)

	if got, want := names(t, base), []string{"root", "secret"}; !slices.Equal(got, want) {
		t.Errorf("beside the root: %q, want only %q", got, want)
	}
	if got := readFile(t, filepath.Join(base, "secret")); got != "outside" {
		t.Errorf("file beside the root = %q, want it untouched", got)
	}
	if st := hostStat(t, filepath.Join(base, "secret")); st.Mode&0o777 != 0o644 {
		t.Errorf("file beside the root: mode %o, want 644 untouched", st.Mode&0o777)
	}
	if got, want := names(t, root), []string{"etc", "fifo", "link", "mkdir", "renamed", "symlink"}; !slices.Equal(got, want) {
		t.Errorf("under the root: %q, want %q", got, want)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	check(t, "readdir "+dir, err)
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return ns
}

func TestConfineErrors(t *testing.T) {
	for _, root := range []string{"", "/"} {
		if got, err := satellite.Confine(root); got != "/" || err != nil {
			t.Errorf("Confine(%q) = %q, %v; want %q, nil (nothing to confine)", root, got, err, "/")
		}
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file"), "")
	for _, tc := range []struct {
		root string
		want string
	}{
		{filepath.Join(dir, "missing"), "no such file or directory"},
		{filepath.Join(dir, "file"), "is not a directory"},
	} {
		got, err := satellite.Confine(tc.root)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.root) {
			t.Errorf("Confine(%q) = %q, %v; want an error naming the path and saying %q", tc.root, got, err, tc.want)
		}
	}
}

// The confinement tests chroot, which cannot be undone: they run in a
// child process, this test binary started again with childEnv naming the
// check to run (bazil's spawntest does the same for FUSE servers).
const childEnv = "DOCKERFUSE_SATELLITE_TEST_CHILD"

// spawn runs the check named which in a child process with env added, as
// the user cred (nil: this one), and fails the test with the child's output
// if it fails.
func spawn(t *testing.T, which string, cred *syscall.Credential, env ...string) {
	t.Helper()
	exe, err := os.Executable()
	check(t, "os.Executable", err)
	if cred != nil {
		// The build directory is private to root: run a copy the user can reach.
		exe = copyExecutable(t, exe)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+which)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("child %s: %v\n%s", which, err, out)
	}
}

func copyExecutable(t *testing.T, exe string) string {
	t.Helper()
	dir := reachableTempDir(t)
	src, err := os.Open(exe)
	check(t, "open test binary", err)
	defer src.Close()
	p := filepath.Join(dir, "satellite.test")
	dst, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o755)
	check(t, "create copy", err)
	_, err = io.Copy(dst, src)
	check(t, "copy test binary", err)
	check(t, "close copy", dst.Close())
	return p
}

// runChild runs one check in the child process and returns its exit
// status. Failures are printed, got and want, for the parent to show.
func runChild(which string) int {
	var fails []string
	fail := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }
	switch which {
	case "confine":
		confineChild(os.Getenv("ROOT"), os.Getenv("HOSTFILE"), fail)
	case "confine-unprivileged":
		root := os.Getenv("ROOT")
		if got, err := satellite.Confine(root); got != root || err != nil {
			fail("Confine(%q) without the privilege to chroot = %q, %v; want %q, nil", root, got, err, root)
		}
	case "readfiles-unreadable":
		readFilesUnreadableChild(os.Getenv("ROOT"), fail)
	default:
		fail("unknown child check %q", which)
	}
	for _, f := range fails {
		fmt.Println(f)
	}
	if len(fails) > 0 {
		return 1
	}
	return 0
}

// confineChild chroots into root and checks that no symlink inside leads
// to hostFile, a file of the host outside root.
func confineChild(root, hostFile string, fail func(string, ...any)) {
	served, err := satellite.Confine(root)
	if err != nil || served != "/" {
		fail("Confine(%q) = %q, %v; want %q, nil", root, served, err, "/")
		return
	}
	s := satellite.New(satellite.Config{Root: served})
	defer s.Shutdown()
	if h, err := s.Hello(&rpc.HelloArgs{}); err != nil || h.Root != "/" {
		fail("hello after Confine = %+v, %v; want root /", h, err)
	}
	rel := strings.TrimPrefix(hostFile, "/")
	for _, p := range []string{
		"toroot/" + rel,                      // a symlink to /
		"hostdir/" + filepath.Base(hostFile), // a symlink to the host file's directory
		"up/" + rel,                          // a relative symlink climbing far up
		"toroot/etc/passwd",                  // the host's own
		rel,                                  // and plainly
		"../../../" + rel,
	} {
		if a, err := s.Lstat(&rpc.PathArgs{Path: p}); !errors.Is(err, syscall.ENOENT) {
			fail("lstat %s = %+v, %v; want ENOENT: the host's file must be out of reach", p, a, err)
		}
		if r, err := s.Open(&rpc.OpenArgs{Path: p, Flags: unix.O_RDONLY}); !errors.Is(err, syscall.ENOENT) {
			fail("open %s = %+v, %v; want ENOENT", p, r, err)
		}
	}
	if _, err := s.Open(&rpc.OpenArgs{Path: "hostlink", Flags: unix.O_RDONLY}); !errors.Is(err, syscall.ELOOP) {
		fail("open of a symlink to the host file = %v, want ELOOP (never followed)", err)
	}
	// The symlink to / leads to the root, and listing it shows the root.
	r, err := s.ReadDir(&rpc.ReadDirArgs{Path: "toroot"})
	if err != nil {
		fail("readdir toroot = %v, want nil", err)
		return
	}
	var got []string
	for _, e := range r.Entries {
		got = append(got, e.Name)
	}
	slices.Sort(got)
	if want := []string{"hostdir", "hostlink", "marker", "toroot", "up"}; !slices.Equal(got, want) {
		fail("readdir of a symlink to / = %q, want the root's %q", got, want)
	}
	if a, err := s.Lstat(&rpc.PathArgs{Path: "toroot/toroot/marker"}); err != nil || a.Size != int64(len("inside")) {
		fail("lstat toroot/toroot/marker = %+v, %v; want the root's marker", a, err)
	}
}

// TestConfineChroot chroots a child process into a directory holding
// symlinks to / and to the host's files: none may reach outside it.
func TestConfineChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root (CAP_SYS_CHROOT); run the tests as root to check confinement")
	}
	hostFile := filepath.Join(t.TempDir(), "host-secret")
	writeFile(t, hostFile, "the host's")
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatalf("the host has no /etc/passwd to hide: %v", err)
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "marker"), "inside")
	for name, target := range map[string]string{
		"toroot":   "/",
		"hostdir":  filepath.Dir(hostFile),
		"hostlink": hostFile,
		"up":       strings.Repeat("../", 20),
	} {
		check(t, "symlink", os.Symlink(target, filepath.Join(root, name)))
	}
	// Outside the chroot the same links do reach the host: the test can
	// tell.
	if got := readFile(t, filepath.Join(root, "toroot", hostFile)); got != "the host's" {
		t.Fatalf("before chroot, toroot%s = %q, want the host file", hostFile, got)
	}
	spawn(t, "confine", nil, "ROOT="+root, "HOSTFILE="+hostFile)
}

// TestConfineUnprivileged checks that without the privilege to chroot
// Confine keeps the root and says nothing: lexical confinement remains.
func TestConfineUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		// Already unprivileged: check in this process, without chroot.
		root := t.TempDir()
		if got, err := satellite.Confine(root); got != root || err != nil {
			t.Errorf("Confine(%q) = %q, %v; want %q, nil", root, got, err, root)
		}
		return
	}
	root := reachableTempDir(t)
	spawn(t, "confine-unprivileged", &syscall.Credential{Uid: 65534, Gid: 65534}, "ROOT="+root)
}

// reachableTempDir is a t.TempDir that other users can reach: the testing
// package makes the directory above it private.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	check(t, "chmod", os.Chmod(filepath.Dir(dir), 0o755))
	check(t, "chmod", os.Chmod(dir, 0o755))
	return dir
}
