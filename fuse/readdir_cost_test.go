package fuse

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadDirCost checks that ls -l of a directory costs the listing, not
// one lstat per entry: the lookups that follow a listing are answered from
// it.
func TestReadDirCost(t *testing.T) {
	// Long timeouts, so that a slow machine cannot let the listing
	// expire between the readdir and the lookups.
	// Without watches: the listing alone must answer.
	m := mount(t, mountOptions{AttrTimeout: time.Minute, EntryTimeout: time.Minute, NoWatch: true})
	const n = 200
	dir := filepath.Join(m.Backing, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The root and the directory itself are looked up first.
	if _, err := os.Stat(filepath.Join(m.Dir, "dir")); err != nil {
		t.Fatal(err)
	}
	var out string
	calls, total := callsOf(t, m, func() { out = run(t, "ls", "-l", filepath.Join(m.Dir, "dir")) })
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != n+1 {
		t.Fatalf("ls -l printed %d lines, want %d:\n%s", len(lines), n+1, out)
	}
	t.Logf("ls -l of %d files: %d calls %v", n, total, calls)
	if calls["lstat"] != 0 {
		t.Errorf("ls -l of %d files made %d lstat calls, want none", n, calls["lstat"])
	}
	if total >= n {
		t.Errorf("ls -l of %d files made %d calls %v, want fewer than one per file", n, total, calls)
	}
}
