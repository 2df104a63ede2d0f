package bundle

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// emptyFrame is the smallest zstd data frame: single segment, content size
// 0, one empty raw last block.
var emptyFrame = []byte{0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x00, 0x01, 0x00, 0x00}

// A stream read (ferry import -, and verify or import of a file without a
// seek table) keeps memory and work following the entries, not the zstd
// frames: an empty frame is refused (an endless run of them would never
// move the tar stream), and frames beyond what a seek table could list are
// not recorded. (Found by the security review.)
func TestStreamFramesBounded(t *testing.T) {
	s := newSample([]byte("layer content, pretend gzip"))
	valid := craft(t, s.entries())
	err := readAll(append(append(bytes.Clone(emptyFrame), emptyFrame...), valid...))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "the zstd frame at offset 0 holds nothing; bundles have no empty frames") {
		t.Errorf("empty frames: got %v", err)
	}

	// The same archive cut into 1-byte frames: valid, read in memory that
	// does not grow with the frames.
	plain, err := zstd.NewReader(nil) // for DecodeAll only: no stream
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, err := plain.DecodeAll(valid, nil)
	plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	var tiny []byte
	for _, b := range tarBytes {
		tiny = enc.EncodeAll([]byte{b}, tiny)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(tiny))
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	if err := consume(r); err != nil {
		t.Fatalf("an archive in %d one-byte frames: %v", len(tarBytes), err)
	}
	frames = len(r.fs.frames)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	r.Close()
	if frames > len(s.entries())+2 || !r.fs.dropped {
		t.Errorf("%d frames recorded for %d entries (dropped %v)", frames, len(s.entries()), r.fs.dropped)
	}
	t.Logf("%d one-byte frames: %d recorded, heap grew %d KiB", len(tarBytes), frames, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)

	// Such a stream cannot match a seek table.
	frame, err := encodeSeekFrame(&SeekTable{Entries: []SeekEntry{{Name: LayoutFile, Offset: 0, Length: int64(len(tiny)) - 1}}}, int64(len(tiny)))
	if err != nil {
		t.Fatal(err)
	}
	err = readAll(append(bytes.Clone(tiny), frame...))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "seek table: the archive has more zstd frames than entries") {
		t.Errorf("a table after more frames than entries: got %v", err)
	}
}
