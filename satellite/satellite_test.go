package satellite_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite"
)

func TestMain(m *testing.M) {
	// cmd/satellite serves with umask 0: modes arrive with the caller's
	// umask applied.
	unix.Umask(0)
	if child := os.Getenv(childEnv); child != "" {
		os.Exit(runChild(child))
	}
	os.Exit(m.Run())
}

// newServer serves a fresh temporary directory.
func newServer(t *testing.T) (*satellite.Server, string) {
	t.Helper()
	root := t.TempDir()
	s := satellite.New(satellite.Config{Root: root})
	t.Cleanup(s.Shutdown)
	return s, root
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v, want nil", what, err)
	}
}

// wantErrno checks that err carries errno want, as the client will see it.
func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if got := rpc.Errno(err); err == nil || got != want {
		t.Errorf("%s = %v (errno %d), want %v (errno %d)", what, err, got, want, want)
	}
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	check(t, "writing "+p, os.WriteFile(p, []byte(data), 0o644))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	check(t, "reading "+p, err)
	return string(b)
}

func hostStat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	check(t, "lstat "+p, unix.Lstat(p, &st))
	return &st
}

func open(t *testing.T, s *satellite.Server, p string, flags int, mode uint32) uint64 {
	t.Helper()
	r, err := s.Open(&rpc.OpenArgs{Path: p, Flags: flags, Mode: mode})
	check(t, fmt.Sprintf("open %s", p), err)
	if r.Handle == 0 {
		t.Fatalf("open %s: handle 0, want a handle", p)
	}
	return r.Handle
}

func read(t *testing.T, s *satellite.Server, h uint64, off int64, size int) string {
	t.Helper()
	r, err := s.Read(&rpc.ReadArgs{Handle: h, Off: off, Size: size})
	check(t, fmt.Sprintf("read %d at %d", size, off), err)
	defer r.Release()
	return string(r.Data)
}

func write(t *testing.T, s *satellite.Server, h uint64, off int64, data string) {
	t.Helper()
	r, err := s.Write(&rpc.WriteArgs{Handle: h, Off: off, Data: []byte(data)})
	check(t, fmt.Sprintf("write %q at %d", data, off), err)
	if r.N != len(data) {
		t.Fatalf("write %q at %d wrote %d bytes, want %d", data, off, r.N, len(data))
	}
}

func TestHello(t *testing.T) {
	root := t.TempDir()
	s := satellite.New(satellite.Config{Root: root + "/./"})
	r, err := s.Hello(&rpc.HelloArgs{Version: rpc.Version})
	check(t, "hello", err)
	want := rpc.HelloReply{Version: rpc.Version, Pid: os.Getpid(), Uid: os.Getuid(), Arch: runtime.GOARCH, Root: root}
	if *r != want {
		t.Errorf("hello = %+v, want %+v", *r, want)
	}
	r, err = satellite.New(satellite.Config{}).Hello(&rpc.HelloArgs{Version: rpc.Version})
	if err != nil || r.Root != "/" {
		t.Errorf("hello of an empty Config = %+v, %v; want root %q", r, err, "/")
	}
}

func TestLstat(t *testing.T) {
	s, root := newServer(t)
	check(t, "chmod", os.Chmod(root, 0o751))
	writeFile(t, filepath.Join(root, "f"), "12345")
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "d"), 0o750))
	check(t, "symlink", os.Symlink("f", filepath.Join(root, "l")))
	for _, tc := range []struct {
		path string
		mode uint32
		size int64
	}{
		{"f", unix.S_IFREG | 0o644, 5},
		{"/f", unix.S_IFREG | 0o644, 5},
		{"d", unix.S_IFDIR | 0o750, -1},
		{"l", unix.S_IFLNK | 0o777, 1}, // the link itself, not its target
		{"", unix.S_IFDIR | 0o751, -1}, // the root
	} {
		a, err := s.Lstat(&rpc.PathArgs{Path: tc.path})
		if err != nil {
			t.Errorf("lstat %q = %v, want nil", tc.path, err)
			continue
		}
		st := hostStat(t, filepath.Join(root, tc.path))
		if a.Mode != tc.mode || a.Ino != st.Ino || a.Nlink != uint32(st.Nlink) || a.Mtime != st.Mtim.Nano() {
			t.Errorf("lstat %q = mode %o ino %d nlink %d mtime %d, want %o %d %d %d",
				tc.path, a.Mode, a.Ino, a.Nlink, a.Mtime, tc.mode, st.Ino, st.Nlink, st.Mtim.Nano())
		}
		if tc.size >= 0 && a.Size != tc.size {
			t.Errorf("lstat %q: size %d, want %d", tc.path, a.Size, tc.size)
		}
	}
	_, err := s.Lstat(&rpc.PathArgs{Path: "missing"})
	wantErrno(t, "lstat missing", err, syscall.ENOENT)
	_, err = s.Lstat(&rpc.PathArgs{Path: "f/below"})
	wantErrno(t, "lstat below a file", err, syscall.ENOTDIR)
}

