package satellite_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// TestCloseMore closes a batch of handles with one call, as a client
// gathering releases does; one already gone does not keep the others open.
func TestCloseMore(t *testing.T) {
	s, root := newServer(t)
	var hs []uint64
	for _, name := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(root, name), name)
		hs = append(hs, open(t, s, name, unix.O_RDONLY, 0))
	}
	_, err := s.Close(&rpc.HandleArgs{Handle: hs[0], More: hs[1:]})
	check(t, "close of three", err)
	for _, h := range hs {
		_, err := s.Read(&rpc.ReadArgs{Handle: h, Size: 1})
		wantErrno(t, "read after close", err, syscall.EBADF)
	}

	h := open(t, s, "a", unix.O_RDONLY, 0)
	_, err = s.Close(&rpc.HandleArgs{Handle: hs[0], More: []uint64{h}})
	wantErrno(t, "close of a closed handle and an open one", err, syscall.EBADF)
	_, err = s.Read(&rpc.ReadArgs{Handle: h, Size: 1})
	wantErrno(t, "read of the open one after", err, syscall.EBADF)
}
