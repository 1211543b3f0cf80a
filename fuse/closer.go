package fuse

import (
	"context"
	"sync"
	"time"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// Releases close their handles in the target in batches: a handle released
// now is closed with the others released within closeDelay, in one call
// (rpc.HandleArgs.More), instead of a call each. The kernel does not wait
// for a release, so nothing waits for these calls either; tar or cat of
// many small files then costs one call per file, the open, instead of two.
const (
	closeDelay = 10 * time.Millisecond
	closeBatch = 256
)

// closer holds the handles released and not yet closed, per satellite.
type closer struct {
	mu      sync.Mutex
	pending map[Caller][]uint64 // Callers are pointers: comparable
	armed   bool                // a flush is scheduled
}

// closeLater closes handle id of c with the next batch.
func (f *FS) closeLater(c Caller, id uint64) {
	cl := &f.closer
	cl.mu.Lock()
	if cl.pending == nil {
		cl.pending = make(map[Caller][]uint64)
	}
	cl.pending[c] = append(cl.pending[c], id)
	full := len(cl.pending[c]) >= closeBatch
	arm := !full && !cl.armed
	if arm {
		cl.armed = true
	}
	cl.mu.Unlock()
	switch {
	case full:
		go f.closeNow()
	case arm:
		time.AfterFunc(closeDelay, f.closeNow)
	}
}

// closeNow closes every handle waiting for its batch.
func (f *FS) closeNow() {
	cl := &f.closer
	cl.mu.Lock()
	pending := cl.pending
	cl.pending, cl.armed = nil, false
	cl.mu.Unlock()
	for c, ids := range pending {
		// A satellite gone meanwhile has closed them itself.
		c.Call(context.Background(), rpc.OpClose, &rpc.HandleArgs{Handle: ids[0], More: ids[1:]}, nil)
	}
}
