// Command target is the only program in dockerfuse's distroless test images
// (see internal/testenv). It is the image's ENTRYPOINT, `target serve`, and
// the probe that tests run inside the container with
// `docker exec CONTAINER /target SUBCOMMAND ARGS...` to see the filesystem as
// the container sees it, with no shell and no other tools in the image.
//
// Output goes to stdout; an error goes to stderr with exit status 1. It must
// stay static (CGO_ENABLED=0) and use only the standard library, so that it
// runs FROM scratch on amd64 and, under emulation, on arm64.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/dockerfuse/dockerfuse/internal/testenv/pattern"
)

type command struct {
	args  string // usage of the arguments
	nargs int
	run   func(args []string) error
}

var commands = map[string]command{
	"serve":    {"", 0, serve},
	"arch":     {"", 0, arch},
	"cat":      {"FILE", 1, cat},
	"write":    {"FILE", 1, func(a []string) error { return write(a[0], os.O_TRUNC) }},
	"append":   {"FILE", 1, func(a []string) error { return write(a[0], os.O_APPEND) }},
	"sha256":   {"FILE", 1, sum},
	"ls":       {"DIR", 1, ls},
	"stat":     {"FILE", 1, stat},
	"exists":   {"FILE", 1, exists},
	"mkdir":    {"DIR", 1, func(a []string) error { return os.MkdirAll(a[0], 0o755) }},
	"rm":       {"PATH", 1, func(a []string) error { return os.RemoveAll(a[0]) }},
	"tree":     {"DIR NDIRS NFILES SIZE", 4, tree},
	"mkfifo":   {"PATH", 1, mkfifo},
	"symlink":  {"TARGET PATH", 2, func(a []string) error { return os.Symlink(a[0], a[1]) }},
	"readlink": {"PATH", 1, readlink},
	"chmod":    {"MODE PATH", 2, chmod},
	"ps":       {"", 0, ps},
	// For the benchmark (internal/bench): what ls -lR, find and a
	// write with fsync do, for comparison with the same through a mount.
	"lsr":       {"DIR", 1, lsr},
	"find":      {"DIR", 1, find},
	"writesync": {"FILE", 1, writesync},
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	c, ok := commands[os.Args[1]]
	args := os.Args[2:]
	if !ok || len(args) != c.nargs {
		usage()
	}
	if err := c.run(args); err != nil {
		fmt.Fprintf(os.Stderr, "target %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  target %s %s\n", n, commands[n].args)
	}
	os.Stderr.WriteString(b.String())
	os.Exit(1)
}

// serve is the container's main process. As PID 1 it would ignore SIGTERM
// without a handler, and `docker stop` would wait out its timeout.
func serve([]string) error {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	os.Exit(0)
	return nil
}

func arch([]string) error {
	fmt.Println(runtime.GOARCH)
	return nil
}

func cat(a []string) error {
	f, err := os.Open(a[0])
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(os.Stdout, f)
	return err
}

func write(name string, flag int) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, os.Stdin); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sum(a []string) error {
	f, err := os.Open(a[0])
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
	return nil
}

func ls(a []string) error {
	names, err := readdirnames(a[0])
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Println(n)
	}
	return nil
}

func readdirnames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// stat prints the permission bits (setuid, setgid and sticky included) as
// mode and the file type as a word, so tests compare each on its own.
func stat(a []string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(a[0], &st); err != nil {
		return &os.PathError{Op: "lstat", Path: a[0], Err: err}
	}
	fmt.Printf("mode=%o size=%d uid=%d gid=%d nlink=%d mtime_ns=%d type=%s\n",
		st.Mode&0o7777, st.Size, st.Uid, st.Gid, st.Nlink, st.Mtim.Nano(), fileType(st.Mode))
	return nil
}

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "dir"
	case syscall.S_IFLNK:
		return "symlink"
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFSOCK:
		return "socket"
	case syscall.S_IFCHR:
		return "char"
	case syscall.S_IFBLK:
		return "block"
	}
	return "unknown"
}

// exists answers with its exit status alone when the name is missing;
// any other failure is an error worth reading.
func exists(a []string) error {
	_, err := os.Lstat(a[0])
	if errors.Is(err, os.ErrNotExist) {
		os.Exit(1)
	}
	return err
}

// tree writes the files that pattern.TreeFile predicts.
func tree(a []string) error {
	var n [3]int
	for i, s := range a[1:] {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return fmt.Errorf("%q is not a count", s)
		}
		n[i] = v
	}
	ndirs, nfiles, size := n[0], n[1], n[2]
	for d := 0; d < ndirs; d++ {
		dir := filepath.Join(a[0], pattern.DirName(d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for f := 0; f < nfiles; f++ {
			if err := os.WriteFile(filepath.Join(dir, pattern.FileName(f)), pattern.TreeFile(d, f, size), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func mkfifo(a []string) error {
	if err := syscall.Mkfifo(a[0], 0o644); err != nil {
		return &os.PathError{Op: "mkfifo", Path: a[0], Err: err}
	}
	return nil
}

func readlink(a []string) error {
	s, err := os.Readlink(a[0])
	if err != nil {
		return err
	}
	fmt.Println(s)
	return nil
}

func chmod(a []string) error {
	m, err := strconv.ParseUint(a[0], 8, 32)
	if err != nil || m > 0o7777 {
		return fmt.Errorf("%q is not an octal mode", a[0])
	}
	if err := syscall.Chmod(a[1], uint32(m)); err != nil {
		return &os.PathError{Op: "chmod", Path: a[1], Err: err}
	}
	return nil
}

// ps prints "PID ARGS..." for every process the container can see, so a
// test can tell that no satellite outlived its mount, not even as a zombie.
// A process that exits while being read is skipped.
func ps([]string) error {
	names, err := readdirnames("/proc")
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := strconv.Atoi(n); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", n, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Join(strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00"), " ")
		if args == "" {
			// A zombie or a kernel thread: name it as ps(1) does.
			comm, _ := os.ReadFile(filepath.Join("/proc", n, "comm"))
			args = "[" + strings.TrimSpace(string(comm)) + "]"
		}
		fmt.Printf("%s %s\n", n, args)
	}
	return nil
}

// lsr prints, for DIR and each directory below it, its name and one line
// per entry with mode, links, owner, size, mtime and name: the work of
// ls -lR (an lstat per entry), without its formatting niceties.
func lsr(a []string) error {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	dirs := []string{a[0]}
	for len(dirs) > 0 {
		d := dirs[0]
		dirs = dirs[1:]
		names, err := readdirnames(d)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s:\n", d)
		var sub []string
		for _, n := range names {
			p := filepath.Join(d, n)
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				return &os.PathError{Op: "lstat", Path: p, Err: err}
			}
			fmt.Fprintf(w, "%s %d %d %d %d %d %s\n", fileType(st.Mode), st.Mode&0o7777, st.Nlink, st.Uid, st.Size, st.Mtim.Sec, n)
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				sub = append(sub, p)
			}
		}
		fmt.Fprintln(w)
		dirs = append(sub, dirs...)
	}
	return w.Flush()
}

// find prints every path below DIR, DIR included, as find(1) does: the
// type comes from the directory entry, so files are not stat'ed.
func find(a []string) error {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	err := filepath.WalkDir(a[0], func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintln(w, p)
		return nil
	})
	if err != nil {
		return err
	}
	return w.Flush()
}

// writesync is write with an fsync before close, as a benchmark's write
// through a mount ends.
func writesync(a []string) error {
	f, err := os.OpenFile(a[0], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, os.Stdin, make([]byte, 1<<20)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
