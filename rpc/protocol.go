package rpc

import (
	"github.com/ugorji/go/codec"
)

// Version is the wire protocol version. Client and satellite must agree on
// it exactly; it changes with any incompatible change to a message.
const Version = 6

// MaxFrame bounds one message on the wire. A length field above it is a
// protocol error, so a corrupt or hostile stream cannot make either side
// allocate more than this.
const MaxFrame = 4 << 20

// MaxData bounds the payload of one Read or Write. The kernel sends at most
// 128 KiB per FUSE request; the margin allows larger callers.
const MaxData = 1 << 20

// MaxDirEntries bounds the entries returned by one ReadDir reply; longer
// directories continue with the handle it returns.
const MaxDirEntries = 1024

// Op names a request.
type Op uint8

// The requests. Numbers are part of the wire format: append, never renumber.
const (
	OpHello Op = iota + 1
	OpLstat
	OpReadDir
	OpOpen
	OpRead
	OpWrite
	OpFsync
	OpClose
	OpSetattr
	OpMkdir
	OpRmdir
	OpUnlink
	OpRename
	OpSymlink
	OpReadlink
	OpLink
	OpMknod
	OpStatfs
	OpGetxattr
	OpSetxattr
	OpListxattr
	OpRemovexattr
	OpFstat
	OpReadFiles
	opMax
)

var opNames = [...]string{
	OpHello: "hello", OpLstat: "lstat", OpReadDir: "readdir", OpOpen: "open",
	OpRead: "read", OpWrite: "write", OpFsync: "fsync", OpClose: "close",
	OpSetattr: "setattr", OpMkdir: "mkdir", OpRmdir: "rmdir", OpUnlink: "unlink",
	OpRename: "rename", OpSymlink: "symlink", OpReadlink: "readlink", OpLink: "link",
	OpMknod: "mknod", OpStatfs: "statfs", OpGetxattr: "getxattr", OpSetxattr: "setxattr",
	OpListxattr: "listxattr", OpRemovexattr: "removexattr", OpFstat: "fstat",
	OpReadFiles: "readfiles",
}

func (op Op) String() string {
	if op > 0 && op < opMax {
		return opNames[op]
	}
	return "op(" + itoa(uint64(op)) + ")"
}

// header precedes every request; the arguments of Op follow it in the same
// frame.
type header struct {
	Seq uint64
	Op  Op
}

// replyHeader precedes every reply. A zero Errno means success and the
// result follows; otherwise Msg says what failed and nothing follows.
type replyHeader struct {
	Seq   uint64
	Errno uint32
	Msg   string
}

// Attr is a file's metadata as lstat(2) reports it inside the target. Times
// are nanoseconds since the Unix epoch.
type Attr struct {
	Dev     uint64
	Ino     uint64
	Mode    uint32 // type and permission bits, as st_mode
	Nlink   uint32
	Uid     uint32
	Gid     uint32
	Rdev    uint64
	Size    int64
	Blocks  int64
	Blksize int32
	Atime   int64
	Mtime   int64
	Ctime   int64
	// Xattr says whether the file has extended attributes, where the
	// reply knows: Lstat, ReadDir and Open tell, so that a client can answer
	// getxattr and listxattr (ls -l asks two per file) for the many
	// files that have none without a call.
	Xattr XattrState
	// Watch, when not zero, says that the satellite reports changes to
	// this file (see Event): the directory it was found in is watched,
	// and for a directory its own contents too. The number is the
	// sequence number of the last event sent before the attributes were
	// read, so that a client can tell an event that overtook the reply
	// (Seq > Watch) from one that was already true of it. For Mkdir it
	// also says that the new directory was empty then.
	Watch uint64
}

// XattrState is what an Attr knows of a file's extended attributes.
type XattrState uint8

const (
	XattrUnknown XattrState = iota // not looked at: ask
	XattrNone                      // llistxattr(2) returned no names
	XattrSome                      // it returned some: ask
)

// HelloArgs opens a session. Watch asks the satellite to report changes
// made in the target to the directories the client looks at (see Notify).
type HelloArgs struct {
	Version int
	Watch   bool
}

// HelloReply describes the satellite.
type HelloReply struct {
	Version int
	Pid     int
	Uid     int
	Arch    string
	Root    string
	// Watch says that changes will be reported (see HelloArgs).
	Watch bool
}

// Notify is a message the satellite sends on its own, with sequence
// number 0 where a reply has its call's: the events it saw, in order.
type Notify struct {
	Events []Event
}

