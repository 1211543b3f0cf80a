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
	var tail []byte
	if t, ok := body.(tailer); ok {
		if h, data := t.tail(); len(data) >= minTail {
			body, tail = h, data
		}
	}
	fw.enc.ResetBytes(&fw.buf)
	if err := fw.enc.Encode(head); err != nil {
		return fmt.Errorf("rpc: encode header: %w", err)
	}
	if body != nil {
		if err := fw.enc.Encode(body); err != nil {
			return fmt.Errorf("rpc: encode %T: %w", body, err)
		}
	}
	if tail != nil {
		// The message ends with its data as an empty bin (c4 00):
		// put the real length there, and the bytes after it.
		b := fw.buf
		if len(b) < 2 || b[len(b)-2] != 0xc4 || b[len(b)-1] != 0 {
			return fmt.Errorf("rpc: encode %T: does not end with its data", body)
		}
		fw.buf = appendBinHeader(b[:len(b)-2], len(tail))
	}
	n := len(fw.buf) + len(tail)
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
	if _, err := fw.bw.Write(tail); err != nil {
		fw.err = err
		return err
	}
	return nil
}

// A tailer is a message whose last field is a []byte worth writing from
// where it is rather than copying it into the encoding first: tail returns
// the message with that field empty, and the field.
type tailer interface {
	tail() (head any, data []byte)
}

// minTail is the smallest data written from where it is.
const minTail = 16 << 10

// appendBinHeader appends the msgpack bin header for n bytes, as the codec
// writes it.
func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= 0xff:
		return append(b, 0xc4, byte(n))
	case n <= 0xffff:
		return append(b, 0xc5, byte(n>>8), byte(n))
	}
	return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
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
