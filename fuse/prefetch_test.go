package fuse

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smallTree writes n files of size bytes, each its own, into dir/sub in
// the backing directory, and returns sub's path in the mount and in the
// backing directory.
func smallTree(t *testing.T, m *testMount, sub string, n, size int) (mnt, back string) {
	t.Helper()
	mnt, back = m.path(sub)
	if err := os.MkdirAll(back, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b := bytes.Repeat([]byte(fmt.Sprintf("%s file %d\n", sub, i)), size)[:size]
		if err := os.WriteFile(filepath.Join(back, fmt.Sprintf("f%04d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return mnt, back
}

// callsBetween is what the mount called between two counts, per op.
func callsBetween(before, after map[string]int64) (map[string]int64, int64) {
	calls := make(map[string]int64)
	var total int64
	for op, c := range after {
		if op == "slow" || op == "slow-done" {
			continue
		}
		if d := c - before[op]; d != 0 {
			calls[op] = d
			total += d
		}
	}
	return calls, total
}

// TestPrefetchTarCost checks that tar of a directory of small files costs
// a few calls, not an open per file, and reads every byte as it is.
func TestPrefetchTarCost(t *testing.T) {
	// Long timeouts, so that a slow machine cannot let copies and listings
	// expire between the fetch and the opens.
	m := mount(t, mountOptions{AttrTimeout: time.Minute, EntryTimeout: time.Minute})
	const n = 300
	smallTree(t, m, "tree", n, 1024)
	tarOf := func(dir string) [32]byte {
		out := run(t, "tar", "--sort=name", "-C", dir, "-cf", "-", "tree")
		return sha256.Sum256([]byte(out))
	}
	want := tarOf(m.Backing)
	var got [32]byte
	calls, total := callsOf(t, m, func() { got = tarOf(m.Dir) })
	if got != want {
		t.Errorf("tar through the mount differs from tar of the backing directory")
	}
	t.Logf("tar c of %d files: %d calls %v", n, total, calls)
	if calls["open"] > 2 {
		t.Errorf("tar c of %d small files made %d open calls, want at most 2: the rest come with readfiles", n, calls["open"])
	}
	if total > n/20 {
		t.Errorf("tar c of %d small files made %d calls %v, want at most %d", n, total, calls, n/20)
	}
}

// fetchIn reads the first two files of a smallTree directory through the
// mount, the second of which fetches copies of the others: all of them, if
// there are no more than prefetchFirst.
func fetchIn(t *testing.T, m *testMount, dir string) {
	t.Helper()
	calls, _ := callsOf(t, m, func() {
		for _, name := range []string{"f0000", "f0001"} {
			if _, err := os.ReadFile(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	})
	if calls["readfiles"] != 1 {
		t.Fatalf("reading two files of a listed directory made calls %v, want one readfiles", calls)
	}
}

// TestPrefetchSeesTargetChanges changes, in the target, files whose copies
// were fetched, and checks that the mount shows the change within the
// time it trusts what it has (changeDeadline).
func TestPrefetchSeesTargetChanges(t *testing.T) {
	m := mount(t, mountOptions{})
	mnt, back := smallTree(t, m, "d", prefetchFirst, 100)
	if _, err := os.ReadDir(mnt); err != nil {
		t.Fatal(err)
	}
	fetchIn(t, m, mnt)
	// The same size: only the times tell.
	same := strings.Repeat("s", 100)
	writeFile(t, filepath.Join(back, "f0010"), same)
	writeFile(t, filepath.Join(back, "f0011"), "shorter")
	for name, want := range map[string]string{"f0010": same, "f0011": "shorter"} {
		if b, err := os.ReadFile(filepath.Join(mnt, name)); err == nil && string(b) != want {
			t.Logf("%s read from its copy at first, as it may", name)
		}
		eventually(t, "content of "+name+" changed in the target", func() error {
			b, err := os.ReadFile(filepath.Join(mnt, name))
			if err != nil {
				return err
			}
			if string(b) != want {
				return fmt.Errorf("read %q, want %q", b, want)
			}
			return nil
		})
	}
}

// TestPrefetchChangesThroughMount changes through the mount files whose
// copies were fetched, and checks that reads show the change at once, even
// though the mount trusts what it has for a minute.
func TestPrefetchChangesThroughMount(t *testing.T) {
	m := mount(t, mountOptions{AttrTimeout: time.Minute, EntryTimeout: time.Minute})
	mnt, _ := smallTree(t, m, "d", prefetchFirst, 100)
	if _, err := os.ReadDir(mnt); err != nil {
		t.Fatal(err)
	}
	fetchIn(t, m, mnt)
	p := func(name string) string { return filepath.Join(mnt, name) }

	writeFile(t, p("f0010"), "rewritten") // O_TRUNC, then a write
	wantContent(t, p("f0010"), "rewritten")

	// Same size, in place: no O_TRUNC, and only the times change.
	f, err := os.OpenFile(p("f0011"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(strings.Repeat("w", 100))
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p("f0011"), string(want))

	if err := os.Truncate(p("f0012"), 3); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p("f0012"), "d f")

	// A file held open from its copy sees a write through another
	// descriptor, as a descriptor open in the target would.
	r, err := os.Open(p("f0013"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := make([]byte, 200)
	if n, err := r.ReadAt(b, 0); n != 100 || err != io.EOF {
		t.Fatalf("read of f0013 = %d, %v; want 100, EOF", n, err)
	}
	w, err := os.OpenFile(p("f0013"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("XYZ"), 10); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, _ := r.ReadAt(b, 0)
	if got := string(b[10:13]); n != 100 || got != "XYZ" {
		t.Errorf("read of f0013 after a write through another descriptor = %d bytes, %q at 10; want 100, %q", n, got, "XYZ")
	}
}
