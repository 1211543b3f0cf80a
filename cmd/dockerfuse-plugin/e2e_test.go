package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerfuse/dockerfuse/internal/testenv"
)

// The end-to-end tests build the managed plugin with `make plugin`, enable
// it as "dockerfuse" (replacing any plugin of that name) and use it the way
// a person would, through the docker CLI and docker-compose. Every
// container runs with --network none; every image is built FROM scratch.

const pluginName = "dockerfuse"

// TestPlugin runs as one test so that the plugin is built once; its
// subtests share the plugin and a target, and each makes its own volumes.
func TestPlugin(t *testing.T) {
	testenv.Engine(t)
	testenv.RequireFUSE(t)
	if testing.Short() {
		t.Skip("builds and enables the plugin; skipped in -short mode")
	}
	buildPlugin(t)
	bb := busyboxImage(t)
	web := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfplugin-web"})
	web.ExecIn(t, []byte("written by the target\n"), "write", "/tmp/from-target")

	t.Run("ReadWrite", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name)
		out := consume(t, bb, vol, "cat /web/tmp/from-target && echo written by the consumer > /web/tmp/from-consumer")
		if out != "written by the target\n" {
			t.Errorf("consumer read %q, want %q", out, "written by the target\n")
		}
		if got := web.Exec(t, "cat", "/tmp/from-consumer"); got != "written by the consumer\n" {
			t.Errorf("target read %q, want %q", got, "written by the consumer\n")
		}
	})

	t.Run("NonRootConsumer", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name)
		out := consume(t, bb, vol, "--user", "1000:1000", "--",
			"cat /web/tmp/from-target; echo mine > /web/tmp/from-uid-1000 && echo wrote-tmp; "+
				"echo x > /web/not-mine 2>/dev/null || echo refused-root-dir")
		if want := "written by the target\nwrote-tmp\nrefused-root-dir\n"; out != want {
			t.Errorf("uid 1000 consumer printed %q, want %q (the target's modes decide)", out, want)
		}
	})

	t.Run("TwoConsumers", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name)
		c1 := runConsumer(t, bb, vol)
		c2 := runConsumer(t, bb, vol)
		execSh(t, c1, "echo one > /web/tmp/two-consumers")
		if got := execSh(t, c2, "cat /web/tmp/two-consumers"); got != "one\n" {
			t.Errorf("second consumer read %q, want %q", got, "one\n")
		}
		if st := volumeStatus(t, vol); st["mountCount"] != 2.0 || st["mounted"] != true {
			t.Errorf("status with two consumers = %v, want mountCount 2, mounted", st)
		}
		mustDocker(t, "rm", "-f", c1)
		execSh(t, c2, "echo two > /web/tmp/two-consumers")
		if got := web.Exec(t, "cat", "/tmp/two-consumers"); got != "two\n" {
			t.Errorf("after the first consumer left, target read %q, want %q", got, "two\n")
		}
		if st := volumeStatus(t, vol); st["mountCount"] != 1.0 || st["connected"] != true {
			t.Errorf("status with one consumer left = %v, want mountCount 1, connected", st)
		}
		mustDocker(t, "rm", "-f", c2)
		if st := volumeStatus(t, vol); st["mountCount"] != 0.0 || st["mounted"] != false {
			t.Errorf("status with no consumer = %v, want mountCount 0, not mounted", st)
		}
	})

	t.Run("ReadOnly", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name, "ro=true")
		out := consume(t, bb, vol, "cat /web/tmp/from-target; (echo x > /web/tmp/ro-write) 2>&1 || echo refused")
		if !strings.HasPrefix(out, "written by the target\n") || !strings.Contains(out, "Read-only file system\nrefused\n") {
			t.Errorf("ro consumer printed %q, want the file and a Read-only file system error", out)
		}
		if _, err := web.TryExec("exists", "/tmp/ro-write"); err == nil {
			t.Error("/tmp/ro-write exists in the target after a refused write")
		}
	})

	t.Run("Path", func(t *testing.T) {
		web.Exec(t, "mkdir", "/tmp/confined")
		web.ExecIn(t, []byte("inside\n"), "write", "/tmp/confined/file")
		vol := createVolume(t, "container="+web.Name, "path=/tmp/confined")
		out := consume(t, bb, vol, "ls -a /web; cat /web/file; ls /web/target 2>&1 || true")
		if !strings.Contains(out, "file\n") || !strings.Contains(out, "inside\n") {
			t.Errorf("confined consumer printed %q, want the directory's file", out)
		}
		if strings.Contains(out, "from-target") || !strings.Contains(out, "No such file") {
			t.Errorf("confined consumer printed %q, want nothing from outside /tmp/confined", out)
		}
	})

	t.Run("Inspect", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name, "path=/tmp", "ro=yes", "user=0")
		st := volumeStatus(t, vol)
		want := map[string]any{"container": web.Name, "path": "/tmp", "ro": true, "user": "0", "mounted": false, "mountCount": 0.0}
		for k, v := range want {
			if st[k] != v {
				t.Errorf("Status[%q] = %#v, want %#v (all: %v)", k, st[k], v, st)
			}
		}
		c := runConsumer(t, bb, vol)
		st = volumeStatus(t, vol)
		if st["mounted"] != true || st["connected"] != true || st["containerID"] != web.ID || st["arch"] != "amd64" {
			t.Errorf("status while mounted = %v, want mounted, connected, containerID %s, arch amd64", st, web.ID)
		}
		mustDocker(t, "rm", "-f", c)
	})

	t.Run("BadOptions", func(t *testing.T) {
		tests := []struct {
			opts []string
			want string
		}{
			{[]string{"container=" + web.Name, "colour=blue"}, `unknown option "colour"`},
			{[]string{"path=/"}, `option "container" is required`},
			{[]string{"container=" + web.Name, "path=tmp"}, `option "path" must be an absolute directory inside the container, got "tmp"`},
			{[]string{"container=" + web.Name, "ro=maybe"}, `option "ro" must be true or false`},
		}
		for _, tt := range tests {
			name := testenv.UniqueName("dfplugin-bad")
			args := []string{"volume", "create", "-d", pluginName}
			for _, o := range tt.opts {
				args = append(args, "-o", o)
			}
			_, err := docker(nil, append(args, name)...)
			if err == nil {
				mustDocker(t, "volume", "rm", name)
				t.Errorf("volume create %v succeeded, want it refused", tt.opts)
				continue
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "valid options: container=") {
				t.Errorf("volume create %v: %v\nwant it to say %q and list the valid options", tt.opts, err, tt.want)
			}
		}
	})

	// The engine answers a create of an existing name itself, without
	// asking the driver: the volume keeps its options.
	t.Run("RecreateKeepsOptions", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name)
		mustDocker(t, "volume", "create", "-d", pluginName, "-o", "container="+web.Name, "-o", "ro=1", vol)
		if st := volumeStatus(t, vol); st["ro"] != false {
			t.Errorf("status after a re-create with ro=1 = %v, want the original ro=false", st)
		}
	})

	t.Run("RemoveMounted", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name)
		c := runConsumer(t, bb, vol)
		_, err := docker(nil, "volume", "rm", vol)
		if err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("volume rm of a mounted volume: %v, want it refused as in use", err)
		}
		mustDocker(t, "rm", "-f", c)
		mustDocker(t, "volume", "rm", vol)
	})

	// The target goes away under a running consumer: its operations fail
	// with EIO, and docker volume inspect says why.
	t.Run("TargetRemoved", func(t *testing.T) {
		gone := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfrel-gone"})
		gone.ExecIn(t, []byte("here\n"), "write", "/tmp/here")
		vol := createVolume(t, "container="+gone.Name)
		c := runConsumer(t, bb, vol)
		if got := execSh(t, c, "cat /web/tmp/here"); got != "here\n" {
			t.Fatalf("consumer read %q, want %q", got, "here\n")
		}
		mustDocker(t, "rm", "--force", gone.Name)
		deadline := time.Now().Add(time.Minute)
		for {
			out := execSh(t, c, "cat /web/tmp/here 2>&1; true")
			st := volumeStatus(t, vol)
			msg, _ := st["error"].(string)
			if strings.Contains(out, "Input/output error") && st["connected"] == false && st["mounted"] == true &&
				strings.Contains(msg, "was removed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a minute after the target was removed: consumer reads %q, status %v; want an I/O error, "+
					"and mounted, not connected, with an error saying the container was removed", out, st)
			}
			time.Sleep(200 * time.Millisecond)
		}
		mustDocker(t, "rm", "-f", c)
	})

	t.Run("TargetNotRunning", func(t *testing.T) {
		stopped := testenv.RunTarget(t, testenv.TargetOptions{Name: "dfplugin-stopped"})
		stopped.Stop(t)
		vol := createVolume(t, "container="+stopped.Name)
		_, err := docker(nil, "run", "--rm", "--network", "none", "--label", testenv.LabelKey+"=plugin",
			"-v", vol+":/web", bb, "true")
		want := fmt.Sprintf("mount %s: container %q is exited", vol, stopped.Name)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "or remove the volume") {
			t.Errorf("consumer of a stopped target: %v\nwant it to say %q and how to fix it", err, want)
		}
		missing := createVolume(t, "container="+testenv.UniqueName("dfplugin-missing"))
		_, err = docker(nil, "run", "--rm", "--network", "none", "--label", testenv.LabelKey+"=plugin",
			"-v", missing+":/web", bb, "true")
		if err == nil || !strings.Contains(err.Error(), "no such container") {
			t.Errorf("consumer of a missing target: %v, want no such container", err)
		}
		// Starting the target is the remedy.
		stopped.Start(t)
		consume(t, bb, vol, "ls /web >/dev/null")
	})

	// The engine restarts a plugin process that dies; the new one unmounts
	// the dead FUSE mount it finds under /mnt/volumes, and a restarted
	// consumer mounts the volume again.
	t.Run("PluginKilled", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name, "path=/tmp")
		c := runConsumer(t, bb, vol)
		execSh(t, c, "cat /web/from-target")
		out, err := exec.Command("pgrep", "-f", "^/usr/bin/dockerfuse-plugin").Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) != 1 {
			t.Fatalf("pgrep for the plugin process: %q, %v; want one pid", out, err)
		}
		if err := exec.Command("kill", "-KILL", pids[0]).Run(); err != nil {
			t.Fatalf("kill -KILL %s: %v", pids[0], err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := docker(nil, "restart", "-t", "1", c)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer does not restart after the plugin was killed: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got := execSh(t, c, "cat /web/from-target"); got != "written by the target\n" {
			t.Errorf("restarted consumer read %q, want %q", got, "written by the target\n")
		}
	})

	// Last but compose: it restarts the plugin.
	t.Run("DisableEnable", func(t *testing.T) {
		vol := createVolume(t, "container="+web.Name, "path=/tmp")
		c := runConsumer(t, bb, vol)
		if got := execSh(t, c, "cat /web/from-target"); got != "written by the target\n" {
			t.Fatalf("consumer read %q before disable", got)
		}
		mustDocker(t, "plugin", "disable", "-f", pluginName)
		mustDocker(t, "plugin", "enable", pluginName)
		if out := mustDocker(t, "volume", "ls", "-q"); !strings.Contains(out, vol+"\n") {
			t.Fatalf("volume ls after disable and enable = %q, want %s kept", out, vol)
		}
		if st := volumeStatus(t, vol); st["path"] != "/tmp" || st["container"] != web.Name {
			t.Errorf("status after re-enable = %v, want the options kept", st)
		}
		// The running consumer lost its mount with the old plugin process;
		// restarted, it mounts again.
		mustDocker(t, "restart", "-t", "1", c)
		if got := execSh(t, c, "cat /web/from-target"); got != "written by the target\n" {
			t.Errorf("restarted consumer read %q, want %q", got, "written by the target\n")
		}
		mustDocker(t, "rm", "-f", c)
	})

	t.Run("Compose", func(t *testing.T) { testCompose(t, bb) })
}

