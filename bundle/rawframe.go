package bundle

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/cespare/xxhash/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Content that is already compressed (gzip and zstd layers, the common case)
// gains well under 1% from a second zstd pass, which costs a full scan of
// the data. Such an entry is stored instead: a standard zstd frame made of
// raw blocks, which every zstd decoder reads, costs a copy and an XXH64 to
// write, and a copy to read.

const (
	rawBlockMax = 128 << 10 // zstd's largest block
	// rawWindowDescriptor declares a 128 KiB window (exponent 7, mantissa
	// 0): raw blocks reference nothing, so decoders need no more.
	rawWindowDescriptor = 0x38
	// rawFrameDescriptor: 8-byte content size, not single segment, content
	// checksum, no dictionary.
	rawFrameDescriptor = 0xC4
	// storeMinSize is the smallest blob considered for storing: below it the
	// saving is nothing and small configs compress well.
	storeMinSize = 64 << 10
)

// storedBlob reports whether desc is a layer the writer stores rather than
// compresses by its descriptor alone: 64 KiB or more, with a gzip or zstd
// media type. The decision rests on the descriptor, so the archive order and
// every such frame's length are known before the content is fetched.
func storedBlob(desc ocispec.Descriptor) bool {
	if desc.Size < storeMinSize {
		return false
	}
	mt := desc.MediaType
	return strings.HasSuffix(mt, "+gzip") || strings.HasSuffix(mt, "+zstd") ||
		strings.HasSuffix(mt, ".tar.gzip") || strings.HasSuffix(mt, ".tar.zstd")
}

// stores is the one decision between storing and compressing an entry of
// size bytes: never with CompressAll or below 64 KiB; always for a blob whose
// descriptor says it is compressed (storedBlob); otherwise when its content
// starts like a gzip or zstd stream (head, its first bytes, when known).
func (o EncoderOptions) stores(desc ocispec.Descriptor, head []byte) bool {
	switch {
	case o.CompressAll || desc.Size < storeMinSize:
		return false
	case storedBlob(desc):
		return true
	}
	return compressedMagic(head)
}

// storedFrameLength is the length of the stored frame of an entry whose tar
// header is hdrLen bytes and content size bytes.
func storedFrameLength(hdrLen int, size int64) (int64, error) {
	if size < 0 || size > maxStoredSize {
		return 0, fmt.Errorf("%w: blob size %d is out of range", ErrCorrupt, size)
	}
	content := int64(hdrLen) + size + padding(size)
	blocks := (content + rawBlockMax - 1) / rawBlockMax
	return 4 + 1 + 1 + 8 + content + 3*blocks + 4, nil
}

// maxStoredSize bounds the size of a stored blob (1 PiB), so frame
// arithmetic cannot overflow whatever a manifest claims.
const maxStoredSize = 1 << 50

// compressedMagic reports whether p starts like a gzip or zstd stream.
func compressedMagic(p []byte) bool {
	return len(p) >= 4 && (p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08 || binary.LittleEndian.Uint32(p) == zstdMagic)
}

// storeFrame writes hdr, then exactly size bytes of r, then pad zero bytes,
// as one zstd frame of raw blocks, using buf (at least rawBlockMax+3 bytes).
func storeFrame(dst io.Writer, buf []byte, hdr []byte, r io.Reader, size, pad int64) error {
	total := int64(len(hdr)) + size + pad
	var fh [4 + 1 + 1 + 8]byte
	binary.LittleEndian.PutUint32(fh[:], zstdMagic)
	fh[4] = rawFrameDescriptor
	fh[5] = rawWindowDescriptor
	binary.LittleEndian.PutUint64(fh[6:], uint64(total))
	if _, err := dst.Write(fh[:]); err != nil {
		return err
	}
	h := xxhash.New()
	block := buf[:3+rawBlockMax]
	var done int64
	fill := func(p []byte) (int, error) {
		n := 0
		// Header first, then content, then padding.
		if done < int64(len(hdr)) {
			n += copy(p, hdr[done:])
		}
		if n < len(p) && done+int64(n) < int64(len(hdr))+size {
			want := min(int64(len(p)-n), int64(len(hdr))+size-done-int64(n))
			m, err := io.ReadFull(r, p[n:n+int(want)])
			n += m
			if err != nil {
				if err == io.ErrUnexpectedEOF || err == io.EOF {
					return n, fmt.Errorf("%w: got %d content bytes, want %d", ErrDigestMismatch, done+int64(n)-int64(len(hdr)), size)
				}
				return n, err
			}
		}
		for n < len(p) && done+int64(n) < total {
			n += copy(p[n:], zeros[:min(int64(len(p)-n), total-done-int64(n))])
		}
		return n, nil
	}
	for done < total {
		want := min(int64(rawBlockMax), total-done)
		n, err := fill(block[3 : 3+want])
		if err != nil {
			return err
		}
		done += int64(n)
		bh := uint32(n) << 3 // block type 0: raw
		if done == total {
			bh |= 1 // last block
		}
		block[0], block[1], block[2] = byte(bh), byte(bh>>8), byte(bh>>16)
		h.Write(block[3 : 3+n])
		if _, err := dst.Write(block[:3+n]); err != nil {
			return err
		}
	}
	// The content must end exactly here: a longer stream is refused, and
	// reading to the end makes a verifying reader check the digest.
	var one [1]byte
	if n, err := io.ReadFull(r, one[:]); n > 0 {
		return fmt.Errorf("%w: content is longer than %d bytes", ErrDigestMismatch, size)
	} else if err != io.EOF {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], uint32(h.Sum64()))
	_, err := dst.Write(sum[:])
	return err
}
