package launcher

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// demux reads the multiplexed stream of an exec without a TTY: frames of an
// 8-byte header (stream, 0, 0, 0, big-endian length) and payload. Stdout
// payload is returned by Read; stderr is copied to errw. It does what
// stdcopy.StdCopy does, without the goroutine and pipe that would put
// between the stream and the rpc client.
type demux struct {
	r    io.Reader
	errw io.Writer
	left int // stdout bytes left in the current frame
	hdr  [8]byte
}

func newDemux(r io.Reader, errw io.Writer) *demux {
	return &demux{r: r, errw: errw}
}

const (
	streamStdin = iota
	streamStdout
	streamStderr
	streamSystemErr
)

func (d *demux) Read(p []byte) (int, error) {
	for d.left == 0 {
		if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				return 0, fmt.Errorf("exec stream: truncated header %q", d.hdr[:])
			}
			return 0, err
		}
		if d.hdr[1] != 0 || d.hdr[2] != 0 || d.hdr[3] != 0 || d.hdr[0] > streamSystemErr {
			// Not a multiplexed stream: the engine wrote a plain error,
			// for instance when the exec could not start.
			rest, _ := io.ReadAll(io.LimitReader(d.r, 1024))
			return 0, fmt.Errorf("exec stream: %s", strconv.Quote(string(append(d.hdr[:], rest...))))
		}
		n := int(binary.BigEndian.Uint32(d.hdr[4:]))
		switch d.hdr[0] {
		case streamStdout:
			d.left = n
		case streamStderr, streamSystemErr:
			if _, err := io.CopyN(d.errw, d.r, int64(n)); err != nil {
				return 0, err
			}
		default:
			if _, err := io.CopyN(io.Discard, d.r, int64(n)); err != nil {
				return 0, err
			}
		}
	}
	if len(p) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= n
	if err == io.EOF && d.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
