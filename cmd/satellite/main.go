// Command satellite is the in-container half of dockerfuse. The client
// copies it into the target, starts it with docker exec and talks the rpc
// protocol with it over stdin and stdout. It removes its own executable at
// start and exits when stdin closes.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite"
)

func main() {
	root := flag.String("root", "/", "directory to serve")
	keep := flag.Bool("keep", false, "do not remove the executable at start (for local tests, and extra streams)")
	flag.String("of", "", "the executable of the satellite this one is an extra stream of (shown by ps, unused)")
	var cleanup []string
	flag.Func("cleanup", "remove this file left by an earlier failed start (repeatable)", func(p string) error {
		cleanup = append(cleanup, p)
		return nil
	})
	uid := flag.Int("uid", -1, "after confining, serve as this user")
	gid := flag.Int("gid", -1, "after confining, serve as this group")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procs)
	}
	log.SetFlags(0)
	log.SetPrefix("satellite: ")

	// docker exec gives stdin and stdout as pipes of 64 KiB, and a read
	// reply of 512 KiB then wakes the satellite and the engine's shim at
	// every 64 KiB. 1 MiB is what any process may ask for; anything but a
	// pipe ignores it.
	for _, fd := range []int{0, 1} {
		unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20)
	}
	// Replies own stdout; anything printed by mistake goes to stderr.
	in, out, err := stdio()
	if err != nil {
		log.Fatal(err)
	}

	if !*keep && filepath.IsAbs(os.Args[0]) {
		// Nothing stays in the target, even if this process is killed.
		if err := os.Remove(os.Args[0]); err != nil {
			log.Printf("removing %s: %v", os.Args[0], err)
		}
	}
	for _, p := range cleanup {
		if strings.Contains(filepath.Base(p), ".dockerfuse-") {
			os.Remove(p)
		}
	}
	// Modes arrive with the caller's umask already applied.
	unix.Umask(0)

	served, err := satellite.Confine(*root)
	if err == nil && *uid >= 0 {
		err = dropTo(*uid, *gid)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "satellite:", err)
		os.Exit(2)
	}
	s := satellite.New(satellite.Config{Root: served})
	err = rpc.Serve(in, out, s)
	s.Shutdown()
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// stdio returns the stream the requests come in on and the one the replies
// go out on, as copies of stdin and stdout, and points stdout at stderr,
// so that nothing printed by mistake can corrupt the replies.
//
// Both are non-blocking and wait in the runtime's poller: a goroutine
// waiting for a request, or for room in a full pipe, then holds no
// thread, which the runtime would otherwise take its processor back from,
// and hand over to another thread, each time.
func stdio() (in, out *os.File, err error) {
	var fds [2]int
	for i := range fds {
		fd, err := unix.FcntlInt(uintptr(i), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, nil, fmt.Errorf("stdio: %w", err)
		}
		// A descriptor that cannot be made non-blocking is read and
		// written as it is.
		unix.SetNonblock(fd, true)
		fds[i] = fd
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		return nil, nil, fmt.Errorf("stdio: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "requests"), os.NewFile(uintptr(fds[1]), "replies"), nil
}

// dropTo makes every thread of the process uid:gid, with gid as its only
// group (syscall's setters apply to all threads since Go 1.16).
func dropTo(uid, gid int) error {
	if gid < 0 {
		gid = uid
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setgroups %d: %w", gid, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}

// procs is the satellite's GOMAXPROCS. Its work is system calls, mostly
// one request after another. With a processor for every CPU, the runtime
// kept threads spinning for work, and waking each other at every request,
// on the CPUs the engine, its shim and the client needed at that moment.
// With one, and the stream waited for in the poller (see stdio), a request
// is served on the thread that read it. Over 1,000 files made through the
// mount (4 alternating runs), the satellite's CPU fell by a fifth (27-32
// ticks to 21-26) and the time by 4%; cold reads, ls -lR and four readers
// at once took the same time. A request blocked in a system call still
// has its processor handed to another thread by the runtime, so that one
// stuck (on a fifo, say) holds up no other.
const procs = 1

// gcPercent is the satellite's GOGC. It lives in someone else's container,
// counted against its memory limit, and allocates little (its buffers are
// pooled): a heap that grows to 1.5 times what is live instead of twice
// kept its peak RSS under 13.5 MB instead of 14-16 MB through the writes,
// ls -lR and tar of the benchmark, for the same CPU.
const gcPercent = 50
