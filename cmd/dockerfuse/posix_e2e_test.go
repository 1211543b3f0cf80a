package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// TestPosix runs the same conformance tests twice: natively, on a
// directory of the host, and through a mount of a target's /tmp. Where the
// mount differs on purpose the test says so and docs/limits.md explains
// why. Permission tests run their steps as uid 1000 and 1001 in a helper
// process (a copy of this test binary, see TestMain).

// posixEnv is where one run of the tests takes place.
type posixEnv struct {
	mounted bool
	root    string // holds one fresh directory per test
	otherFS string // a directory on another filesystem than root
	helper  string // this test binary, runnable by any user
}

var posixTests = []struct {
	name string
	f    func(t *testing.T, e *posixEnv, dir string)
}{
	{"UnlinkWhileOpen", testUnlinkWhileOpen},
	{"OpenCreate", testOpenCreate},
	{"RenameOverExisting", testRenameOverExisting},
	{"RenameFlags", testRenameFlags},
	{"HardLinks", testHardLinks},
	{"Permissions", testPermissions},
	{"Sticky", testSticky},
	{"UtimesNanoseconds", testUtimes},
	{"Truncate", testTruncate},
	{"Append", testAppend},
	{"Fifo", testFifo},
	{"SymlinkLoop", testSymlinkLoop},
	{"LongNames", testLongNames},
	{"NotEmpty", testNotEmpty},
	{"CrossDevice", testCrossDevice},
}

