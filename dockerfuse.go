// Package dockerfuse mounts a running container's filesystem on the host:
// it starts a satellite inside the container (launcher), speaks the rpc
// protocol with it, and serves a FUSE filesystem (fuse) that turns each
// kernel request into one call. The command-line tool and the volume plugin
// are both thin layers over Mount.
//
// A Session is safe for concurrent use. Mount does its slow work (engine
// calls, the upload, the FUSE handshake) in the caller's goroutine: callers
// must not hold locks across it.
package dockerfuse

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/docker/docker/client"

	"github.com/dockerfuse/dockerfuse/launcher"
)

// Config describes one mount.
type Config struct {
	// Engine is the Engine API client; nil means launcher.NewEngineClient
	// (the environment: DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
	Engine client.APIClient
	// Container is the target's name or ID.
	Container string
	// Path is the directory inside the target to show; "" means "/".
	Path string
	// User is who the satellite runs as inside the target; "" means root.
	User string
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// Mountpoint is the host directory to mount on. It must exist.
	Mountpoint string
	// AllowOther lets users other than the mounting one use the mount
	// (needed when other containers consume it).
	AllowOther bool
	// AttrTimeout and EntryTimeout bound how long the kernel trusts
	// attributes and names; a change made inside the target shows within
	// them. Zero means one second.
	AttrTimeout  time.Duration
	EntryTimeout time.Duration
	// Satellites supplies the satellite executables; nil means the ones
	// embedded in this binary.
	Satellites launcher.Satellites
	// Log receives the session's log, including the satellite's stderr;
	// nil discards it.
	Log *slog.Logger
	// Debug logs every FUSE request.
	Debug bool
}

// Status is what a session reports about itself.
type Status struct {
	Container   string `json:"container"`
	ContainerID string `json:"containerID,omitempty"`
	Path        string `json:"path"`
	ReadOnly    bool   `json:"readOnly"`
	Mountpoint  string `json:"mountpoint"`
	Arch        string `json:"arch,omitempty"`
	Connected   bool   `json:"connected"`
	// Error says why the satellite is not connected, if it is not.
	Error string `json:"error,omitempty"`
}

var _ io.Closer = (*Session)(nil)
var _ = context.Background
