package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// modulePath is the import path of this module; packages named relative to
// it are built from the module root.
const modulePath = "github.com/dockerfuse/dockerfuse"

var goTool = sync.OnceValues(func() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no go command in PATH or in %s", filepath.Dir(p))
	}
	return p, nil
})

// moduleRoot is the directory of this module's go.mod, found with the go
// command so that it works from any package's test directory.
var moduleRoot = sync.OnceValues(func() (string, error) {
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside the %s module", modulePath)
	}
	return filepath.Dir(mod), nil
})

// goBuild builds pkg in the module root with env added to the environment
// and returns the executable. The output goes to a directory that is removed
// before returning, so that nothing outlives the test process.
func goBuild(env []string, pkg string, flags ...string) ([]byte, error) {
	gobin, err := goTool()
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dockerfuse-testenv-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	// No VCS stamp: the output, and so an image tag hashed from it, then
	// depends on the source alone and not on the commit.
	args := append([]string{"build", "-buildvcs=false", "-o", out}, flags...)
	cmd := exec.Command(gobin, append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s %s: %v\n%s", strings.Join(env, " "), gobin, strings.Join(cmd.Args[1:], " "), err, stderr.Bytes())
	}
	return os.ReadFile(out)
}

// SatelliteBuilds serves satellite executables built from this checkout's
// cmd/satellite. Its method set is the one the launcher asks for.
type SatelliteBuilds struct {
	builds onceMap[[]byte]
}

var satellites SatelliteBuilds

// Satellites returns the satellite source for tests: each architecture's
// executable is built the first time it is asked for, once per test process,
// the way the Makefile builds the embedded ones.
func Satellites(t testing.TB) *SatelliteBuilds {
	t.Helper()
	if _, err := moduleRoot(); err != nil {
		t.Fatalf("building satellites: %v", err)
	}
	return &satellites
}

// Satellite returns the static satellite executable for a Linux architecture
// as Docker names it ("amd64", "arm64"), or the build's error and output.
// Each call returns a new slice.
func (s *SatelliteBuilds) Satellite(arch string) ([]byte, error) {
	switch arch {
	case "amd64", "arm64":
	default:
		return nil, fmt.Errorf("no satellite for architecture %q: dockerfuse supports amd64 and arm64 targets", arch)
	}
	b, err := s.builds.do(arch, func() ([]byte, error) {
		return goBuild([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch},
			modulePath+"/cmd/satellite",
			"-trimpath", "-tags", "codec.notfastpath", "-ldflags", "-s -w")
	})
	if err != nil {
		return nil, fmt.Errorf("building the %s satellite: %w", arch, err)
	}
	return slices.Clone(b), nil
}

var binaries onceMap[[]byte]

// BuildBinary builds a main package of this module for the host, once per
// test process, and returns the path of a copy in t.TempDir(). pkg is an
// import path ("github.com/dockerfuse/dockerfuse/cmd/dockerfuse") or a path
// relative to the module root ("./cmd/dockerfuse"). A package that embeds
// files, such as the satellites, gets whatever is on disk at build time.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	b, err := binaries.do(pkg, func() ([]byte, error) {
		return goBuild(nil, pkg, "-trimpath")
	})
	if err != nil {
		t.Fatalf("BuildBinary(%q): %v", pkg, err)
	}
	p := filepath.Join(t.TempDir(), path.Base(pkg))
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
