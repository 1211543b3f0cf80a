package main

import (
	"testing"

	"github.com/dockerfuse/dockerfuse"
	"github.com/dockerfuse/dockerfuse/driver"
)

// The driver checks the streams option without importing dockerfuse: its
// bounds must be dockerfuse's.
func TestStreamsBoundsAgree(t *testing.T) {
	if driver.MaxStreams != dockerfuse.MaxStreams || driver.DefaultStreams != dockerfuse.DefaultStreams {
		t.Errorf("driver allows 1 to %d streams, default %d; dockerfuse 1 to %d, default %d",
			driver.MaxStreams, driver.DefaultStreams, dockerfuse.MaxStreams, dockerfuse.DefaultStreams)
	}
}
