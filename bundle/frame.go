package bundle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// The zstd frame structure (RFC 8878, section 3.1), read without decoding.
// Every reader of a bundle splits the file into frames with the code here,
// so the sequential reader, the seek-table reader and ferry verify agree on
// where each frame starts and ends (docs/format.md, section 2.1).

const (
	maxFrameHeader = 4 + 1 + 1 + 4 + 8 // magic, descriptor, window, dictionary ID, content size
	blockHeader    = 3
	maxBlockSize   = 128 << 10
	// skippable frames have magics 0x184D2A50 to 0x184D2A5F.
	skippableMask  = 0xFFFFFFF0
	skippableMagic = 0x184D2A50
)

// frameHeader is the parsed header of a zstd data frame.
type frameHeader struct {
	len      int   // bytes of the header, magic included
	fcs      int64 // Frame_Content_Size, or -1 when the frame does not say
	checksum bool
}

// errFrame marks a frame that is not valid zstd. Callers wrap it in
// ErrCorrupt with where the frame is.
var errFrame = errors.New("invalid zstd frame")

// parseFrameHeader parses the header at the start of b, which holds at
// least the first 5 bytes of the frame and, when available, up to
// maxFrameHeader. It returns the header length needed when b is too short.
func parseFrameHeader(b []byte) (frameHeader, error) {
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != zstdMagic {
		return frameHeader{}, fmt.Errorf("%w: no zstd frame magic", errFrame)
	}
	fhd := b[4]
	if fhd&0x08 != 0 {
		return frameHeader{}, fmt.Errorf("%w: reserved bit set in the frame header", errFrame)
	}
	single := fhd&0x20 != 0
	didLen := [4]int{0, 1, 2, 4}[fhd&3]
	fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcsLen = 1
	}
	h := frameHeader{len: 5 + didLen + fcsLen, fcs: -1, checksum: fhd&0x04 != 0}
	if !single {
		h.len++ // window descriptor
	}
	if didLen > 0 {
		return h, fmt.Errorf("%w: the frame uses a dictionary", errFrame)
	}
	if len(b) < h.len {
		return h, io.ErrShortBuffer
	}
	f := b[h.len-fcsLen : h.len]
	switch fcsLen {
	case 1:
		h.fcs = int64(f[0])
	case 2:
		h.fcs = int64(binary.LittleEndian.Uint16(f)) + 256
	case 4:
		h.fcs = int64(binary.LittleEndian.Uint32(f))
	case 8:
		v := binary.LittleEndian.Uint64(f)
		if v > 1<<62 {
			return h, fmt.Errorf("%w: content size %d is out of range", errFrame, v)
		}
		h.fcs = int64(v)
	}
	return h, nil
}

// parseBlockHeader returns the number of bytes that follow a block header
// and whether the block is the frame's last.
func parseBlockHeader(b []byte) (n int64, last bool, err error) {
	v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	size := int64(v >> 3)
	switch (v >> 1) & 3 {
	case 0, 2: // raw, compressed
		n = size
	case 1: // RLE: one byte repeated size times
		n = 1
	default:
		return 0, false, fmt.Errorf("%w: reserved block type", errFrame)
	}
	if size > maxBlockSize {
		return 0, false, fmt.Errorf("%w: block of %d bytes exceeds %d", errFrame, size, maxBlockSize)
	}
	return n, v&1 != 0, nil
}

// frameReader passes on exactly one zstd data frame from br and then
// returns io.EOF, so a decoder reading it decodes that frame and nothing
// else. A stream that ends inside the frame gives io.ErrUnexpectedEOF; bytes
// that are not a valid frame give an error wrapping errFrame.
type frameReader struct {
	br    *bufio.Reader
	hdr   frameHeader
	n     int64 // bytes passed on
	left  int64 // bytes of the current part still to pass on
	state int
	// the last bytes passed on
	tail    [8]byte
	tailLen int
}

const (
	frameStart = iota
	frameBlocks
	frameChecksum
	frameDone
)

func newFrameReader(br *bufio.Reader) *frameReader { return &frameReader{br: br} }

