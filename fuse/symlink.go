package fuse

import (
	"context"

	"bazil.org/fuse"
	fusefs "bazil.org/fuse/fs"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// symlink is a symbolic link. The kernel resolves it on the host, inside
// the mount for relative targets.
type symlink struct {
	node
}

var _ fusefs.NodeReadlinker = (*symlink)(nil)

func (s *symlink) Readlink(ctx context.Context, req *fuse.ReadlinkRequest) (string, error) {
	p, err := s.path()
	if err != nil {
		return "", err
	}
	var r rpc.ReadlinkReply
	if err := s.fs.c.Call(ctx, rpc.OpReadlink, &rpc.PathArgs{Path: p}, &r); err != nil {
		return "", errno(err)
	}
	return r.Target, nil
}

var _ fusefs.NodeForgetter = (*symlink)(nil)

func (s *symlink) Forget() { s.fs.forget(s) }
