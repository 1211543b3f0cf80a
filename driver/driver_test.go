package driver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
)

type testDriver struct {
	*Driver
	m         *fakeMounter
	stateDir  string
	mountRoot string
}

func newTestDriver(t *testing.T) *testDriver {
	t.Helper()
	root := t.TempDir()
	td := &testDriver{m: newFakeMounter(), stateDir: filepath.Join(root, "state"), mountRoot: filepath.Join(root, "volumes")}
	td.Driver = td.reopen(t)
	return td
}

// reopen starts a new driver on the same state, as a restarted plugin.
func (td *testDriver) reopen(t *testing.T) *Driver {
	t.Helper()
	d, err := New(Config{StateDir: td.stateDir, MountRoot: td.mountRoot, Mounter: td.m})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func (td *testDriver) create(t *testing.T, name string, opts map[string]string) {
	t.Helper()
	if err := td.Create(&volume.CreateRequest{Name: name, Options: opts}); err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
}

func (td *testDriver) mount(t *testing.T, name, id string) string {
	t.Helper()
	resp, err := td.Mount(&volume.MountRequest{Name: name, ID: id})
	if err != nil {
		t.Fatalf("Mount(%s, %s): %v", name, id, err)
	}
	return resp.Mountpoint
}

func (td *testDriver) unmount(t *testing.T, name, id string) {
	t.Helper()
	if err := td.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
		t.Fatalf("Unmount(%s, %s): %v", name, id, err)
	}
}

func (td *testDriver) status(t *testing.T, name string) map[string]any {
	t.Helper()
	resp, err := td.Get(&volume.GetRequest{Name: name})
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return resp.Volume.Status
}

func web() map[string]string { return map[string]string{"container": "web"} }

