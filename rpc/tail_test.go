package rpc

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ugorji/go/codec"
)

// TestTailFrames checks that a message whose data is written from where it
// is (tailer) makes the very frame the codec would have made, around each
// of msgpack's bin length sizes.
func TestTailFrames(t *testing.T) {
	for _, n := range []int{0, 100, minTail - 1, minTail, 0xffff, 0x10000, 1 << 20} {
		data := bytes.Repeat([]byte{7, 8, 9}, n/3+1)[:n]
		for _, body := range []any{
			&ReadReply{Data: data},
			&WriteArgs{Handle: 42, Off: 1 << 40, Data: data},
		} {
			var got bytes.Buffer
			fw := newFrameWriter(&got)
			head := &header{Seq: 7, Op: OpRead}
			if err := fw.write(head, body); err != nil {
				t.Fatalf("%T of %d bytes: %v", body, n, err)
			}
			var want []byte
			enc := codec.NewEncoderBytes(&want, handle)
			if err := enc.Encode(head); err != nil {
				t.Fatal(err)
			}
			if err := enc.Encode(body); err != nil {
				t.Fatal(err)
			}
			b := got.Bytes()
			if len(b) < 4 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
				t.Fatalf("%T of %d bytes: frame length %d for %d bytes", body, n, binary.BigEndian.Uint32(b), len(b)-4)
			}
			if !bytes.Equal(b[4:], want) {
				t.Errorf("%T of %d bytes: frame differs from the codec's encoding", body, n)
			}
		}
	}
}
