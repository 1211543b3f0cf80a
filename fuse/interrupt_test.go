package fuse

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestInterrupted checks that a call interrupted by a signal while the
// satellite carries it out leaves no file open in the satellite.
func TestInterrupted(t *testing.T) {
	m := mount(t, mountOptions{})
	// The satellite's first open starts its runtime's poller, which
	// holds files of its own.
	if err := os.WriteFile(filepath.Join(m.Dir, "warm-up"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Long enough to be listed in more than one batch.
	dir := filepath.Join(m.Backing, slowPrefix+"dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.Backing, slowPrefix+"file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"open", []string{"cat", slowPrefix + "file"}},
		{"create", []string{"touch", slowPrefix + "new"}},
		{"readdir", []string{"ls", slowPrefix + "dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m.satelliteFiles(t)
			started := m.counts(t)["slow"]
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			cmd.Dir = m.Dir
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the call reaches the satellite", func() error {
				if n := m.counts(t)["slow"]; n == started {
					return fmt.Errorf("no slow call yet")
				}
				return nil
			})
			cmd.Process.Signal(os.Interrupt)
			if err := cmd.Wait(); err == nil {
				t.Logf("the call finished before the interrupt")
			}
			eventually(t, "the call carried out in the satellite", func() error {
				if n := m.counts(t)["slow-done"]; n != started+1 {
					return fmt.Errorf("%d slow calls done, want %d", n, started+1)
				}
				return nil
			})
			eventually(t, "files open in the satellite", func() error {
				if n := m.satelliteFiles(t); n != before {
					return fmt.Errorf("%d, want %d as before the call", n, before)
				}
				return nil
			})
		})
	}
}