func TestCreateOptions(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]string
		want Volume
	}{
		{"defaults", map[string]string{"container": "web"}, Volume{Container: "web", Path: "/"}},
		{"all", map[string]string{"container": "3f2a", "path": "/srv/www/", "ro": "true", "user": "1000:1000"},
			Volume{Container: "3f2a", Path: "/srv/www", ReadOnly: true, User: "1000:1000"}},
		{"ro yes", map[string]string{"container": "web", "ro": "yes"}, Volume{Container: "web", Path: "/", ReadOnly: true}},
		{"ro 0", map[string]string{"container": "web", "ro": "0"}, Volume{Container: "web", Path: "/"}},
		{"ro bare", map[string]string{"container": "web", "ro": ""}, Volume{Container: "web", Path: "/", ReadOnly: true}},
		{"ro False", map[string]string{"container": "web", "ro": "False"}, Volume{Container: "web", Path: "/"}},
		{"user root", map[string]string{"container": "web", "user": "root"}, Volume{Container: "web", Path: "/"}},
		{"path cleaned", map[string]string{"container": "web", "path": "/a/../b//c"}, Volume{Container: "web", Path: "/b/c"}},
		{"one stream", map[string]string{"container": "web", "streams": "1"}, Volume{Container: "web", Path: "/", Streams: 1}},
		{"most streams", map[string]string{"container": "web", "streams": " 8 "}, Volume{Container: "web", Path: "/", Streams: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOptions("vol", tt.opts)
			if err != nil {
				t.Fatalf("parseOptions: %v", err)
			}
			tt.want.Name = "vol"
			if got != tt.want {
				t.Errorf("parseOptions = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCreateRefusesBadOptions(t *testing.T) {
	td := newTestDriver(t)
	tests := []struct {
		name string
		opts map[string]string
		want string // the message must contain it, and the list of valid options
	}{
		{"missing container", map[string]string{"path": "/"}, `option "container" is required`},
		{"empty container", map[string]string{"container": " "}, `option "container" is required`},
		{"unknown", map[string]string{"container": "web", "size": "1G"}, `unknown option "size"`},
		{"unknowns", map[string]string{"container": "web", "type": "x", "device": "y"}, `unknown options "device", "type"`},
		{"relative path", map[string]string{"container": "web", "path": "srv"}, `option "path" must be an absolute directory inside the container, got "srv"`},
		{"bad bool", map[string]string{"container": "web", "ro": "maybe"}, `option "ro" must be true or false (or 1/0, yes/no), got "maybe"`},
		{"empty user", map[string]string{"container": "web", "user": ""}, `option "user" must name a user`},
		{"no streams", map[string]string{"container": "web", "streams": "0"}, `option "streams" must be a number from 1 to 8, got "0"`},
		{"too many streams", map[string]string{"container": "web", "streams": "9"}, `option "streams" must be a number from 1 to 8, got "9"`},
		{"streams not a number", map[string]string{"container": "web", "streams": "many"}, `option "streams" must be a number from 1 to 8, got "many"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := td.Create(&volume.CreateRequest{Name: "v", Options: tt.opts})
			if err == nil {
				t.Fatal("Create succeeded, want an error")
			}
			if !errors.Is(err, ErrBadOption) {
				t.Errorf("Create error %v is not ErrBadOption", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Create error = %q, want it to contain %q", msg, tt.want)
			}
			if !strings.Contains(msg, "valid options: container=<name or ID> (required), path=") {
				t.Errorf("Create error = %q, want it to list the valid options", msg)
			}
		})
	}
	if _, err := td.Get(&volume.GetRequest{Name: "v"}); !errors.Is(err, ErrVolumeNotFound) {
		t.Errorf("Get after refused creates: err = %v, want ErrVolumeNotFound", err)
	}
}

func TestCreateRefusesBadName(t *testing.T) {
	td := newTestDriver(t)
	for _, name := range []string{"", ".", "..", "a/b", "../x"} {
		err := td.Create(&volume.CreateRequest{Name: name, Options: web()})
		if !errors.Is(err, ErrBadName) {
			t.Errorf("Create(%q) = %v, want ErrBadName", name, err)
		}
	}
}

func TestCreateIdempotent(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "v", map[string]string{"container": "web", "ro": "1"})
	// Same options written differently: a no-op.
	td.create(t, "v", map[string]string{"container": "web", "ro": "yes", "path": "/", "user": "root"})

	err := td.Create(&volume.CreateRequest{Name: "v", Options: map[string]string{"container": "db"}})
	if !errors.Is(err, ErrVolumeExists) {
		t.Fatalf("Create with other options = %v, want ErrVolumeExists", err)
	}
	for _, want := range []string{"volume already exists with different options", "container=web path=/ ro=true user=root", "remove it first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Create error = %q, want it to contain %q", err, want)
		}
	}
	if got := td.status(t, "v")["container"]; got != "web" {
		t.Errorf("container after refused re-create = %v, want web", got)
	}
}

func TestMountRefcount(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "v", web())

	mp := td.mount(t, "v", "c1")
	if want := filepath.Join(td.mountRoot, "v"); mp != want {
		t.Fatalf("Mountpoint = %q, want %q", mp, want)
	}
	if fi, err := os.Stat(mp); err != nil || !fi.IsDir() {
		t.Fatalf("mount point %s: %v, want a directory", mp, err)
	}
	s := td.m.last(t, "v")
	if s.dir != mp {
		t.Errorf("Mounter got dir %q, want %q", s.dir, mp)
	}
	td.mount(t, "v", "c2")
	td.mount(t, "v", "c2") // the same ID twice counts twice
	if n := td.m.startCount("v"); n != 1 {
		t.Fatalf("sessions started = %d, want 1", n)
	}
	st := td.status(t, "v")
	if st["mountCount"] != 3 || st["mounted"] != true || st["connected"] != true {
		t.Errorf("status = %v, want mountCount 3, mounted, connected", st)
	}
	if p, _ := td.Path(&volume.PathRequest{Name: "v"}); p.Mountpoint != mp {
		t.Errorf("Path = %q, want %q", p.Mountpoint, mp)
	}

	td.unmount(t, "v", "c1")
	td.unmount(t, "v", "c2")
	if n := s.closeCount(); n != 0 {
		t.Fatalf("session closed %d times with one mount left, want 0", n)
	}
	td.unmount(t, "v", "c2")
	if n := s.closeCount(); n != 1 {
		t.Fatalf("session closed %d times after the last unmount, want 1", n)
	}
	st = td.status(t, "v")
	if st["mountCount"] != 0 || st["mounted"] != false || st["connected"] != false {
		t.Errorf("status after last unmount = %v, want mountCount 0, not mounted", st)
	}
	if p, _ := td.Path(&volume.PathRequest{Name: "v"}); p.Mountpoint != "" {
		t.Errorf("Path after unmount = %q, want \"\"", p.Mountpoint)
	}

	// An ID from before a restart is not an error and changes nothing.
	td.unmount(t, "v", "unknown")

	td.mount(t, "v", "c3")
	if n := td.m.startCount("v"); n != 2 {
		t.Errorf("sessions started after remount = %d, want 2", n)
	}
}

func TestMountFailure(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "webfs", web())
	td.m.fail["webfs"] = errNotRunning

	_, err := td.Mount(&volume.MountRequest{Name: "webfs", ID: "c1"})
	if !errors.Is(err, errNotRunning) {
		t.Fatalf("Mount = %v, want the Mounter's error", err)
	}
	if want := `mount webfs: container "web" is not running (start it, or remove the volume)`; err.Error() != want {
		t.Errorf("Mount error = %q, want %q", err, want)
	}
	st := td.status(t, "webfs")
	if st["mountCount"] != 0 || st["mounted"] != false || !strings.Contains(st["error"].(string), "not running") {
		t.Errorf("status after failed mount = %v, want not mounted with the error", st)
	}

	delete(td.m.fail, "webfs")
	td.mount(t, "webfs", "c1")
	if st := td.status(t, "webfs"); st["error"] != "" {
		t.Errorf("error after a good mount = %q, want none", st["error"])
	}
	if _, err := td.Mount(&volume.MountRequest{Name: "nope", ID: "c1"}); !errors.Is(err, ErrVolumeNotFound) {
		t.Errorf("Mount of unknown volume = %v, want ErrVolumeNotFound", err)
	}
}

func TestMountReplacesDeadSession(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "v", web())
	td.mount(t, "v", "c1")
	old := td.m.last(t, "v")
	old.die()

	st := td.status(t, "v")
	if st["mounted"] != false || st["connected"] != false || st["error"] != "satellite exited" || st["mountCount"] != 1 {
		t.Errorf("status of a dead session = %v, want not mounted, error, mountCount 1", st)
	}

	td.mount(t, "v", "c2")
	if n := td.m.startCount("v"); n != 2 {
		t.Fatalf("sessions started = %d, want 2 (the dead one replaced)", n)
	}
	if n := old.closeCount(); n != 1 {
		t.Errorf("dead session closed %d times, want 1", n)
	}
	fresh := td.m.last(t, "v")
	td.unmount(t, "v", "c1")
	td.unmount(t, "v", "c2")
	if n := fresh.closeCount(); n != 1 {
		t.Errorf("new session closed %d times after the last unmount, want 1", n)
	}
}

func TestUnmountCloseError(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "v", web())
	td.mount(t, "v", "c1")
	td.m.last(t, "v").closeErr = errors.New("device busy")
	err := td.Unmount(&volume.UnmountRequest{Name: "v", ID: "c1"})
	if err == nil || err.Error() != "unmount v: device busy" {
		t.Fatalf("Unmount = %v, want %q", err, "unmount v: device busy")
	}
	// The volume is no longer counted as mounted either way.
	if err := td.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
		t.Errorf("Remove after a failed unmount: %v", err)
	}
}

func TestRemove(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "v", web())
	td.mount(t, "v", "c1")

	err := td.Remove(&volume.RemoveRequest{Name: "v"})
	if !errors.Is(err, ErrVolumeInUse) {
		t.Fatalf("Remove of a mounted volume = %v, want ErrVolumeInUse", err)
	}
	if want := "volume is in use: mounted into 1 container(s); stop or remove the containers using it first"; err.Error() != want {
		t.Errorf("Remove error = %q, want %q", err, want)
	}
	td.unmount(t, "v", "c1")
	if err := td.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(td.mountRoot, "v")); !os.IsNotExist(err) {
		t.Errorf("mount point after Remove: %v, want it gone", err)
	}
	if _, err := td.Get(&volume.GetRequest{Name: "v"}); !errors.Is(err, ErrVolumeNotFound) {
		t.Errorf("Get after Remove = %v, want ErrVolumeNotFound", err)
	}
	err = td.Remove(&volume.RemoveRequest{Name: "v"})
	if !errors.Is(err, ErrVolumeNotFound) {
		t.Errorf("second Remove = %v, want ErrVolumeNotFound", err)
	}
	if resp, _ := td.List(); len(resp.Volumes) != 0 {
		t.Errorf("List after Remove = %v, want none", resp.Volumes)
	}
	// Removed for good: a restarted driver does not bring it back.
	d2 := td.reopen(t)
	if resp, _ := d2.List(); len(resp.Volumes) != 0 {
		t.Errorf("List after restart = %v, want none", resp.Volumes)
	}
}

// A blocked start delays only its own volume: other volumes mount, and Get,
// List and Create all answer, while it waits.
func TestSlowMountBlocksOnlyItsVolume(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "slow", web())
	for _, name := range []string{"a", "b", "c"} {
		td.create(t, name, web())
	}
	entered, release := td.m.blockOn("slow")

	slowErr := make(chan error, 1)
	go func() {
		_, err := td.Mount(&volume.MountRequest{Name: "slow", ID: "s1"})
		slowErr <- err
	}()
	<-entered

	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := td.Mount(&volume.MountRequest{Name: name, ID: "x"}); err != nil {
				t.Errorf("Mount(%s) while another blocks: %v", name, err)
			}
		}()
	}
	wg.Wait()
	if st := td.status(t, "slow"); st["mounted"] != false || st["mountCount"] != 0 {
		t.Errorf("status of the blocked volume = %v, want not mounted yet", st)
	}
	if resp, err := td.List(); err != nil || len(resp.Volumes) != 4 {
		t.Errorf("List while a mount blocks = %v, %v; want 4 volumes", resp, err)
	}
	td.create(t, "d", web())

	// A second Mount of the same volume waits for the first and shares its session.
	second := make(chan error, 1)
	go func() {
		_, err := td.Mount(&volume.MountRequest{Name: "slow", ID: "s2"})
		second <- err
	}()
	release()
	if err := <-slowErr; err != nil {
		t.Fatalf("blocked Mount: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second Mount: %v", err)
	}
	if n := td.m.startCount("slow"); n != 1 {
		t.Errorf("sessions started for slow = %d, want 1", n)
	}
	if st := td.status(t, "slow"); st["mountCount"] != 2 {
		t.Errorf("mountCount = %v, want 2", st["mountCount"])
	}
}

// Close aborts a start in progress and stops every session.
func TestClose(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "a", web())
	td.create(t, "slow", web())
	td.mount(t, "a", "c1")
	entered, _ := td.m.blockOn("slow")
	slowErr := make(chan error, 1)
	go func() {
		_, err := td.Mount(&volume.MountRequest{Name: "slow", ID: "c1"})
		slowErr <- err
	}()
	<-entered
	if err := td.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-slowErr; err == nil {
		t.Error("Mount blocked during Close succeeded, want an error")
	}
	if n := td.m.last(t, "a").closeCount(); n != 1 {
		t.Errorf("session closed %d times by Close, want 1", n)
	}
	_, err := td.Mount(&volume.MountRequest{Name: "a", ID: "c2"})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Mount after Close = %v, want ErrClosed", err)
	}
}

func TestGetStatus(t *testing.T) {
	td := newTestDriver(t)
	td.create(t, "v", map[string]string{"container": "web", "path": "/srv", "ro": "true", "user": "nobody"})
	resp, err := td.Get(&volume.GetRequest{Name: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Volume.Mountpoint != "" || resp.Volume.CreatedAt == "" {
		t.Errorf("unmounted volume = %+v, want no Mountpoint and a CreatedAt", resp.Volume)
	}
	want := map[string]any{
		"container": "web", "path": "/srv", "ro": true, "user": "nobody", "streams": DefaultStreams,
		"mounted": false, "mountCount": 0, "connected": false, "error": "", "containerID": "", "arch": "",
	}
	for k, v := range want {
		if got := resp.Volume.Status[k]; got != v {
			t.Errorf("Status[%q] = %#v, want %#v", k, got, v)
		}
	}
	td.mount(t, "v", "c1")
	resp, _ = td.Get(&volume.GetRequest{Name: "v"})
	st := resp.Volume.Status
	if resp.Volume.Mountpoint != filepath.Join(td.mountRoot, "v") || st["containerID"] != "c0ffee" || st["arch"] != "amd64" || st["connected"] != true {
		t.Errorf("mounted volume = %+v, want Mountpoint, containerID, arch, connected", resp.Volume)
	}
	if got := td.Capabilities().Capabilities.Scope; got != "local" {
		t.Errorf("Scope = %q, want local", got)
	}
}
