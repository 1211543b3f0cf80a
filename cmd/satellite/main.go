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
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
	"github.com/dockerfuse/dockerfuse/satellite"
)

func main() {
	root := flag.String("root", "/", "directory to serve")
	keep := flag.Bool("keep", false, "do not remove the executable at start (for local tests)")
	var cleanup []string
	flag.Func("cleanup", "remove this file left by an earlier failed start (repeatable)", func(p string) error {
		cleanup = append(cleanup, p)
		return nil
	})
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("satellite: ")

	// Replies own stdout; anything printed by mistake goes to stderr.
	out := os.Stdout
	os.Stdout = os.Stderr

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
