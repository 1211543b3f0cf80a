package dockerfuse_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// The tests here serve a mount in the test process and never touch it
// (golang/go#21014): they follow the session through Status and its log
// while the target stops, starts and goes away. What the mount does for
// its users meanwhile is tested through the command, in cmd/dockerfuse.

// eventually polls cond until it holds, failing after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s; %s", what, detail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStatusSaysWhyDisconnected(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.Engine(t)
	tg := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-status"})
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log := &testenv.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := dockerfuse.Mount(ctx, dockerfuse.Config{
		Container:  tg.Name,
		Mountpoint: dir,
		Satellites: testenv.Satellites(t),
		Log:        slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	status := func() string { return fmtStatus(s.Status()) + "\nlog:\n" + log.String() }
	if st := s.Status(); !st.Connected || st.Error != "" || st.ContainerID != tg.ID {
		t.Fatalf("status after Mount = %s, want connected to %s", fmtStatus(st), tg.ID)
	}

	tg.Stop(t)
	eventually(t, "status says the target stopped", func() bool {
		st := s.Status()
		return !st.Connected && strings.Contains(st.Error, "is exited") && strings.Contains(st.Error, "reconnects when it runs again")
	}, status)

	tg.Start(t)
	eventually(t, "reconnected after start", func() bool {
		st := s.Status()
		return st.Connected && st.Error == ""
	}, status)
	for _, w := range []string{"satellite lost", "satellite not reconnected", "not running", "satellite reconnected"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("log does not say %q:\n%s", w, log)
		}
	}

	if out, err := exec.Command("docker", "rm", "--force", tg.ID).CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v: %s", err, out)
	}
	eventually(t, "status says the target was removed", func() bool {
		st := s.Status()
		return !st.Connected && strings.Contains(st.Error, "was removed")
	}, status)
	// Retries go on quietly: the reason is logged once.
	time.Sleep(3 * time.Second)
	if n := strings.Count(log.String(), "was removed"); n != 1 {
		t.Errorf("the log says %d times that the target was removed, want once:\n%s", n, log)
	}
	select {
	case <-s.Done():
		t.Errorf("the session ended when the target was removed; want it mounted until unmounted")
	default:
	}
}

func fmtStatus(st dockerfuse.Status) string {
	return strings.Join([]string{
		"connected=" + map[bool]string{true: "true", false: "false"}[st.Connected],
		"id=" + st.ContainerID,
		"error=" + st.Error,
	}, " ")
}