// Event says that something in a watched directory changed: the entry
// Name, or the directory itself when Name is empty. An event whose Dev and
// Ino are zero says that events were lost (the kernel's queue overflowed,
// or a watch could not be kept): anything may have changed.
type Event struct {
	Seq  uint64
	Dev  uint64 // the watched directory
	Ino  uint64
	Name string
	Mask EventMask
	// Own says the change was the satellite's own, made for a request:
	// the client made it and knows of it (see satellite's expect).
	Own bool
}

// EventMask says what an Event is about.
type EventMask uint8

const (
	// EventAttr: the entry's attributes changed (every event implies it).
	EventAttr EventMask = 1 << iota
	// EventData: the entry's contents changed.
	EventData
	// EventEntry: the name was made, removed, or moved away or onto.
	EventEntry
)

// PathArgs names one file, relative to the satellite's root.
type PathArgs struct {
	Path string
}

// DirEntry is one name in a directory with its attributes.
type DirEntry struct {
	Name string
	Attr Attr
}

// ReadDirArgs lists a directory: by Path for the first batch, by the Handle
// of the previous reply for the next ones.
type ReadDirArgs struct {
	Path   string
	Handle uint64
}

// ReadDirReply is one batch of entries. A non-zero Handle means more follow;
// the caller must continue with it or close it.
type ReadDirReply struct {
	Entries []DirEntry
	Handle  uint64
	// Watch is as in Attr, for the directory listed: its entries are
	// reported on from then on.
	Watch uint64
}

// OpenArgs opens or creates a file. Flags are open(2) flags.
type OpenArgs struct {
	Path  string
	Flags int
	Mode  uint32
	Owner Owner // of a file O_CREAT makes
	// Inline, for a read-only open, asks for the contents of a regular
	// file shorter than this many bytes (at most MaxInline) with the
	// reply, so that reading a small file costs one call.
	Inline int
	// Data, at most MaxData bytes, is written from offset 0 once the file
	// is open, and the reply's attributes are read after it: a file made
	// through the mount and written before its first call arrives whole
	// with one call (see the client's create-behind). An open whose write
	// fails closes the file again and returns the error.
	Data []byte
}

// MaxInline bounds OpenArgs.Inline: one FUSE read.
const MaxInline = 128 << 10

// Owner is the caller that creates a file. A satellite running as root
// gives the new file to it, as the target's kernel would have; a zero Owner
// (root) leaves the file as created.
type Owner struct {
	Uid uint32
	Gid uint32
}

// OpenReply carries the handle and the attributes after opening. When
// Inline was asked for and the file was short enough, Whole is set and
// Data holds all of the file.
type OpenReply struct {
	Handle uint64
	Attr   Attr
	// Dir, for an open with O_CREAT, is the directory holding the file
	// as it is after the open: its mtime changed if the file was made.
	Dir   Attr
	Whole bool
	Data  []byte
	// Done is as in ReadReply.
	Done func() `codec:"-"`
}

// Release implements Releaser.
func (r *OpenReply) Release() {
	if r.Done != nil {
		r.Done()
	}
}

// ReadFilesArgs asks for the whole contents of several small regular files
// of the directory Dir, so that reading many small files (tar, cp -r, grep
// -r) does not cost one open each. Names are entries of Dir, tried in
// their order; at most MaxDirEntries. A file is left out of the reply when
// it is not a regular file, is MaxFile bytes or longer (MaxFile is at most
// MaxInline), cannot be opened with the server's own credentials, or
// changed while it was read; the reply ends before the first file that
// would bring its data beyond MaxTotal (at most MaxReadFiles) bytes.
type ReadFilesArgs struct {
	Dir      string
	Names    []string
	MaxFile  int
	MaxTotal int
}

// MaxReadFiles bounds ReadFilesArgs.MaxTotal. With the names and
// attributes of MaxDirEntries files, a reply stays well inside MaxFrame.
const MaxReadFiles = 1 << 20

// FileData is one file of a ReadFilesReply: its name in the directory, its
// attributes as fstat(2) gave them once it was read, and all of its data.
type FileData struct {
	Name string
	Attr Attr
	Data []byte
}

// ReadFilesReply holds the files read, in the order they were asked for.
type ReadFilesReply struct {
	Files []FileData
	// Done is as in ReadReply.
	Done func() `codec:"-"`
}

// Release implements Releaser.
func (r *ReadFilesReply) Release() {
	if r.Done != nil {
		r.Done()
	}
}

