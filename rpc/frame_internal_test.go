package rpc

import (
	"bytes"
	"strings"
	"testing"
)

// TestWriteErrorFlushes checks that a message that cannot be sent does not
// strand the frames buffered before it: a writer leaves the flush to the
// next one in line, so the next one must flush even when its own message
// fails.
func TestWriteErrorFlushes(t *testing.T) {
	var out bytes.Buffer
	fw := newFrameWriter(&out)
	// Another writer is queued: the first frame is only buffered.
	fw.waiting.Add(1)
	if err := fw.write(&header{Seq: 1, Op: OpLstat}, &PathArgs{Path: "x"}); err != nil {
		t.Fatalf("write = %v, want nil", err)
	}
	if out.Len() != 0 {
		t.Fatalf("first frame written with a writer queued behind it (%d bytes), want it buffered", out.Len())
	}
	// The queued writer's message is too large.
	fw.waiting.Add(-1)
	err := fw.write(&header{Seq: 2, Op: OpWrite}, &WriteArgs{Data: make([]byte, MaxFrame)})
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("write of %d bytes = %v, want the size limit error", MaxFrame, err)
	}
	want := AppendRequest(nil, 1, OpLstat, &PathArgs{Path: "x"})
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("stream after the failed write = %x, want the first frame %x", out.Bytes(), want)
	}
	if fw.failed() != nil {
		t.Errorf("failed() = %v after a message error, want nil: the stream is fine", fw.failed())
	}
	if cap(fw.buf) > 2*MaxData {
		t.Errorf("encode buffer kept %d bytes after the oversized message, want at most %d", cap(fw.buf), 2*MaxData)
	}
}
