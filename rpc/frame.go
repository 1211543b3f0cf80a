package rpc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ugorji/go/codec"
)

// A frame is a 4-byte big-endian length followed by that many bytes of
// msgpack: a header, then the arguments or result it announces.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > MaxFrame+4 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// frameWriter serializes frames from many goroutines onto one stream. A
// writer flushes only when no other frame is queued behind it, so a burst of
// small replies shares one write(2).
type frameWriter struct {
	waiting atomic.Int32
	mu      sync.Mutex
	bw      *bufio.Writer
	enc     *codec.Encoder
	buf     []byte
	err     error
}

func newFrameWriter(w io.Writer) *frameWriter {
	fw := &frameWriter{bw: bufio.NewWriterSize(w, 256<<10)}
	fw.enc = codec.NewEncoderBytes(&fw.buf, handle)
	return fw
}

// write encodes head and body as one frame. An error that leaves the
// stream usable (the message cannot be encoded or is too large) concerns
// this message alone; an error of the stream is kept and returned by every
// later write, and by failed.
func (fw *frameWriter) write(head, body any) error {
	fw.waiting.Add(1)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	last := fw.waiting.Add(-1) == 0
	if fw.err != nil {
		return fw.err
	}
	err := fw.buffer(head, body)
	if cap(fw.buf) > 2*MaxData {
		fw.buf = nil
	}
	// Earlier writers left their frames for this one to flush, even if its
	// own message failed.
	if last && fw.err == nil {
		if ferr := fw.bw.Flush(); ferr != nil {
			fw.err = ferr
			err = ferr
		}
	}
	return err
}

// buffer encodes one frame into bw.
func (fw *frameWriter) buffer(head, body any) error {
	fw.enc.ResetBytes(&fw.buf)
	if err := fw.enc.Encode(head); err != nil {
		return fmt.Errorf("rpc: encode header: %w", err)
	}
	if body != nil {
		if err := fw.enc.Encode(body); err != nil {
			return fmt.Errorf("rpc: encode %T: %w", body, err)
		}
	}
	n := len(fw.buf)
	if n > MaxFrame {
		return fmt.Errorf("rpc: message of %d bytes exceeds the %d byte limit", n, MaxFrame)
	}
	var lenb [4]byte
	binary.BigEndian.PutUint32(lenb[:], uint32(n))
	fw.bw.Write(lenb[:])
	if _, err := fw.bw.Write(fw.buf); err != nil {
		fw.err = err
		return err
	}
	return nil
}

// failed returns the error that broke the stream, or nil.
func (fw *frameWriter) failed() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.err
}

// frameReader reads frames from one goroutine.
type frameReader struct {
	br *bufio.Reader
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, 256<<10)}
}

// read returns the next frame's payload in a pooled buffer; the caller
// returns it with putBuf when done.
func (fr *frameReader) read() (*[]byte, error) {
	var lenb [4]byte
	if _, err := io.ReadFull(fr.br, lenb[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lenb[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("rpc: frame of %d bytes exceeds the %d byte limit (corrupt stream?)", n, MaxFrame)
	}
	b := getBuf()
	if cap(*b) < int(n) {
		*b = make([]byte, n)
	}
	*b = (*b)[:n]
	if _, err := io.ReadFull(fr.br, *b); err != nil {
		putBuf(b)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}
