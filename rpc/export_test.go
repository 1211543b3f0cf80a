package rpc

import (
	"bytes"
	"io"
	"syscall"

	"github.com/ugorji/go/codec"
)

// The external tests build and read raw frames with the same encoder the
// two ends use, so that they can play a peer that misbehaves.

// AppendRequest appends the frame a Client writes for one call.
func AppendRequest(b []byte, seq uint64, op Op, args any) []byte {
	return appendFrame(b, &header{Seq: seq, Op: op}, args)
}

// AppendReply appends the frame Serve writes for one reply: an error when
// errno is not zero, else result.
func AppendReply(b []byte, seq uint64, errno syscall.Errno, msg string, result any) []byte {
	if errno != 0 {
		result = nil
	}
	return appendFrame(b, &replyHeader{Seq: seq, Errno: uint32(errno), Msg: msg}, result)
}

func appendFrame(b []byte, head, body any) []byte {
	var buf bytes.Buffer
	if err := newFrameWriter(&buf).write(head, body); err != nil {
		panic(err)
	}
	return append(b, buf.Bytes()...)
}

// ReplyReader reads reply frames as a Client does.
type ReplyReader struct {
	fr  *frameReader
	dec *codec.Decoder
}

func NewReplyReader(r io.Reader) *ReplyReader {
	return &ReplyReader{fr: newFrameReader(r), dec: codec.NewDecoderBytes(nil, handle)}
}

// Next reads one reply and decodes its result, if it has one, into result.
func (rr *ReplyReader) Next(result any) (seq uint64, errno syscall.Errno, msg string, err error) {
	b, err := rr.fr.read()
	if err != nil {
		return 0, 0, "", err
	}
	defer putBuf(b)
	rr.dec.ResetBytes(*b)
	var h replyHeader
	if err := rr.dec.Decode(&h); err != nil {
		return 0, 0, "", err
	}
	if h.Errno == 0 && result != nil {
		err = rr.dec.Decode(result)
	}
	return h.Seq, syscall.Errno(h.Errno), h.Msg, err
}
