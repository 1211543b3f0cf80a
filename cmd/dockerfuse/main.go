// Command dockerfuse mounts a running container's filesystem on the host.
//
//	dockerfuse -id web -mount /mnt/web [-path /var/log] [-ro] [-daemonize]
//
// It needs nothing inside the container: it copies a static satellite into
// it (carried inside this binary) and starts it with docker exec. The engine
// comes from the environment (DOCKER_HOST, DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH, DOCKER_API_VERSION). Ctrl-C or SIGTERM unmounts;
// unmounting from outside (fusermount3 -u, umount) makes it exit 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/internal/version"
)

type options struct {
	id           string
	mountpoint   string
	path         string
	user         string
	ro           bool
	daemonize    bool
	debug        bool
	json         bool
	version      bool
	allowOther   bool
	noWatch      bool
	attrTimeout  time.Duration
	entryTimeout time.Duration
	logFile      string
	streams      int
}

// usageError is a bad command line: exit status 2, with the usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("dockerfuse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, long, short, value, usage string) {
		fs.StringVar(p, long, value, usage)
		if short != "" {
			fs.StringVar(p, short, value, "short for -"+long)
		}
	}
	boolean := func(p *bool, long, short, usage string) {
		fs.Var(boolFlag{p}, long, usage)
		if short != "" {
			fs.Var(boolFlag{p}, short, "short for -"+long)
		}
	}
	str(&o.id, "id", "i", "", "container name or ID (required)")
	str(&o.mountpoint, "mount", "m", "", "host directory to mount on, created if missing (required)")
	str(&o.path, "path", "p", "/", "directory inside the container to show")
	str(&o.user, "user", "u", "", "user the satellite runs as inside the container (default root)")
	boolean(&o.ro, "ro", "", "mount read-only")
	boolean(&o.daemonize, "daemonize", "d", "run in the background once mounted")
	boolean(&o.debug, "debug", "", "log every FUSE request")
	boolean(&o.json, "json", "j", "log as JSON")
	boolean(&o.version, "version", "v", "print the version and exit")
	boolean(&o.allowOther, "allow-other", "", "let other users (and containers) use the mount")
	boolean(&o.noWatch, "no-watch", "", "do not watch the container for changes: trust names and attributes for the timeouts only")
	o.attrTimeout, o.entryTimeout = time.Second, time.Second
	fs.Var(durationFlag{&o.attrTimeout}, "attr-timeout", "how long the kernel trusts file attributes, a `duration` such as 1s")
	fs.Var(durationFlag{&o.entryTimeout}, "entry-timeout", "how long the kernel trusts file names, a `duration` such as 1s")
	fs.StringVar(&o.logFile, "log", "", "with -daemonize, append the log to this file")
	fs.Var(streamsFlag{&o.streams}, "streams", fmt.Sprintf("how many satellites, each on an exec stream of its own, the mount uses, a `number` from 1 to %d: the first serves everything, the others only read files (default %d; 1 on a container with a memory limit under 1 GiB or a pids limit)", dockerfuse.MaxStreams, dockerfuse.DefaultStreams))
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dockerfuse -id CONTAINER -mount DIR [-path DIR] [-ro] [-daemonize]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q (all options are flags: -id, -mount, ...)", fs.Arg(0))}
	}
	if o.version {
		return &o, nil
	}
	switch {
	case o.id == "":
		return nil, &usageError{"-id is required: the name or ID of a running container (see docker ps)"}
	case o.mountpoint == "":
		return nil, &usageError{"-mount is required: the host directory to mount the container's files on"}
	case !path.IsAbs(o.path):
		return nil, &usageError{fmt.Sprintf("-path %q is not absolute: give a directory inside the container, like /var/log", o.path)}
	case !validUser(o.user):
		return nil, &usageError{fmt.Sprintf("-user %q is not a user: give NAME or UID, optionally followed by :GROUP or :GID, as docker exec --user takes it", o.user)}
	case o.logFile != "" && !o.daemonize:
		return nil, &usageError{"-log needs -daemonize: in the foreground the log goes to stderr"}
	}
	o.path = path.Clean(o.path)
	return &o, nil
}

// validUser tells whether u has the shape docker exec --user accepts:
// empty, or USER[:GROUP] with no empty part.
func validUser(u string) bool {
	if u == "" {
		return true
	}
	user, group, hasGroup := strings.Cut(u, ":")
	if user == "" || (hasGroup && (group == "" || strings.Contains(group, ":"))) {
		return false
	}
	return !strings.ContainsFunc(u, unicode.IsSpace)
}

