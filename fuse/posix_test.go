package fuse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// pair is one path seen through the mount and in the backing directory.
type pair struct{ mnt, back string }

func (p pair) join(elem ...string) pair {
	return pair{
		mnt:  filepath.Join(append([]string{p.mnt}, elem...)...),
		back: filepath.Join(append([]string{p.back}, elem...)...),
	}
}

// settleDir is where settle makes its files: the root of TestPosix's mount,
// outside the subtests' directories. settled counts them.
var (
	settleDir pair
	settled   atomic.Int64
)

// settle waits until the mount has heard of every change made so far in
// the backing directory: the reports come in order, so once a file made
// after those changes shows, all of them have arrived. The file goes in a
// directory made through the mount, whose listing its watch keeps true, so
// that the file does not show before its report.
func settle(t *testing.T) {
	t.Helper()
	dir := settleDir.join(".settle")
	if err := os.Mkdir(dir.mnt, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	f := dir.join(strconv.FormatInt(settled.Add(1), 10))
	writeFile(t, f.back, "")
	eventually(t, "the mount hearing of the changes in the target", func() error {
		_, err := os.Lstat(f.mnt)
		return err
	})
}

// TestPosix runs POSIX behaviour over one mount, each subtest in a
// directory of its own, made through the mount.
func TestPosix(t *testing.T) {
	m := mount(t, mountOptions{AllowOther: true})
	settleDir = pair{mnt: m.Dir, back: m.Backing}
	tests := []struct {
		name string
		f    func(t *testing.T, d pair)
	}{
		{"LookupGetattr", testLookupGetattr},
		{"Chmod", testChmod},
		{"Chown", testChown},
		{"Truncate", testTruncate},
		{"Utimes", testUtimes},
		{"ReadDir", testReadDir},
		{"LargeDir", testLargeDir},
		{"OddNames", testOddNames},
		{"CreateExcl", testCreateExcl},
		{"OpenTrunc", testOpenTrunc},
		{"ReadWrite", testReadWrite},
		{"ReadAfterWrite", testReadAfterWrite},
		{"ProcFiles", testProcFiles},
		{"Append", testAppend},
		{"FlushRelease", testFlushRelease},
		{"Fsync", testFsync},
		{"MkdirRmdirUnlink", testMkdirRmdirUnlink},
		{"Rename", testRename},
		{"RenameDir", testRenameDir},
		{"RenameFlags", testRenameFlags},
		{"Symlink", testSymlink},
		{"HardLink", testHardLink},
		{"Mknod", testMknod},
		{"Statfs", testStatfs},
		{"Xattr", testXattr},
		{"Mmap", testMmap},
		{"CopyTree", testCopyTree},
		{"Tar", testTar},
		{"DD", testDD},
		{"Sparse4G", testSparse4G},
		{"UnlinkOpen", testUnlinkOpen},
		{"UnlinkOpenSetattr", testUnlinkOpenSetattr},
		{"BackingChanges", testBackingChanges},
		{"Inodes", testInodes},
		{"Permissions", testPermissions},
		{"Parallel", testParallel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := pair{m.Dir, m.Backing}.join(tc.name)
			if err := os.Mkdir(d.mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.f(t, d)
		})
	}
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := sys.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return st
}

func writeFile(t *testing.T, p string, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantContent fails the test unless the file at p holds want.
func wantContent(t *testing.T, p string, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
		return
	}
	if string(b) != want {
		t.Errorf("read %s = %q, want %q", p, b, want)
	}
}

// sameStat fails the test if what the mount says about a file differs from
// what the backing directory says, in anything but the inode and device.
func sameStat(t *testing.T, what string, got, want *unix.Stat_t) {
	t.Helper()
	type fields struct {
		Mode, Nlink, Uid, Gid uint64
		Size, Blocks          int64
		Rdev                  uint64
		Mtime, Ctime          int64
	}
	f := func(st *unix.Stat_t) fields {
		return fields{uint64(st.Mode), uint64(st.Nlink), uint64(st.Uid), uint64(st.Gid),
			st.Size, st.Blocks, st.Rdev, st.Mtim.Nano(), st.Ctim.Nano()}
	}
	if g, w := f(got), f(want); g != w {
		t.Errorf("%s: stat through the mount = %+v, want %+v", what, g, w)
	}
}

func testLookupGetattr(t *testing.T, d pair) {
	f := d.join("f")
	if err := os.WriteFile(f.back, []byte("12345"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f.back, 1000, 1001); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{{Sec: 1000000000, Nsec: 123456789}, {Sec: 1100000000, Nsec: 987654321}}
	if err := sys.UtimesNano(f.back, ts); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.join("dir").back, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", d.join("link").back); err != nil {
		t.Fatal(err)
	}
	if err := sys.Mkfifo(d.join("fifo").back, 0o600); err != nil {
		t.Fatal(err)
	}
	settle(t)
	for _, name := range []string{"f", "dir", "link", "fifo"} {
		p := d.join(name)
		got, want := lstat(t, p.mnt), lstat(t, p.back)
		sameStat(t, name, &got, &want)
	}
	st := lstat(t, f.mnt)
	if st.Atim != ts[0] || st.Mtim != ts[1] {
		t.Errorf("atime, mtime = %v, %v; want %v, %v", st.Atim, st.Mtim, ts[0], ts[1])
	}
	// Through a symlink, stat reaches its target.
	var fst unix.Stat_t
	if err := sys.Stat(d.join("link").mnt, &fst); err != nil || fst.Ino != st.Ino {
		t.Errorf("stat link = ino %d, %v; want ino %d", fst.Ino, err, st.Ino)
	}
	var missing unix.Stat_t
	wantErrno(t, "lstat missing", sys.Lstat(d.join("missing").mnt, &missing), syscall.ENOENT)
	wantErrno(t, "lstat through a file", sys.Lstat(d.join("f", "x").mnt, &missing), syscall.ENOTDIR)
}

func testChmod(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "x")
	for _, mode := range []uint32{0o604, 0o4755, 0o2710, 0o1777, 0} {
		if err := sys.Chmod(f.mnt, mode); err != nil {
			t.Fatalf("chmod %o: %v", mode, err)
		}
		if got := lstat(t, f.back).Mode; got != unix.S_IFREG|mode {
			t.Errorf("after chmod %o: backing mode = %o, want %o", mode, got, unix.S_IFREG|mode)
		}
		// bazil.org/fuse drops the sticky bit from the attributes it
		// sends the kernel (bazil/fuse#283), so the mount cannot show it.
		if got := lstat(t, f.mnt).Mode &^ unix.S_ISVTX; got != unix.S_IFREG|mode&^unix.S_ISVTX {
			t.Errorf("after chmod %o: mode = %o, want %o", mode, got, unix.S_IFREG|mode&^unix.S_ISVTX)
		}
	}
	run(t, "chmod", "u=rwx,g=rx,o=", f.mnt)
	if got := lstat(t, f.back).Mode & 0o7777; got != 0o750 {
		t.Errorf("after chmod u=rwx,g=rx,o=: backing mode = %o, want 750", got)
	}
	sub := d.join("sub")
	if err := os.Mkdir(sub.mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := sys.Chmod(sub.mnt, 0o1755); err != nil {
		t.Fatal(err)
	}
	if got := lstat(t, sub.back).Mode; got != unix.S_IFDIR|0o1755 {
		t.Errorf("dir: backing mode = %o, want %o", got, unix.S_IFDIR|0o1755)
	}
}

func testChown(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "x")
	if err := os.Chown(f.mnt, 1000, 1001); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, f.back); st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("backing owner = %d:%d, want 1000:1001", st.Uid, st.Gid)
	}
	if err := os.Chown(f.mnt, -1, 2000); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, f.back); st.Uid != 1000 || st.Gid != 2000 {
		t.Errorf("after chown -1:2000: backing owner = %d:%d, want 1000:2000", st.Uid, st.Gid)
	}
	if st := lstat(t, f.mnt); st.Uid != 1000 || st.Gid != 2000 {
		t.Errorf("after chown -1:2000: owner = %d:%d, want 1000:2000", st.Uid, st.Gid)
	}
	// chown -h changes the link, not its target.
	l := d.join("l")
	if err := os.Symlink("f", l.mnt); err != nil {
		t.Fatal(err)
	}
	run(t, "chown", "-h", "3000:3001", l.mnt)
	if st := lstat(t, l.back); st.Uid != 3000 || st.Gid != 3001 {
		t.Errorf("symlink: backing owner = %d:%d, want 3000:3001", st.Uid, st.Gid)
	}
	if st := lstat(t, f.back); st.Uid != 1000 {
		t.Errorf("chown -h changed the target's owner to %d", st.Uid)
	}
}

