package driver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/docker/go-connections/sockets"
	"github.com/docker/go-plugins-helpers/volume"
)

// pluginClient speaks the volume plugin protocol as the engine does, over
// an in-memory socket served by volume.NewHandler.
type pluginClient struct {
	t *testing.T
	c *http.Client
}

func servePlugin(t *testing.T, d volume.Driver) *pluginClient {
	t.Helper()
	l := sockets.NewInmemSocket("dockerfuse", 1)
	h := volume.NewHandler(d)
	go h.Serve(l)
	t.Cleanup(func() { l.Close() })
	return &pluginClient{t: t, c: &http.Client{Transport: &http.Transport{Dial: l.Dial}}}
}

// call posts req to /VolumeDriver.<method> and decodes the answer into
// resp; it returns the plugin's Err, which is all the engine shows a user.
func (p *pluginClient) call(method string, req, resp any) string {
	p.t.Helper()
	body, _ := json.Marshal(req)
	r, err := p.c.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(body))
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var e struct{ Err string }
	json.Unmarshal(b, &e)
	if e.Err != "" {
		if r.StatusCode == http.StatusOK {
			p.t.Errorf("%s: status 200 with error %q", method, e.Err)
		}
		return e.Err
	}
	if r.StatusCode != http.StatusOK {
		p.t.Fatalf("%s: status %d: %s", method, r.StatusCode, b)
	}
	if resp != nil {
		if err := json.Unmarshal(b, resp); err != nil {
			p.t.Fatalf("%s: decoding %s: %v", method, b, err)
		}
	}
	return ""
}

func TestHTTP(t *testing.T) {
	td := newTestDriver(t)
	td.m.fail["stopped"] = errNotRunning
	p := servePlugin(t, td.Driver)

	var manifest struct{ Implements []string }
	p.call("Plugin.Activate", nil, &manifest)
	if len(manifest.Implements) != 1 || manifest.Implements[0] != "VolumeDriver" {
		t.Fatalf("Activate = %v, want VolumeDriver", manifest.Implements)
	}
	var caps volume.CapabilitiesResponse
	p.call("VolumeDriver.Capabilities", nil, &caps)
	if caps.Capabilities.Scope != "local" {
		t.Errorf("Scope = %q, want local", caps.Capabilities.Scope)
	}

	// The engine sends options as "Opts".
	if msg := p.call("VolumeDriver.Create", map[string]any{"Name": "webfs", "Opts": map[string]string{"container": "web", "ro": "1"}}, nil); msg != "" {
		t.Fatalf("Create: %s", msg)
	}
	msg := p.call("VolumeDriver.Create", map[string]any{"Name": "bad", "Opts": map[string]string{"container": "web", "colour": "blue"}}, nil)
	if want := `unknown option "colour" (valid options: container=<name or ID> (required)`; !strings.HasPrefix(msg, want) {
		t.Errorf("Create with unknown option: Err = %q, want it to start with %q", msg, want)
	}
	p.call("VolumeDriver.Create", map[string]any{"Name": "stopped", "Opts": map[string]string{"container": "web"}}, nil)
	msg = p.call("VolumeDriver.Mount", volume.MountRequest{Name: "stopped", ID: "c1"}, nil)
	if want := `mount stopped: container "web" is not running (start it, or remove the volume)`; msg != want {
		t.Errorf("Mount of a stopped target: Err = %q, want %q", msg, want)
	}

	var mr volume.MountResponse
	if msg := p.call("VolumeDriver.Mount", volume.MountRequest{Name: "webfs", ID: "c1"}, &mr); msg != "" {
		t.Fatalf("Mount: %s", msg)
	}
	if !strings.HasPrefix(mr.Mountpoint, td.mountRoot+"/") {
		t.Errorf("Mountpoint = %q, want it under %s", mr.Mountpoint, td.mountRoot)
	}
	var pr volume.PathResponse
	p.call("VolumeDriver.Path", volume.PathRequest{Name: "webfs"}, &pr)
	if pr.Mountpoint != mr.Mountpoint {
		t.Errorf("Path = %q, want %q", pr.Mountpoint, mr.Mountpoint)
	}

	var gr volume.GetResponse
	p.call("VolumeDriver.Get", volume.GetRequest{Name: "webfs"}, &gr)
	st := gr.Volume.Status
	// JSON numbers decode as float64.
	if st["container"] != "web" || st["ro"] != true || st["mounted"] != true || st["mountCount"] != 1.0 || st["arch"] != "amd64" {
		t.Errorf("Get status = %v, want container web, ro, mounted once, arch", st)
	}

	msg = p.call("VolumeDriver.Remove", volume.RemoveRequest{Name: "webfs"}, nil)
	if !strings.HasPrefix(msg, "volume is in use") {
		t.Errorf("Remove of a mounted volume: Err = %q, want it refused", msg)
	}
	if msg := p.call("VolumeDriver.Unmount", volume.UnmountRequest{Name: "webfs", ID: "c1"}, nil); msg != "" {
		t.Fatalf("Unmount: %s", msg)
	}

	var lr volume.ListResponse
	p.call("VolumeDriver.List", nil, &lr)
	if len(lr.Volumes) != 2 || lr.Volumes[0].Name != "stopped" || lr.Volumes[1].Name != "webfs" {
		t.Errorf("List = %v, want stopped and webfs", lr.Volumes)
	}
	if msg := p.call("VolumeDriver.Remove", volume.RemoveRequest{Name: "webfs"}, nil); msg != "" {
		t.Errorf("Remove: %s", msg)
	}
	msg = p.call("VolumeDriver.Get", volume.GetRequest{Name: "webfs"}, nil)
	if !strings.HasPrefix(msg, `no such volume "webfs"`) {
		t.Errorf("Get of a removed volume: Err = %q, want no such volume", msg)
	}
}
