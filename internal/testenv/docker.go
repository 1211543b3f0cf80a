package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cliTimeout bounds one docker command, so that a wedged engine or a hung
// exec fails the test with the command in the message instead of running
// into go test's global timeout. Commands under arm64 emulation are slow.
const cliTimeout = 3 * time.Minute

// requireCLI checks for the docker command that builds and runs targets.
func requireCLI(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		Unavailable(t, "end-to-end tests need the docker CLI in PATH: apt-get install docker.io")
	}
}

// docker runs the docker CLI with stdin (nil for none) and returns its
// stdout; the error carries the command line and its stderr.
func docker(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	// The legacy builder is part of every engine; BuildKit needs the buildx
	// plugin, which a fresh machine may not have.
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", cliTimeout)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			err = fmt.Errorf("%v: %s", err, msg)
		}
		return stdout.String(), fmt.Errorf("docker %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}