func TestPosix(t *testing.T) {
	bin := dockerfuseBinary(t)
	helper := posixHelper(t)

	native := &posixEnv{root: worldDir(t, ""), otherFS: worldDir(t, "/dev/shm"), helper: helper}

	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-posix", Tmpfs: map[string]string{"/scratch": "mode=1777"}})
	// Users other than root reach the mount through its parent.
	dir := filepath.Join(worldDir(t, ""), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startMount(t, bin, dir, "-id", tg.Name, "-allow-other")
	mounted := &posixEnv{mounted: true, root: dir + "/tmp/posix", otherFS: dir + "/scratch/posix", helper: helper}
	for _, d := range []string{mounted.root, mounted.otherFS} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	for _, e := range []*posixEnv{native, mounted} {
		name := "native"
		if e.mounted {
			name = "mount"
		}
		t.Run(name, func(t *testing.T) {
			for _, tt := range posixTests {
				t.Run(tt.name, func(t *testing.T) {
					d := filepath.Join(e.root, tt.name)
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
					tt.f(t, e, d)
				})
			}
		})
	}
}

// worldDir makes a directory in parent ("" for the default temporary
// directory) that every user can search, removed at the end.
func worldDir(t *testing.T, parent string) string {
	t.Helper()
	d, err := os.MkdirTemp(parent, "dfrel-posix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// posixHelper copies this test binary where any user can run it.
func posixHelper(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(worldDir(t, ""), "helper")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// helperEnv marks a run of the test binary as the helper of as.
const helperEnv = "DFREL_POSIX_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runHelper does one operation and prints its errno, 0 for success.
func runHelper(args []string) int {
	var err error
	switch op, a := args[0], args[1:]; op {
	case "read":
		_, err = os.ReadFile(a[0])
	case "write":
		var f *os.File
		if f, err = os.OpenFile(a[0], os.O_WRONLY, 0); err == nil {
			_, err = f.WriteString("x")
			f.Close()
		}
	case "create":
		var f *os.File
		if f, err = os.OpenFile(a[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err == nil {
			f.Close()
		}
	case "unlink":
		err = os.Remove(a[0])
	case "rename":
		err = os.Rename(a[0], a[1])
	case "mkdir":
		err = os.Mkdir(a[0], 0o755)
	case "readdir":
		_, err = os.ReadDir(a[0])
	case "stat":
		_, err = os.Stat(a[0])
	case "chmod":
		err = os.Chmod(a[0], 0o777)
	default:
		fmt.Fprintf(os.Stderr, "helper: unknown operation %q\n", op)
		return 2
	}
	var errno syscall.Errno
	if err != nil && !errors.As(err, &errno) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	fmt.Println(int(errno))
	return 0
}

// as runs a helper operation as uid (and gid) and returns its errno.
func (e *posixEnv) as(t *testing.T, uid int, op string, args ...string) error {
	t.Helper()
	cmd := exec.Command(e.helper, append([]string{op}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s %v as uid %d: %v: %s", op, args, uid, err, stderr.String())
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper %s %v: output %q", op, args, out)
	}
	if n == 0 {
		return nil
	}
	return syscall.Errno(n)
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s = %v, want success", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", what, err, want)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantContent(t *testing.T, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", filepath.Base(p), err)
		return
	}
	if string(b) != want {
		t.Errorf("read %s = %q, want %q", filepath.Base(p), b, want)
	}
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func testUnlinkWhileOpen(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/f"
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("hello")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(p)
	wantErrno(t, "stat after unlink", err, syscall.ENOENT)
	if _, err := f.WriteString(" world"); err != nil {
		t.Errorf("write to the unlinked file: %v", err)
	}
	b := make([]byte, 32)
	n, err := f.ReadAt(b, 0)
	if string(b[:n]) != "hello world" {
		t.Errorf("read of the unlinked file = %q, %v; want %q", b[:n], err, "hello world")
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatalf("fstat of the unlinked file: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Nlink != 0 || fi.Size() != 11 {
		t.Errorf("fstat of the unlinked file: nlink %d size %d, want 0 and 11", st.Nlink, fi.Size())
	}
}

func testOpenCreate(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/f"
	write(t, p, "content")
	_, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	wantErrno(t, "O_CREAT|O_EXCL of an existing file", err, syscall.EEXIST)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantContent(t, p, "content")
	f, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantContent(t, p, "")
	_, err = os.OpenFile(dir+"/missing", os.O_RDONLY, 0)
	wantErrno(t, "open of a missing file", err, syscall.ENOENT)
	_, err = os.OpenFile(dir, os.O_WRONLY, 0)
	wantErrno(t, "open of a directory for writing", err, syscall.EISDIR)
	_, err = os.OpenFile(p+"/x", os.O_RDONLY, 0)
	wantErrno(t, "open below a file", err, syscall.ENOTDIR)
}

func testRenameOverExisting(t *testing.T, e *posixEnv, dir string) {
	a, b := dir+"/a", dir+"/b"
	write(t, a, "A")
	write(t, b, "B")
	old, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, "A")
	_, err = os.Stat(a)
	wantErrno(t, "stat of the old name", err, syscall.ENOENT)
	if got, err := io.ReadAll(old); err != nil || string(got) != "B" {
		t.Errorf("a descriptor of the replaced file reads %q, %v; want %q", got, err, "B")
	}

	// rename(2) itself: os.Rename refuses an existing directory as the
	// new name before asking the kernel.
	for _, d := range []string{"d1", "d2", "full", "full/x"} {
		os.Mkdir(dir+"/"+d, 0o755)
	}
	wantErrno(t, "rename of a directory over an empty one", syscall.Rename(dir+"/d1", dir+"/d2"), 0)
	wantErrno(t, "rename of a directory over a non-empty one", syscall.Rename(dir+"/d2", dir+"/full"), syscall.ENOTEMPTY)
	wantErrno(t, "rename of a file over a directory", syscall.Rename(b, dir+"/d2"), syscall.EISDIR)
	wantErrno(t, "rename of a directory over a file", syscall.Rename(dir+"/d2", b), syscall.ENOTDIR)
	wantErrno(t, "rename of a directory into itself", syscall.Rename(dir+"/d2", dir+"/d2/in"), syscall.EINVAL)
}

// RENAME_NOREPLACE and RENAME_EXCHANGE need FUSE_RENAME2, which bazil does
// not implement: through the mount the kernel answers EINVAL, except where
// it refuses a RENAME_NOREPLACE over an existing name itself.
func testRenameFlags(t *testing.T, e *posixEnv, dir string) {
	a, b := dir+"/a", dir+"/b"
	write(t, a, "A")
	write(t, b, "B")
	rename2 := func(from, to string, flags uint) error {
		return unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, flags)
	}
	wantErrno(t, "RENAME_NOREPLACE over an existing file", rename2(a, b, unix.RENAME_NOREPLACE), syscall.EEXIST)
	if e.mounted {
		wantErrno(t, "RENAME_NOREPLACE to a new name through the mount", rename2(a, dir+"/c", unix.RENAME_NOREPLACE), syscall.EINVAL)
		wantErrno(t, "RENAME_EXCHANGE through the mount", rename2(a, b, unix.RENAME_EXCHANGE), syscall.EINVAL)
		wantContent(t, a, "A")
		return
	}
	wantErrno(t, "RENAME_NOREPLACE to a new name", rename2(a, dir+"/c", unix.RENAME_NOREPLACE), 0)
	wantErrno(t, "RENAME_EXCHANGE", rename2(dir+"/c", b, unix.RENAME_EXCHANGE), 0)
	wantContent(t, b, "A")
	wantContent(t, dir+"/c", "B")
}

func testHardLinks(t *testing.T, e *posixEnv, dir string) {
	a, b, c := dir+"/a", dir+"/b", dir+"/c"
	write(t, a, "one")
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(b, c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, b, c} {
		if n := stat(t, p).Nlink; n != 3 {
			t.Errorf("nlink of %s with three names = %d, want 3", filepath.Base(p), n)
		}
	}
	if stat(t, a).Ino != stat(t, c).Ino {
		t.Errorf("two names of one file have different inode numbers")
	}
	write(t, c, "two")
	wantContent(t, a, "two")
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, b).Nlink; n != 2 {
		t.Errorf("nlink after one unlink = %d, want 2", n)
	}
	wantErrno(t, "link of a directory", os.Link(dir, dir+"/dirlink"), syscall.EPERM)
	wantErrno(t, "link over an existing name", os.Link(b, c), syscall.EEXIST)
}

func testPermissions(t *testing.T, e *posixEnv, dir string) {
	open, secret, ro, pub, search := dir+"/open", dir+"/secret", dir+"/ro", dir+"/pub", dir+"/search"
	write(t, open, "o")
	write(t, secret, "s")
	for p, mode := range map[string]os.FileMode{open: 0o644, secret: 0o600} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for d, mode := range map[string]os.FileMode{ro: 0o755, pub: 0o777, search: 0o711} {
		if err := os.Mkdir(d, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(t, search+"/known", "k")

	const user = 1000
	wantErrno(t, "uid 1000 reads a 0644 file", e.as(t, user, "read", open), 0)
	wantErrno(t, "uid 1000 writes a 0644 file of root", e.as(t, user, "write", open), syscall.EACCES)
	wantErrno(t, "uid 1000 reads a 0600 file of root", e.as(t, user, "read", secret), syscall.EACCES)
	wantErrno(t, "uid 1000 unlinks in a 0755 directory of root", e.as(t, user, "unlink", open), syscall.EACCES)
	wantErrno(t, "uid 1000 creates in a 0755 directory of root", e.as(t, user, "create", ro+"/x"), syscall.EACCES)
	wantErrno(t, "uid 1000 chmods a file of root", e.as(t, user, "chmod", open), syscall.EPERM)
	wantErrno(t, "uid 1000 lists a 0711 directory", e.as(t, user, "readdir", search), syscall.EACCES)
	wantErrno(t, "uid 1000 stats a name in a 0711 directory", e.as(t, user, "stat", search+"/known"), 0)

	wantErrno(t, "uid 1000 creates in a 0777 directory", e.as(t, user, "create", pub+"/mine"), 0)
	st := stat(t, pub+"/mine")
	if st.Uid != user || st.Gid != user {
		t.Errorf("a file uid 1000 created is owned by %d:%d, want %d:%d", st.Uid, st.Gid, user, user)
	}
	wantErrno(t, "uid 1000 chmods its own file", e.as(t, user, "chmod", pub+"/mine"), 0)
	wantErrno(t, "uid 1001 writes a 0777 file of uid 1000", e.as(t, 1001, "write", pub+"/mine"), 0)
}

func testSticky(t *testing.T, e *posixEnv, dir string) {
	s := dir + "/sticky"
	if err := os.Mkdir(s, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	// bazil drops the sticky bit from the attributes it gives the
	// kernel: through the mount it is enforced but not shown.
	fi, err := os.Stat(s)
	if err != nil {
		t.Fatal(err)
	}
	if shown := fi.Mode()&os.ModeSticky != 0; shown == e.mounted {
		t.Errorf("stat of a sticky directory: mode %v; want the sticky bit shown natively only", fi.Mode())
	}
	wantErrno(t, "uid 1000 creates in a sticky directory", e.as(t, 1000, "create", s+"/a"), 0)
	wantErrno(t, "uid 1001 creates in a sticky directory", e.as(t, 1001, "create", s+"/b"), 0)
	wantErrno(t, "uid 1001 unlinks the file of uid 1000", e.as(t, 1001, "unlink", s+"/a"), syscall.EPERM)
	wantErrno(t, "uid 1001 renames the file of uid 1000", e.as(t, 1001, "rename", s+"/a", s+"/c"), syscall.EPERM)
	wantErrno(t, "uid 1001 renames its file over the one of uid 1000", e.as(t, 1001, "rename", s+"/b", s+"/a"), syscall.EPERM)
	wantErrno(t, "uid 1000 unlinks its own file", e.as(t, 1000, "unlink", s+"/a"), 0)
	wantErrno(t, "root unlinks the file of uid 1001", os.Remove(s+"/b"), 0)
}

func testUtimes(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/f"
	write(t, p, "x")
	for _, ts := range [][2]int64{
		{1_500_000_000_123_456_789, 1_600_000_000_987_654_321},
		{1, 999_999_999},
		{4_102_444_800_000_000_001, 4_102_444_800_000_000_002}, // 2100
	} {
		if err := unix.UtimesNano(p, []unix.Timespec{unix.NsecToTimespec(ts[0]), unix.NsecToTimespec(ts[1])}); err != nil {
			t.Fatal(err)
		}
		st := stat(t, p)
		if got := [2]int64{st.Atim.Nano(), st.Mtim.Nano()}; got != ts {
			t.Errorf("atime, mtime after utimensat(%d, %d) = %d, %d", ts[0], ts[1], got[0], got[1])
		}
	}
	before := time.Now().Add(-time.Minute)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}, 0); err != nil {
		t.Fatal(err)
	}
	st := stat(t, p)
	if st.Atim.Nano() != 4_102_444_800_000_000_001 || time.Unix(0, st.Mtim.Nano()).Before(before) {
		t.Errorf("after UTIME_OMIT, UTIME_NOW: atime %d mtime %v; want the atime kept and the mtime now", st.Atim.Nano(), time.Unix(0, st.Mtim.Nano()))
	}
}

func testTruncate(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/f"
	write(t, p, "0123456789")
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "0123")
	if err := os.Truncate(p, 8192); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "0123"+strings.Repeat("\x00", 8188))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2); err != nil {
		t.Fatalf("ftruncate down: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 2 {
		t.Errorf("size after ftruncate to 2 = %d", fi.Size())
	}
	if err := f.Truncate(5); err != nil {
		t.Fatalf("ftruncate up: %v", err)
	}
	b := make([]byte, 16)
	n, _ := f.ReadAt(b, 0)
	if string(b[:n]) != "01\x00\x00\x00" {
		t.Errorf("after ftruncate 2 then 5 the file reads %q, want %q", b[:n], "01\x00\x00\x00")
	}
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "")
}

func testAppend(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/log"
	write(t, p, "start;")
	f1, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	f2, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	f1.WriteString("a;")
	f2.WriteString("b;")
	f1.Seek(0, io.SeekStart)
	f1.WriteString("c;")
	// pwrite on an O_APPEND descriptor appends on Linux, whatever the
	// offset.
	if _, err := unix.Pwrite(int(f2.Fd()), []byte("d;"), 0); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "start;a;b;c;d;")
}

func testFifo(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/fifo"
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if typ := stat(t, p).Mode & syscall.S_IFMT; typ != syscall.S_IFIFO {
		t.Fatalf("file type of a fifo = %o, want %o", typ, syscall.S_IFIFO)
	}
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.WriteString("through the fifo")
			w.Close()
		}
		done <- err
	}()
	r, err := os.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "through the fifo" {
		t.Errorf("read from the fifo = %q, %v; want %q", got, err, "through the fifo")
	}
	if err := <-done; err != nil {
		t.Errorf("writing to the fifo: %v", err)
	}
}

