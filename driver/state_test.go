package driver

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
)

func TestStateSurvivesRestart(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "a", map[string]string{"container": "web", "path": "/srv", "ro": "yes", "user": "1000"})
	td.create(t, "b", map[string]string{"container": "db"})
	td.mount(t, "b", "c1")

	file := filepath.Join(td.stateDir, stateFile)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("state file mode = %o, want 600", mode)
	}
	di, _ := os.Stat(td.stateDir)
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("state dir mode = %o, want 700", mode)
	}
	if entries, _ := os.ReadDir(td.stateDir); len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only %s (no temporary files)", len(entries), stateFile)
	}

	d2 := td.reopen(t)
	resp, err := d2.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Volumes) != 2 || resp.Volumes[0].Name != "a" || resp.Volumes[1].Name != "b" {
		t.Fatalf("List after restart = %v, want a and b", resp.Volumes)
	}
	st := resp.Volumes[0].Status
	if st["container"] != "web" || st["path"] != "/srv" || st["ro"] != true || st["user"] != "1000" {
		t.Errorf("restored a = %v, want its options", st)
	}
	// Mounts are not restored: the restarted driver starts the session anew.
	if st := resp.Volumes[1].Status; st["mounted"] != false || st["mountCount"] != 0 {
		t.Errorf("restored b = %v, want not mounted", st)
	}
	if _, err := d2.Mount(&volume.MountRequest{Name: "b", ID: "c2"}); err != nil {
		t.Fatalf("Mount after restart: %v", err)
	}
}

func TestStateSkipsBadVolume(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	os.MkdirAll(stateDir, 0o700)
	saved := `{"version": 1, "volumes": {
		"good": {"name": "good", "container": "web", "path": "/", "ro": false, "createdAt": "2024-01-02T03:04:05Z"},
		"garbled": "not an object",
		"nocontainer": {"name": "nocontainer", "container": "", "path": "/"},
		"relative": {"name": "relative", "container": "web", "path": "srv"},
		"renamed": {"name": "other", "container": "web", "path": "/"},
		"../escape": {"name": "../escape", "container": "web", "path": "/"}
	}}`
	if err := os.WriteFile(filepath.Join(stateDir, stateFile), []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d, err := New(Config{StateDir: stateDir, MountRoot: filepath.Join(dir, "volumes"), Mounter: newFakeMounter(),
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New with one bad volume: %v", err)
	}
	defer d.Close()
	resp, _ := d.List()
	if len(resp.Volumes) != 1 || resp.Volumes[0].Name != "good" {
		t.Fatalf("List = %v, want only good", resp.Volumes)
	}
	if got := resp.Volumes[0].CreatedAt; got != "2024-01-02T03:04:05Z" {
		t.Errorf("CreatedAt = %q, want the saved one", got)
	}
	for _, name := range []string{"garbled", "nocontainer", "relative", "renamed", "../escape"} {
		if !strings.Contains(logs.String(), "volume="+name) && !strings.Contains(logs.String(), `volume="`+name+`"`) {
			t.Errorf("log does not mention skipped volume %s:\n%s", name, logs.String())
		}
	}
}

func TestStateCorruptFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	os.MkdirAll(stateDir, 0o700)
	if err := os.WriteFile(filepath.Join(stateDir, stateFile), []byte("{truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{StateDir: stateDir, MountRoot: filepath.Join(dir, "volumes"), Mounter: newFakeMounter()})
	if err != nil {
		t.Fatalf("New with a corrupt state file: %v", err)
	}
	defer d.Close()
	if resp, _ := d.List(); len(resp.Volumes) != 0 {
		t.Errorf("List = %v, want none", resp.Volumes)
	}
	aside, _ := filepath.Glob(filepath.Join(stateDir, stateFile+".corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("moved-aside files = %v, want one", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != "{truncated" {
		t.Errorf("moved-aside content = %q, want the original", b)
	}
	// Saving works again.
	if err := d.Create(&volume.CreateRequest{Name: "v", Options: web()}); err != nil {
		t.Fatal(err)
	}
	var st state
	b, _ := os.ReadFile(filepath.Join(stateDir, stateFile))
	if err := json.Unmarshal(b, &st); err != nil || len(st.Volumes) != 1 {
		t.Errorf("state after save = %s (%v), want one volume", b, err)
	}
}

func TestStateSaveFailure(t *testing.T) {
	td := newTestDriver(t)
	// A directory where the state file should be makes the rename fail.
	if err := os.Mkdir(filepath.Join(td.stateDir, stateFile), 0o700); err != nil {
		t.Fatal(err)
	}
	err := td.Create(&volume.CreateRequest{Name: "v", Options: web()})
	if err == nil || !strings.HasPrefix(err.Error(), "saving volumes:") || !strings.Contains(err.Error(), "is writable") {
		t.Fatalf("Create with unwritable state = %v, want a saving error with a remedy", err)
	}
	if _, err := td.Get(&volume.GetRequest{Name: "v"}); err == nil {
		t.Error("volume exists after its save failed, want it rolled back")
	}
}

func TestMountsUnder(t *testing.T) {
	mountinfo := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /mnt/volumes rw shared:5 - tmpfs tmpfs rw
31 30 0:50 / /mnt/volumes/web rw,nosuid,nodev - fuse dockerfuse rw,user_id=0,group_id=0,allow_other
32 31 0:51 / /mnt/volumes/web/inner rw - fuse x rw
33 30 0:52 / /mnt/volumes/with\040space rw - fuse x rw
34 22 0:53 / /mnt/volumes-other rw - fuse x rw
35 22 0:54 / /mnt rw - tmpfs tmpfs rw
`
	got, err := mountsUnder(strings.NewReader(mountinfo), "/mnt/volumes/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/mnt/volumes/web/inner", "/mnt/volumes/web", "/mnt/volumes/with space"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mountsUnder = %q, want %q", got, want)
	}
}