func TestReadDir(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "a"), "1")
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "sub"), 0o755))
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "empty"), 0o755))
	check(t, "symlink", os.Symlink("/nowhere", filepath.Join(root, "l")))

	r, err := s.ReadDir(&rpc.ReadDirArgs{Path: ""})
	check(t, "readdir root", err)
	if r.Handle != 0 {
		t.Errorf("readdir of 4 entries: handle %d, want 0 (no more)", r.Handle)
	}
	got := map[string]uint32{}
	for _, e := range r.Entries {
		got[e.Name] = e.Attr.Mode &^ 0o7777
		if st := hostStat(t, filepath.Join(root, e.Name)); e.Attr.Ino != st.Ino {
			t.Errorf("entry %s: ino %d, want %d", e.Name, e.Attr.Ino, st.Ino)
		}
	}
	want := map[string]uint32{"a": unix.S_IFREG, "sub": unix.S_IFDIR, "empty": unix.S_IFDIR, "l": unix.S_IFLNK}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readdir root = %v, want %v", got, want)
	}

	r, err = s.ReadDir(&rpc.ReadDirArgs{Path: "empty"})
	check(t, "readdir empty", err)
	if len(r.Entries) != 0 || r.Handle != 0 {
		t.Errorf("readdir empty = %d entries, handle %d; want none, 0", len(r.Entries), r.Handle)
	}
	_, err = s.ReadDir(&rpc.ReadDirArgs{Path: "missing"})
	wantErrno(t, "readdir missing", err, syscall.ENOENT)
	_, err = s.ReadDir(&rpc.ReadDirArgs{Path: "a"})
	wantErrno(t, "readdir of a file", err, syscall.ENOTDIR)
	_, err = s.ReadDir(&rpc.ReadDirArgs{Handle: 12345})
	wantErrno(t, "readdir of an unknown handle", err, syscall.EBADF)
}

// TestReadDirLong lists directories longer than one reply: each batch but
// the last carries a handle to continue with, and every name comes once.
// One directory serves every case, as creating files is slow on some disks.
func TestReadDirLong(t *testing.T) {
	s, root := newServer(t)
	var want []string
	fill := func(n int) {
		for i := len(want); i < n; i++ {
			name := fmt.Sprintf("f%05d", i)
			check(t, "create", os.WriteFile(filepath.Join(root, name), nil, 0o600))
			want = append(want, name)
		}
	}
	for _, n := range []int{rpc.MaxDirEntries, 2*rpc.MaxDirEntries + 10} {
		fill(n)
		var names []string
		var sizes []int
		args := rpc.ReadDirArgs{Path: "/"}
		for {
			r, err := s.ReadDir(&args)
			check(t, fmt.Sprintf("%d entries: readdir batch %d", n, len(sizes)), err)
			sizes = append(sizes, len(r.Entries))
			for _, e := range r.Entries {
				names = append(names, e.Name)
			}
			if r.Handle == 0 {
				break
			}
			if len(sizes) > n/rpc.MaxDirEntries+1 {
				t.Fatalf("readdir of %d entries: %d batches and still a handle", n, len(sizes))
			}
			if args.Handle != 0 {
				_, err := s.ReadDir(&rpc.ReadDirArgs{Handle: args.Handle})
				wantErrno(t, "readdir with a handle already continued", err, syscall.EBADF)
			}
			args = rpc.ReadDirArgs{Handle: r.Handle}
		}
		var wantSizes []int
		for left := n; ; left -= rpc.MaxDirEntries {
			wantSizes = append(wantSizes, min(left, rpc.MaxDirEntries))
			if left < rpc.MaxDirEntries {
				break
			}
		}
		if !slices.Equal(sizes, wantSizes) {
			t.Errorf("%d entries: batch sizes = %v, want %v", n, sizes, wantSizes)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("readdir returned %d names (%v...), want the %d created, once each", len(names), names[:min(3, len(names))], n)
		}
	}

	// A listing closed halfway through.
	r, err := s.ReadDir(&rpc.ReadDirArgs{Path: ""})
	check(t, "readdir", err)
	if r.Handle == 0 {
		t.Fatalf("readdir of %d entries: handle 0, want one", len(want))
	}
	_, err = s.Close(&rpc.HandleArgs{Handle: r.Handle})
	check(t, "close the listing", err)
	_, err = s.ReadDir(&rpc.ReadDirArgs{Handle: r.Handle})
	wantErrno(t, "readdir after close", err, syscall.EBADF)
}

