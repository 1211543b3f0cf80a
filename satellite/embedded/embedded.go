// Package embedded carries the satellite executables inside the client, so
// that one binary is enough to mount any container. `make` builds them into
// this directory before building the client; a client built without them
// says so when it needs one.
package embedded

import (
	"embed"
	"fmt"
)

//go:embed *
var files embed.FS

// Satellites serves the embedded executables.
type Satellites struct{}

// Satellite returns the static satellite executable for a Linux
// architecture as Docker names it ("amd64", "arm64").
func (Satellites) Satellite(arch string) ([]byte, error) {
	switch arch {
	case "amd64", "arm64":
	default:
		return nil, fmt.Errorf("no satellite for architecture %q: dockerfuse supports amd64 and arm64 targets", arch)
	}
	b, err := files.ReadFile("satellite-linux-" + arch)
	if err != nil {
		return nil, fmt.Errorf("this dockerfuse binary was built without the %s satellite (build it with make)", arch)
	}
	return b, nil
}
