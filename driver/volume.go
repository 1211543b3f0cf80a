package driver

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Volume is a created volume: its name and its parsed options. It is what
// the driver persists and what it hands to the Mounter.
type Volume struct {
	Name string `json:"name"`
	// Container is the target's name or ID.
	Container string `json:"container"`
	// Path is the absolute, clean directory inside the target to show.
	Path string `json:"path"`
	// ReadOnly refuses every change.
	ReadOnly bool `json:"ro"`
	// User is who the satellite runs as inside the target; "" means root.
	User string `json:"user,omitempty"`
	// Streams is how many satellites files are read through (see
	// dockerfuse.Config.Streams); 0 means the default.
	Streams   int       `json:"streams,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Option names accepted by Create.
const (
	optContainer = "container"
	optPath      = "path"
	optRO        = "ro"
	optUser      = "user"
	optStreams   = "streams"
)

// MaxStreams and DefaultStreams are dockerfuse's, which this package does
// not import (the plugin's tests check that they agree).
const (
	MaxStreams     = 8
	DefaultStreams = 6
)

// validOptions ends every option error: the engine shows the user nothing
// but the message, so it must say what would have been accepted.
const validOptions = "valid options: container=<name or ID> (required), " +
	"path=<absolute directory inside the container, default />, " +
	"ro=<true|false, default false>, user=<user inside the container, default root>, " +
	"streams=<1 to 8 satellites files are read through, default 6>"

// optionError is an ErrBadOption with the offending option and the list of
// valid ones.
type optionError struct {
	msg string
}

func (e *optionError) Error() string { return e.msg + " (" + validOptions + ")" }

func (e *optionError) Is(target error) bool { return target == ErrBadOption }

func badOption(format string, args ...any) error {
	return &optionError{msg: fmt.Sprintf(format, args...)}
}

// checkName refuses names that cannot be a single directory under
// MountRoot. The engine already restricts names to [a-zA-Z0-9][a-zA-Z0-9_.-]+;
// this guards the legacy socket, which anyone with root can talk to.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w %q: use letters, digits, '_', '.' and '-'", ErrBadName, name)
	}
	return nil
}

// parseOptions turns Create's options into a Volume, refusing unknown
// options, a missing container, a relative path and a malformed boolean.
func parseOptions(name string, opts map[string]string) (Volume, error) {
	if err := checkName(name); err != nil {
		return Volume{}, err
	}
	var unknown []string
	for k := range opts {
		switch k {
		case optContainer, optPath, optRO, optUser, optStreams:
		default:
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		s := ""
		if len(unknown) > 1 {
			s = "s"
		}
		return Volume{}, badOption("unknown option%s %s", s, strings.Join(unknown, ", "))
	}

	v := Volume{Name: name, Container: strings.TrimSpace(opts[optContainer]), Path: "/"}
	if v.Container == "" {
		return Volume{}, badOption("option %q is required: the name or ID of the container to show, e.g. -o container=web", optContainer)
	}
	if p, ok := opts[optPath]; ok {
		if !path.IsAbs(p) {
			return Volume{}, badOption("option %q must be an absolute directory inside the container, got %q", optPath, p)
		}
		v.Path = path.Clean(p)
	}
	if s, ok := opts[optRO]; ok {
		ro, err := parseBool(s)
		if err != nil {
			return Volume{}, badOption("option %q must be true or false (or 1/0, yes/no), got %q", optRO, s)
		}
		v.ReadOnly = ro
	}
	if u, ok := opts[optUser]; ok {
		v.User = strings.TrimSpace(u)
		if v.User == "" {
			return Volume{}, badOption("option %q must name a user (name or uid[:gid]) when given", optUser)
		}
		if v.User == "root" {
			v.User = ""
		}
	}
	if n, ok := opts[optStreams]; ok {
		v.Streams, _ = strconv.Atoi(strings.TrimSpace(n))
		if v.Streams < 1 || v.Streams > MaxStreams {
			return Volume{}, badOption("option %q must be a number from 1 to %d, got %q", optStreams, MaxStreams, n)
		}
	}
	return v, nil
}

// parseBool accepts what people type in -o and driver_opts. An empty value
// (-o ro) means true.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

// check validates a Volume restored from the state file with the same rules
// Create applies.
func (v Volume) check() error {
	if err := checkName(v.Name); err != nil {
		return err
	}
	if v.Container == "" {
		return fmt.Errorf("no container")
	}
	if !path.IsAbs(v.Path) || path.Clean(v.Path) != v.Path {
		return fmt.Errorf("path %q is not absolute and clean", v.Path)
	}
	if v.Streams < 0 || v.Streams > MaxStreams {
		return fmt.Errorf("%d streams", v.Streams)
	}
	return nil
}

// sameOptions reports whether two volumes were created with the same
// options (the creation time does not count).
func (v Volume) sameOptions(o Volume) bool {
	return v.Name == o.Name && v.Container == o.Container && v.Path == o.Path &&
		v.ReadOnly == o.ReadOnly && v.User == o.User && v.Streams == o.Streams
}

// String lists the options in the form Create accepts them.
func (v Volume) String() string {
	s := fmt.Sprintf("container=%s path=%s ro=%t user=%s", v.Container, v.Path, v.ReadOnly, v.user())
	if v.Streams != 0 {
		s += fmt.Sprintf(" streams=%d", v.Streams)
	}
	return s
}

// streams is the number of streams the volume's mounts read through.
func (v Volume) streams() int {
	if v.Streams == 0 {
		return DefaultStreams
	}
	return v.Streams
}

func (v Volume) user() string {
	if v.User == "" {
		return "root"
	}
	return v.User
}