func TestOpen(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "exists"), "old contents")
	check(t, "symlink", os.Symlink("exists", filepath.Join(root, "link")))
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "dir"), 0o755))
	for _, tc := range []struct {
		name     string
		path     string
		flags    int
		mode     uint32
		errno    syscall.Errno
		wantMode uint32 // checked when not 0
		wantSize int64  // checked when errno is 0
	}{
		{"create", "new", unix.O_RDWR | unix.O_CREAT, 0o640, 0, unix.S_IFREG | 0o640, 0},
		{"create setuid", "suid", unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL, 0o4755, 0, unix.S_IFREG | 0o4755, 0},
		{"create existing", "exists", unix.O_RDWR | unix.O_CREAT, 0o600, 0, unix.S_IFREG | 0o644, 12},
		{"exclusive on existing", "exists", unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, 0o600, syscall.EEXIST, 0, 0},
		{"missing", "missing", unix.O_RDONLY, 0, syscall.ENOENT, 0, 0},
		{"missing parent", "no/such", unix.O_RDWR | unix.O_CREAT, 0o644, syscall.ENOENT, 0, 0},
		{"symlink not followed", "link", unix.O_RDONLY, 0, syscall.ELOOP, 0, 0},
		{"directory", "dir", unix.O_RDONLY, 0, 0, unix.S_IFDIR | 0o755, -1},
		{"directory for writing", "dir", unix.O_WRONLY, 0, syscall.EISDIR, 0, 0},
		{"truncate", "exists", unix.O_WRONLY | unix.O_TRUNC, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.Open(&rpc.OpenArgs{Path: tc.path, Flags: tc.flags, Mode: tc.mode})
			if tc.errno != 0 {
				wantErrno(t, "open "+tc.path, err, tc.errno)
				return
			}
			check(t, "open "+tc.path, err)
			defer s.Close(&rpc.HandleArgs{Handle: r.Handle})
			if r.Handle == 0 {
				t.Errorf("open %s: handle 0, want one", tc.path)
			}
			if tc.wantMode != 0 && r.Attr.Mode != tc.wantMode {
				t.Errorf("open %s: mode %o, want %o", tc.path, r.Attr.Mode, tc.wantMode)
			}
			if tc.wantSize >= 0 && r.Attr.Size != tc.wantSize {
				t.Errorf("open %s: size %d, want %d", tc.path, r.Attr.Size, tc.wantSize)
			}
			if st := hostStat(t, filepath.Join(root, tc.path)); r.Attr.Ino != st.Ino || r.Attr.Mode != st.Mode {
				t.Errorf("open %s: ino %d mode %o, want the file's %d %o", tc.path, r.Attr.Ino, r.Attr.Mode, st.Ino, st.Mode)
			}
		})
	}
	// Two opens of one file are two handles.
	h1 := open(t, s, "exists", unix.O_RDONLY, 0)
	h2 := open(t, s, "exists", unix.O_RDONLY, 0)
	if h1 == h2 {
		t.Errorf("two opens gave the same handle %d, want two", h1)
	}
}

// TestOpenWithData checks an open that writes its data first: the file
// holds it, the reply's attributes come after it, and an open that cannot
// write it fails.
func TestOpenWithData(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "exists"), "old contents")
	r, err := s.Open(&rpc.OpenArgs{Path: "new", Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC, Mode: 0o600, Data: []byte("made")})
	check(t, "open with data", err)
	s.Close(&rpc.HandleArgs{Handle: r.Handle})
	if got := readFile(t, filepath.Join(root, "new")); got != "made" || r.Attr.Size != 4 {
		t.Errorf("created with data: file %q, reply size %d; want %q, 4", got, r.Attr.Size, "made")
	}
	r, err = s.Open(&rpc.OpenArgs{Path: "exists", Flags: unix.O_RDWR | unix.O_CREAT, Data: []byte("new")})
	check(t, "open existing with data", err)
	s.Close(&rpc.HandleArgs{Handle: r.Handle})
	if got := readFile(t, filepath.Join(root, "exists")); got != "new contents" {
		t.Errorf("existing file opened with data: %q, want %q", got, "new contents")
	}
	_, err = s.Open(&rpc.OpenArgs{Path: "exists", Flags: unix.O_RDONLY, Data: []byte("x")})
	wantErrno(t, "read-only open with data", err, syscall.EINVAL)
	if got := readFile(t, filepath.Join(root, "exists")); got != "new contents" {
		t.Errorf("after a refused open with data: %q, want it unchanged", got)
	}
}

// TestOpenOwner checks that a root satellite gives a created file to the
// caller named in Owner, and leaves an existing one alone.
func TestOpenOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only a satellite running as root gives files away; run the tests as root")
	}
	s, root := newServer(t)
	owner := rpc.Owner{Uid: 1234, Gid: 5678}
	r, err := s.Open(&rpc.OpenArgs{Path: "f", Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o6755, Owner: owner})
	check(t, "create", err)
	s.Close(&rpc.HandleArgs{Handle: r.Handle})
	st := hostStat(t, filepath.Join(root, "f"))
	if st.Uid != owner.Uid || st.Gid != owner.Gid || st.Mode&0o7777 != 0o6755 {
		t.Errorf("created file: uid %d gid %d mode %o, want %d %d %o", st.Uid, st.Gid, st.Mode&0o7777, owner.Uid, owner.Gid, 0o6755)
	}
	if r.Attr.Uid != owner.Uid || r.Attr.Gid != owner.Gid || r.Attr.Mode&0o7777 != 0o6755 {
		t.Errorf("open reply: uid %d gid %d mode %o, want %d %d %o", r.Attr.Uid, r.Attr.Gid, r.Attr.Mode&0o7777, owner.Uid, owner.Gid, 0o6755)
	}
	writeFile(t, filepath.Join(root, "mine"), "")
	r, err = s.Open(&rpc.OpenArgs{Path: "mine", Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o600, Owner: owner})
	check(t, "open existing with O_CREAT", err)
	s.Close(&rpc.HandleArgs{Handle: r.Handle})
	if st := hostStat(t, filepath.Join(root, "mine")); st.Uid != 0 {
		t.Errorf("existing file opened with O_CREAT: uid %d, want it kept (0)", st.Uid)
	}
	// In a setgid directory the file keeps the directory's group.
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "sgid"), 0o777))
	check(t, "chown", os.Chown(filepath.Join(root, "sgid"), 0, 4242))
	check(t, "chmod", unix.Chmod(filepath.Join(root, "sgid"), 0o2777))
	a, err := s.Mkdir(&rpc.MkdirArgs{Path: "sgid/d", Mode: 0o755, Owner: owner})
	check(t, "mkdir in a setgid directory", err)
	if a.Uid != owner.Uid || a.Gid != 4242 {
		t.Errorf("directory made in a setgid directory: uid %d gid %d, want %d 4242", a.Uid, a.Gid, owner.Uid)
	}
}