// testCompose brings examples/compose up with locally built images: the
// test target stands in for the app, the busybox image for the sidecar.
func testCompose(t *testing.T, bb string) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		testenv.Unavailable(t, "the compose example needs docker-compose: apt-get install docker-compose")
	}
	project := strings.ReplaceAll(testenv.UniqueName("dfcompose"), "-", "")
	app := testenv.UniqueName("dfcompose-app")
	env := append(os.Environ(),
		"APP_IMAGE="+testenv.TargetImage(t, "amd64"),
		"APP_CONTAINER="+app,
		"APP_PATH=/tmp",
		"SIDECAR_IMAGE="+bb,
	)
	compose := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", project, "-f", "../../examples/compose/docker-compose.yml"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker-compose %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	t.Cleanup(func() {
		if out, err := compose("down", "-v", "--timeout", "1"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	if _, err := compose("up", "-d"); err != nil {
		t.Fatal(err)
	}
	// The sidecar writes index.html into the app's /tmp through the volume.
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := docker(nil, "exec", app, "/target", "cat", "/tmp/index.html")
		if err == nil && strings.Contains(out, "hello from the sidecar") {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := compose("logs")
			t.Fatalf("app's /tmp/index.html = %q, %v; want the sidecar's page\n%s", out, err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// buildPlugin replaces the plugin with one built from this checkout and
// enables it; it is removed when the test ends.
func buildPlugin(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		testenv.Unavailable(t, "the plugin tests build with make: apt-get install make")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", "../..", "plugin", "PLUGIN_NAME="+pluginName)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make plugin: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if _, err := docker(nil, "plugin", "rm", "-f", pluginName); err != nil {
			t.Logf("removing the plugin: %v", err)
		}
	})
	mustDocker(t, "plugin", "enable", pluginName)
}

