package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/docker/docker/client"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/driver"
	"github.com/dockerfuse/dockerfuse/launcher"
)

// sessionMounter starts volumes as dockerfuse sessions.
type sessionMounter struct {
	engine     client.APIClient
	satellites launcher.Satellites
	log        *slog.Logger
	debug      bool
}

var _ driver.Mounter = sessionMounter{}

// Mount starts a session on dir. AllowOther lets consumer containers whose
// processes run as other users in; what each may do then follows the
// target's own modes and owners.
func (m sessionMounter) Mount(ctx context.Context, v driver.Volume, dir string) (driver.Mounted, error) {
	s, err := dockerfuse.Mount(ctx, dockerfuse.Config{
		Engine:     m.engine,
		Container:  v.Container,
		Path:       v.Path,
		User:       v.User,
		ReadOnly:   v.ReadOnly,
		Mountpoint: dir,
		AllowOther: true,
		Satellites: m.satellites,
		Log:        m.log.With("volume", v.Name),
		Debug:      m.debug,
		Streams:    v.Streams,
	})
	switch {
	case errors.Is(err, launcher.ErrNotRunning):
		// The launcher's remedy is about the target; a volume user may also
		// want to get rid of the volume.
		return nil, fmt.Errorf("%w; or remove the volume", err)
	case errors.Is(err, launcher.ErrNoSuchContainer):
		return nil, fmt.Errorf("%w; or remove the volume and create it again with -o container=<name or ID>", err)
	case err != nil:
		return nil, err
	}
	return session{s}, nil
}

// session adapts *dockerfuse.Session to driver.Mounted.
type session struct{ *dockerfuse.Session }

var _ driver.Mounted = session{}

func (s session) Status() driver.SessionStatus {
	st := s.Session.Status()
	return driver.SessionStatus{ContainerID: st.ContainerID, Arch: st.Arch, Connected: st.Connected, Streams: st.Streams, Error: st.Error}
}