func TestOpenInline(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "small"), "small file")
	check(t, "big", os.WriteFile(filepath.Join(root, "big"), make([]byte, 1000), 0o644))
	for _, tc := range []struct {
		path   string
		flags  int
		inline int
		whole  bool
	}{
		{"small", unix.O_RDONLY, 4096, true},
		{"small", unix.O_RDONLY, 0, false},
		{"small", unix.O_RDWR, 4096, false},
		{"big", unix.O_RDONLY, 1000, false}, // shorter than, not equal
		{"big", unix.O_RDONLY, 1001, true},
	} {
		r, err := s.Open(&rpc.OpenArgs{Path: tc.path, Flags: tc.flags, Inline: tc.inline})
		check(t, "open "+tc.path, err)
		if r.Whole != tc.whole {
			t.Errorf("open %s flags %#x inline %d: whole %v, want %v", tc.path, tc.flags, tc.inline, r.Whole, tc.whole)
		}
		if tc.whole && string(r.Data) != readFile(t, filepath.Join(root, tc.path)) {
			t.Errorf("open %s inline: data %q, want the file's contents", tc.path, r.Data)
		}
		r.Release()
		s.Close(&rpc.HandleArgs{Handle: r.Handle})
	}
}

func TestReadWrite(t *testing.T) {
	s, root := newServer(t)
	p := filepath.Join(root, "f")
	h := open(t, s, "f", unix.O_RDWR|unix.O_CREAT, 0o644)
	write(t, s, h, 0, "0123456789")
	write(t, s, h, 12, "xy") // leaves a hole
	if got, want := readFile(t, p), "0123456789\x00\x00xy"; got != want {
		t.Errorf("file = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		off  int64
		size int
		want string
	}{
		{0, 4, "0123"},
		{8, 100, "89\x00\x00xy"}, // short at the end of the file
		{14, 10, ""},             // at the end
		{1000, 10, ""},           // past it
		{3, 0, ""},
	} {
		if got := read(t, s, h, tc.off, tc.size); got != tc.want {
			t.Errorf("read %d at %d = %q, want %q", tc.size, tc.off, got, tc.want)
		}
	}
	r, err := s.Write(&rpc.WriteArgs{Handle: h, Off: 3, Data: nil})
	if err != nil || r.N != 0 {
		t.Errorf("empty write = %+v, %v; want N 0, nil", r, err)
	}

	_, err = s.Read(&rpc.ReadArgs{Handle: h, Off: -1, Size: 1})
	wantErrno(t, "read at a negative offset", err, syscall.EINVAL)
	_, err = s.Read(&rpc.ReadArgs{Handle: h, Size: -1})
	wantErrno(t, "read of a negative size", err, syscall.EINVAL)
	_, err = s.Read(&rpc.ReadArgs{Handle: h, Size: rpc.MaxData + 1})
	wantErrno(t, "read above MaxData", err, syscall.EINVAL)
	_, err = s.Write(&rpc.WriteArgs{Handle: h, Off: -1, Data: []byte("x")})
	wantErrno(t, "write at a negative offset", err, syscall.EINVAL)
	_, err = s.Read(&rpc.ReadArgs{Handle: 999, Size: 1})
	wantErrno(t, "read of an unknown handle", err, syscall.EBADF)
	_, err = s.Write(&rpc.WriteArgs{Handle: 999, Data: []byte("x")})
	wantErrno(t, "write to an unknown handle", err, syscall.EBADF)

	ro := open(t, s, "f", unix.O_RDONLY, 0)
	_, err = s.Write(&rpc.WriteArgs{Handle: ro, Data: []byte("x")})
	wantErrno(t, "write to a read-only handle", err, syscall.EBADF)
	wo := open(t, s, "f", unix.O_WRONLY, 0)
	_, err = s.Read(&rpc.ReadArgs{Handle: wo, Size: 1})
	wantErrno(t, "read from a write-only handle", err, syscall.EBADF)

	// A full-size read.
	big := bytes.Repeat([]byte("abcdefgh"), rpc.MaxData/8)
	check(t, "write big", os.WriteFile(p, big, 0o644))
	if got := read(t, s, ro, 0, rpc.MaxData); got != string(big) {
		t.Errorf("read of %d bytes returned %d bytes, want the file", rpc.MaxData, len(got))
	}
}

// TestAppend checks that a write through an O_APPEND handle lands at the
// end of the file, whatever offset it names.
func TestAppend(t *testing.T) {
	s, root := newServer(t)
	p := filepath.Join(root, "log")
	writeFile(t, p, "0123456789")
	h := open(t, s, "log", unix.O_WRONLY|unix.O_APPEND, 0)
	write(t, s, h, 0, "abc")
	write(t, s, h, 2, "de")
	write(t, s, h, 1<<40, "f")
	if got, want := readFile(t, p), "0123456789abcdef"; got != want {
		t.Errorf("file = %q, want %q", got, want)
	}
}

func TestFsync(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "x")
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "d"), 0o755))
	h := open(t, s, "f", unix.O_WRONLY, 0)
	_, err := s.Fsync(&rpc.FsyncArgs{Handle: h})
	check(t, "fsync by handle", err)
	_, err = s.Fsync(&rpc.FsyncArgs{Path: "d"})
	check(t, "fsync of a directory by path", err)
	_, err = s.Fsync(&rpc.FsyncArgs{Path: "f"})
	check(t, "fsync of a file by path", err)
	_, err = s.Fsync(&rpc.FsyncArgs{Path: "missing"})
	wantErrno(t, "fsync of a missing path", err, syscall.ENOENT)
	_, err = s.Fsync(&rpc.FsyncArgs{Handle: 999})
	wantErrno(t, "fsync of an unknown handle", err, syscall.EBADF)
}