func testSymlinkLoop(t *testing.T, e *posixEnv, dir string) {
	a, b, self := dir+"/a", dir+"/b", dir+"/self"
	for _, l := range [][2]string{{"b", a}, {"a", b}, {"self", self}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	_, err := os.Open(a)
	wantErrno(t, "open of a symlink loop", err, syscall.ELOOP)
	_, err = os.Stat(self)
	wantErrno(t, "stat of a symlink to itself", err, syscall.ELOOP)
	_, err = os.OpenFile(a, os.O_WRONLY|os.O_CREATE, 0o644)
	wantErrno(t, "create through a symlink loop", err, syscall.ELOOP)
	if st := stat(t, a); st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Errorf("lstat of a looping symlink: mode %o, want a symlink", st.Mode)
	}
	if got, err := os.Readlink(a); err != nil || got != "b" {
		t.Errorf("readlink = %q, %v; want %q", got, err, "b")
	}
}

func testLongNames(t *testing.T, e *posixEnv, dir string) {
	name := strings.Repeat("n", 255)
	write(t, dir+"/"+name, "long")
	wantContent(t, dir+"/"+name, "long")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != name {
		t.Errorf("listing of a directory with a 255-byte name: %v, %v", ents, err)
	}
	if err := os.Mkdir(dir+"/d"+name[1:], 0o755); err != nil {
		t.Errorf("mkdir with a 255-byte name: %v", err)
	}
	long := dir + "/" + name + "x"
	wantErrno(t, "create with a 256-byte name", os.WriteFile(long, nil, 0o644), syscall.ENAMETOOLONG)
	_, err = os.Stat(long)
	wantErrno(t, "stat of a 256-byte name", err, syscall.ENAMETOOLONG)
	wantErrno(t, "mkdir with a 256-byte name", os.Mkdir(long, 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "rename to a 256-byte name", os.Rename(dir+"/"+name, long), syscall.ENAMETOOLONG)
}

func testNotEmpty(t *testing.T, e *posixEnv, dir string) {
	d := dir + "/d"
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, d+"/f", "x")
	wantErrno(t, "rmdir of a non-empty directory", syscall.Rmdir(d), syscall.ENOTEMPTY)
	wantErrno(t, "rmdir of a file", syscall.Rmdir(d+"/f"), syscall.ENOTDIR)
	wantErrno(t, "unlink of a directory", syscall.Unlink(d), syscall.EISDIR)
	os.Remove(d + "/f")
	wantErrno(t, "rmdir once empty", syscall.Rmdir(d), 0)
}

// Within one mount, the target's own mounts are other filesystems, as
// they are natively.
func testCrossDevice(t *testing.T, e *posixEnv, dir string) {
	p := dir + "/f"
	write(t, p, "x")
	if err := os.Mkdir(dir+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(e.otherFS, filepath.Base(dir))
	wantErrno(t, "rename to another filesystem", os.Rename(p, other), syscall.EXDEV)
	wantErrno(t, "rename of a directory to another filesystem", os.Rename(dir+"/sub", other+"-dir"), syscall.EXDEV)
	wantErrno(t, "link to another filesystem", os.Link(p, other), syscall.EXDEV)
	proc := "/proc/" + filepath.Base(dir)
	if e.mounted {
		proc = filepath.Join(e.root, "../../proc", filepath.Base(dir))
	}
	wantErrno(t, "rename into /proc", os.Rename(p, proc), syscall.EXDEV)
	wantContent(t, p, "x")
}
