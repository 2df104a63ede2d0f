package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// A stream whose last data frame ends in the seek table's footer magic, but
// with no table frame, is refused as the file reader refuses it (a footer
// with no table before it). Only a crafted frame can end that way; the rule
// is checked on the stream state directly.
func TestFooterWithoutTable(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	fs, err := newFrameStream(bufio.NewReader(bytes.NewReader(enc.EncodeAll(make([]byte, 1024), nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer fs.close()
	if _, err := fs.Read(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	fs.lastTail = []byte(seekFooterMagic)
	fs.fr.tailLen = copy(fs.fr.tail[:], seekFooterMagic)
	err = fs.finish()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "seek table: the file ends with a seek table footer, but no seek table frame precedes it") {
		t.Fatalf("got %v", err)
	}
}

// The frame parser: header sizes, content sizes and block types.
func TestParseFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		len  int
		fcs  int64
		err  string
	}{
		{"single segment, 1-byte size", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 200}, 6, 200, ""},
		{"2-byte size", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x40, 0x38, 0x00, 0x01}, 8, 256 + 256, ""},
		{"no size", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38}, 6, -1, ""},
		{"reserved bit", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x08, 0x38}, 0, 0, "reserved bit set"},
		{"dictionary", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x38, 1}, 0, 0, "uses a dictionary"},
		{"not zstd", []byte("hello"), 0, 0, "no zstd frame magic"},
	} {
		h, err := parseFrameHeader(tc.b)
		switch {
		case tc.err != "":
			if !errors.Is(err, errFrame) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want %q", tc.name, err, tc.err)
			}
		case err != nil || h.len != tc.len || h.fcs != tc.fcs:
			t.Errorf("%s: got %+v, %v; want length %d, content size %d", tc.name, h, err, tc.len, tc.fcs)
		}
	}
	if _, _, err := parseBlockHeader([]byte{0x06, 0, 0}); !errors.Is(err, errFrame) || !strings.Contains(err.Error(), "reserved block type") {
		t.Errorf("reserved block type: %v", err)
	}
	big := uint32(maxBlockSize+1) << 3
	if _, _, err := parseBlockHeader([]byte{byte(big), byte(big >> 8), byte(big >> 16)}); !errors.Is(err, errFrame) || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized block: %v", err)
	}
}
