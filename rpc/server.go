package rpc

import (
	"errors"
	"fmt"
	"io"

	"github.com/ugorji/go/codec"
)

// Handler serves the requests of one session. Its methods are called
// concurrently, one goroutine per request in flight. A method must not
// retain its arguments after it returns: they live in a reused buffer.
type Handler interface {
	Hello(*HelloArgs) (*HelloReply, error)
	Lstat(*PathArgs) (*Attr, error)
	ReadDir(*ReadDirArgs) (*ReadDirReply, error)
	Open(*OpenArgs) (*OpenReply, error)
	Read(*ReadArgs) (*ReadReply, error)
	Write(*WriteArgs) (*WriteReply, error)
	Fsync(*FsyncArgs) (*Empty, error)
	Fstat(*HandleArgs) (*Attr, error)
	Close(*HandleArgs) (*Empty, error)
	Setattr(*SetattrArgs) (*Attr, error)
	Mkdir(*MkdirArgs) (*Attr, error)
	Rmdir(*PathArgs) (*Empty, error)
	Unlink(*PathArgs) (*Empty, error)
	Rename(*RenameArgs) (*Empty, error)
	Symlink(*SymlinkArgs) (*Attr, error)
	Readlink(*PathArgs) (*ReadlinkReply, error)
	Link(*LinkArgs) (*Attr, error)
	Mknod(*MkdirArgs) (*Attr, error)
	Statfs(*PathArgs) (*StatfsReply, error)
	Getxattr(*XattrArgs) (*XattrReply, error)
	Setxattr(*XattrArgs) (*Empty, error)
	Listxattr(*XattrArgs) (*XattrReply, error)
	Removexattr(*XattrArgs) (*Empty, error)
	ReadFiles(*ReadFilesArgs) (*ReadFilesReply, error)
}

// Releaser is implemented by replies that hold pooled memory; the server
// calls Release once the reply is on the wire.
type Releaser interface {
	Release()
}

// A Notifier is a Handler that also sends messages of its own (Notify).
// Serve calls Notify once, before it serves a request, with the function
// that sends one; it is safe for concurrent use and fails once the stream
// is broken.
type Notifier interface {
	Notify(send func(*Notify) error)
}

type method struct {
	newArgs func() any
	call    func(h Handler, args any) (any, error)
}

func m[A, R any](f func(Handler, *A) (*R, error)) method {
	return method{
		newArgs: func() any { return new(A) },
		call:    func(h Handler, a any) (any, error) { return f(h, a.(*A)) },
	}
}

var methods = [opMax]method{
	OpHello:       m(Handler.Hello),
	OpLstat:       m(Handler.Lstat),
	OpReadDir:     m(Handler.ReadDir),
	OpOpen:        m(Handler.Open),
	OpRead:        m(Handler.Read),
	OpWrite:       m(Handler.Write),
	OpFsync:       m(Handler.Fsync),
	OpClose:       m(Handler.Close),
	OpSetattr:     m(Handler.Setattr),
	OpMkdir:       m(Handler.Mkdir),
	OpRmdir:       m(Handler.Rmdir),
	OpUnlink:      m(Handler.Unlink),
	OpRename:      m(Handler.Rename),
	OpSymlink:     m(Handler.Symlink),
	OpReadlink:    m(Handler.Readlink),
	OpLink:        m(Handler.Link),
	OpMknod:       m(Handler.Mknod),
	OpStatfs:      m(Handler.Statfs),
	OpGetxattr:    m(Handler.Getxattr),
	OpSetxattr:    m(Handler.Setxattr),
	OpListxattr:   m(Handler.Listxattr),
	OpRemovexattr: m(Handler.Removexattr),
	OpFstat:       m(Handler.Fstat),
	OpReadFiles:   m(Handler.ReadFiles),
}

// maxInFlight bounds the requests a server runs at once; further requests
// wait in the stream. It is far above what the kernel keeps in flight, so
// that requests stuck in the target (a fifo, a hung network filesystem)
// cannot hold up the others.
const maxInFlight = 1024

// Serve reads requests from r, runs them on h and writes the replies to w
// until r ends. It returns nil at a clean end of r, and an error when the
// stream is corrupt or w fails. A request that cannot be decoded gets an
// error reply; it never stops the server. Serve does not wait for requests
// still running when r ends (one may be blocked on a fifo); their replies
// are dropped.
func Serve(r io.Reader, w io.Writer, h Handler) error {
	fr := newFrameReader(r)
	fw := newFrameWriter(w)
	dec := codec.NewDecoderBytes(nil, argsHandle)
	sem := make(chan struct{}, maxInFlight)
	if n, ok := h.(Notifier); ok {
		n.Notify(func(m *Notify) error { return fw.write(&replyHeader{}, m) })
	}
	for {
		b, err := fr.read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var hd header
		dec.ResetBytes(*b)
		if err := dec.Decode(&hd); err != nil {
			putBuf(b)
			// Without a sequence number no reply can be matched; the
			// stream is out of step.
			return fmt.Errorf("rpc: bad request header: %v", err)
		}
		if hd.Op == 0 || hd.Op >= opMax {
			putBuf(b)
			rh := replyHeader{Seq: hd.Seq}
			errorReply(&rh, hd.Op, errUnknownOp)
			if err := fw.write(&rh, nil); err != nil {
				return err
			}
			continue
		}
		md := methods[hd.Op]
		args := md.newArgs()
		derr := dec.Decode(args)
		if derr != nil {
			putBuf(b)
			rh := replyHeader{Seq: hd.Seq}
			errorReply(&rh, hd.Op, fmt.Errorf("bad arguments: %w", errInvalid(derr)))
			if err := fw.write(&rh, nil); err != nil {
				return err
			}
			continue
		}
		sem <- struct{}{}
		go func(hd header) {
			defer func() { <-sem }()
			// The arguments point into the frame (argsHandle).
			defer putBuf(b)
			reply, err := safeCall(md, h, args)
			rh := replyHeader{Seq: hd.Seq}
			if err != nil {
				errorReply(&rh, hd.Op, err)
				fw.write(&rh, nil)
				return
			}
			werr := fw.write(&rh, reply)
			if rl, ok := reply.(Releaser); ok {
				rl.Release()
			}
			if werr != nil && werr != fw.failed() {
				// The reply cannot be sent (too large, or not
				// encodable): fail the call rather than leave it
				// waiting for good.
				rh = replyHeader{Seq: hd.Seq}
				errorReply(&rh, hd.Op, werr)
				fw.write(&rh, nil)
			}
		}(hd)
	}
}

// safeCall runs one request, turning a panic into an error reply so that a
// bug hit by one request does not end the session.
func safeCall(md method, h Handler, args any) (reply any, err error) {
	defer func() {
		if p := recover(); p != nil {
			reply, err = nil, fmt.Errorf("internal error: %v", p)
		}
	}()
	return md.call(h, args)
}
