package satellite_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite"
)

// fileNames lists the names of the files of a ReadFiles reply, in order.
func fileNames(r *rpc.ReadFilesReply) []string {
	var n []string
	for _, f := range r.Files {
		n = append(n, f.Name)
	}
	return n
}

func TestReadFiles(t *testing.T) {
	s, root := newServer(t)
	d := filepath.Join(root, "d")
	check(t, "mkdir", os.Mkdir(d, 0o755))
	writeFile(t, filepath.Join(d, "a"), "alpha")
	writeFile(t, filepath.Join(d, "b"), "")
	check(t, "big", os.WriteFile(filepath.Join(d, "big"), make([]byte, 1000), 0o644))
	writeFile(t, filepath.Join(root, "outside"), "outside the directory")
	check(t, "symlink", os.Symlink("a", filepath.Join(d, "link")))
	check(t, "mkdir sub", os.Mkdir(filepath.Join(d, "sub"), 0o755))
	// A fifo with no writer: opening it for reading would block.
	check(t, "mkfifo", unix.Mkfifo(filepath.Join(d, "fifo"), 0o644))
	check(t, "setxattr", unix.Setxattr(filepath.Join(d, "a"), "user.x", []byte("1"), 0))

	all := []string{"fifo", "a", "link", "sub", "missing", "../outside", ".", "..", "", "big", "b"}
	for _, tc := range []struct {
		what     string
		names    []string
		maxFile  int
		maxTotal int
		want     []string
	}{
		{"only small regular files", all, 1000, 1 << 20, []string{"a", "b"}},
		{"a file of MaxFile bytes fits", all, 1001, 1 << 20, []string{"a", "big", "b"}},
		{"MaxFile above MaxInline is MaxInline", all, 1 << 30, 1 << 20, []string{"a", "big", "b"}},
		{"the reply ends at MaxTotal", all, 1001, 1004, []string{"a"}},
		{"in the order asked", []string{"b", "a"}, 1000, 1 << 20, []string{"b", "a"}},
		{"none", nil, 1000, 1 << 20, nil},
	} {
		r, err := s.ReadFiles(&rpc.ReadFilesArgs{Dir: "d", Names: tc.names, MaxFile: tc.maxFile, MaxTotal: tc.maxTotal})
		check(t, tc.what, err)
		if got := fileNames(r); !slices.Equal(got, tc.want) {
			t.Errorf("%s: files %q, want %q", tc.what, got, tc.want)
		}
		for _, f := range r.Files {
			p := filepath.Join(d, f.Name)
			if want := readFile(t, p); string(f.Data) != want {
				t.Errorf("%s: data of %s = %q, want %q", tc.what, f.Name, f.Data, want)
			}
			st := hostStat(t, p)
			if f.Attr.Ino != st.Ino || f.Attr.Size != st.Size || f.Attr.Mode != st.Mode || f.Attr.Mtime != st.Mtim.Nano() || f.Attr.Ctime != st.Ctim.Nano() {
				t.Errorf("%s: attributes of %s = %+v, want those of lstat %+v", tc.what, f.Name, f.Attr, st)
			}
			want := rpc.XattrNone
			if f.Name == "a" {
				want = rpc.XattrSome
			}
			if f.Attr.Xattr != want {
				t.Errorf("%s: xattr state of %s = %v, want %v", tc.what, f.Name, f.Attr.Xattr, want)
			}
		}
		r.Release()
	}

	_, err := s.ReadFiles(&rpc.ReadFilesArgs{Dir: "missing", Names: []string{"a"}, MaxFile: 10, MaxTotal: 10})
	wantErrno(t, "ReadFiles of a missing directory", err, syscall.ENOENT)
	_, err = s.ReadFiles(&rpc.ReadFilesArgs{Dir: "d/a", Names: []string{"a"}, MaxFile: 10, MaxTotal: 10})
	wantErrno(t, "ReadFiles of a file", err, syscall.ENOTDIR)
	_, err = s.ReadFiles(&rpc.ReadFilesArgs{Dir: "d", Names: make([]string, rpc.MaxDirEntries+1), MaxFile: 10, MaxTotal: 10})
	wantErrno(t, "ReadFiles of too many names", err, syscall.EINVAL)
}

// TestReadFilesPseudo: files of /proc are interfaces, not data, and are
// never read ahead.
func TestReadFilesPseudo(t *testing.T) {
	s := satellite.New(satellite.Config{Root: "/proc"})
	defer s.Shutdown()
	r, err := s.ReadFiles(&rpc.ReadFilesArgs{Dir: "self", Names: []string{"status", "cmdline", "comm"}, MaxFile: 4096, MaxTotal: 1 << 20})
	check(t, "ReadFiles of /proc/self", err)
	if got := fileNames(r); len(got) != 0 {
		t.Errorf("ReadFiles of /proc/self returned %q, want nothing", got)
	}
}

// TestReadFilesFull fills a reply to MaxReadFiles with the largest files
// there may be, and checks that every byte is the file's.
func TestReadFilesFull(t *testing.T) {
	s, root := newServer(t)
	var all []string
	for i := range rpc.MaxReadFiles/(rpc.MaxInline-1) + 2 {
		name := string(rune('a' + i))
		check(t, "write", os.WriteFile(filepath.Join(root, name), bytes.Repeat([]byte(name), rpc.MaxInline-1), 0o644))
		all = append(all, name)
	}
	r, err := s.ReadFiles(&rpc.ReadFilesArgs{Dir: "/", Names: all, MaxFile: rpc.MaxInline, MaxTotal: rpc.MaxReadFiles})
	check(t, "ReadFiles", err)
	defer r.Release()
	if got, want := len(r.Files), rpc.MaxReadFiles/(rpc.MaxInline-1); got != want {
		t.Errorf("ReadFiles of %d files of %d bytes returned %d, want %d", len(all), rpc.MaxInline-1, got, want)
	}
	for _, f := range r.Files {
		if !bytes.Equal(f.Data, bytes.Repeat([]byte(f.Name), rpc.MaxInline-1)) {
			t.Errorf("data of %s is not the file's", f.Name)
		}
	}
}

// TestReadFilesUnreadable: a file the server may not read is left out, and
// the others still come.
func TestReadFilesUnreadable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to serve as another user")
	}
	root := reachableTempDir(t)
	writeFile(t, filepath.Join(root, "private"), "secret")
	check(t, "chmod", os.Chmod(filepath.Join(root, "private"), 0o600))
	writeFile(t, filepath.Join(root, "public"), "open")
	spawn(t, "readfiles-unreadable", &syscall.Credential{Uid: 65534, Gid: 65534}, "ROOT="+root)
}

// readFilesUnreadableChild is TestReadFilesUnreadable's check, run as a user
// who may read public but not private.
func readFilesUnreadableChild(root string, fail func(string, ...any)) {
	s := satellite.New(satellite.Config{Root: root})
	defer s.Shutdown()
	r, err := s.ReadFiles(&rpc.ReadFilesArgs{Dir: "/", Names: []string{"private", "public"}, MaxFile: 100, MaxTotal: 100})
	if err != nil {
		fail("ReadFiles = %v, want nil", err)
		return
	}
	defer r.Release()
	if got := fileNames(r); !slices.Equal(got, []string{"public"}) {
		fail("ReadFiles of an unreadable and a readable file returned %q, want [public]", strings.Join(got, " "))
	}
}