// busyboxImage builds a FROM scratch image holding the host's static
// busybox, its entrypoint, so `docker run IMG sh -c ...` works.
func busyboxImage(t *testing.T) string {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		testenv.Unavailable(t, "consumer containers need a static /bin/busybox: apt-get install busybox-static (%v)", err)
	}
	sum := sha256.Sum256(bin)
	tag := "dockerfuse-test-busybox:" + hex.EncodeToString(sum[:6])
	if _, err := docker(nil, "image", "inspect", tag); err == nil {
		return tag
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	df := "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/busybox\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDocker(t, "build", "-q", "-t", tag, dir)
	return tag
}

// createVolume creates a dockerfuse volume with options, removed at the end.
func createVolume(t *testing.T, opts ...string) string {
	t.Helper()
	name := testenv.UniqueName("dfplugin-vol")
	args := []string{"volume", "create", "-d", pluginName}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	mustDocker(t, append(args, name)...)
	t.Cleanup(func() { docker(nil, "volume", "rm", "-f", name) })
	return name
}

// consume runs a one-off consumer with vol at /web and returns its output.
// args are docker run flags, then "--", then the shell script; or just the
// script.
func consume(t *testing.T, image, vol string, args ...string) string {
	t.Helper()
	flags, script := []string{}, args[len(args)-1]
	if len(args) > 1 {
		flags = args[:len(args)-2]
	}
	run := append([]string{"run", "--rm", "--network", "none", "--label", testenv.LabelKey + "=plugin", "-v", vol + ":/web"}, flags...)
	return mustDocker(t, append(run, image, "sh", "-c", script)...)
}

// runConsumer starts a long-running consumer with vol at /web; it is
// removed at the end.
func runConsumer(t *testing.T, image, vol string) string {
	t.Helper()
	name := testenv.UniqueName("dfplugin-consumer")
	mustDocker(t, "run", "-d", "--network", "none", "--label", testenv.LabelKey+"=plugin", "--name", name,
		"-v", vol+":/web", image, "sleep", "3600")
	t.Cleanup(func() { docker(nil, "rm", "-f", name) })
	return name
}

func execSh(t *testing.T, container, script string) string {
	t.Helper()
	return mustDocker(t, "exec", container, "busybox", "sh", "-c", script)
}

// volumeStatus returns `docker volume inspect`'s Status; numbers are float64.
func volumeStatus(t *testing.T, vol string) map[string]any {
	t.Helper()
	out := mustDocker(t, "volume", "inspect", "--format", "{{json .Status}}", vol)
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("volume inspect %s: %v: %q", vol, err, out)
	}
	return st
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// docker runs the docker CLI and returns its stdout; the error carries the
// command and its stderr, which is where the engine puts the plugin's
// message.
func docker(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
