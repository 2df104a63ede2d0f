package bundle

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/opencontainers/go-digest"
)

// The seek table is the last frame of a bundle: a zstd skippable frame
//
//	magic (4, LE 0x184D2A5B) | frame size (4, LE) | table JSON | footer (32)
//
// and the footer, fixed-size so a reader finds it from the end of the file:
//
//	table length (8, LE) | frame offset (8, LE) | CRC-32C of JSON (4, LE) |
//	version (4, LE) | "FRYSEEK1"
//
// See docs/format.md.
const (
	seekFrameMagic   = 0x184D2A5B
	seekFooterSize   = 32
	seekFooterMagic  = "FRYSEEK1"
	seekTableVersion = 1
	// maxSeekTableBytes bounds what a reader will load; a table this large
	// would describe several hundred thousand entries.
	maxSeekTableBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SeekEntry locates one tar entry in the compressed file. Each entry
// (tar header, content and padding) is one zstd frame.
type SeekEntry struct {
	// Name is the tar entry name.
	Name string `json:"name"`
	// Digest of the entry content (empty for directories).
	Digest digest.Digest `json:"digest,omitempty"`
	// Size of the entry content in bytes.
	Size int64 `json:"size"`
	// Offset of the entry's zstd frame in the file.
	Offset int64 `json:"offset"`
	// Length of the entry's zstd frame in bytes.
	Length int64 `json:"length"`
}

// SeekTable lists every entry of a bundle in archive order.
type SeekTable struct {
	Entries []SeekEntry `json:"entries"`
}

// encodeSeekFrame returns the skippable frame holding t, to be written at
// file offset off.
func encodeSeekFrame(t *SeekTable, off int64) ([]byte, error) {
	js, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	payload := len(js) + seekFooterSize
	if payload > maxSeekTableBytes {
		return nil, fmt.Errorf("seek table of %d bytes exceeds the limit of %d", payload, maxSeekTableBytes)
	}
	buf := make([]byte, 0, 8+payload)
	buf = binary.LittleEndian.AppendUint32(buf, seekFrameMagic)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(payload))
	buf = append(buf, js...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(js)))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(off))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(js, castagnoli))
	buf = binary.LittleEndian.AppendUint32(buf, seekTableVersion)
	buf = append(buf, seekFooterMagic...)
	return buf, nil
}

// errNoSeekTable means the file has no (recognisable) seek table; readers
// fall back to a sequential read.
var errNoSeekTable = errors.New("no seek table")

// ReadSeekTable reads and validates the seek table at the end of a bundle of
// the given size. It returns an error wrapping ErrCorrupt when a table is
// present but invalid, and one for which errors.Is(err, ErrNotBundle) holds
// when there is none.
func ReadSeekTable(r io.ReaderAt, size int64) (*SeekTable, error) {
	t, _, err := readSeekTable(r, size)
	if errors.Is(err, errNoSeekTable) {
		return nil, fmt.Errorf("%w: %w", ErrNotBundle, err)
	}
	return t, err
}

// readSeekTable returns the table and the offset where its frame starts
// (the end of the compressed tar stream). A file whose last 8 bytes are not
// the footer magic has no table (errNoSeekTable); any other failure wraps
// ErrCorrupt.
func readSeekTable(r io.ReaderAt, size int64) (*SeekTable, int64, error) {
	if size < 8+seekFooterSize {
		return nil, 0, errNoSeekTable
	}
	var foot [seekFooterSize]byte
	if _, err := r.ReadAt(foot[:], size-seekFooterSize); err != nil {
		return nil, 0, fmt.Errorf("reading seek table footer: %w", err)
	}
	if string(foot[24:]) != seekFooterMagic {
		return nil, 0, errNoSeekTable
	}
	jsLen := binary.LittleEndian.Uint64(foot[0:])
	frameOff := binary.LittleEndian.Uint64(foot[8:])
	if jsLen > maxSeekTableBytes || frameOff > uint64(size) || frameOff+8+jsLen+seekFooterSize != uint64(size) {
		return nil, 0, seekCorrupt("footer does not match the file size (%d bytes)", size)
	}
	frame := make([]byte, size-int64(frameOff))
	if _, err := r.ReadAt(frame, int64(frameOff)); err != nil {
		return nil, 0, fmt.Errorf("reading seek table: %w", err)
	}
	t, err := parseSeekFrame(frame, int64(frameOff))
	return t, int64(frameOff), err
}

