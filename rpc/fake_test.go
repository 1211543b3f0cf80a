package rpc_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/dockerfuse/dockerfuse/rpc"
)

// fake is a Handler whose every method goes through one function, so that a
// test can script any op: serve gets the op and its arguments and returns a
// pointer to the op's reply type, or nil.
type fake struct {
	serve func(op rpc.Op, args any) (any, error)
}

var _ rpc.Handler = (*fake)(nil)

func do[R any](h *fake, op rpc.Op, args any) (*R, error) {
	r, err := h.serve(op, args)
	if r == nil {
		return nil, err
	}
	return r.(*R), err
}

func (h *fake) Hello(a *rpc.HelloArgs) (*rpc.HelloReply, error) {
	return do[rpc.HelloReply](h, rpc.OpHello, a)
}
func (h *fake) Lstat(a *rpc.PathArgs) (*rpc.Attr, error) { return do[rpc.Attr](h, rpc.OpLstat, a) }
func (h *fake) ReadDir(a *rpc.ReadDirArgs) (*rpc.ReadDirReply, error) {
	return do[rpc.ReadDirReply](h, rpc.OpReadDir, a)
}
func (h *fake) Open(a *rpc.OpenArgs) (*rpc.OpenReply, error) {
	return do[rpc.OpenReply](h, rpc.OpOpen, a)
}
func (h *fake) Read(a *rpc.ReadArgs) (*rpc.ReadReply, error) {
	return do[rpc.ReadReply](h, rpc.OpRead, a)
}
func (h *fake) Write(a *rpc.WriteArgs) (*rpc.WriteReply, error) {
	return do[rpc.WriteReply](h, rpc.OpWrite, a)
}
func (h *fake) Fsync(a *rpc.FsyncArgs) (*rpc.Empty, error) { return do[rpc.Empty](h, rpc.OpFsync, a) }
func (h *fake) Fstat(a *rpc.HandleArgs) (*rpc.Attr, error) { return do[rpc.Attr](h, rpc.OpFstat, a) }
func (h *fake) Close(a *rpc.HandleArgs) (*rpc.Empty, error) {
	return do[rpc.Empty](h, rpc.OpClose, a)
}
func (h *fake) Setattr(a *rpc.SetattrArgs) (*rpc.Attr, error) {
	return do[rpc.Attr](h, rpc.OpSetattr, a)
}
func (h *fake) Mkdir(a *rpc.MkdirArgs) (*rpc.Attr, error) { return do[rpc.Attr](h, rpc.OpMkdir, a) }
func (h *fake) Rmdir(a *rpc.PathArgs) (*rpc.Empty, error) { return do[rpc.Empty](h, rpc.OpRmdir, a) }
func (h *fake) Unlink(a *rpc.PathArgs) (*rpc.Empty, error) {
	return do[rpc.Empty](h, rpc.OpUnlink, a)
}
func (h *fake) Rename(a *rpc.RenameArgs) (*rpc.Empty, error) {
	return do[rpc.Empty](h, rpc.OpRename, a)
}
func (h *fake) Symlink(a *rpc.SymlinkArgs) (*rpc.Attr, error) {
	return do[rpc.Attr](h, rpc.OpSymlink, a)
}
func (h *fake) Readlink(a *rpc.PathArgs) (*rpc.ReadlinkReply, error) {
	return do[rpc.ReadlinkReply](h, rpc.OpReadlink, a)
}
func (h *fake) Link(a *rpc.LinkArgs) (*rpc.Attr, error)   { return do[rpc.Attr](h, rpc.OpLink, a) }
func (h *fake) Mknod(a *rpc.MkdirArgs) (*rpc.Attr, error) { return do[rpc.Attr](h, rpc.OpMknod, a) }
func (h *fake) Statfs(a *rpc.PathArgs) (*rpc.StatfsReply, error) {
	return do[rpc.StatfsReply](h, rpc.OpStatfs, a)
}
func (h *fake) Getxattr(a *rpc.XattrArgs) (*rpc.XattrReply, error) {
	return do[rpc.XattrReply](h, rpc.OpGetxattr, a)
}
func (h *fake) Setxattr(a *rpc.XattrArgs) (*rpc.Empty, error) {
	return do[rpc.Empty](h, rpc.OpSetxattr, a)
}
func (h *fake) Listxattr(a *rpc.XattrArgs) (*rpc.XattrReply, error) {
	return do[rpc.XattrReply](h, rpc.OpListxattr, a)
}
func (h *fake) Removexattr(a *rpc.XattrArgs) (*rpc.Empty, error) {
	return do[rpc.Empty](h, rpc.OpRemovexattr, a)
}

func (h *fake) ReadFiles(a *rpc.ReadFilesArgs) (*rpc.ReadFilesReply, error) {
	return do[rpc.ReadFilesReply](h, rpc.OpReadFiles, a)
}

// session is a Client talking to Serve over an in-memory pipe.
type session struct {
	*rpc.Client
	server net.Conn // the server's end, to break the stream from below
	served chan error
	// brokenBelow is set by a test that closes server: Serve then fails.
	brokenBelow bool
}

// serve starts Serve with h and a Client for it. Cleanup closes the client
// and checks that Serve then ends cleanly.
func serve(t *testing.T, h rpc.Handler) *session {
	t.Helper()
	cc, sc := net.Pipe()
	s := &session{server: sc, served: make(chan error, 1)}
	go func() {
		s.served <- rpc.Serve(sc, sc, h)
		sc.Close()
	}()
	s.Client = rpc.NewClient(cc)
	t.Cleanup(func() {
		s.Close()
		if err := <-s.served; err != nil && !s.brokenBelow {
			t.Errorf("Serve = %v at the end of the stream, want nil", err)
		}
	})
	return s
}

