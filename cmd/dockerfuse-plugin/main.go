// Command dockerfuse-plugin is dockerfuse's Docker volume plugin: volumes
// created with -d dockerfuse are live views of another container's
// filesystem.
//
// Managed (the default, as the engine runs it from config.json): it serves
// the volume plugin protocol on /run/docker/plugins/dockerfuse.sock, keeps
// its volumes in /state and mounts them under /mnt/volumes, the plugin's
// propagatedMount. The environment variable DEBUG=1 turns on debug logs;
// logs go to stderr, which the engine copies into its own log.
//
// Legacy (an unmanaged plugin run on the host, for example by systemd):
//
//	dockerfuse-plugin -state /var/lib/dockerfuse -mount-root /var/lib/dockerfuse/volumes
//
// The engine finds the socket at /run/docker/plugins/dockerfuse.sock and
// the volume driver is then called dockerfuse, as the managed plugin is:
// run one or the other.
//
// SIGTERM and SIGINT unmount every volume and exit; volumes stay saved.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/driver"
	"github.com/dockerfuse/dockerfuse/internal/version"
	"github.com/dockerfuse/dockerfuse/launcher"
	"github.com/dockerfuse/dockerfuse/satellite/embedded"
)

// shutdownWait bounds unmounting at exit, under the 10s the engine waits
// between SIGTERM and SIGKILL when it disables a plugin.
const shutdownWait = 5 * time.Second

func main() {
	socket := flag.String("socket", "/run/docker/plugins/dockerfuse.sock", "unix socket to serve the volume plugin protocol on")
	stateDir := flag.String("state", "/state", "directory that keeps the volumes (created 0700)")
	mountRoot := flag.String("mount-root", "/mnt/volumes", "directory to mount volumes under, one directory each")
	debug := flag.Bool("debug", envBool("DEBUG"), "log debug messages, every FUSE request included (default from $DEBUG)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	dockerfuse.SetMaxProcs()
	if *showVersion {
		fmt.Println("dockerfuse-plugin", version.Version)
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "dockerfuse-plugin: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(log, *socket, *stateDir, *mountRoot, *debug); err != nil {
		log.Error("dockerfuse-plugin failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, socket, stateDir, mountRoot string, debug bool) error {
	engine, err := launcher.NewEngineClient()
	if err != nil {
		return fmt.Errorf("docker engine client: %w (check DOCKER_HOST, or that /var/run/docker.sock is mounted)", err)
	}
	defer engine.Close()

	d, err := driver.New(driver.Config{
		StateDir:  stateDir,
		MountRoot: mountRoot,
		Mounter:   sessionMounter{engine: engine, satellites: embedded.Satellites{}, log: log, debug: debug},
		Log:       log,
	})
	if err != nil {
		return err
	}
	l, err := listen(socket)
	if err != nil {
		d.Close()
		return err
	}
	log.Info("serving", "version", version.Version, "socket", socket, "state", stateDir, "mountRoot", mountRoot)

	h := volume.NewHandler(d)
	served := make(chan error, 1)
	go func() { served <- h.Serve(l) }()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		log.Info("stopping: unmounting every volume", "signal", sig.String())
		l.Close()
		<-served
		err = nil
	case err = <-served:
		err = fmt.Errorf("serving %s: %w", socket, err)
	}
	os.Remove(socket)
	// A volume that a running container still uses cannot be released
	// before the engine's patience (10s) runs out; exiting drops the FUSE
	// connection anyway, and such containers see ENOTCONN until restarted.
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case cerr := <-closed:
		if cerr != nil {
			log.Error("unmounting", "err", cerr)
		}
	case <-time.After(shutdownWait):
		log.Warn("volumes still in use by running containers; exiting anyway (they see ENOTCONN until restarted)")
	}
	return err
}

// listen opens the plugin socket readable by root only. A socket file left
// by a process that died is replaced; one that still answers is not.
func listen(socket string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return nil, fmt.Errorf("plugin socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another plugin already serves %s (stop it first)", socket)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket: %w", err)
	}
	old := syscall.Umask(0o177) // the socket is born 0600
	l, err := net.Listen("unix", socket)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("plugin socket: %w", err)
	}
	return l, nil
}

func envBool(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}