func testTruncate(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "0123456789")
	if err := os.Truncate(f.mnt, 10000); err != nil {
		t.Fatal(err)
	}
	want := "0123456789" + strings.Repeat("\x00", 9990)
	wantContent(t, f.back, want)
	wantContent(t, f.mnt, want)
	if err := os.Truncate(f.mnt, 3); err != nil {
		t.Fatal(err)
	}
	wantContent(t, f.back, "012")
	wantContent(t, f.mnt, "012")
	run(t, "truncate", "-s", "5", f.mnt)
	wantContent(t, f.mnt, "012\x00\x00")

	// ftruncate through a descriptor, also on a file whose mode no
	// longer lets anyone open it.
	fd, err := os.OpenFile(f.mnt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Truncate(1); err != nil {
		t.Errorf("ftruncate: %v", err)
	}
	wantContent(t, f.back, "0")
	if err := fd.Chmod(0); err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(2); err != nil {
		t.Errorf("ftruncate of a mode 0 file: %v", err)
	}
	if st, err := fd.Stat(); err != nil || st.Size() != 2 {
		t.Errorf("fstat after ftruncate = %v, %v; want size 2", st, err)
	}
	if st := lstat(t, f.back); st.Size != 2 {
		t.Errorf("backing size = %d, want 2", st.Size)
	}
}

func testUtimes(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "x")
	run(t, "touch", "-d", "2001-02-03 04:05:06.123456789 UTC", f.mnt)
	want := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC).UnixNano()
	for _, p := range []string{f.back, f.mnt} {
		st := lstat(t, p)
		if st.Mtim.Nano() != want || st.Atim.Nano() != want {
			t.Errorf("%s: atime, mtime = %d, %d; want %d", p, st.Atim.Nano(), st.Mtim.Nano(), want)
		}
	}
	// Only the mtime: the atime stays.
	run(t, "touch", "-m", "-d", "2002-01-01 00:00:00.000000001 UTC", f.mnt)
	st := lstat(t, f.back)
	if w := time.Date(2002, 1, 1, 0, 0, 0, 1, time.UTC).UnixNano(); st.Mtim.Nano() != w || st.Atim.Nano() != want {
		t.Errorf("after touch -m: atime, mtime = %d, %d; want %d, %d", st.Atim.Nano(), st.Mtim.Nano(), want, w)
	}
	// touch without a date sets both to now.
	before := time.Now().Add(-time.Minute).UnixNano()
	run(t, "touch", f.mnt)
	st = lstat(t, f.back)
	if st.Mtim.Nano() < before || st.Atim.Nano() < before {
		t.Errorf("after touch: atime, mtime = %d, %d; want about now (%d)", st.Atim.Nano(), st.Mtim.Nano(), time.Now().UnixNano())
	}
	// A symlink's own times.
	l := d.join("l")
	if err := os.Symlink("f", l.mnt); err != nil {
		t.Fatal(err)
	}
	run(t, "touch", "-h", "-d", "1999-12-31 23:59:59.5 UTC", l.mnt)
	if st, w := lstat(t, l.back), time.Date(1999, 12, 31, 23, 59, 59, 5e8, time.UTC).UnixNano(); st.Mtim.Nano() != w {
		t.Errorf("symlink mtime = %d, want %d", st.Mtim.Nano(), w)
	}
}

