package bundle

// Security review (branch review): a stream read (ferry import -, and
// ferry verify / import of a file without a seek table, which read it with
// NewReader) records every zstd frame it meets in frameStream.frames, to
// check a seek table that may come at the end. Frames cost 9 bytes of input
// each (an empty single-segment frame) and 40 bytes of memory each (more
// with slice growth), and nothing bounds their number: memory grows with
// the input, ~5-9x its size, whatever the bundle's entries. An endless
// stream of empty frames on standard input grows memory until the process
// dies; the tar stream never moves.

import (
	"bytes"
	"runtime"
	"testing"
)

// emptyFrame is the smallest zstd data frame: single segment, content size
// 0, one empty raw last block.
var emptyFrame = []byte{0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x00, 0x01, 0x00, 0x00}

func TestReviewStreamMemoryBoundedByEntries(t *testing.T) {
	s := newSample([]byte("layer content, pretend gzip"))
	const n = 1 << 20 // 9 MiB of empty frames
	data := append(bytes.Repeat(emptyFrame, n), craft(t, s.entries())...)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the stream is refused (fine, if for the frames): %v", err)
	}
	err = consume(r)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	r.Close()
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if err == nil && grown > 16<<20 {
		t.Errorf("a %d-byte stream of %d entries and %d empty frames is accepted and holds %d MiB after reading: memory grows with the number of frames, not the entries",
			len(data), len(s.entries()), n, grown>>20)
	}
}
