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
	log.SetFlags(0)
	log.SetPrefix("satellite: ")

	// Replies own stdout; anything printed by mistake goes to stderr.
	out := os.Stdout
	os.Stdout = os.Stderr
	// docker exec gives stdin and stdout as pipes of 64 KiB, and a read
	// reply of 512 KiB then wakes the satellite and the engine's shim at
	// every 64 KiB. 1 MiB is what any process may ask for; anything but a
	// pipe ignores it.
	for _, fd := range []int{0, 1} {
		unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20)
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
	err = rpc.Serve(os.Stdin, out, s)
	s.Shutdown()
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
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

// gcPercent is the satellite's GOGC. It lives in someone else's container,
// counted against its memory limit, and allocates little (its buffers are
// pooled): a heap that grows to 1.5 times what is live instead of twice
// kept its peak RSS under 13.5 MB instead of 14-16 MB through the writes,
// ls -lR and tar of the benchmark, for the same CPU.
const gcPercent = 50