func TestFstatAfterUnlink(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "12345")
	h := open(t, s, "f", unix.O_RDWR, 0)
	ino := hostStat(t, filepath.Join(root, "f")).Ino
	_, err := s.Unlink(&rpc.PathArgs{Path: "f"})
	check(t, "unlink", err)
	a, err := s.Fstat(&rpc.HandleArgs{Handle: h})
	check(t, "fstat after unlink", err)
	if a.Ino != ino || a.Nlink != 0 || a.Size != 5 {
		t.Errorf("fstat after unlink = ino %d nlink %d size %d, want %d 0 5", a.Ino, a.Nlink, a.Size, ino)
	}
	// The open file is still readable and writable.
	write(t, s, h, 5, "6")
	if got := read(t, s, h, 0, 10); got != "123456" {
		t.Errorf("read of the unlinked file = %q, want %q", got, "123456")
	}
	_, err = s.Fstat(&rpc.HandleArgs{Handle: 999})
	wantErrno(t, "fstat of an unknown handle", err, syscall.EBADF)
}

func TestCloseTwice(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "x")
	h := open(t, s, "f", unix.O_RDONLY, 0)
	_, err := s.Close(&rpc.HandleArgs{Handle: h})
	check(t, "close", err)
	_, err = s.Close(&rpc.HandleArgs{Handle: h})
	wantErrno(t, "second close", err, syscall.EBADF)
	_, err = s.Read(&rpc.ReadArgs{Handle: h, Size: 1})
	wantErrno(t, "read after close", err, syscall.EBADF)
	_, err = s.Close(&rpc.HandleArgs{Handle: 0})
	wantErrno(t, "close of handle 0", err, syscall.EBADF)
}

func TestSetattr(t *testing.T) {
	s, root := newServer(t)
	p := filepath.Join(root, "f")
	writeFile(t, p, "0123456789")
	uid, gid := uint32(1234), uint32(5678)
	if os.Geteuid() != 0 {
		uid, gid = uint32(os.Getuid()), uint32(os.Getgid())
	}
	const atime, mtime = 1_234_567_890_123_456_789, 1_111_111_111_987_654_321
	for _, tc := range []struct {
		name  string
		args  rpc.SetattrArgs
		check func(a *rpc.Attr) string // "" when right
	}{
		{"mode", rpc.SetattrArgs{Valid: rpc.SetMode, Mode: 0o4750},
			func(a *rpc.Attr) string { return want("mode", a.Mode, unix.S_IFREG|0o4750) }},
		{"uid and gid", rpc.SetattrArgs{Valid: rpc.SetUid | rpc.SetGid, Uid: uid, Gid: gid},
			func(a *rpc.Attr) string { return want("uid", a.Uid, uid) + want("gid", a.Gid, gid) }},
		{"uid only", rpc.SetattrArgs{Valid: rpc.SetUid, Uid: uid, Gid: 1},
			func(a *rpc.Attr) string { return want("gid", a.Gid, gid) }},
		{"shrink", rpc.SetattrArgs{Valid: rpc.SetSize, Size: 4},
			func(a *rpc.Attr) string { return want("size", a.Size, int64(4)) }},
		{"grow", rpc.SetattrArgs{Valid: rpc.SetSize, Size: 1 << 20},
			func(a *rpc.Attr) string { return want("size", a.Size, int64(1<<20)) }},
		{"times with nanoseconds", rpc.SetattrArgs{Valid: rpc.SetAtime | rpc.SetMtime, Atime: atime, Mtime: mtime},
			func(a *rpc.Attr) string {
				return want("atime", a.Atime, int64(atime)) + want("mtime", a.Mtime, int64(mtime))
			}},
		{"atime now", rpc.SetattrArgs{Valid: rpc.SetAtimeNow},
			func(a *rpc.Attr) string { return recent("atime", a.Atime) + want("mtime", a.Mtime, int64(mtime)) }},
		{"mtime now", rpc.SetattrArgs{Valid: rpc.SetMtimeNow},
			func(a *rpc.Attr) string { return recent("mtime", a.Mtime) }},
		{"mtime only", rpc.SetattrArgs{Valid: rpc.SetMtime, Mtime: -1_000_000_001},
			func(a *rpc.Attr) string {
				return want("mtime", a.Mtime, int64(-1_000_000_001)) + recent("atime", a.Atime)
			}},
		{"now wins over a time", rpc.SetattrArgs{Valid: rpc.SetAtime | rpc.SetAtimeNow, Atime: atime},
			func(a *rpc.Attr) string { return recent("atime", a.Atime) }},
	} {
		args := tc.args
		args.Path = "f"
		a, err := s.Setattr(&args)
		if err != nil {
			t.Errorf("setattr %s = %v, want nil", tc.name, err)
			continue
		}
		if msg := tc.check(a); msg != "" {
			t.Errorf("setattr %s: reply%s", tc.name, msg)
		}
		host, err := s.Lstat(&rpc.PathArgs{Path: "f"})
		check(t, "lstat", err)
		if msg := tc.check(host); msg != "" {
			t.Errorf("setattr %s: file%s", tc.name, msg)
		}
	}
	_, err := s.Setattr(&rpc.SetattrArgs{Path: "missing", Valid: rpc.SetMode, Mode: 0o600})
	wantErrno(t, "setattr of a missing file", err, syscall.ENOENT)
	_, err = s.Setattr(&rpc.SetattrArgs{Path: "f", Handle: 999, Valid: rpc.SetSize, Size: 1})
	wantErrno(t, "truncate through an unknown handle", err, syscall.EBADF)
}