// sample holds, for every op, arguments and a reply with every field set,
// including negative and high-bit numbers, NUL bytes and non-ASCII text.
var sampleAttr = rpc.Attr{
	Dev: 1<<63 | 5, Ino: 1<<40 + 7, Mode: 0o100644, Nlink: 3, Uid: 1000, Gid: 1<<31 + 1,
	Rdev: 0x0801, Size: 1<<33 + 9, Blocks: 17, Blksize: 4096,
	Atime: -1_500_000_000_123_456_789, Mtime: 1_700_000_000_987_654_321, Ctime: 1,
	Xattr: rpc.XattrSome,
}

var binary256 = func() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

type sample struct {
	op    rpc.Op
	args  any
	reply any
}

var samples = []sample{
	{rpc.OpHello, &rpc.HelloArgs{Version: rpc.Version},
		&rpc.HelloReply{Version: rpc.Version, Pid: 4242, Uid: 0, Arch: "arm64", Root: "/"}},
	{rpc.OpLstat, &rpc.PathArgs{Path: "dir/ünï\x00côde"}, &sampleAttr},
	{rpc.OpReadDir, &rpc.ReadDirArgs{Path: "d", Handle: 1<<64 - 1},
		&rpc.ReadDirReply{Entries: []rpc.DirEntry{{Name: "a", Attr: sampleAttr}, {Name: "ß"}}, Handle: 9}},
	{rpc.OpOpen, &rpc.OpenArgs{Path: "f", Flags: -1 << 20, Mode: 0o4755, Owner: rpc.Owner{Uid: 1<<32 - 1, Gid: 7}},
		&rpc.OpenReply{Handle: 1 << 62, Attr: sampleAttr}},
	{rpc.OpRead, &rpc.ReadArgs{Handle: 3, Off: 1 << 40, Size: rpc.MaxData}, &rpc.ReadReply{Data: binary256}},
	{rpc.OpWrite, &rpc.WriteArgs{Handle: 3, Off: -1, Data: binary256}, &rpc.WriteReply{N: 256}},
	{rpc.OpFsync, &rpc.FsyncArgs{Handle: 0, Path: "dir"}, &rpc.Empty{}},
	{rpc.OpClose, &rpc.HandleArgs{Handle: 77, More: []uint64{1, 1<<64 - 1}}, &rpc.Empty{}},
	{rpc.OpSetattr, &rpc.SetattrArgs{Path: "f", Handle: 5, Valid: 0xff, Mode: 0o7777, Uid: 1<<32 - 1,
		Gid: 2, Size: 1 << 50, Atime: -1, Mtime: 1<<63 - 1}, &sampleAttr},
	{rpc.OpMkdir, &rpc.MkdirArgs{Path: "d", Mode: 0o1777, Owner: rpc.Owner{Uid: 1000, Gid: 1000}}, &sampleAttr},
	{rpc.OpRmdir, &rpc.PathArgs{Path: "d"}, &rpc.Empty{}},
	{rpc.OpUnlink, &rpc.PathArgs{Path: "f"}, &rpc.Empty{}},
	{rpc.OpRename, &rpc.RenameArgs{Old: "a", New: "b", Flags: 1<<32 - 1}, &rpc.Empty{}},
	{rpc.OpSymlink, &rpc.SymlinkArgs{Target: "../../x", Path: "l", Owner: rpc.Owner{Uid: 1}}, &sampleAttr},
	{rpc.OpReadlink, &rpc.PathArgs{Path: "l"}, &rpc.ReadlinkReply{Target: "/abs/target"}},
	{rpc.OpLink, &rpc.LinkArgs{Old: "a", New: "b"}, &sampleAttr},
	{rpc.OpMknod, &rpc.MkdirArgs{Path: "p", Mode: 0o10644, Dev: 1<<63 + 3, Owner: rpc.Owner{Gid: 5}}, &sampleAttr},
	{rpc.OpStatfs, &rpc.PathArgs{Path: ""}, &rpc.StatfsReply{Blocks: 1 << 63, Bfree: 2, Bavail: 3,
		Files: 4, Ffree: 5, Bsize: 4096, Namelen: 255, Frsize: 1<<32 - 1}},
	{rpc.OpGetxattr, &rpc.XattrArgs{Path: "f", Name: "user.x"}, &rpc.XattrReply{Value: binary256}},
	{rpc.OpSetxattr, &rpc.XattrArgs{Path: "f", Name: "user.x", Value: []byte{0}, Flags: 2}, &rpc.Empty{}},
	{rpc.OpListxattr, &rpc.XattrArgs{Path: "f"}, &rpc.XattrReply{Value: []byte("user.a\x00user.b\x00")}},
	{rpc.OpRemovexattr, &rpc.XattrArgs{Path: "f", Name: "user.x"}, &rpc.Empty{}},
	{rpc.OpFstat, &rpc.HandleArgs{Handle: 1}, &sampleAttr},
	{rpc.OpReadFiles, &rpc.ReadFilesArgs{Dir: "d/ü", Names: []string{"a", "", "\x00b"}, MaxFile: -1, MaxTotal: 1 << 40},
		&rpc.ReadFilesReply{Files: []rpc.FileData{{Name: "a", Attr: sampleAttr, Data: binary256}, {Name: "ß", Data: []byte{}}}}},
}

// numOps counts the ops this build knows, by their names.
func numOps() int {
	n := 0
	for rpc.Op(n+1).String() != "op("+strconv.Itoa(n+1)+")" {
		n++
	}
	return n
}