// HandleArgs names an open handle.
type HandleArgs struct {
	Handle uint64
	// More, for Close only, are more handles to close with the same
	// call: a client may gather the closes that follow releases.
	More []uint64
}

// FsyncArgs flushes a file to disk: through Handle, or when it is zero by
// opening Path (directories).
type FsyncArgs struct {
	Handle uint64
	Path   string
}

// ReadArgs reads Size bytes at Off.
type ReadArgs struct {
	Handle uint64
	Off    int64
	Size   int
}

// ReadReply holds the bytes read; fewer than asked means end of file.
type ReadReply struct {
	Data []byte
	// Done, if set, is called once the reply is on the wire, so that a
	// server can reuse Data's memory. It is not sent.
	Done func() `codec:"-"`

	frame *[]byte // in a client, the frame Data points into
}

func (r *ReadReply) tail() (any, []byte) { return &ReadReply{Data: []byte{}}, r.Data }

// keepFrame lets a client decode Data in place (see frameKeeper): a
// reply's data is not copied once more on its way to the caller.
func (r *ReadReply) keepFrame(f *[]byte) { r.frame = f }

// Recycle gives the memory of a reply a Client decoded back, for later
// replies; Data must not be used after, by anyone. Without it, the memory
// is the garbage collector's once Data is no longer referenced.
func (r *ReadReply) Recycle() {
	if r.frame != nil {
		putBuf(r.frame)
		r.frame = nil
	}
	r.Data = nil
}

// Release implements Releaser.
func (r *ReadReply) Release() {
	if r.Done != nil {
		r.Done()
	}
}

// WriteArgs writes Data at Off (at the end for a handle opened O_APPEND).
type WriteArgs struct {
	Handle uint64
	Off    int64
	Data   []byte
}

func (a *WriteArgs) tail() (any, []byte) {
	h := *a
	h.Data = []byte{}
	return &h, a.Data
}

// WriteReply says how much was written.
type WriteReply struct {
	N int
}

// Setattr valid bits.
const (
	SetMode uint32 = 1 << iota
	SetUid
	SetGid
	SetSize
	SetAtime
	SetMtime
	SetAtimeNow
	SetMtimeNow
)

// SetattrArgs changes the attributes named by Valid. With a non-zero Handle
// the size is changed through it (ftruncate), which works on a file whose
// mode no longer allows opening it.
type SetattrArgs struct {
	Path   string
	Handle uint64
	Valid  uint32
	Mode   uint32
	Uid    uint32
	Gid    uint32
	Size   int64
	Atime  int64
	Mtime  int64
}

// MkdirArgs creates a directory, or with Mknod any other node.
type MkdirArgs struct {
	Path  string
	Mode  uint32
	Dev   uint64
	Owner Owner
}

// RenameArgs renames Old to New; Flags are renameat2(2) flags.
type RenameArgs struct {
	Old   string
	New   string
	Flags uint32
}

// SymlinkArgs creates Path pointing at Target.
type SymlinkArgs struct {
	Target string
	Path   string
	Owner  Owner
}

// LinkArgs creates the hard link New to Old.
type LinkArgs struct {
	Old string
	New string
}

// ReadlinkReply is a symbolic link's target.
type ReadlinkReply struct {
	Target string
}

// StatfsReply reports the target filesystem holding a path.
type StatfsReply struct {
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	Namelen uint32
	Frsize  uint32
}

// XattrArgs addresses an extended attribute. Value and Flags are for
// Setxattr only; Getxattr and Listxattr return the whole value.
type XattrArgs struct {
	Path  string
	Name  string
	Value []byte
	Flags int
}

// XattrReply is a value, or for Listxattr the NUL-separated names.
type XattrReply struct {
	Value []byte
}

// Empty is the reply of requests that return nothing.
type Empty struct{}

// handle is shared by both ends so that they encode alike.
var handle = newHandle()

// argsHandle decodes requests in the server, and read replies in the
// client: their []byte and string values point into the frame, which is
// the handler's until it returns (see Handler), or the reply's for good
// (see frameKeeper), so that the data of a write or a read is not copied
// once more.
var argsHandle = func() *codec.MsgpackHandle {
	h := newHandle()
	h.ZeroCopy = true
	return h
}()

func newHandle() *codec.MsgpackHandle {
	var h codec.MsgpackHandle
	h.WriteExt = true // []byte as msgpack bin, not str
	h.StructToArray = true
	h.MaxInitLen = 64 << 10
	return &h
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
