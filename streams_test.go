package dockerfuse

import (
	"strings"
	"testing"

	"github.com/dockerfuse/dockerfuse/launcher"
)

func TestStreamsFor(t *testing.T) {
	for _, c := range []struct {
		asked  int
		limits launcher.Limits
		want   int
		why    string
	}{
		{0, launcher.Limits{}, DefaultStreams, ""},
		{0, launcher.Limits{Memory: 4 << 30}, DefaultStreams, ""},
		{0, launcher.Limits{Memory: 1 << 30}, DefaultStreams, ""},
		{0, launcher.Limits{Memory: 512 << 20}, 1, "memory limit of 512 MiB"},
		{0, launcher.Limits{Pids: 100}, 1, "pids limit of 100"},
		{3, launcher.Limits{Memory: 64 << 20, Pids: 100}, 3, ""},
		{1, launcher.Limits{}, 1, ""},
	} {
		s := &Session{cfg: Config{Streams: c.asked}}
		n, why := s.streamsFor(&launcher.Session{Limits: c.limits})
		if n != c.want || (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
			t.Errorf("Streams %d, limits %+v: %d streams (%q), want %d (%q)", c.asked, c.limits, n, why, c.want, c.why)
		}
	}
}