func seekCorrupt(format string, a ...any) error {
	return fmt.Errorf("%w: seek table: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// parseSeekFrame parses and validates the whole seek table frame (skippable
// frame header, JSON, footer) found at file offset off. Both the file reader,
// which finds the frame from the footer, and the stream reader, which meets
// it after the end-of-archive frame, call it.
func parseSeekFrame(frame []byte, off int64) (*SeekTable, error) {
	if len(frame) < 8+seekFooterSize || binary.LittleEndian.Uint32(frame) != seekFrameMagic ||
		int64(binary.LittleEndian.Uint32(frame[4:])) != int64(len(frame))-8 {
		return nil, seekCorrupt("frame header is not a seek table")
	}
	foot := frame[len(frame)-seekFooterSize:]
	js := frame[8 : len(frame)-seekFooterSize]
	if string(foot[24:]) != seekFooterMagic {
		return nil, seekCorrupt("footer magic is missing")
	}
	if v := binary.LittleEndian.Uint32(foot[20:]); v != seekTableVersion {
		return nil, seekCorrupt("unknown version %d", v)
	}
	if binary.LittleEndian.Uint64(foot[0:]) != uint64(len(js)) || binary.LittleEndian.Uint64(foot[8:]) != uint64(off) {
		return nil, seekCorrupt("footer does not match the table frame at offset %d", off)
	}
	if crc32.Checksum(js, castagnoli) != binary.LittleEndian.Uint32(foot[16:]) {
		return nil, seekCorrupt("checksum mismatch")
	}
	var t SeekTable
	if err := json.Unmarshal(js, &t); err != nil {
		return nil, seekCorrupt("%v", err)
	}
	if err := t.validate(off); err != nil {
		return nil, seekCorrupt("%v", err)
	}
	return &t, nil
}

// validate checks that the entries tile the file from offset 0 without gaps
// or overlaps, leave room for the end-of-archive frame before end, and have
// unique, allowed names and well-formed digests.
func (t *SeekTable) validate(end int64) error {
	if len(t.Entries) == 0 {
		return errors.New("lists no entries")
	}
	seen := make(map[string]bool, len(t.Entries))
	var next int64
	for i, e := range t.Entries {
		switch {
		case e.Offset != next:
			return fmt.Errorf("entry %d (%q) starts at offset %d, not where the previous one ends (%d)", i, truncate(e.Name, 100), e.Offset, next)
		case e.Length <= 0 || e.Size < 0:
			return fmt.Errorf("entry %d (%q) has length %d and size %d", i, truncate(e.Name, 100), e.Length, e.Size)
		case e.Length >= end-e.Offset:
			return fmt.Errorf("entry %d (%q, offset %d, length %d) leaves no room for the end-of-archive frame before the table (offset %d)", i, truncate(e.Name, 100), e.Offset, e.Length, end)
		}
		if err := checkEntryName(e.Name); err != nil {
			return err
		}
		if e.Digest != "" {
			if err := validateDigest(e.Digest); err != nil {
				return fmt.Errorf("entry %q: %v", e.Name, err)
			}
			if blobNameRe.MatchString(e.Name) && e.Digest != nameDigest(e.Name) {
				return fmt.Errorf("entry %q lists digest %s", e.Name, e.Digest)
			}
		}
		if seen[e.Name] {
			return fmt.Errorf("duplicate entry %q", e.Name)
		}
		seen[e.Name] = true
		next = e.Offset + e.Length
	}
	return nil
}

func (t *SeekTable) lookup() map[string]SeekEntry {
	m := make(map[string]SeekEntry, len(t.Entries))
	for _, e := range t.Entries {
		m[e.Name] = e
	}
	return m
}