func want[T comparable](what string, got, want T) string {
	if got == want {
		return ""
	}
	return fmt.Sprintf(" %s = %v, want %v;", what, got, want)
}

// recent checks a time set to "now": file times come from a coarse clock,
// so allow a little before the test's own clock.
func recent(what string, ns int64) string {
	now := time.Now().UnixNano()
	if ns > now-int64(10*time.Second) && ns <= now {
		return ""
	}
	return fmt.Sprintf(" %s = %d, want about now (%d);", what, ns, now)
}

// TestSetattrSymlink checks that times set on a symlink are the link's,
// not its target's.
func TestSetattrSymlink(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "target"), "x")
	check(t, "symlink", os.Symlink("target", filepath.Join(root, "l")))
	before := hostStat(t, filepath.Join(root, "target")).Mtim.Nano()
	a, err := s.Setattr(&rpc.SetattrArgs{Path: "l", Valid: rpc.SetMtime, Mtime: 42})
	check(t, "setattr of a symlink", err)
	if a.Mtime != 42 || a.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("setattr of a symlink = mode %o mtime %d, want the link's with mtime 42", a.Mode, a.Mtime)
	}
	if got := hostStat(t, filepath.Join(root, "target")).Mtim.Nano(); got != before {
		t.Errorf("target mtime = %d after setting the link's, want %d", got, before)
	}
}

