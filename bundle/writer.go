package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	_ "crypto/sha256" // digest algorithms accepted in bundles
	_ "crypto/sha512"
)

// EncoderOptions tune compression. The zero value means the documented
// defaults.
type EncoderOptions struct {
	// Level is the zstd encoder level (zstd.SpeedFastest ... zstd.SpeedBestCompression).
	// Zero means zstd.SpeedDefault (comparable to zstd -3).
	Level zstd.EncoderLevel
	// CompressAll compresses every entry. By default a blob of 64 KiB or
	// more whose content starts like a gzip or zstd stream is stored in raw
	// zstd blocks instead: a second compression would gain well under 1%
	// for a full scan of the data.
	CompressAll bool
}

func (o EncoderOptions) newZstd() *zstd.Encoder {
	level := o.Level
	if level == 0 {
		level = zstd.SpeedDefault
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true),
		// A 4 MiB window keeps each encoder small (memory is per parallel
		// job, not per bundle); gzip layers gain nothing from a larger one.
		zstd.WithWindowSize(4<<20),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		panic(err) // only fails on invalid options, which are constant here
	}
	return enc
}

// Encoder turns one archive entry into one zstd frame. It is not safe for
// concurrent use; give each goroutine its own.
type Encoder struct {
	opts  EncoderOptions
	enc   *zstd.Encoder // made on first use: stored entries need none
	buf   []byte
	block []byte // for stored frames, allocated on first use
}

// NewEncoder returns an Encoder.
func NewEncoder(opts EncoderOptions) *Encoder {
	return &Encoder{opts: opts}
}

// EncodedEntry describes a frame produced by Encoder.EncodeBlob.
type EncodedEntry struct {
	Name   string
	Digest digest.Digest
	Size   int64 // content bytes
	Length int64 // compressed frame bytes
}

var epoch = time.Unix(0, 0).UTC()