// boolFlag is a boolean flag whose error names the valid values; the flag
// package's own says only "parse error".
type boolFlag struct{ p *bool }

func (b boolFlag) IsBoolFlag() bool { return true }

func (b boolFlag) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}

func (b boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b.p = v
	return nil
}

// durationFlag is a duration flag that refuses negative values and whose
// error shows what a valid value looks like.
type durationFlag struct{ p *time.Duration }

func (d durationFlag) String() string {
	if d.p == nil {
		return "0s"
	}
	return d.p.String()
}

func (d durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return errors.New("want a duration of 0 or more, such as 0, 500ms, 1s or 1m")
	}
	*d.p = v
	return nil
}

type streamsFlag struct{ p *int }

func (f streamsFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}

func (f streamsFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > dockerfuse.MaxStreams {
		return fmt.Errorf("want a number from 1 to %d (1: no satellites but the one that serves everything)", dockerfuse.MaxStreams)
	}
	*f.p = n
	return nil
}

func main() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		// Each FUSE read and write allocates and drops a 128 KiB buffer
		// in bazil: a larger GC target trades some heap for a fifth of
		// the client's CPU on streaming I/O, and the soft limit keeps
		// the heap of a mount that knows many files from growing with
		// it.
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(48 << 20)
	}
	dockerfuse.SetMaxProcs()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "dockerfuse:", err)
		fmt.Fprintln(os.Stderr, "run dockerfuse -h for the options")
		os.Exit(2)
	}
	if o.version {
		fmt.Println("dockerfuse", version.Version)
		return
	}
	if o.daemonize && os.Getenv(daemonEnv) == "" {
		os.Exit(daemonize(o))
	}
	os.Exit(run(o))
}

func newLogger(o *options, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: level}
	if o.json {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// run mounts and serves until unmounted; it returns the exit status.
func run(o *options) int {
	log := newLogger(o, os.Stderr)
	ready := readyPipe()

	fail := func(err error) int {
		log.Error("mount failed", "err", err)
		if ready != nil {
			fmt.Fprintln(ready, err)
			ready.Close()
		}
		return 1
	}
	mountpoint, err := filepath.Abs(o.mountpoint)
	if err == nil {
		err = os.MkdirAll(mountpoint, 0o755)
	}
	if err != nil {
		return fail(fmt.Errorf("-mount %s: %w (give a directory; it is created if missing)", o.mountpoint, err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := dockerfuse.Mount(ctx, dockerfuse.Config{
		Container:    o.id,
		Path:         o.path,
		User:         o.user,
		ReadOnly:     o.ro,
		Mountpoint:   mountpoint,
		AllowOther:   o.allowOther,
		AttrTimeout:  o.attrTimeout,
		EntryTimeout: o.entryTimeout,
		NoWatch:      o.noWatch,
		Log:          log,
		Debug:        o.debug,
		Streams:      o.streams,
	})
	if err != nil {
		return fail(err)
	}
	st := s.Status()
	log.Info("mounted", "container", st.Container, "id", short(st.ContainerID), "path", st.Path, "mountpoint", st.Mountpoint, "arch", st.Arch, "ro", st.ReadOnly)
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}
	select {
	case <-s.Done():
		log.Info("unmounted from outside")
	case <-ctx.Done():
		log.Info("signal received, unmounting")
		if err := s.Close(); err != nil {
			log.Error("unmount", "err", err)
			return 1
		}
	}
	return 0
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// daemonEnv marks the background copy started by -daemonize; fd 3 is a
// pipe on which it reports "ok" or the error once the mount is up.
const daemonEnv = "DOCKERFUSE_DAEMON"

func readyPipe() *os.File {
	if os.Getenv(daemonEnv) == "" {
		return nil
	}
	return os.NewFile(3, "ready")
}

// daemonize starts this command again in its own session and waits until
// the copy reports that the mount is up.
func daemonize(o *options) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerfuse:", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerfuse:", err)
		return 1
	}
	logOut := io.Discard
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dockerfuse: -log:", err)
			return 2
		}
		defer f.Close()
		logOut = f
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout = logOut
	cmd.Stderr = logOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "dockerfuse:", err)
		return 1
	}
	w.Close()
	msg, _ := io.ReadAll(r)
	line := strings.TrimSpace(string(msg))
	if line == "ok" {
		fmt.Printf("dockerfuse: %s mounted on %s (pid %d)\n", o.id, o.mountpoint, cmd.Process.Pid)
		cmd.Process.Release()
		return 0
	}
	if line == "" {
		line = "the background process exited before mounting"
	}
	fmt.Fprintln(os.Stderr, "dockerfuse:", line)
	cmd.Wait()
	return 1
}