func TestMkdirRmdir(t *testing.T) {
	s, root := newServer(t)
	a, err := s.Mkdir(&rpc.MkdirArgs{Path: "d", Mode: 0o1750})
	check(t, "mkdir", err)
	if a.Mode != unix.S_IFDIR|0o1750 {
		t.Errorf("mkdir: mode %o, want %o", a.Mode, unix.S_IFDIR|0o1750)
	}
	if st := hostStat(t, filepath.Join(root, "d")); st.Ino != a.Ino {
		t.Errorf("mkdir: ino %d, want the directory's %d", a.Ino, st.Ino)
	}
	_, err = s.Mkdir(&rpc.MkdirArgs{Path: "d", Mode: 0o755})
	wantErrno(t, "mkdir of an existing directory", err, syscall.EEXIST)
	_, err = s.Mkdir(&rpc.MkdirArgs{Path: "no/such", Mode: 0o755})
	wantErrno(t, "mkdir in a missing directory", err, syscall.ENOENT)

	writeFile(t, filepath.Join(root, "d", "f"), "x")
	_, err = s.Rmdir(&rpc.PathArgs{Path: "d"})
	wantErrno(t, "rmdir of a non-empty directory", err, syscall.ENOTEMPTY)
	_, err = s.Rmdir(&rpc.PathArgs{Path: "d/f"})
	wantErrno(t, "rmdir of a file", err, syscall.ENOTDIR)
	_, err = s.Rmdir(&rpc.PathArgs{Path: "missing"})
	wantErrno(t, "rmdir of a missing directory", err, syscall.ENOENT)
	check(t, "remove", os.Remove(filepath.Join(root, "d", "f")))
	_, err = s.Rmdir(&rpc.PathArgs{Path: "d"})
	check(t, "rmdir", err)
	if _, err := os.Lstat(filepath.Join(root, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lstat after rmdir = %v, want not exist", err)
	}
}

func TestUnlink(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "x")
	check(t, "mkdir", os.Mkdir(filepath.Join(root, "d"), 0o755))
	_, err := s.Unlink(&rpc.PathArgs{Path: "f"})
	check(t, "unlink", err)
	if _, err := os.Lstat(filepath.Join(root, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lstat after unlink = %v, want not exist", err)
	}
	_, err = s.Unlink(&rpc.PathArgs{Path: "f"})
	wantErrno(t, "unlink of a missing file", err, syscall.ENOENT)
	_, err = s.Unlink(&rpc.PathArgs{Path: "d"})
	wantErrno(t, "unlink of a directory", err, syscall.EISDIR)
}

func TestRename(t *testing.T) {
	s, root := newServer(t)
	at := func(name string) string { return filepath.Join(root, name) }
	writeFile(t, at("a"), "A")
	writeFile(t, at("b"), "B")
	check(t, "mkdir", os.Mkdir(at("d"), 0o755))

	_, err := s.Rename(&rpc.RenameArgs{Old: "a", New: "c"})
	check(t, "rename", err)
	if got := readFile(t, at("c")); got != "A" {
		t.Errorf("renamed file = %q, want %q", got, "A")
	}
	_, err = s.Rename(&rpc.RenameArgs{Old: "c", New: "b"})
	check(t, "rename over a file", err)
	if got := readFile(t, at("b")); got != "A" {
		t.Errorf("file renamed over another = %q, want %q", got, "A")
	}
	writeFile(t, at("c"), "C")
	_, err = s.Rename(&rpc.RenameArgs{Old: "c", New: "b", Flags: unix.RENAME_NOREPLACE})
	wantErrno(t, "rename with RENAME_NOREPLACE over a file", err, syscall.EEXIST)
	if got := readFile(t, at("b")); got != "A" {
		t.Errorf("file after a refused rename = %q, want %q", got, "A")
	}
	_, err = s.Rename(&rpc.RenameArgs{Old: "c", New: "new", Flags: unix.RENAME_NOREPLACE})
	check(t, "rename with RENAME_NOREPLACE to a new name", err)

	inoB, inoD := hostStat(t, at("b")).Ino, hostStat(t, at("d")).Ino
	_, err = s.Rename(&rpc.RenameArgs{Old: "b", New: "d", Flags: unix.RENAME_EXCHANGE})
	check(t, "rename with RENAME_EXCHANGE", err)
	if gotB, gotD := hostStat(t, at("b")).Ino, hostStat(t, at("d")).Ino; gotB != inoD || gotD != inoB {
		t.Errorf("after RENAME_EXCHANGE: b is ino %d, d is %d; want %d, %d", gotB, gotD, inoD, inoB)
	}
	_, err = s.Rename(&rpc.RenameArgs{Old: "b", New: "missing", Flags: unix.RENAME_EXCHANGE})
	wantErrno(t, "RENAME_EXCHANGE with a missing name", err, syscall.ENOENT)
	_, err = s.Rename(&rpc.RenameArgs{Old: "missing", New: "x"})
	wantErrno(t, "rename of a missing file", err, syscall.ENOENT)
	writeFile(t, at("b/f"), "in the directory now named b")
	_, err = s.Rename(&rpc.RenameArgs{Old: "d", New: "b"})
	wantErrno(t, "rename of a file over a non-empty directory", err, syscall.EISDIR)
}

func TestSymlinkReadlink(t *testing.T) {
	s, root := newServer(t)
	for _, target := range []string{"f", "../../etc/passwd", "/abs/olute", "dir/ünï côde"} {
		name := fmt.Sprintf("l%d", len(target))
		a, err := s.Symlink(&rpc.SymlinkArgs{Target: target, Path: name})
		check(t, "symlink to "+target, err)
		if a.Mode&unix.S_IFMT != unix.S_IFLNK || a.Size != int64(len(target)) {
			t.Errorf("symlink to %q: mode %o size %d, want a link of size %d", target, a.Mode, a.Size, len(target))
		}
		r, err := s.Readlink(&rpc.PathArgs{Path: name})
		check(t, "readlink", err)
		if r.Target != target {
			t.Errorf("readlink = %q, want %q", r.Target, target)
		}
		if got, _ := os.Readlink(filepath.Join(root, name)); got != target {
			t.Errorf("link on disk points to %q, want %q verbatim", got, target)
		}
	}
	_, err := s.Symlink(&rpc.SymlinkArgs{Target: "x", Path: "l1"})
	wantErrno(t, "symlink over an existing name", err, syscall.EEXIST)
	writeFile(t, filepath.Join(root, "f"), "")
	_, err = s.Readlink(&rpc.PathArgs{Path: "f"})
	wantErrno(t, "readlink of a file", err, syscall.EINVAL)
	_, err = s.Readlink(&rpc.PathArgs{Path: "missing"})
	wantErrno(t, "readlink of a missing file", err, syscall.ENOENT)
}

func TestLink(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "x")
	a, err := s.Link(&rpc.LinkArgs{Old: "f", New: "g"})
	check(t, "link", err)
	st := hostStat(t, filepath.Join(root, "f"))
	if a.Nlink != 2 || a.Ino != st.Ino {
		t.Errorf("link = nlink %d ino %d, want 2 %d", a.Nlink, a.Ino, st.Ino)
	}
	_, err = s.Link(&rpc.LinkArgs{Old: "f", New: "g"})
	wantErrno(t, "link over an existing name", err, syscall.EEXIST)
	_, err = s.Link(&rpc.LinkArgs{Old: "missing", New: "h"})
	wantErrno(t, "link of a missing file", err, syscall.ENOENT)
	// A link to a symlink links the symlink itself.
	check(t, "symlink", os.Symlink("f", filepath.Join(root, "l")))
	a, err = s.Link(&rpc.LinkArgs{Old: "l", New: "l2"})
	check(t, "link of a symlink", err)
	if a.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("link of a symlink: mode %o, want a symlink", a.Mode)
	}
}

// TestMknodFifo makes a fifo and moves data through it: offsets mean
// nothing on a stream, so reads and writes fall back to read and write.
func TestMknodFifo(t *testing.T) {
	s, root := newServer(t)
	a, err := s.Mknod(&rpc.MkdirArgs{Path: "fifo", Mode: unix.S_IFIFO | 0o640})
	check(t, "mknod fifo", err)
	if a.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("mknod fifo: mode %o, want %o", a.Mode, unix.S_IFIFO|0o640)
	}
	if st := hostStat(t, filepath.Join(root, "fifo")); st.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("fifo on disk: mode %o, want %o", st.Mode, unix.S_IFIFO|0o640)
	}
	_, err = s.Mknod(&rpc.MkdirArgs{Path: "fifo", Mode: unix.S_IFIFO | 0o640})
	wantErrno(t, "mknod over an existing name", err, syscall.EEXIST)
	// O_RDWR opens a fifo without waiting for the other end.
	h := open(t, s, "fifo", unix.O_RDWR, 0)
	write(t, s, h, 1234, "through the fifo")
	if got := read(t, s, h, 999, 100); got != "through the fifo" {
		t.Errorf("read from the fifo = %q, want %q", got, "through the fifo")
	}
	a, err = s.Mknod(&rpc.MkdirArgs{Path: "reg", Mode: unix.S_IFREG | 0o600})
	check(t, "mknod of a regular file", err)
	if a.Mode != unix.S_IFREG|0o600 || a.Size != 0 {
		t.Errorf("mknod of a regular file: mode %o size %d, want %o 0", a.Mode, a.Size, unix.S_IFREG|0o600)
	}
}

