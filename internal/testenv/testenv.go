// Package testenv gives dockerfuse's end-to-end tests a Docker engine, FUSE,
// distroless target containers and freshly built binaries.
//
// # What needs what
//
// Engine, TargetImage and RunTarget need a Docker engine that answers on the
// environment's DOCKER_HOST (or the default socket) and the docker CLI in
// PATH. TargetImage for "arm64" also needs qemu-aarch64 registered with
// binfmt_misc. RequireFUSE needs /dev/fuse, fusermount3 in PATH and root.
// Satellites and BuildBinary need only the Go toolchain that runs the tests.
//
// # Skip or fail
//
// When something a test needs is missing, the test is skipped with a message
// that says how to provide it, unless the environment variable CI is set or
// DOCKERFUSE_E2E=1: then it fails, so that an end-to-end test can never pass
// in CI by skipping. Unavailable applies the same rule to any other need.
//
// # Sharing and cleanup
//
// Everything is safe for concurrent use by parallel tests. Images, satellites
// and binaries are built at most once per test process; the image tag carries
// a hash of its contents, so test processes running at the same time, or
// images left by earlier runs, never disagree about what a tag holds, and an
// existing image is reused. Every container RunTarget creates has a unique
// name and the label LabelKey, and is removed with its anonymous volumes by
// t.Cleanup; images are kept as a cache. DOCKERFUSE_TEST_PREFIX, if set, is
// put before every name UniqueName makes, so that people sharing one engine
// can tell their containers apart.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// LabelKey labels every container this package creates, so that a CI script
// can remove what a killed test run left behind.
const LabelKey = "io.github.dockerfuse.test"

// Unavailable skips the test because something it needs is missing, or
// fails it when CI is set or DOCKERFUSE_E2E=1 (see the package doc). The
// message should say what is missing and how to provide it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" || os.Getenv("DOCKERFUSE_E2E") == "1" {
		t.Fatalf("%s (CI or DOCKERFUSE_E2E=1 is set, so this fails instead of skipping)", msg)
	}
	t.Skipf("%s; skipping (set DOCKERFUSE_E2E=1 to make this a failure)", msg)
}

var engine = sync.OnceValues(func() (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
})

// Engine returns an Engine API client with the version negotiated, after
// checking within 5 seconds that an engine answers. The client is shared by
// the whole test process: do not Close it.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	c, err := engine()
	if err != nil {
		Unavailable(t, "no Docker engine answers (%v): end-to-end tests need one; start dockerd "+
			"(`dockerd --bridge=none --iptables=false --ip6tables=false &`) or set DOCKER_HOST, as root", err)
	}
	return c
}

// RequireFUSE checks that this process can serve FUSE mounts.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Unavailable(t, "FUSE tests need /dev/fuse (%v): load the fuse module (modprobe fuse)", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		Unavailable(t, "FUSE tests need fusermount3 in PATH: apt-get install fuse3")
	}
	if os.Geteuid() != 0 {
		Unavailable(t, "FUSE tests need root (euid is %d): run them with sudo", os.Geteuid())
	}
}

// UniqueName returns prefix followed by a dash and 12 random hex digits, a
// name that no other test, test process or earlier run has used, after
// DOCKERFUSE_TEST_PREFIX (see the package doc).
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return os.Getenv("DOCKERFUSE_TEST_PREFIX") + prefix + "-" + hex.EncodeToString(b)
}

// onceMap runs f at most once per key and remembers its result, error
// included, for every later caller.
type onceMap[V any] struct {
	mu sync.Mutex
	m  map[string]func() (V, error)
}

func (o *onceMap[V]) do(key string, f func() (V, error)) (V, error) {
	o.mu.Lock()
	if o.m == nil {
		o.m = make(map[string]func() (V, error))
	}
	g, ok := o.m[key]
	if !ok {
		g = sync.OnceValues(f)
		o.m[key] = g
	}
	o.mu.Unlock()
	return g()
}