func tarHeader(name string, size int64, dir bool) ([]byte, error) {
	h := &tar.Header{Name: name, Size: size, Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg}
	if dir {
		h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func padding(size int64) int64 { return (512 - size%512) % 512 }

var zeros [1024]byte

// EncodeBlob writes the archive entry for the blob desc, with content read
// from r, to dst as one zstd frame. The content is verified against the
// descriptor's digest and size while it streams; on a mismatch the error
// wraps ErrDigestMismatch and what was written to dst must be discarded.
func (e *Encoder) EncodeBlob(dst io.Writer, desc ocispec.Descriptor, r io.Reader) (EncodedEntry, error) {
	return e.encodeVerified(dst, desc, NewVerifyReader(r, desc))
}

// encodeVerified is EncodeBlob for content its reader already verifies
// against desc (the engine's sources do), hashed once rather than twice.
func (e *Encoder) encodeVerified(dst io.Writer, desc ocispec.Descriptor, r io.Reader) (EncodedEntry, error) {
	if err := validateDigest(desc.Digest); err != nil {
		return EncodedEntry{}, err
	}
	name := BlobPath(desc.Digest)
	n, err := e.encode(dst, name, desc.MediaType, desc.Size, false, r)
	return EncodedEntry{Name: name, Digest: desc.Digest, Size: desc.Size, Length: n}, err
}

func (e *Encoder) encode(dst io.Writer, name, mediaType string, size int64, dir bool, r io.Reader) (int64, error) {
	hdr, err := tarHeader(name, size, dir)
	if err != nil {
		return 0, fmt.Errorf("tar header for %s: %w", name, err)
	}
	cw := &countingWriter{w: dst}
	pad := padding(size)
	if !dir && size >= storeMinSize {
		var head [4]byte
		n, err := io.ReadFull(r, head[:])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return 0, err
		}
		r = io.MultiReader(bytes.NewReader(head[:n]), r)
		if e.opts.stores(ocispec.Descriptor{MediaType: mediaType, Size: size}, head[:n]) {
			if e.block == nil {
				e.block = make([]byte, 3+rawBlockMax)
			}
			return cw.n, storeFrame(cw, e.block, hdr, r, size, pad)
		}
	}
	// A zstd encoder holds its window (several MiB): made only when
	// something is compressed.
	if e.enc == nil {
		e.enc, e.buf = e.opts.newZstd(), make([]byte, 256<<10)
	}
	e.enc.ResetContentSize(cw, int64(len(hdr))+size+pad)
	if _, err := e.enc.Write(hdr); err != nil {
		return cw.n, err
	}
	if r != nil {
		// Read to the end even when size is 0: the verifying reader checks
		// the digest there (an empty blob under another digest is refused).
		n, err := io.CopyBuffer(e.enc, r, e.buf)
		if err == nil && n != size {
			err = fmt.Errorf("%s: %w: got %d bytes, want %d", name, ErrDigestMismatch, n, size)
		}
		if err != nil {
			e.enc.Reset(io.Discard) // drop the frame in progress
			return cw.n, err
		}
	}
	if _, err := e.enc.Write(zeros[:pad]); err != nil {
		return cw.n, err
	}
	if err := e.enc.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// Writer writes a bundle: a sequence of zstd frames, one per tar entry,
// followed by the tar end-of-archive frame and the seek table frame. Entries
// must be written in the order docs/format.md prescribes: oci-layout,
// index.json, signature files, then blobs (manifests and indexes, configs,
// layers). Writer adds the blobs/ directory entries itself.
type Writer struct {
	w     *countingWriter
	e     *Encoder
	table SeekTable
	dirs  map[string]bool
	names map[string]bool
	err   error
}

// NewWriter returns a Writer on w. Close must be called to complete the
// archive; it does not close w.
func NewWriter(w io.Writer, opts EncoderOptions) *Writer {
	return &Writer{w: &countingWriter{w: w}, e: NewEncoder(opts), dirs: map[string]bool{}, names: map[string]bool{}}
}

// WriteFile writes a metadata entry (oci-layout, index.json, signature
// files) held in memory.
func (w *Writer) WriteFile(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if err := checkEntryName(name); err != nil {
		return err
	}
	return w.add(SeekEntry{Name: name, Digest: digest.FromBytes(data), Size: int64(len(data))}, "", false, bytes.NewReader(data))
}

// WriteBlob compresses and writes the blob desc with content from r,
// verifying digest and size while it streams.
func (w *Writer) WriteBlob(desc ocispec.Descriptor, r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if err := validateDigest(desc.Digest); err != nil {
		return err
	}
	if err := w.blobDirs(desc.Digest); err != nil {
		return err
	}
	return w.add(SeekEntry{Name: BlobPath(desc.Digest), Digest: desc.Digest, Size: desc.Size}, desc.MediaType, false, NewVerifyReader(r, desc))
}

// AppendEncoded appends a frame made by Encoder.EncodeBlob; frame yields
// exactly e.Length bytes. This lets callers compress blobs in parallel and
// still write them in a deterministic order.
func (w *Writer) AppendEncoded(e EncodedEntry, frame io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if err := w.blobDirs(e.Digest); err != nil {
		return err
	}
	if w.names[e.Name] {
		return fmt.Errorf("%w: entry %s written twice", ErrCorrupt, e.Name)
	}
	off := w.w.n
	n, err := io.Copy(w.w, frame)
	if err == nil && n != e.Length {
		err = fmt.Errorf("appending %s: frame is %d bytes, want %d", e.Name, n, e.Length)
	}
	if err != nil {
		w.err = err
		return err
	}
	w.names[e.Name] = true
	w.table.Entries = append(w.table.Entries, SeekEntry{Name: e.Name, Digest: e.Digest, Size: e.Size, Offset: off, Length: n})
	return nil
}

// reserveStored appends the entry of the stored blob desc (see storedBlob)
// without writing it: the output, which must be an io.WriteSeeker, skips the
// frame's length, and the caller writes the frame at the returned offset
// with Encoder.EncodeBlob before the file is used. This lets blobs be
// fetched in parallel straight into their place in the file.
func (w *Writer) reserveStored(desc ocispec.Descriptor) (offset, length int64, err error) {
	if w.err != nil {
		return 0, 0, w.err
	}
	ws, ok := w.w.w.(io.WriteSeeker)
	if !ok {
		return 0, 0, errors.New("bundle writer: output cannot seek")
	}
	fail := func(err error) (int64, int64, error) {
		w.err = fmt.Errorf("blob %s: %w", desc.Digest, err)
		return 0, 0, w.err
	}
	if err := validateDigest(desc.Digest); err != nil {
		return fail(err)
	}
	if err := w.blobDirs(desc.Digest); err != nil {
		return 0, 0, err
	}
	name := BlobPath(desc.Digest)
	if w.names[name] {
		return fail(fmt.Errorf("%w: entry %s written twice", ErrCorrupt, name))
	}
	hdr, err := tarHeader(name, desc.Size, false)
	if err != nil {
		return fail(err)
	}
	length, err = storedFrameLength(len(hdr), desc.Size)
	if err != nil {
		return fail(err)
	}
	offset = w.w.n
	if _, err := ws.Seek(length, io.SeekCurrent); err != nil {
		return fail(err)
	}
	w.w.n += length
	w.names[name] = true
	w.table.Entries = append(w.table.Entries, SeekEntry{Name: name, Digest: desc.Digest, Size: desc.Size, Offset: offset, Length: length})
	return offset, length, nil
}

func (w *Writer) blobDirs(d digest.Digest) error {
	for _, dir := range []string{BlobsDir + "/", BlobsDir + "/" + string(d.Algorithm()) + "/"} {
		if !w.dirs[dir] {
			w.dirs[dir] = true
			if err := w.add(SeekEntry{Name: dir}, "", true, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) add(se SeekEntry, mediaType string, dir bool, r io.Reader) error {
	if w.names[se.Name] {
		w.err = fmt.Errorf("%w: entry %s written twice", ErrCorrupt, se.Name)
		return w.err
	}
	off := w.w.n
	n, err := w.e.encode(w.w, se.Name, mediaType, se.Size, dir, r)
	if err != nil {
		w.err = err
		return err
	}
	w.names[se.Name] = true
	se.Offset, se.Length = off, n
	w.table.Entries = append(w.table.Entries, se)
	return nil
}

// Close writes the tar end-of-archive frame and the seek table. The archive
// is complete only when Close returns nil.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = errors.New("bundle writer is closed")
	if w.e.enc == nil {
		w.e.enc = w.e.opts.newZstd()
	}
	w.e.enc.ResetContentSize(w.w, int64(len(zeros)))
	if _, err := w.e.enc.Write(zeros[:]); err != nil {
		return err
	}
	if err := w.e.enc.Close(); err != nil {
		return err
	}
	frame, err := encodeSeekFrame(&w.table, w.w.n)
	if err != nil {
		return err
	}
	_, err = w.w.Write(frame)
	return err
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.w.n }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewVerifyReader returns a reader that yields the content of r and fails
// with an error wrapping ErrDigestMismatch if it is longer or shorter than
// desc.Size or does not hash to desc.Digest. The check happens before the
// final io.EOF is returned, so a consumer that stops at the first error never
// accepts bad content.
func NewVerifyReader(r io.Reader, desc ocispec.Descriptor) io.Reader {
	var h hash.Hash
	if validateDigest(desc.Digest) == nil && desc.Digest.Algorithm().Available() {
		h = desc.Digest.Algorithm().Hash()
	}
	return &verifyReader{r: io.LimitReader(r, desc.Size+1), h: h, desc: desc}
}

type verifyReader struct {
	r    io.Reader
	h    hash.Hash
	desc ocispec.Descriptor
	n    int64
	err  error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	if v.n > v.desc.Size {
		v.err = fmt.Errorf("%w: blob %s is larger than its descriptor says (%d bytes)", ErrDigestMismatch, v.desc.Digest, v.desc.Size)
		return 0, v.err
	}
	if err == io.EOF {
		switch {
		case v.n < v.desc.Size:
			v.err = fmt.Errorf("%w: blob %s is %d bytes, descriptor says %d", ErrDigestMismatch, v.desc.Digest, v.n, v.desc.Size)
		case v.h == nil:
			v.err = fmt.Errorf("%w: digest algorithm of %s", ErrUnsupported, v.desc.Digest)
		default:
			if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
				v.err = fmt.Errorf("%w: content of blob %s hashes to %s", ErrDigestMismatch, v.desc.Digest, got)
			}
		}
		if v.err != nil {
			return n, v.err
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = err
	}
	return n, err
}