func TestStatfs(t *testing.T) {
	s, root := newServer(t)
	r, err := s.Statfs(&rpc.PathArgs{Path: ""})
	check(t, "statfs", err)
	var st unix.Statfs_t
	check(t, "host statfs", unix.Statfs(root, &st))
	if r.Bsize != uint32(st.Bsize) || r.Blocks != st.Blocks || r.Files != st.Files || r.Namelen != uint32(st.Namelen) || r.Frsize != uint32(st.Frsize) {
		t.Errorf("statfs = %+v, want the host's %+v", *r, st)
	}
	if r.Bavail > r.Bfree || r.Bfree > r.Blocks || r.Blocks == 0 {
		t.Errorf("statfs = %+v, want 0 < bavail <= bfree <= blocks", *r)
	}
	_, err = s.Statfs(&rpc.PathArgs{Path: "missing"})
	wantErrno(t, "statfs of a missing path", err, syscall.ENOENT)
}

// TestXattr sets, reads, lists and removes user.* attributes. A file
// system without them must say so with EOPNOTSUPP everywhere.
func TestXattr(t *testing.T) {
	s, root := newServer(t)
	writeFile(t, filepath.Join(root, "f"), "x")
	_, err := s.Setxattr(&rpc.XattrArgs{Path: "f", Name: "user.probe", Value: []byte("1")})
	if rpc.Errno(err) == syscall.EOPNOTSUPP {
		t.Logf("%s has no user xattrs: checking that every xattr op says EOPNOTSUPP", root)
		_, err = s.Getxattr(&rpc.XattrArgs{Path: "f", Name: "user.probe"})
		wantErrno(t, "getxattr without xattr support", err, syscall.EOPNOTSUPP)
		_, err = s.Removexattr(&rpc.XattrArgs{Path: "f", Name: "user.probe"})
		wantErrno(t, "removexattr without xattr support", err, syscall.EOPNOTSUPP)
		return
	}
	check(t, "setxattr", err)
	_, err = s.Removexattr(&rpc.XattrArgs{Path: "f", Name: "user.probe"})
	check(t, "removexattr", err)

	a, err := s.Lstat(&rpc.PathArgs{Path: "f"})
	check(t, "lstat", err)
	if a.Xattr != rpc.XattrNone {
		t.Errorf("lstat of a file without xattrs: Xattr = %v, want XattrNone", a.Xattr)
	}
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 512)
	for _, x := range []struct {
		name  string
		value []byte
	}{{"user.a", []byte("value a")}, {"user.empty", []byte{}}, {"user.big", big}} {
		_, err := s.Setxattr(&rpc.XattrArgs{Path: "f", Name: x.name, Value: x.value})
		check(t, "setxattr "+x.name, err)
		r, err := s.Getxattr(&rpc.XattrArgs{Path: "f", Name: x.name})
		check(t, "getxattr "+x.name, err)
		if !bytes.Equal(r.Value, x.value) {
			t.Errorf("getxattr %s = %q, want %q", x.name, r.Value, x.value)
		}
	}
	r, err := s.Listxattr(&rpc.XattrArgs{Path: "f"})
	check(t, "listxattr", err)
	names := strings.Split(strings.TrimSuffix(string(r.Value), "\x00"), "\x00")
	slices.Sort(names)
	if want := []string{"user.a", "user.big", "user.empty"}; !slices.Equal(names, want) {
		t.Errorf("listxattr = %q, want the names %q, each NUL-terminated", r.Value, want)
	}
	if a, _ := s.Lstat(&rpc.PathArgs{Path: "f"}); a == nil || a.Xattr != rpc.XattrSome {
		t.Errorf("lstat of a file with xattrs = %+v, want Xattr XattrSome", a)
	}
	_, err = s.Setxattr(&rpc.XattrArgs{Path: "f", Name: "user.a", Value: []byte("x"), Flags: unix.XATTR_CREATE})
	wantErrno(t, "setxattr XATTR_CREATE of an existing name", err, syscall.EEXIST)
	_, err = s.Setxattr(&rpc.XattrArgs{Path: "f", Name: "user.new", Value: []byte("x"), Flags: unix.XATTR_REPLACE})
	wantErrno(t, "setxattr XATTR_REPLACE of a missing name", err, syscall.ENODATA)
	_, err = s.Removexattr(&rpc.XattrArgs{Path: "f", Name: "user.a"})
	check(t, "removexattr", err)
	_, err = s.Getxattr(&rpc.XattrArgs{Path: "f", Name: "user.a"})
	wantErrno(t, "getxattr after removexattr", err, syscall.ENODATA)
	_, err = s.Removexattr(&rpc.XattrArgs{Path: "f", Name: "user.a"})
	wantErrno(t, "removexattr of a missing name", err, syscall.ENODATA)
	_, err = s.Getxattr(&rpc.XattrArgs{Path: "missing", Name: "user.a"})
	wantErrno(t, "getxattr of a missing file", err, syscall.ENOENT)
	_, err = s.Setxattr(&rpc.XattrArgs{Path: "f", Name: "nonamespace", Value: []byte("x")})
	wantErrno(t, "setxattr without a namespace", err, syscall.EOPNOTSUPP)
}
