package satellite

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestSizedGrows plays an xattr whose value is empty when sized asks for
// its size and five bytes long when it reads it. Given an empty buffer the
// kernel reports the size instead of ERANGE, so sized must check it.
func TestSizedGrows(t *testing.T) {
	const value = "grown"
	calls := 0
	get := func(b []byte) (int, error) {
		calls++
		switch {
		case calls == 1:
			return 0, nil // the size, before it grows
		case len(b) == 0:
			return len(value), nil // a size query, as the kernel answers it
		case len(b) < len(value):
			return 0, unix.ERANGE
		}
		return copy(b, value), nil
	}
	got, err := sized(get)
	if err != nil || string(got) != value {
		t.Errorf("sized = %q, %v; want %q, nil", got, err, value)
	}
}

// TestSizedShrinks plays a value that shrinks between the two calls.
func TestSizedShrinks(t *testing.T) {
	calls := 0
	get := func(b []byte) (int, error) {
		calls++
		if calls == 1 {
			return 10, nil
		}
		return copy(b, "short"), nil
	}
	got, err := sized(get)
	if err != nil || string(got) != "short" {
		t.Errorf("sized = %q, %v; want %q, nil", got, err, "short")
	}
}