func testReadDir(t *testing.T, d pair) {
	dir := d.join("big")
	if err := os.Mkdir(dir.back, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 200 {
		name := fmt.Sprintf("f%03d", i)
		names = append(names, name)
		if err := os.WriteFile(filepath.Join(dir.back, name), bytes.Repeat([]byte("x"), i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir.back, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f000", filepath.Join(dir.back, "link")); err != nil {
		t.Fatal(err)
	}
	settle(t)
	names = append(names, "link", "sub")
	slices.Sort(names)

	ents, err := os.ReadDir(dir.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
		var want fs.FileMode
		switch e.Name() {
		case "sub":
			want = fs.ModeDir
		case "link":
			want = fs.ModeSymlink
		}
		if e.Type() != want {
			t.Errorf("%s: type %v, want %v", e.Name(), e.Type(), want)
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("readdir = %q, want %q", got, names)
	}
	// ls -l sees what it would see in the target.
	ls := func(p string) string {
		return run(t, "ls", "-ln", "--time-style=full-iso", p)
	}
	if got, want := ls(dir.mnt), ls(dir.back); got != want {
		t.Errorf("ls -l through the mount:\n%s\nwant:\n%s", got, want)
	}
	// An empty directory lists nothing.
	if ents, err := os.ReadDir(filepath.Join(dir.mnt, "sub")); err != nil || len(ents) != 0 {
		t.Errorf("readdir of an empty dir = %v, %v; want nothing", ents, err)
	}
	wantErrno(t, "readdir of a file", func() error { _, err := os.ReadDir(filepath.Join(dir.mnt, "f001")); return err }(), syscall.ENOTDIR)
}

// testLargeDir lists a directory longer than one batch of the protocol.
func testLargeDir(t *testing.T, d pair) {
	const n = 2*rpc.MaxDirEntries + 100
	want := make([]string, 0, n)
	for i := range n {
		name := fmt.Sprintf("entry-%05d", i)
		want = append(want, name)
		if err := os.WriteFile(d.join(name).back, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	settle(t)
	for range 2 { // the second time from the start again (rewinddir)
		ents, err := os.ReadDir(d.mnt)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, want) {
			t.Errorf("readdir of %d entries returned %d, differing", n, len(got))
		}
	}
	if out := run(t, "find", d.mnt, "-type", "f"); strings.Count(out, "\n") != n {
		t.Errorf("find found %d files, want %d", strings.Count(out, "\n"), n)
	}
}

// testOddNames uses names that are not UTF-8, hold newlines, spaces and
// backslashes, or are as long as a name may be.
func testOddNames(t *testing.T, d pair) {
	names := []string{
		"\xff\xfe not utf-8",
		"new\nline",
		" spaces ",
		`back\slash`,
		"\u00e9t\u00e9 \u65e5\u672c",
		strings.Repeat("n", 255),
		"-dash",
		"*?[",
	}
	for _, name := range names {
		p := d.join(name)
		if err := os.WriteFile(p.mnt, []byte(name), 0o644); err != nil {
			t.Errorf("create %q: %v", name, err)
			continue
		}
		wantContent(t, p.back, name)
		wantContent(t, p.mnt, name)
	}
	ents, err := os.ReadDir(d.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("readdir = %q, want %q", got, want)
	}
	// Made in the target, and renamed, linked and removed through the mount.
	odd := "\x80\x81 target"
	writeFile(t, d.join(odd).back, "t")
	eventually(t, "a name made in the target", func() error { _, err := os.Lstat(d.join(odd).mnt); return err })
	wantContent(t, d.join(odd).mnt, "t")
	if err := os.Rename(d.join(odd).mnt, d.join(odd+"\xc0").mnt); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d.join(odd+"\xc0").back, "t")
	if err := os.Symlink(odd+"\xc0", d.join("\xfflink").mnt); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(d.join("\xfflink").back); err != nil || got != odd+"\xc0" {
		t.Errorf("readlink = %q, %v; want %q", got, err, odd+"\xc0")
	}
	wantContent(t, d.join("\xfflink").mnt, "t")
	if err := sys.Setxattr(d.join(odd+"\xc0").mnt, "user.\xff", []byte("\xfe"), 0); err != nil {
		t.Errorf("setxattr with a name not UTF-8: %v", err)
	}
	buf := make([]byte, 10)
	if n, err := sys.Getxattr(d.join(odd+"\xc0").back, "user.\xff", buf); err != nil || string(buf[:n]) != "\xfe" {
		t.Errorf("backing getxattr = %q, %v", buf[:n], err)
	}
	for _, name := range append(names, odd+"\xc0", "\xfflink") {
		if err := os.Remove(d.join(name).mnt); err != nil {
			t.Errorf("remove %q: %v", name, err)
		}
	}
	_, err = os.Lstat(d.join(strings.Repeat("n", 256)).mnt)
	wantErrno(t, "a name too long", err, syscall.ENAMETOOLONG)
}

func testCreateExcl(t *testing.T, d pair) {
	f := d.join("f")
	fd, err := os.OpenFile(f.mnt, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	fd.Close()
	if got := lstat(t, f.back).Mode; got != unix.S_IFREG|0o640 {
		t.Errorf("created mode = %o, want %o", got, unix.S_IFREG|0o640)
	}
	// Known to the kernel, and known only to the target.
	_, err = os.OpenFile(f.mnt, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	wantErrno(t, "O_EXCL on a known file", err, syscall.EEXIST)
	writeFile(t, d.join("g").back, "g")
	_, err = os.OpenFile(d.join("g").mnt, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	wantErrno(t, "O_EXCL on a file made in the target", err, syscall.EEXIST)
	wantContent(t, d.join("g").back, "g")
	_, err = os.OpenFile(d.join("missing").mnt, os.O_RDONLY, 0)
	wantErrno(t, "open missing", err, syscall.ENOENT)
	// O_CREAT without O_EXCL opens the existing file.
	fd, err = os.OpenFile(d.join("g").mnt, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fd.Close()
	wantContent(t, d.join("g").mnt, "g")
}

func testOpenTrunc(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "long content")
	wantContent(t, f.mnt, "long content")
	writeFile(t, f.mnt, "short")
	wantContent(t, f.back, "short")
	wantContent(t, f.mnt, "short")
	sh(t, "echo replaced > "+f.mnt)
	wantContent(t, f.back, "replaced\n")
}

func testReadWrite(t *testing.T, d pair) {
	f := d.join("f")
	data := randomBytes(1<<20 + 12345)
	if err := os.WriteFile(f.mnt, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(f.back); err != nil || !bytes.Equal(b, data) {
		t.Errorf("backing after write: %d bytes, %v; want the %d written", len(b), err, len(data))
	}
	if b, err := os.ReadFile(f.mnt); err != nil || !bytes.Equal(b, data) {
		t.Errorf("read back: %d bytes, %v; want the %d written", len(b), err, len(data))
	}
	// Writes and reads at offsets, through one descriptor.
	fd, err := os.OpenFile(f.mnt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt([]byte("HELLO"), 4090); err != nil {
		t.Fatal(err)
	}
	copy(data[4090:], "HELLO")
	buf := make([]byte, 20)
	if _, err := fd.ReadAt(buf, 4085); err != nil || !bytes.Equal(buf, data[4085:4105]) {
		t.Errorf("pread = %q, %v; want %q", buf, err, data[4085:4105])
	}
	if n, err := fd.ReadAt(buf, int64(len(data))-5); n != 5 || err != io.EOF {
		t.Errorf("pread at end = %d, %v; want 5, EOF", n, err)
	}
	// A file written in the target reads through the mount.
	g := d.join("g")
	other := randomBytes(300000)
	if err := os.WriteFile(g.back, other, 0o644); err != nil {
		t.Fatal(err)
	}
	settle(t)
	if b, err := os.ReadFile(g.mnt); err != nil || !bytes.Equal(b, other) {
		t.Errorf("read of a target's file: %d bytes, %v; want %d", len(b), err, len(other))
	}
	// Writing through a read-only descriptor fails.
	ro, err := os.Open(g.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Write([]byte("x"))
	wantErrno(t, "write to O_RDONLY", err, syscall.EBADF)
}

// testReadAfterWrite checks that a read through one descriptor sees what
// was written through another before it, also for small files, which may
// come whole with the open.
func testReadAfterWrite(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "AAAAAAAAAA")
	r, err := os.Open(f.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(f.mnt, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("BB"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 20)
	if n, err := r.ReadAt(buf, 0); string(buf[:n]) != "BBAAAAAAAA" {
		t.Errorf("read after a write through another descriptor = %q, %v; want %q", buf[:n], err, "BBAAAAAAAA")
	}
	// A descriptor opened after a write returned sees it, many times
	// over, as writes may still be on their way to the target when the
	// write returns.
	for i := range 50 {
		h := d.join(fmt.Sprintf("h%d", i))
		w, err := os.Create(h.mnt)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("written %d", i)
		if _, err := w.WriteString(want); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(h.mnt)
		w.Close()
		if err != nil || string(b) != want {
			t.Errorf("read of a file opened after a write = %q, %v; want %q", b, err, want)
			break
		}
	}
	// The same after a truncation, and after an append that grows the
	// file past what the reader saw at open.
	g := d.join("g")
	writeFile(t, g.mnt, "0123456789")
	r2, err := os.Open(g.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := os.Truncate(g.mnt, 4); err != nil {
		t.Fatal(err)
	}
	if n, err := r2.ReadAt(buf, 0); string(buf[:n]) != "0123" {
		t.Errorf("read after a truncation = %q, %v; want %q", buf[:n], err, "0123")
	}
	sh(t, "echo -n XY >> "+g.mnt)
	if n, err := r2.ReadAt(buf, 0); string(buf[:n]) != "0123XY" {
		t.Errorf("read after an append = %q, %v; want %q", buf[:n], err, "0123XY")
	}
}

// testProcFiles reads files that, like those of /proc in a container, say
// they are empty and are not.
func testProcFiles(t *testing.T, d pair) {
	proc := d.join("proc")
	if err := os.Mkdir(proc.back, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("proc", proc.back, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Skipf("mounting a procfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(proc.back, unix.MNT_DETACH) })
	// The directory was made in the target: the mount hears of it.
	settle(t)
	want, err := os.ReadFile("/proc/version")
	if err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, proc.join("version").mnt); st.Size != 0 {
		t.Fatalf("/proc/version has size %d, want the 0 procfs says", st.Size)
	}
	wantContent(t, proc.join("version").mnt, string(want))
	if out := run(t, "cat", proc.join("self", "status").mnt); !strings.Contains(out, "Pid:") {
		t.Errorf("cat /proc/self/status = %q, want a process's status", out)
	}
	// A file that is empty reads as empty.
	e := d.join("empty")
	writeFile(t, e.back, "")
	settle(t)
	wantContent(t, e.mnt, "")
	if b, err := os.ReadFile(e.mnt); err != nil || len(b) != 0 {
		t.Errorf("read of an empty file = %q, %v", b, err)
	}
}

func testAppend(t *testing.T, d pair) {
	f := d.join("f")
	sh(t, "echo a >> "+f.mnt+"; echo b >> "+f.mnt)
	wantContent(t, f.back, "a\nb\n")
	wantContent(t, f.mnt, "a\nb\n")
	// Two descriptors opened O_APPEND, and a writer in the target, all
	// append.
	open := func() *os.File {
		fd, err := os.OpenFile(f.mnt, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fd.Close() })
		return fd
	}
	a, b := open(), open()
	for _, w := range []struct {
		fd *os.File
		s  string
	}{{a, "1"}, {b, "2"}, {nil, "T"}, {a, "3"}, {b, "4"}} {
		if w.fd == nil {
			tf, err := os.OpenFile(f.back, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			tf.WriteString(w.s)
			tf.Close()
			continue
		}
		if _, err := w.fd.WriteString(w.s); err != nil {
			t.Fatal(err)
		}
	}
	wantContent(t, f.back, "a\nb\n12T34")
}

func testFlushRelease(t *testing.T, d pair) {
	f := d.join("f")
	// The shell closes fd 3 (a flush) while fd 4 still refers to the
	// same open file.
	sh(t, "exec 3>"+f.mnt+"; exec 4>&3; exec 3>&-; echo b >&4; exec 4>&-")
	wantContent(t, f.back, "b\n")

	// A redirection opens the file, dup2s it to stdout and closes the
	// original before dd writes.
	src := filepath.Join(t.TempDir(), "src")
	data := randomBytes(200000)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g := d.join("g")
	sh(t, "dd if="+src+" bs=4096 status=none > "+g.mnt)
	if b, err := os.ReadFile(g.back); err != nil || !bytes.Equal(b, data) {
		t.Errorf("dd > file: backing has %d bytes, %v; want %d", len(b), err, len(data))
	}
	h := d.join("h")
	run(t, "dd", "if="+src, "of="+h.mnt, "bs=65536", "status=none")
	if b, err := os.ReadFile(h.back); err != nil || !bytes.Equal(b, data) {
		t.Errorf("dd of=: backing has %d bytes, %v; want %d", len(b), err, len(data))
	}
	sh(t, "cat "+src+" | cat > "+h.mnt)
	if b, err := os.ReadFile(h.back); err != nil || !bytes.Equal(b, data) {
		t.Errorf("cat > file: backing has %d bytes, %v; want %d", len(b), err, len(data))
	}

	// The same with dup(2) in this process.
	fd, err := os.OpenFile(d.join("i").mnt, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(int(fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	fd.Close()
	if _, err := sys.Write(dup, []byte("after close")); err != nil {
		t.Errorf("write through a dup after close: %v", err)
	}
	buf := make([]byte, 20)
	n, err := sys.Pread(dup, buf, 0)
	if err != nil || string(buf[:n]) != "after close" {
		t.Errorf("pread through a dup after close = %q, %v; want %q", buf[:n], err, "after close")
	}
	unix.Close(dup)
	wantContent(t, d.join("i").back, "after close")
}

func testFsync(t *testing.T, d pair) {
	f := d.join("f")
	fd, err := os.Create(f.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if err := fd.Sync(); err != nil {
		t.Errorf("fsync: %v", err)
	}
	if err := sys.Fdatasync(int(fd.Fd())); err != nil {
		t.Errorf("fdatasync: %v", err)
	}
	ro, err := os.Open(f.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Sync(); err != nil {
		t.Errorf("fsync of a read-only descriptor: %v", err)
	}
	dir, err := os.Open(d.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		t.Errorf("fsync of a directory: %v", err)
	}
	run(t, "sync", f.mnt)
	wantContent(t, f.back, "data")
}

func testMkdirRmdirUnlink(t *testing.T, d pair) {
	a := d.join("a")
	if err := os.Mkdir(a.mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	if got := lstat(t, a.back).Mode; got != unix.S_IFDIR|0o750 {
		t.Errorf("mkdir: backing mode = %o, want %o", got, unix.S_IFDIR|0o750)
	}
	wantErrno(t, "mkdir existing", os.Mkdir(a.mnt, 0o755), syscall.EEXIST)
	run(t, "mkdir", "-p", a.join("b", "c", "d").mnt)
	if fi, err := os.Stat(a.join("b", "c", "d").back); err != nil || !fi.IsDir() {
		t.Errorf("mkdir -p: backing %v, %v", fi, err)
	}
	writeFile(t, a.join("b", "f").mnt, "f")
	wantErrno(t, "rmdir non-empty", sys.Rmdir(a.join("b").mnt), syscall.ENOTEMPTY)
	wantErrno(t, "rmdir a file", sys.Rmdir(a.join("b", "f").mnt), syscall.ENOTDIR)
	wantErrno(t, "unlink a dir", sys.Unlink(a.join("b").mnt), syscall.EISDIR)
	if err := sys.Unlink(a.join("b", "f").mnt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(a.join("b", "f").back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after unlink: backing lstat = %v, want not exist", err)
	}
	wantErrno(t, "unlink again", sys.Unlink(a.join("b", "f").mnt), syscall.ENOENT)
	run(t, "rm", "-r", a.join("b").mnt)
	if _, err := os.Lstat(a.join("b").back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after rm -r: backing lstat = %v, want not exist", err)
	}
	if err := sys.Rmdir(a.mnt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(a.back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after rmdir: backing lstat = %v, want not exist", err)
	}
	// The name is free again, for a file this time.
	writeFile(t, a.mnt, "now a file")
	wantContent(t, a.back, "now a file")
}

func testRename(t *testing.T, d pair) {
	a, b, c := d.join("a"), d.join("b"), d.join("c")
	writeFile(t, a.mnt, "a")
	if err := os.Rename(a.mnt, b.mnt); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b.back, "a")
	if _, err := os.Lstat(a.back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after rename: old name in backing: %v, want not exist", err)
	}
	if _, err := os.Lstat(a.mnt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after rename: old name: %v, want not exist", err)
	}
	// Over an existing file, both known to the kernel.
	writeFile(t, c.mnt, "ccccc")
	wantContent(t, c.mnt, "ccccc")
	if err := os.Rename(b.mnt, c.mnt); err != nil {
		t.Fatal(err)
	}
	wantContent(t, c.back, "a")
	wantContent(t, c.mnt, "a")
	if st := lstat(t, c.mnt); st.Size != 1 {
		t.Errorf("size after rename over = %d, want 1", st.Size)
	}
	// An open file renamed keeps working, and writes land under the
	// new name.
	fd, err := os.OpenFile(c.mnt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	e := d.join("e")
	run(t, "mv", c.mnt, e.mnt)
	if _, err := fd.WriteAt([]byte("E"), 1); err != nil {
		t.Errorf("write after rename: %v", err)
	}
	if st, err := fd.Stat(); err != nil || st.Size() != 2 {
		t.Errorf("fstat after rename: %v, %v; want size 2", st, err)
	}
	wantContent(t, e.back, "aE")
	// Into another directory.
	sub := d.join("sub")
	if err := os.Mkdir(sub.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(e.mnt, sub.join("e").mnt); err != nil {
		t.Fatal(err)
	}
	wantContent(t, sub.join("e").back, "aE")
	wantContent(t, sub.join("e").mnt, "aE")
	wantErrno(t, "rename missing", os.Rename(a.mnt, b.mnt), syscall.ENOENT)
	wantErrno(t, "rename a dir over a file", os.Rename(sub.mnt, sub.join("e").mnt), syscall.EINVAL)
}

func testRenameDir(t *testing.T, d pair) {
	d1 := d.join("d1")
	run(t, "mkdir", "-p", d1.join("sub", "deeper").mnt)
	writeFile(t, d1.join("sub", "f").mnt, "f")
	writeFile(t, d1.join("sub", "deeper", "g").mnt, "g")
	wantContent(t, d1.join("sub", "f").mnt, "f")

	d2 := d.join("d2")
	if err := os.Rename(d1.mnt, d2.mnt); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d2.join("sub", "f").mnt, "f")
	wantContent(t, d2.join("sub", "deeper", "g").mnt, "g")
	writeFile(t, d2.join("sub", "new").mnt, "new")
	wantContent(t, d2.join("sub", "new").back, "new")
	if _, err := os.Lstat(d1.join("sub", "f").mnt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old path after dir rename: %v, want not exist", err)
	}
	// A directory held open (as a cwd) follows its parent's rename.
	cwd, err := os.Open(d2.join("sub").mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer cwd.Close()
	other := d.join("other")
	if err := os.Mkdir(other.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d2.mnt, other.join("d3").mnt); err != nil {
		t.Fatal(err)
	}
	fd, err := sys.Openat(int(cwd.Fd()), "f", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("openat in a moved dir: %v", err)
	}
	unix.Close(fd)
	if err := sys.Mkdirat(int(cwd.Fd()), "made", 0o755); err != nil {
		t.Fatalf("mkdirat in a moved dir: %v", err)
	}
	if fi, err := os.Stat(other.join("d3", "sub", "made").back); err != nil || !fi.IsDir() {
		t.Errorf("mkdirat in a moved dir: backing %v, %v", fi, err)
	}
	wantContent(t, other.join("d3", "sub", "deeper", "g").mnt, "g")
	// Over an empty directory, not over a full one.
	empty := d.join("empty")
	if err := os.Mkdir(empty.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// os.Rename refuses to replace a directory: use rename(2).
	if err := sys.Rename(other.join("d3").mnt, empty.mnt); err != nil {
		t.Fatalf("rename over an empty dir: %v", err)
	}
	wantContent(t, empty.join("sub", "f").mnt, "f")
	if err := sys.Rename(other.mnt, empty.mnt); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("rename over a full dir: %v, want ENOTEMPTY or EEXIST", err)
	}
	wantErrno(t, "rename a dir into itself", sys.Rename(empty.mnt, empty.join("sub", "x").mnt), syscall.EINVAL)
}

// testRenameFlags: renameat2's flags must not be ignored, or a rename
// asked not to replace would replace.
func testRenameFlags(t *testing.T, d pair) {
	a, b := d.join("a"), d.join("b")
	writeFile(t, a.mnt, "a")
	writeFile(t, b.mnt, "b")
	for _, flags := range []uint{unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE} {
		err := sys.Renameat2(unix.AT_FDCWD, a.mnt, unix.AT_FDCWD, b.mnt, flags)
		switch {
		case err == nil && flags == unix.RENAME_EXCHANGE:
			wantContent(t, a.back, "b")
			wantContent(t, b.back, "a")
			sys.Renameat2(unix.AT_FDCWD, a.mnt, unix.AT_FDCWD, b.mnt, flags)
		case err == nil:
			t.Errorf("renameat2(%#x) over an existing file succeeded", flags)
		case flags == unix.RENAME_NOREPLACE && errors.Is(err, syscall.EEXIST):
		case errors.Is(err, syscall.EINVAL):
			// Not supported: the kernel refuses the flags itself.
		default:
			t.Errorf("renameat2(%#x) = %v, want success, EEXIST or EINVAL", flags, err)
		}
		wantContent(t, a.back, "a")
		wantContent(t, b.back, "b")
	}
	// mv -n falls back to a check of its own.
	run(t, "mv", "-n", a.mnt, b.mnt)
	wantContent(t, b.back, "b")
	wantContent(t, a.back, "a")
	if err := sys.Renameat2(unix.AT_FDCWD, a.mnt, unix.AT_FDCWD, d.join("c").mnt, unix.RENAME_NOREPLACE); err != nil && !errors.Is(err, syscall.EINVAL) {
		t.Errorf("renameat2(RENAME_NOREPLACE) to a new name = %v", err)
	}
}

func testSymlink(t *testing.T, d pair) {
	writeFile(t, d.join("f").mnt, "target content")
	l := d.join("l")
	if err := os.Symlink("f", l.mnt); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{l.back, l.mnt} {
		if got, err := os.Readlink(p); err != nil || got != "f" {
			t.Errorf("readlink %s = %q, %v; want %q", p, got, err, "f")
		}
	}
	if st := lstat(t, l.mnt); st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != 1 {
		t.Errorf("lstat symlink: mode %o size %d, want a symlink of size 1", st.Mode, st.Size)
	}
	wantContent(t, l.mnt, "target content")
	run(t, "ln", "-s", "sub/../f", d.join("l2").mnt)
	if got := strings.TrimSpace(run(t, "readlink", d.join("l2").mnt)); got != "sub/../f" {
		t.Errorf("readlink = %q, want %q", got, "sub/../f")
	}
	if err := os.Mkdir(d.join("sub").mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d.join("l2").mnt, "target content")
	// A link to a directory is followed; a dangling one is kept.
	run(t, "ln", "-s", "sub", d.join("dirlink").mnt)
	writeFile(t, d.join("dirlink", "x").mnt, "x")
	wantContent(t, d.join("sub", "x").back, "x")
	long := strings.Repeat("n/", 1000) + "end"
	if err := os.Symlink(long, d.join("dangling").mnt); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(d.join("dangling").back); err != nil || got != long {
		t.Errorf("long dangling link in backing = %d bytes, %v; want %d", len(got), err, len(long))
	}
	if _, err := os.Stat(d.join("dangling").mnt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a dangling link: %v, want not exist", err)
	}
	wantErrno(t, "symlink over a file", os.Symlink("x", d.join("f").mnt), syscall.EEXIST)
}

func testHardLink(t *testing.T, d pair) {
	a, b := d.join("a"), d.join("b")
	writeFile(t, a.mnt, "shared")
	run(t, "ln", a.mnt, b.mnt)
	sa, sb := lstat(t, a.mnt), lstat(t, b.mnt)
	if sa.Nlink != 2 || sb.Nlink != 2 {
		t.Errorf("after ln: nlink = %d, %d; want 2, 2", sa.Nlink, sb.Nlink)
	}
	if sa.Ino != sb.Ino {
		t.Errorf("hard links have inodes %d and %d, want one", sa.Ino, sb.Ino)
	}
	if ba, bb := lstat(t, a.back), lstat(t, b.back); ba.Ino != bb.Ino || ba.Nlink != 2 {
		t.Errorf("backing: inodes %d, %d nlink %d; want one inode, nlink 2", ba.Ino, bb.Ino, ba.Nlink)
	}
	// A write through one name reads through the other.
	fd, err := os.OpenFile(b.mnt, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd.WriteAt([]byte("SH"), 0)
	fd.Close()
	wantContent(t, a.mnt, "SHared")
	run(t, "rm", b.mnt)
	if st := lstat(t, a.mnt); st.Nlink != 1 {
		t.Errorf("after rm b: nlink = %d, want 1", st.Nlink)
	}
	wantContent(t, a.mnt, "SHared")
	// Removing the first name leaves the second working.
	run(t, "ln", a.mnt, b.mnt)
	run(t, "rm", a.mnt)
	if st := lstat(t, b.mnt); st.Nlink != 1 {
		t.Errorf("after rm a: nlink = %d, want 1", st.Nlink)
	}
	wantContent(t, b.mnt, "SHared")
	writeFile(t, b.mnt, "rewritten")
	wantContent(t, b.back, "rewritten")
	// Links across directories, and over an existing name.
	if err := os.Mkdir(d.join("sub").mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	c := d.join("sub", "c")
	if err := os.Link(b.mnt, c.mnt); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, c.mnt); st.Nlink != 2 {
		t.Errorf("link in a subdir: nlink = %d, want 2", st.Nlink)
	}
	wantErrno(t, "link over an existing name", os.Link(b.mnt, c.mnt), syscall.EEXIST)
	wantErrno(t, "link to a dir", os.Link(d.join("sub").mnt, d.join("dirlink").mnt), syscall.EPERM)
}

func testMknod(t *testing.T, d pair) {
	p := d.join("fifo")
	run(t, "mkfifo", "-m", "0640", p.mnt)
	if st := lstat(t, p.back); st.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("mkfifo: backing mode = %o, want %o", st.Mode, unix.S_IFIFO|0o640)
	}
	if fi, err := os.Lstat(p.mnt); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("lstat fifo: %v, %v; want a named pipe", fi, err)
	}
	// The fifo works as one, served by the host's kernel.
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(p.mnt, []byte("through the fifo"), 0) }()
	wantContent(t, p.mnt, "through the fifo")
	if err := <-done; err != nil {
		t.Errorf("writing the fifo: %v", err)
	}
	// Devices keep their numbers, also minors above 255.
	for _, dev := range []struct {
		name         string
		mode         uint32
		major, minor uint32
	}{{"null", unix.S_IFCHR, 1, 3}, {"blk", unix.S_IFBLK, 8, 300}, {"big", unix.S_IFCHR, 511, 70000}} {
		q := d.join(dev.name)
		if err := sys.Mknod(q.mnt, dev.mode|0o600, int(unix.Mkdev(dev.major, dev.minor))); err != nil {
			t.Errorf("mknod %s: %v", dev.name, err)
			continue
		}
		want := unix.Mkdev(dev.major, dev.minor)
		if st := lstat(t, q.back); st.Rdev != want || st.Mode != dev.mode|0o600 {
			t.Errorf("mknod %s: backing mode %o rdev %d:%d, want %o %d:%d", dev.name,
				st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), dev.mode|0o600, dev.major, dev.minor)
		}
		if st := lstat(t, q.mnt); st.Rdev != want {
			t.Errorf("lstat %s: rdev %d:%d, want %d:%d", dev.name, unix.Major(st.Rdev), unix.Minor(st.Rdev), dev.major, dev.minor)
		}
	}
}

func testStatfs(t *testing.T, d pair) {
	out := run(t, "df", "-P", d.mnt)
	if !strings.Contains(out, "dockerfuse-test") {
		t.Errorf("df does not show the mount:\n%s", out)
	}
	var got, want unix.Statfs_t
	if err := sys.Statfs(d.mnt, &got); err != nil {
		t.Fatal(err)
	}
	if err := sys.Statfs(d.back, &want); err != nil {
		t.Fatal(err)
	}
	if got.Blocks != want.Blocks || got.Bsize != want.Bsize || got.Frsize != want.Frsize ||
		got.Files != want.Files || got.Namelen != want.Namelen {
		t.Errorf("statfs: blocks %d bsize %d frsize %d files %d namelen %d; want %d %d %d %d %d",
			got.Blocks, got.Bsize, got.Frsize, got.Files, got.Namelen,
			want.Blocks, want.Bsize, want.Frsize, want.Files, want.Namelen)
	}
	if got.Bfree == 0 || got.Bavail > got.Bfree || got.Bfree > got.Blocks {
		t.Errorf("statfs: bfree %d bavail %d blocks %d make no sense", got.Bfree, got.Bavail, got.Blocks)
	}
}

func testXattr(t *testing.T, d pair) {
	for _, name := range []string{"f", "dir"} {
		p := d.join(name)
		if name == "dir" {
			if err := os.Mkdir(p.mnt, 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFile(t, p.mnt, "x")
		}
		if err := sys.Setxattr(p.mnt, "user.k", []byte("value one"), 0); err != nil {
			t.Fatalf("%s: setxattr: %v", name, err)
		}
		buf := make([]byte, 100)
		if n, err := sys.Getxattr(p.back, "user.k", buf); err != nil || string(buf[:n]) != "value one" {
			t.Errorf("%s: backing getxattr = %q, %v; want %q", name, buf[:n], err, "value one")
		}
		if n, err := sys.Getxattr(p.mnt, "user.k", buf); err != nil || string(buf[:n]) != "value one" {
			t.Errorf("%s: getxattr = %q, %v; want %q", name, buf[:n], err, "value one")
		}
		if n, err := sys.Getxattr(p.mnt, "user.k", nil); err != nil || n != len("value one") {
			t.Errorf("%s: getxattr size = %d, %v; want %d", name, n, err, len("value one"))
		}
		_, err := sys.Getxattr(p.mnt, "user.k", make([]byte, 3))
		wantErrno(t, name+": getxattr into a small buffer", err, syscall.ERANGE)
		wantErrno(t, name+": XATTR_CREATE on an existing one",
			sys.Setxattr(p.mnt, "user.k", []byte("v"), unix.XATTR_CREATE), syscall.EEXIST)
		wantErrno(t, name+": XATTR_REPLACE on a missing one",
			sys.Setxattr(p.mnt, "user.missing", []byte("v"), unix.XATTR_REPLACE), syscall.ENODATA)
		if err := sys.Setxattr(p.mnt, "user.empty", nil, 0); err != nil {
			t.Errorf("%s: setxattr of an empty value: %v", name, err)
		}
		if err := sys.Setxattr(p.back, "user.fromtarget", []byte("t"), 0); err != nil {
			t.Fatal(err)
		}
		n, err := sys.Listxattr(p.mnt, buf)
		if err != nil {
			t.Fatalf("%s: listxattr: %v", name, err)
		}
		names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
		slices.Sort(names)
		if want := []string{"user.empty", "user.fromtarget", "user.k"}; !slices.Equal(names, want) {
			t.Errorf("%s: listxattr = %q, want %q", name, names, want)
		}
		if err := sys.Removexattr(p.mnt, "user.k"); err != nil {
			t.Errorf("%s: removexattr: %v", name, err)
		}
		_, err = sys.Getxattr(p.back, "user.k", buf)
		wantErrno(t, name+": backing getxattr after remove", err, syscall.ENODATA)
		_, err = sys.Getxattr(p.mnt, "user.k", buf)
		wantErrno(t, name+": getxattr after remove", err, syscall.ENODATA)
		wantErrno(t, name+": removexattr of a missing one", sys.Removexattr(p.mnt, "user.k"), syscall.ENODATA)
	}
}

func testMmap(t *testing.T, d pair) {
	f := d.join("f")
	data := randomBytes(3*4096 + 100)
	if err := os.WriteFile(f.back, data, 0o644); err != nil {
		t.Fatal(err)
	}
	settle(t)
	fd, err := os.OpenFile(f.mnt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b, err := unix.Mmap(int(fd.Fd()), 0, len(data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer unix.Munmap(b)
	if !bytes.Equal(b, data) {
		t.Errorf("mmap reads other bytes than the file's")
	}
	copy(b[4000:], "written through a shared mapping")
	copy(data[4000:], "written through a shared mapping")
	copy(b[len(b)-4:], "TAIL")
	copy(data[len(data)-4:], "TAIL")
	if err := sys.Msync(b, unix.MS_SYNC); err != nil {
		t.Fatalf("msync: %v", err)
	}
	if got, err := os.ReadFile(f.back); err != nil || !bytes.Equal(got, data) {
		t.Errorf("backing after msync differs from the mapping (%d bytes, %v)", len(got), err)
	}
	// A private mapping reads; its writes stay private.
	p, err := unix.Mmap(int(fd.Fd()), 4096, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap private: %v", err)
	}
	defer unix.Munmap(p)
	if !bytes.Equal(p, data[4096:8192]) {
		t.Errorf("private mapping reads other bytes than the file's")
	}
	copy(p, "private")
	if got, err := os.ReadFile(f.back); err != nil || !bytes.Equal(got, data) {
		t.Errorf("a private mapping's write reached the backing file")
	}
}

func testCopyTree(t *testing.T, d pair) {
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, 3, 8)
	run(t, "cp", "-a", src, d.join("in").mnt)
	sameTree(t, src, d.join("in").back, 1)
	out := filepath.Join(t.TempDir(), "out")
	run(t, "cp", "-a", d.join("in").mnt, out)
	sameTree(t, src, out, 1)
	run(t, "mv", d.join("in").mnt, d.join("moved").mnt)
	sameTree(t, src, d.join("moved").back, 1)
	if _, err := os.Lstat(d.join("in").back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after mv: old tree: %v, want not exist", err)
	}
	// mv across filesystems copies and removes.
	run(t, "mv", out, d.join("fromhost").mnt)
	sameTree(t, src, d.join("fromhost").back, 1)
	run(t, "mv", d.join("fromhost").mnt, out)
	sameTree(t, src, out, 1)
	if _, err := os.Lstat(d.join("fromhost").back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after mv out: tree left in the target: %v", err)
	}
}

func testTar(t *testing.T, d pair) {
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, 20, 100) // 2,000 files and more
	archive := filepath.Join(t.TempDir(), "in.tar")
	run(t, "tar", "-C", src, "-cf", archive, ".")
	dst := d.join("x")
	if err := os.Mkdir(dst.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-C", dst.mnt, "-xf", archive)
	sameTree(t, src, dst.back, time.Second) // tar keeps whole seconds
	tmp := t.TempDir()
	fromMount, fromBacking := filepath.Join(tmp, "mnt.tar"), filepath.Join(tmp, "back.tar")
	run(t, "tar", "-C", dst.mnt, "-cf", fromMount, ".")
	run(t, "tar", "-C", dst.back, "-cf", fromBacking, ".")
	a, err := os.ReadFile(fromMount)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fromBacking)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		diff, _ := tryRun("sh", "-c", fmt.Sprintf("diff <(tar -tvf %s) <(tar -tvf %s) | head -20", fromMount, fromBacking))
		t.Errorf("tar c through the mount (%d bytes) differs from tar c of the backing dir (%d bytes):\n%s", len(a), len(b), diff)
	}
}

func testDD(t *testing.T, d pair) {
	src := filepath.Join(t.TempDir(), "src")
	data := randomBytes(64 << 20)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f := d.join("big")
	run(t, "dd", "if="+src, "of="+f.mnt, "bs=1M", "conv=fsync", "status=none")
	if b, err := os.ReadFile(f.back); err != nil || !bytes.Equal(b, data) {
		t.Errorf("dd in: backing has %d bytes (%v), differing from the %d written", len(b), err, len(data))
	}
	out := filepath.Join(t.TempDir(), "out")
	run(t, "dd", "if="+f.mnt, "of="+out, "bs=1M", "status=none")
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, data) {
		t.Errorf("dd out: %d bytes (%v), differing from the %d written", len(b), err, len(data))
	}
}

func testSparse4G(t *testing.T, d pair) {
	f := d.join("sparse")
	fd, err := os.OpenFile(f.mnt, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	writes := []struct {
		off  int64
		data string
	}{{5 << 30, "five gigs"}, {4<<30 - 3, "across 4G"}, {1 << 32, "X"}, {10, "low"}}
	for _, w := range writes {
		if _, err := fd.WriteAt([]byte(w.data), w.off); err != nil {
			t.Fatalf("pwrite at %d: %v", w.off, err)
		}
	}
	size := int64(5<<30 + len("five gigs"))
	if st, err := fd.Stat(); err != nil || st.Size() != size {
		t.Errorf("fstat = %v, %v; want size %d", st, err, size)
	}
	back, err := os.Open(f.back)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	check := func(off int64, want string) {
		t.Helper()
		for _, r := range []*os.File{fd, back} {
			buf := make([]byte, len(want))
			if _, err := r.ReadAt(buf, off); err != nil || string(buf) != want {
				t.Errorf("%s at %d = %q, %v; want %q", r.Name(), off, buf, err, want)
			}
		}
	}
	check(5<<30, "five gigs")
	check(4<<30-3, "acrXss 4G")
	check(10, "low")
	check(4<<30+1<<29, "\x00\x00\x00\x00")
	if st := lstat(t, f.back); st.Blocks > 1024 {
		t.Errorf("backing file has %d blocks: not sparse", st.Blocks)
	}
	out := run(t, "dd", "if="+f.mnt, "bs=1", "skip="+strconv.FormatInt(5<<30, 10), "count=9", "status=none")
	if out != "five gigs" {
		t.Errorf("dd skip=5G = %q, want %q", out, "five gigs")
	}
	run(t, "truncate", "-s", "6G", f.mnt)
	if st := lstat(t, f.back); st.Size != 6<<30 {
		t.Errorf("after truncate -s 6G: backing size %d, want %d", st.Size, int64(6<<30))
	}
}

// testUnlinkOpenSetattr changes an open file's attributes after its name is
// gone, as programs that unlink their temporary files do.
func testUnlinkOpenSetattr(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "still here")
	fd, err := os.OpenFile(f.mnt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := os.Remove(f.mnt); err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(5); err != nil {
		t.Errorf("ftruncate after unlink: %v", err)
	}
	var st unix.Stat_t
	if err := sys.Fstat(int(fd.Fd()), &st); err != nil || st.Size != 5 {
		t.Errorf("fstat after ftruncate = size %d, %v; want 5", st.Size, err)
	}
	if err := fd.Chmod(0o600); err != nil {
		t.Errorf("fchmod after unlink: %v", err)
	}
	if err := sys.Fstat(int(fd.Fd()), &st); err != nil || st.Mode&0o777 != 0o600 {
		t.Errorf("fstat after fchmod = mode %o, %v; want 600", st.Mode, err)
	}
}

func testUnlinkOpen(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "still here")
	fd, err := os.OpenFile(f.mnt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := os.Remove(f.mnt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(f.back); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("backing after unlink: %v, want not exist", err)
	}
	buf := make([]byte, 20)
	if n, err := fd.ReadAt(buf, 0); string(buf[:n]) != "still here" {
		t.Errorf("read after unlink = %q, %v; want %q", buf[:n], err, "still here")
	}
	if _, err := fd.WriteAt([]byte("!"), 10); err != nil {
		t.Errorf("write after unlink: %v", err)
	}
	var st unix.Stat_t
	if err := sys.Fstat(int(fd.Fd()), &st); err != nil || st.Size != 11 || st.Nlink != 0 {
		t.Errorf("fstat after unlink = size %d nlink %d, %v; want size 11 nlink 0", st.Size, st.Nlink, err)
	}
	// A new file under the old name is another file.
	writeFile(t, f.mnt, "new")
	if n, err := fd.ReadAt(buf, 0); string(buf[:n]) != "still here!" {
		t.Errorf("read of the unlinked file after a new one took its name = %q, %v; want %q", buf[:n], err, "still here!")
	}
	if err := sys.Fstat(int(fd.Fd()), &st); err != nil || st.Size != 11 {
		t.Errorf("fstat of the unlinked file after a new one took its name = size %d, %v; want 11", st.Size, err)
	}
	wantContent(t, f.back, "new")

	// Unlinked in the target rather than through the mount.
	g := d.join("g")
	writeFile(t, g.mnt, "target removes me")
	gd, err := os.Open(g.mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer gd.Close()
	if err := os.Remove(g.back); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fstat of a file unlinked in the target", func() error {
		var st unix.Stat_t
		if err := sys.Fstat(int(gd.Fd()), &st); err != nil {
			return err
		}
		if st.Nlink != 0 {
			return fmt.Errorf("nlink %d, want 0", st.Nlink)
		}
		return nil
	})
	if b, err := io.ReadAll(gd); err != nil || string(b) != "target removes me" {
		t.Errorf("read of a file unlinked in the target = %q, %v", b, err)
	}
}

// changeDeadline bounds how long a change made in the target may take to
// show through the mount: as long as its report takes to arrive
// (milliseconds), or where nothing is watched the one-second timeouts; the
// rest is slack for a loaded machine.
const changeDeadline = 3 * time.Second

// eventually polls check until it returns nil, failing the test if it still
// fails after changeDeadline.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(changeDeadline)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: still %v after %v", what, err, changeDeadline)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testBackingChanges(t *testing.T, d pair) {
	f := d.join("f")
	writeFile(t, f.mnt, "first")
	wantContent(t, f.mnt, "first")
	lstat(t, f.mnt)
	// Content and size changed in the target.
	writeFile(t, f.back, "second, longer")
	eventually(t, "content changed in the target", func() error {
		b, err := os.ReadFile(f.mnt)
		if err != nil {
			return err
		}
		if string(b) != "second, longer" {
			return fmt.Errorf("read %q", b)
		}
		return nil
	})
	// Mode changed in the target.
	if err := os.Chmod(f.back, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "chmod in the target", func() error {
		if m := lstat(t, f.mnt).Mode; m&0o777 != 0o600 {
			return fmt.Errorf("mode %o", m)
		}
		return nil
	})
	// New names show in a listing once reported, and can be opened.
	ents, _ := os.ReadDir(d.mnt)
	if len(ents) != 1 {
		t.Fatalf("readdir = %v, want f only", ents)
	}
	writeFile(t, d.join("new").back, "new")
	names := func() ([]string, error) {
		ents, err := os.ReadDir(d.mnt)
		var s []string
		for _, e := range ents {
			s = append(s, e.Name())
		}
		return s, err
	}
	eventually(t, "readdir after a file was made in the target", func() error {
		if got, err := names(); err != nil || !slices.Equal(got, []string{"f", "new"}) {
			return fmt.Errorf("%q, %v", got, err)
		}
		return nil
	})
	wantContent(t, d.join("new").mnt, "new")
	// Removal in the target.
	if err := os.Remove(f.back); err != nil {
		t.Fatal(err)
	}
	eventually(t, "file removed in the target", func() error {
		_, err := os.Lstat(f.mnt)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("lstat: %v", err)
	})
	// Extended attributes set in the target.
	x := d.join("new")
	lstat(t, x.mnt)
	if err := sys.Setxattr(x.back, "user.target", []byte("set in the target"), 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "xattr set in the target", func() error {
		buf := make([]byte, 100)
		n, err := sys.Getxattr(x.mnt, "user.target", buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "set in the target" {
			return fmt.Errorf("value %q", buf[:n])
		}
		return nil
	})
	// A file renamed in the target is reached by its new name as soon as
	// the change is reported, also while the old name is still in the
	// kernel's cache.
	r := d.join("before")
	writeFile(t, r.mnt, "renamed")
	wantContent(t, r.mnt, "renamed")
	if err := os.Rename(r.back, d.join("after").back); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new name", func() error { _, err := os.Lstat(d.join("after").mnt); return err })
	wantContent(t, d.join("after").mnt, "renamed")
	writeFile(t, d.join("after").mnt, "written after the rename")
	wantContent(t, d.join("after").back, "written after the rename")
	// Names made through the mount are as fresh as names looked up:
	// each replaced in the target by something else.
	for _, kind := range []string{"mkdir", "symlink", "mknod", "link", "create"} {
		p := d.join(kind)
		var err error
		switch kind {
		case "mkdir":
			err = os.Mkdir(p.mnt, 0o755)
		case "symlink":
			err = os.Symlink("new", p.mnt)
		case "mknod":
			err = sys.Mkfifo(p.mnt, 0o644)
		case "link":
			err = os.Link(d.join("new").mnt, p.mnt)
		case "create":
			writeFile(t, p.mnt, "x")
		}
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		lstat(t, p.mnt)
		if err := os.RemoveAll(p.back); err != nil {
			t.Fatal(err)
		}
		if kind == "mkdir" {
			writeFile(t, p.back, "replaced by a file")
		} else {
			if err := os.Mkdir(p.back, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// Until the kernel's copy expires it shows the old file; an
		// error on the way is a bug (EIO from a type the kernel did not
		// expect).
		var failed error
		eventually(t, kind+" replaced in the target", func() error {
			var st unix.Stat_t
			if err := sys.Lstat(p.mnt, &st); err != nil {
				if failed == nil {
					failed = err
					t.Errorf("%s replaced in the target: lstat: %v", kind, err)
				}
				return err
			}
			want := uint32(unix.S_IFDIR)
			if kind == "mkdir" {
				want = unix.S_IFREG
			}
			if st.Mode&unix.S_IFMT != want {
				return fmt.Errorf("type %o, want %o", st.Mode&unix.S_IFMT, want)
			}
			return nil
		})
	}
}

func testInodes(t *testing.T, d pair) {
	seen := make(map[uint64]string)
	add := func(name string) {
		t.Helper()
		ino := lstat(t, d.join(name).mnt).Ino
		if other, ok := seen[ino]; ok {
			t.Errorf("%s and %s share inode %d", name, other, ino)
		}
		seen[ino] = name
	}
	for i := range 50 {
		writeFile(t, d.join(fmt.Sprintf("f%d", i)).mnt, "")
		add(fmt.Sprintf("f%d", i))
	}
	for i := range 10 {
		if err := os.Mkdir(d.join(fmt.Sprintf("d%d", i)).mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("d%d", i))
		if err := os.Symlink("x", d.join(fmt.Sprintf("l%d", i)).mnt); err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("l%d", i))
	}
	// Made in the target, too, which the mount shows once the change is
	// reported.
	for i := range 20 {
		name := fmt.Sprintf("t%d", i)
		writeFile(t, d.join(name).back, "")
		eventually(t, "lstat "+name, func() error { _, err := os.Lstat(d.join(name).mnt); return err })
		add(name)
	}
	if err := os.Link(d.join("f0").mnt, d.join("hard").mnt); err != nil {
		t.Fatal(err)
	}
	if a, b := lstat(t, d.join("f0").mnt).Ino, lstat(t, d.join("hard").mnt).Ino; a != b {
		t.Errorf("hard links have inodes %d and %d, want one", a, b)
	}
	// Files removed and made again (the target may reuse its inode
	// numbers) never share a number with another live file.
	for i := range 20 {
		name := fmt.Sprintf("f%d", i+10)
		delete(seen, lstat(t, d.join(name).mnt).Ino)
		if err := os.Remove(d.join(name).mnt); err != nil {
			t.Fatal(err)
		}
		writeFile(t, d.join(name+"again").mnt, "")
		add(name + "again")
	}
	// readdir's d_ino agrees with stat's st_ino.
	for _, line := range strings.Split(strings.TrimSpace(run(t, "ls", "-i1", d.mnt)), "\n") {
		ino, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			t.Fatalf("ls -i line %q", line)
		}
		if st := lstat(t, d.join(name).mnt); strconv.FormatUint(st.Ino, 10) != ino {
			t.Errorf("%s: d_ino %s, st_ino %d", name, ino, st.Ino)
		}
	}
	if st := lstat(t, d.mnt); st.Ino == lstat(t, filepath.Dir(d.mnt)).Ino {
		t.Errorf("a directory shares the root's inode %d", st.Ino)
	}
}

// runAs runs a command as uid:uid, with no supplementary groups.
func runAs(uid uint32, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func testPermissions(t *testing.T, d pair) {
	const user = 1000
	secret := d.join("secret")
	if err := os.WriteFile(secret.mnt, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret.mnt, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runAs(user, "cat", secret.mnt)
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("cat of a 0600 root file as uid %d = %q, %v; want Permission denied", user, out, err)
	}
	public := d.join("public")
	writeFile(t, public.mnt, "public")
	if out, err := runAs(user, "cat", public.mnt); err != nil || out != "public" {
		t.Errorf("cat of a 0644 root file as uid %d = %q, %v; want %q", user, out, err, "public")
	}
	if out, err := runAs(user, "sh", "-c", "echo x >> "+public.mnt); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("append to a 0644 root file as uid %d = %q, %v; want Permission denied", user, out, err)
	}
	if out, err := runAs(user, "touch", d.join("new").mnt); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("create in a 0755 root dir as uid %d = %q, %v; want Permission denied", user, out, err)
	}
	private := d.join("private")
	if err := os.Mkdir(private.mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, private.join("f").mnt, "f")
	if out, err := runAs(user, "cat", private.join("f").mnt); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("cat inside a 0700 root dir as uid %d = %q, %v; want Permission denied", user, out, err)
	}
	// The owner can.
	mine := d.join("mine")
	if err := os.WriteFile(mine.back, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mine.back, user, user); err != nil {
		t.Fatal(err)
	}
	settle(t)
	if out, err := runAs(user, "sh", "-c", "cat "+mine.mnt+"; echo more >> "+mine.mnt); err != nil || out != "mine" {
		t.Errorf("owner reads and appends = %q, %v", out, err)
	}
	wantContent(t, mine.back, "minemore\n")
	if out, err := runAs(user, "chmod", "644", secret.mnt); err == nil || !strings.Contains(out, "not permitted") {
		t.Errorf("chmod of root's file as uid %d = %q, %v; want Operation not permitted", user, out, err)
	}

	// What another user makes is theirs, and a sticky directory keeps
	// users from removing or replacing each other's files.
	tmp := d.join("tmp")
	if err := os.Mkdir(tmp.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sys.Chmod(tmp.mnt, 0o1777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tmp.join("roots").mnt, "root's")
	if out, err := runAs(user, "sh", "-c", "touch "+tmp.join("users").mnt+" && mkdir "+tmp.join("userdir").mnt); err != nil {
		t.Fatalf("create in a sticky dir as uid %d: %q, %v", user, out, err)
	}
	for _, name := range []string{"users", "userdir"} {
		if st := lstat(t, tmp.join(name).back); st.Uid != user || st.Gid != user {
			t.Errorf("%s made by uid %d is owned by %d:%d", name, user, st.Uid, st.Gid)
		}
	}
	for _, cmd := range [][]string{
		{"rm", "-f", tmp.join("roots").mnt},
		{"mv", tmp.join("roots").mnt, tmp.join("moved").mnt},
		{"mv", "-f", tmp.join("users").mnt, tmp.join("roots").mnt},
	} {
		if out, err := runAs(user, cmd[0], cmd[1:]...); err == nil || !strings.Contains(out, "not permitted") {
			t.Errorf("%q as uid %d in a sticky dir = %q, %v; want Operation not permitted", cmd, user, out, err)
		}
	}
	wantContent(t, tmp.join("roots").back, "root's")
	if out, err := runAs(user, "rm", tmp.join("users").mnt); err != nil {
		t.Errorf("rm of one's own file in a sticky dir: %q, %v", out, err)
	}
}

func testParallel(t *testing.T, d pair) {
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for r := range rounds {
					p := d.join(fmt.Sprintf("w%d-%d", w, r))
					data := randomBytes(10000 + w*r)
					if err := os.WriteFile(p.mnt, data, 0o644); err != nil {
						return err
					}
					q := d.join(fmt.Sprintf("w%d-%d.renamed", w, r))
					if err := os.Rename(p.mnt, q.mnt); err != nil {
						return err
					}
					b, err := os.ReadFile(q.mnt)
					if err != nil {
						return err
					}
					if !bytes.Equal(b, data) {
						return fmt.Errorf("%s: read %d bytes differing from the %d written", q.mnt, len(b), len(data))
					}
					if r%2 == 0 {
						if err := os.Remove(q.mnt); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	go func() {
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			// Names come and go while listed: only other errors count.
			ents, err := os.ReadDir(d.mnt)
			if err != nil {
				errs <- err
				return
			}
			for _, e := range ents {
				if _, err := e.Info(); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	for range workers + 1 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	ents, err := os.ReadDir(d.back)
	if err != nil || len(ents) != workers*rounds/2 {
		t.Errorf("%d files left in the backing dir (%v), want %d", len(ents), err, workers*rounds/2)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}
