package testenv

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TargetOptions describes a target container. The zero value is a running
// amd64 target with a writable root filesystem, run as root.
type TargetOptions struct {
	// Arch is "amd64" (the default) or "arm64".
	Arch string
	// Name is the prefix of the container's name; "" means
	// "dockerfuse-target". A random suffix makes every name unique.
	Name string
	// ReadOnlyRootfs runs the container with --read-only.
	ReadOnlyRootfs bool
	// User is docker run's --user ("app", "1000:1000"); "" means root.
	User string
	// Tmpfs maps a path inside the container to the options of a tmpfs
	// mounted there ("" for the defaults, or "size=16m,mode=1777").
	Tmpfs map[string]string
	// Mounts are docker run --mount values, each one mount.
	Mounts []string
	// Args are more docker run flags, placed before the image.
	Args []string
}

// Target is a running target container made by RunTarget.
type Target struct {
	ID    string
	Name  string
	Arch  string
	Image string
}

// RunTarget starts a container from TargetImage with no network and
// removes it, with its anonymous volumes, when the test ends.
func RunTarget(t testing.TB, opts TargetOptions) *Target {
	t.Helper()
	if opts.Arch == "" {
		opts.Arch = "amd64"
	}
	if opts.Name == "" {
		opts.Name = "dockerfuse-target"
	}
	image := TargetImage(t, opts.Arch)
	name := UniqueName(opts.Name)
	args := []string{"run", "--detach", "--network", "none", "--name", name,
		"--label", LabelKey + "=1", "--platform", "linux/" + opts.Arch}
	if opts.ReadOnlyRootfs {
		args = append(args, "--read-only")
	}
	if opts.User != "" {
		args = append(args, "--user", opts.User)
	}
	for _, p := range slices.Sorted(maps.Keys(opts.Tmpfs)) {
		v := p
		if o := opts.Tmpfs[p]; o != "" {
			v += ":" + o
		}
		args = append(args, "--tmpfs", v)
	}
	for _, m := range opts.Mounts {
		args = append(args, "--mount", m)
	}
	args = append(args, opts.Args...)
	args = append(args, image)

	// Cleanup comes first: a failed run may still have created it.
	t.Cleanup(func() {
		if _, err := docker(nil, "rm", "--force", "--volumes", name); err != nil && !strings.Contains(err.Error(), "No such container") {
			t.Errorf("removing target %s: %v", name, err)
		}
	})
	out, err := docker(nil, args...)
	if err != nil {
		t.Fatalf("starting target: %v", err)
	}
	return &Target{ID: strings.TrimSpace(out), Name: name, Arch: opts.Arch, Image: image}
}

// Exec runs /target with args inside the container and returns its stdout,
// failing the test if it fails.
func (c *Target) Exec(t testing.TB, args ...string) string {
	t.Helper()
	return c.ExecIn(t, nil, args...)
}

// ExecIn is Exec with stdin as the command's standard input.
func (c *Target) ExecIn(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	out, err := c.exec(stdin, append([]string{"/target"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryExec runs /target with args inside the container and returns its
// stdout; the error carries the exit status and stderr.
func (c *Target) TryExec(args ...string) (string, error) {
	return c.exec(nil, append([]string{"/target"}, args...))
}

// TryCommand runs argv inside the container, argv[0] being any path in
// it, and returns its stdout; the error carries the exit status and stderr.
func (c *Target) TryCommand(argv ...string) (string, error) {
	return c.exec(nil, argv)
}

func (c *Target) exec(stdin []byte, argv []string) (string, error) {
	args := []string{"exec"}
	if stdin != nil {
		args = append(args, "--interactive")
	}
	args = append(args, c.ID)
	return docker(stdin, append(args, argv...)...)
}

// Stop stops the container; its main process exits at once on SIGTERM.
func (c *Target) Stop(t testing.TB) {
	t.Helper()
	if _, err := docker(nil, "stop", "--time", "10", c.ID); err != nil {
		t.Fatal(err)
	}
}

// Start starts the stopped container again.
func (c *Target) Start(t testing.TB) {
	t.Helper()
	if _, err := docker(nil, "start", c.ID); err != nil {
		t.Fatal(err)
	}
}

// Pid returns the host pid of the container's main process, for reaching
// its filesystem natively at /proc/PID/root. It changes with every Start.
func (c *Target) Pid(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := Engine(t).ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatalf("inspecting target %s: %v", c.Name, err)
	}
	if info.State == nil || info.State.Pid == 0 {
		t.Fatalf("target %s is not running", c.Name)
	}
	return info.State.Pid
}

// SatellitePids returns the host pids of the satellites running in the
// pid namespace of host process pid (a target's): the processes whose
// command names a satellite executable, .dockerfuse-*, as their own or,
// for an extra stream's, after -of.
func SatellitePids(t testing.TB, pid int) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil || !strings.Contains(string(cmdline), ".dockerfuse-") {
			continue
		}
		if pns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err == nil && pns == ns {
			pids = append(pids, p)
		}
	}
	return pids
}