func (f *frameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if err := f.advance(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.br.Read(p)
	f.left -= int64(n)
	f.n += int64(n)
	f.keepTail(p[:n])
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (f *frameReader) keepTail(p []byte) {
	if len(p) >= len(f.tail) {
		f.tailLen = copy(f.tail[:], p[len(p)-len(f.tail):])
		return
	}
	keep := min(f.tailLen, len(f.tail)-len(p))
	copy(f.tail[:], f.tail[f.tailLen-keep:f.tailLen])
	f.tailLen = keep + copy(f.tail[keep:], p)
}

func (f *frameReader) peek(n int) ([]byte, error) {
	b, err := f.br.Peek(n)
	if len(b) < n && (err == io.EOF || err == nil) {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

// advance works out the length of the next part of the frame: the header,
// a block (its header and content), or the checksum.
func (f *frameReader) advance() error {
	switch f.state {
	case frameStart:
		b, err := f.peek(5)
		if err != nil {
			return err
		}
		h, err := parseFrameHeader(b)
		if err == io.ErrShortBuffer {
			if b, err = f.peek(h.len); err != nil {
				return err
			}
			h, err = parseFrameHeader(b)
		}
		if err != nil {
			return err
		}
		f.hdr, f.left, f.state = h, int64(h.len), frameBlocks
	case frameBlocks:
		b, err := f.peek(blockHeader)
		if err != nil {
			return err
		}
		n, last, err := parseBlockHeader(b)
		if err != nil {
			return err
		}
		f.left = blockHeader + n
		if last {
			f.state = frameChecksum
		}
	case frameChecksum:
		f.state = frameDone
		if f.hdr.checksum {
			f.left = 4
		}
	default:
		return io.EOF
	}
	return nil
}

// frameExtent returns the length and header of the zstd data frame that
// starts at off in ra, reading only the frame and block headers; it reads
// no further than off+limit.
func frameExtent(ra io.ReaderAt, off, limit int64) (int64, frameHeader, error) {
	var buf [maxFrameHeader]byte
	n, err := ra.ReadAt(buf[:min(int64(len(buf)), limit)], off)
	if n < 5 {
		return 0, frameHeader{}, frameReadErr(err)
	}
	h, err := parseFrameHeader(buf[:n])
	if err == io.ErrShortBuffer {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, h, err
	}
	pos := int64(h.len)
	for {
		if pos+blockHeader > limit {
			return 0, h, io.ErrUnexpectedEOF
		}
		if _, err := ra.ReadAt(buf[:blockHeader], off+pos); err != nil {
			return 0, h, frameReadErr(err)
		}
		n, last, err := parseBlockHeader(buf[:blockHeader])
		if err != nil {
			return 0, h, err
		}
		pos += blockHeader + n
		if last {
			break
		}
	}
	if h.checksum {
		pos += 4
	}
	if pos > limit {
		return 0, h, io.ErrUnexpectedEOF
	}
	return pos, h, nil
}

func frameReadErr(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isSkippable reports whether magic starts a zstd skippable frame.
func isSkippable(magic uint32) bool { return magic&skippableMask == skippableMagic }

// frameStream presents the data frames of a bundle stream as one
// decompressed stream (what `zstd -dc` gives) and records where each frame
// starts and ends, compressed and decompressed, so the seek table at the end
// of the stream can be checked against them. The only frame it accepts other
// than data frames is the seek table, last.
type frameStream struct {
	br  *bufio.Reader
	dec *zstd.Decoder
	fr  *frameReader // the data frame being decoded, or nil between frames

	off    int64 // compressed offset of the next frame
	out    int64 // decompressed bytes passed on
	cur    frameSpan
	frames []frameSpan
	// lastTail is the last bytes of the last data frame, to tell a seek
	// table footer that has no table frame before it.
	lastTail []byte

	table    *SeekTable
	tableOff int64
	ended    bool
	noData   bool // past the end-of-archive marker: no data frame may start
	// maxFrames is how many frames a stream that matches a seek table can
	// have met so far (one per entry read, plus the one being read and the
	// end-of-archive frame); frames beyond it are not recorded, so memory
	// follows the entries, not the frames, and a table then cannot match.
	maxFrames int
	dropped   bool
}

// frameSpan is one data frame: where it lies in the file and in the
// decompressed stream, and the content size it declares (-1 for none).
type frameSpan struct {
	off, length int64
	start, end  int64
	fcs         int64
}

func newFrameStream(br *bufio.Reader) (*frameStream, error) {
	dec, err := newDecoder(nil)
	if err != nil {
		return nil, err
	}
	return &frameStream{br: br, dec: dec}, nil
}

func (s *frameStream) close() { s.dec.Close() }

func (s *frameStream) Read(p []byte) (int, error) {
	for {
		if s.fr == nil {
			if s.ended {
				return 0, io.EOF
			}
			if err := s.startFrame(); err != nil {
				return 0, err
			}
			continue
		}
		n, err := s.dec.Read(p)
		s.out += int64(n)
		if err == io.EOF {
			if err := s.endFrame(); err != nil {
				return n, err
			}
			if n == 0 {
				continue
			}
			err = nil
		}
		if err != nil {
			err = s.frameErr(err)
		}
		return n, err
	}
}

func (s *frameStream) frameErr(err error) error {
	if errors.Is(err, errFrame) {
		return fmt.Errorf("%w: the frame at offset %d: %v", ErrCorrupt, s.cur.off, err)
	}
	return err
}

func (s *frameStream) startFrame() error {
	b, err := s.br.Peek(4)
	if len(b) == 0 && err == io.EOF {
		s.ended = true
		return nil
	}
	if len(b) < 4 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	magic := binary.LittleEndian.Uint32(b)
	switch {
	case magic == zstdMagic:
		if s.noData {
			return fmt.Errorf("%w: a zstd frame at offset %d follows the end-of-archive marker; nothing but the seek table may", ErrCorrupt, s.off)
		}
		s.fr = newFrameReader(s.br)
		if err := s.dec.Reset(s.fr); err != nil {
			return s.frameErr(err)
		}
		s.cur = frameSpan{off: s.off, start: s.out}
		return nil
	case magic == seekFrameMagic:
		return s.readTable()
	case isSkippable(magic):
		return fmt.Errorf("%w: skippable frame (magic %#x) at offset %d; a bundle holds none but the seek table", ErrCorrupt, magic, s.off)
	}
	return fmt.Errorf("%w: the bytes at offset %d are not a zstd frame", ErrCorrupt, s.off)
}

func (s *frameStream) endFrame() error {
	fr := s.fr
	if fr.state != frameDone || fr.left != 0 {
		// The decoder takes a frame header cut short for the end of the
		// stream.
		return fmt.Errorf("%w: the stream ends inside the frame at offset %d; copy the bundle again", ErrTruncated, s.cur.off)
	}
	if s.out == s.cur.start {
		// Work follows the content: a frame must hold some.
		return fmt.Errorf("%w: the zstd frame at offset %d holds nothing; bundles have no empty frames", ErrCorrupt, s.cur.off)
	}
	s.cur.length, s.cur.end, s.cur.fcs = fr.n, s.out, fr.hdr.fcs
	if len(s.frames) < max(s.maxFrames, 2) {
		s.frames = append(s.frames, s.cur)
	} else {
		s.dropped = true
	}
	s.lastTail = append(s.lastTail[:0], fr.tail[:fr.tailLen]...)
	s.off += fr.n
	s.fr = nil
	return nil
}

// readTable reads the seek table frame, which must end the stream.
func (s *frameStream) readTable() error {
	hdr, err := s.br.Peek(8)
	if len(hdr) < 8 {
		return fmt.Errorf("%w: the seek table frame at offset %d ends early (%v)", ErrTruncated, s.off, err)
	}
	size := int64(binary.LittleEndian.Uint32(hdr[4:]))
	if size < seekFooterSize || size > maxSeekTableBytes+seekFooterSize {
		return seekCorrupt("frame of %d bytes at offset %d", size, s.off)
	}
	frame := make([]byte, 8+size)
	if _, err := io.ReadFull(s.br, frame); err != nil {
		return fmt.Errorf("%w: the seek table frame at offset %d ends early (%v); copy the bundle again", ErrTruncated, s.off, err)
	}
	t, err := parseSeekFrame(frame, s.off)
	if err != nil {
		return err
	}
	s.table, s.tableOff = t, s.off
	s.off += int64(len(frame))
	if b, _ := s.br.Peek(1); len(b) > 0 {
		return fmt.Errorf("%w: %s bytes follow the seek table at offset %d; it must end the file", ErrCorrupt, "more", s.off)
	}
	s.ended = true
	return nil
}

// finish reads what follows the tar end-of-archive marker: the rest of the
// frame that holds it, zeros only, then nothing but the seek table.
func (s *frameStream) finish() error {
	s.noData = true
	var buf [4096]byte
	for {
		n, err := s.Read(buf[:])
		if !allZero(buf[:n]) {
			return fmt.Errorf("%w: data follows the tar end-of-archive marker (in the frame at offset %d)", ErrCorrupt, s.cur.off)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if s.table == nil && string(s.lastTail) == seekFooterMagic {
		return seekCorrupt("the file ends with a seek table footer, but no seek table frame precedes it")
	}
	return nil
}
