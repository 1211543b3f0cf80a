package driver

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// fakeMounter records starts. A volume whose name is in block waits for its
// channel to close (or the ctx to end) before answering; one in fail fails.
type fakeMounter struct {
	mu       sync.Mutex
	block    map[string]chan struct{}
	entered  map[string]chan struct{} // closed when a blocked Mount has started
	fail     map[string]error
	starts   map[string]int
	sessions []*fakeSession
}

func newFakeMounter() *fakeMounter {
	return &fakeMounter{
		block:   map[string]chan struct{}{},
		entered: map[string]chan struct{}{},
		fail:    map[string]error{},
		starts:  map[string]int{},
	}
}

func (m *fakeMounter) Mount(ctx context.Context, v Volume, dir string) (Mounted, error) {
	m.mu.Lock()
	block, entered, err := m.block[v.Name], m.entered[v.Name], m.fail[v.Name]
	m.mu.Unlock()
	if block != nil {
		close(entered)
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	s := &fakeSession{vol: v, dir: dir, done: make(chan struct{})}
	m.mu.Lock()
	m.starts[v.Name]++
	m.sessions = append(m.sessions, s)
	m.mu.Unlock()
	return s, nil
}

// blockOn makes the next Mount of name wait until the returned release is
// called; entered is closed once that Mount is waiting.
func (m *fakeMounter) blockOn(name string) (entered <-chan struct{}, release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, e := make(chan struct{}), make(chan struct{})
	m.block[name], m.entered[name] = b, e
	return e, func() { close(b) }
}

func (m *fakeMounter) startCount(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.starts[name]
}

// last returns the newest session of name.
func (m *fakeMounter) last(t *testing.T, name string) *fakeSession {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.sessions) - 1; i >= 0; i-- {
		if m.sessions[i].vol.Name == name {
			return m.sessions[i]
		}
	}
	t.Fatalf("no session for %s", name)
	return nil
}

type fakeSession struct {
	vol  Volume
	dir  string
	mu   sync.Mutex
	done chan struct{}
	// closed counts Close calls; closeErr is what Close returns.
	closed   int
	closeErr error
	dead     bool
}

func (s *fakeSession) Status() SessionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return SessionStatus{ContainerID: "c0ffee", Arch: "amd64", Error: "satellite exited"}
	}
	return SessionStatus{ContainerID: "c0ffee", Arch: "amd64", Connected: s.closed == 0}
}

func (s *fakeSession) Done() <-chan struct{} { return s.done }

func (s *fakeSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	if s.closed == 1 && !s.dead {
		close(s.done)
	}
	return s.closeErr
}

// die ends the session as a target that stopped would.
func (s *fakeSession) die() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	close(s.done)
}

func (s *fakeSession) closeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

var errNotRunning = errors.New(`container "web" is not running (start it, or remove the volume)`)
