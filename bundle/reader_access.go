package bundle

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tableSource yields the entries of a random-access reader in table order,
// with the tar headers checkFrames read from their frames.
type tableSource struct {
	r *Reader
	i int
}

func (s *tableSource) next() (*tar.Header, error) {
	if s.i >= len(s.r.headers) {
		return nil, io.EOF
	}
	s.i++
	return s.r.headers[s.i-1], nil
}

func (s *tableSource) content(h *tar.Header) (io.ReadCloser, error) {
	return s.r.openEntry(s.r.seek[h.Name])
}

// streamSource yields the entries of the tar stream of a sequential reader.
type streamSource struct{ r *Reader }

func (s *streamSource) next() (*tar.Header, error) {
	r := s.r
	h, err := r.tr.Next()
	if err != nil {
		if err == io.EOF {
			// The tar reader also stops, without error, where the stream
			// ends on an entry boundary: only two zero blocks end a bundle.
			var end int64
			if n := len(r.spans); n > 0 {
				end = r.spans[n-1].end
			}
			r.noEOA = r.fs.out-end < int64(len(zeros))
			return nil, io.EOF
		}
		if errors.Is(err, tar.ErrFieldTooLong) {
			var prev string
			if n := len(r.spans); n > 0 {
				prev = r.spans[n-1].name
			}
			return nil, extendedHeaderTooLarge(len(r.spans), prev)
		}
		return nil, classifyErr("reading the archive", err)
	}
	// A first entry other than oci-layout is not a bundle at all; load says so.
	if len(r.spans) > 0 || h.Name == LayoutFile {
		if err := checkHeader(h); err != nil {
			return nil, err
		}
	}
	r.spans = append(r.spans, entrySpan{name: h.Name, size: h.Size, end: r.fs.out + h.Size + padding(h.Size)})
	r.fs.maxFrames = len(r.spans) + 2
	return h, nil
}

func (s *streamSource) content(*tar.Header) (io.ReadCloser, error) {
	return io.NopCloser(s.r.tr), nil
}

// checkFrames checks that the seek table describes the file exactly before
// anything is read through it: each entry is one zstd frame, ending where
// the next begins, that declares its content size and holds one tar header
// (with the table's name and size) and the entry's content; after the last
// entry comes the end-of-archive frame, ending where the table frame (at
// end) begins.
func (r *Reader) checkFrames(end int64) error {
	es := r.table.Entries
	r.headers = make([]*tar.Header, len(es))
	for i, e := range es {
		n, _, err := frameExtent(r.ra, e.Offset, e.Length)
		if err == nil && n != e.Length {
			err = fmt.Errorf("its frame is %d bytes, the table says %d", n, e.Length)
		}
		if err != nil {
			return seekCorrupt("entry %d (%q, offset %d, length %d) is not one zstd frame: %v", i, truncate(e.Name, 100), e.Offset, e.Length, frameErrText(err))
		}
		rc, err := r.openEntry(e)
		if errors.Is(err, tar.ErrFieldTooLong) {
			var prev string
			if i > 0 {
				prev = es[i-1].Name
			}
			return extendedHeaderTooLarge(i, prev)
		}
		if err != nil {
			return err
		}
		r.headers[i] = rc.hdr
		rc.Close()
	}
	last := es[len(es)-1]
	eoa := last.Offset + last.Length
	n, fh, err := frameExtent(r.ra, eoa, end-eoa)
	if err == nil && (n != end-eoa || fh.fcs != int64(len(zeros))) {
		err = fmt.Errorf("it is %d bytes and declares %d bytes of content", n, fh.fcs)
	}
	if err == nil {
		err = checkEndFrame(io.NewSectionReader(r.ra, eoa, end-eoa))
	}
	if err != nil {
		return seekCorrupt("the end-of-archive marker at offset %d is not one zstd frame of %d zero bytes ending at the seek table (offset %d): %v", eoa, len(zeros), end, frameErrText(err))
	}
	return nil
}

// frameErrText describes a frame that ends before the table says it does.
func frameErrText(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "it runs past the length the table gives"
	}
	return err.Error()
}

// checkEndFrame decodes the end-of-archive frame: only zero bytes.
func checkEndFrame(r io.Reader) error {
	zr, err := newDecoder(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	var buf [512]byte
	var n int64
	for {
		m, err := zr.Read(buf[:])
		n += int64(m)
		if !allZero(buf[:m]) {
			return errors.New("it holds bytes other than zeros")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != int64(len(zeros)) {
		return fmt.Errorf("it holds %d bytes", n)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkMetaDigests compares the digests the seek table gives for
// oci-layout, index.json and the signature files with their content.
func (r *Reader) checkMetaDigests(table map[string]SeekEntry) error {
	for _, name := range []string{LayoutFile, IndexFile, SignatureFile, SigstoreBundleFile} {
		got, ok := r.metaDigests[name]
		if e := table[name]; ok && e.Digest != "" && e.Digest != got {
			return fmt.Errorf("%w: %s does not match the digest in the seek table", ErrDigestMismatch, name)
		}
	}
	return nil
}

// checkStreamTable checks, at the end of a stream that ended with a seek
// table, that the table describes the stream exactly, as checkFrames does
// for a file.
func (r *Reader) checkStreamTable() error {
	t, frames := r.fs.table, r.fs.frames
	if r.fs.dropped {
		return seekCorrupt("the archive has more zstd frames than entries; each entry must be one frame")
	}
	if len(t.Entries) != len(r.spans) {
		return seekCorrupt("lists %d entries; the archive holds %d", len(t.Entries), len(r.spans))
	}
	if len(frames) != len(r.spans)+1 {
		return seekCorrupt("the archive has %d zstd frames for %d entries and the end-of-archive marker; each must be one frame", len(frames), len(r.spans))
	}
	for i, e := range t.Entries {
		f, sp := frames[i], r.spans[i]
		switch {
		case e.Name != sp.name || e.Size != sp.size:
			return seekCorrupt("entry %d is %q (%d bytes) in the table but %q (%d bytes) in the archive", i, truncate(e.Name, 100), e.Size, truncate(sp.name, 100), sp.size)
		case e.Offset != f.off || e.Length != f.length:
			return seekCorrupt("entry %d (%q, offset %d, length %d) is not one zstd frame: its frame is at offset %d, length %d", i, truncate(e.Name, 100), e.Offset, e.Length, f.off, f.length)
		case f.end != sp.end:
			return seekCorrupt("the frame of entry %d (%q) does not end where the entry ends; each entry must be one zstd frame", i, truncate(e.Name, 100))
		case f.fcs != f.end-f.start:
			return seekCorrupt("the frame of entry %d (%q) does not declare its content size", i, truncate(e.Name, 100))
		}
	}
	if eoa := frames[len(frames)-1]; eoa.fcs != int64(len(zeros)) || eoa.end-eoa.start != int64(len(zeros)) {
		return seekCorrupt("the end-of-archive marker at offset %d is not one zstd frame of %d zero bytes ending at the seek table (offset %d): it holds %d bytes", eoa.off, len(zeros), r.fs.tableOff, eoa.end-eoa.start)
	}
	return r.checkMetaDigests(t.lookup())
}

// entryReader reads the content of one entry, opened through the seek
// table. When the content ends it checks that the frame holds nothing more
// than the entry's padding. Close hands its decoder back to entryDecoders.
type entryReader struct {
	mu     sync.Mutex
	zr     *zstd.Decoder
	fr     *frameReader
	cr     *countReader
	tr     *tar.Reader
	hdr    *tar.Header
	hdrLen int64
	name   string
	err    error
}

// openEntry decompresses the frame of one entry and returns its content,
// after checking the tar header matches the seek table and the frame
// declares exactly one entry's bytes.
func (r *Reader) openEntry(e SeekEntry) (*entryReader, error) {
	fr := newFrameReader(bufio.NewReaderSize(io.NewSectionReader(r.ra, e.Offset, e.Length), 32<<10))
	zr, _ := entryDecoders.Get().(*zstd.Decoder)
	if zr == nil || zr.Reset(fr) != nil {
		var err error
		if zr, err = newDecoder(fr); err != nil {
			return nil, err
		}
	}
	er := &entryReader{zr: zr, fr: fr, cr: &countReader{r: decodeErrs{zr}}, name: e.Name}
	er.tr = tar.NewReader(er.cr)
	fail := func(err error) (*entryReader, error) {
		er.Close()
		return nil, err
	}
	h, err := er.tr.Next()
	if err != nil {
		if err == io.EOF || errors.Is(err, ErrTruncated) {
			return fail(seekCorrupt("entry %q (offset %d, length %d) holds no complete tar header", truncate(e.Name, 100), e.Offset, e.Length))
		}
		what := "entry " + truncate(e.Name, 100)
		if e.Digest != "" {
			what = "blob " + e.Digest.String()
		}
		return fail(fmt.Errorf("%s: %w", what, classifyErr("reading it through the seek table", err)))
	}
	if err := checkHeader(h); err != nil {
		return fail(err)
	}
	if h.Name != e.Name || h.Size != e.Size {
		return fail(fmt.Errorf("%w: seek table points at %q (%d bytes) where it lists %q (%d bytes)", ErrCorrupt, truncate(h.Name, 100), h.Size, e.Name, e.Size))
	}
	er.hdr, er.hdrLen = h, er.cr.n
	if want := er.hdrLen + h.Size + padding(h.Size); fr.hdr.fcs != want {
		return fail(seekCorrupt("the frame of entry %q declares %d bytes of content; one tar entry of %d bytes is %d", truncate(e.Name, 100), fr.hdr.fcs, h.Size, want))
	}
	return er, nil
}

func (d *entryReader) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.zr == nil {
		return 0, errEntryClosed
	}
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.tr.Read(p)
	if err == io.EOF {
		if ferr := d.finish(); ferr != nil {
			err = ferr
		}
	}
	if err != nil {
		d.err = err
	}
	return n, err
}

// finish reads the rest of the frame after the content (its padding), so
// the frame's checksum and declared size are checked by the decoder: the
// size was compared with one tar entry's when the entry was opened.
func (d *entryReader) finish() error {
	if _, err := io.Copy(io.Discard, d.cr); err != nil {
		return classifyErr("reading entry "+d.name, err)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// entryDecoders holds the decoders of frames opened through the seek table
// for reuse. A decoder allocates its window the first time a frame needs it
// (up to MaxWindowSize); a fresh decoder per entry would let a small file
// whose every frame declares a large window cost that allocation per entry.
var entryDecoders sync.Pool

var errEntryClosed = errors.New("bundle: read of a closed entry")

// Close hands the decoder back to entryDecoders, after which Read fails.
// Close may come from another goroutine during a Read (an HTTP transport
// still sending the body); mu keeps the decoder out of the pool until that
// Read returns.
func (d *entryReader) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.zr != nil {
		d.zr.Reset(nil) // drop the reference to the file
		entryDecoders.Put(d.zr)
		d.zr = nil
	}
	return nil
}

// RandomAccess reports whether blobs can be opened in any order with
// OpenBlob (the bundle is a file with a seek table).
func (r *Reader) RandomAccess() bool { return r.ra != nil }

// OpenBlob returns the content of blob desc, verified against its digest and
// size as it is read: the final Read fails with ErrDigestMismatch rather than
// returning io.EOF if the content is wrong. Only for RandomAccess readers.
func (r *Reader) OpenBlob(desc ocispec.Descriptor) (io.ReadCloser, error) {
	if r.ra == nil {
		return nil, fmt.Errorf("bundle is read sequentially; use Next")
	}
	e, ok := r.seek[BlobPath(desc.Digest)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrMissingBlob, desc.Digest)
	}
	if e.Size != desc.Size {
		return nil, fmt.Errorf("%w: archive entry for %s is %d bytes, descriptor says %d", ErrDigestMismatch, desc.Digest, e.Size, desc.Size)
	}
	rc, err := r.openEntry(e)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{&classifyingReader{r: NewVerifyReader(rc, desc), what: "blob " + desc.Digest.String()}, rc}, nil
}

type classifyingReader struct {
	r    io.Reader
	what string
}

func (c *classifyingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = classifyErr("reading "+c.what, err)
	}
	return n, err
}

// Next returns the next config or layer of a sequential reader and a reader
// of its content, verified as it is read. A blob not read to the end by the
// caller is read and verified by the following call. At the end of the
// archive Next checks that no blob is missing and returns io.EOF.
func (r *Reader) Next() (ocispec.Descriptor, io.Reader, error) {
	if r.tr == nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("bundle has random access; use OpenBlob")
	}
	if r.done {
		return ocispec.Descriptor{}, nil, io.EOF
	}
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		r.cur = nil
	}
	for {
		h, err := r.nextEntry()
		if err == io.EOF {
			if err := r.complete(); err != nil {
				return ocispec.Descriptor{}, nil, err
			}
			if err := r.finishStream(); err != nil {
				return ocispec.Descriptor{}, nil, err
			}
			r.done = true
			return ocispec.Descriptor{}, nil, io.EOF
		}
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		b, err := r.blobEntry(h)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		if b == nil {
			continue // a directory
		}
		r.cur = &classifyingReader{r: NewVerifyReader(r.tr, b.desc), what: "blob " + b.desc.Digest.String()}
		return b.desc, r.cur, nil
	}
}

// finishStream checks what follows the tar end-of-archive marker and, when
// the stream ends with a seek table, that the table describes it.
func (r *Reader) finishStream() error {
	if r.noEOA {
		return fmt.Errorf("%w: the archive ends without the tar end-of-archive marker; copy the bundle again", ErrTruncated)
	}
	if err := r.fs.finish(); err != nil {
		return err
	}
	if r.fs.table == nil {
		return nil
	}
	return r.checkStreamTable()
}

// Close releases the reader and closes the file it was opened on.
func (r *Reader) Close() error {
	if r.fs != nil {
		r.fs.close()
	}
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Index returns the parsed index.json.
func (r *Reader) Index() ocispec.Index { return r.index }

// IndexBytes returns index.json exactly as stored in the archive.
func (r *Reader) IndexBytes() []byte { return r.indexBytes }

// File returns a signature file (SignatureFile, SigstoreBundleFile) if the
// archive holds it.
func (r *Reader) File(name string) ([]byte, bool) {
	b, ok := r.files[name]
	return b, ok
}

// Manifest returns a manifest or index held in the bundle.
func (r *Reader) Manifest(d digest.Digest) (*Manifest, bool) {
	m, ok := r.g.manifests[d]
	return m, ok
}

// Manifests returns every manifest and index, parents before children.
func (r *Reader) Manifests() []*Manifest {
	out := make([]*Manifest, len(r.g.manifestOrder))
	for i, d := range r.g.manifestOrder {
		out[i] = r.g.manifests[d]
	}
	return out
}

// Blobs returns every config and layer descriptor the archive holds, in
// the order this version of ferry writes them (docs/format.md, section
// 4.3); the archive itself may hold them in another order. The blobs a
// delta leaves out are not among them (see LeftOut).
func (r *Reader) Blobs() []ocispec.Descriptor { return r.inArchive(r.g.orderedBlobs()) }

// Users returns the references of the images that use digest d.
func (r *Reader) Users(d digest.Digest) []string { return r.g.Users(d) }

// SeekTable returns the seek table, or nil for a sequential reader.
func (r *Reader) SeekTable() *SeekTable { return r.table }

// Images lists the exported references in index.json order, each with
// the referrers carried for it; referrer entries are not listed themselves.
func (r *Reader) Images() []Image {
	out := make([]Image, 0, len(r.index.Manifests))
	for _, d := range r.index.Manifests {
		if IsReferrer(d) {
			continue
		}
		img := Image{Ref: d.Annotations[AnnotationRefName], Descriptor: d}
		if ref, err := ParseReference(img.Ref); err == nil {
			img.Referrers = r.referrersOf(ref.Name(), d.Digest)
		}
		if m, ok := r.g.manifests[d.Digest]; ok && IsIndex(m.Descriptor.MediaType) {
			for _, c := range m.kids {
				if c.manifest && c.desc.Platform != nil {
					img.Platforms = append(img.Platforms, *c.desc.Platform)
				}
			}
		} else if d.Platform != nil {
			img.Platforms = []ocispec.Platform{*d.Platform}
		}
		img.Size = r.closureSize(d.Digest)
		out = append(out, img)
	}
	return out
}

// closureSize is the total size of the distinct blobs below (and including) d.
func (r *Reader) closureSize(root digest.Digest) int64 {
	var total int64
	r.g.closure(root, func(d digest.Digest, m *Manifest) bool {
		switch {
		case m != nil:
			total += m.Descriptor.Size
		case r.g.blobs[d] != nil:
			total += r.g.blobs[d].desc.Size
		}
		return true
	})
	return total
}

// UniqueBytes is the total size of every distinct blob in the bundle,
// manifests included.
func (r *Reader) UniqueBytes() (blobs int, bytes int64) {
	for _, m := range r.g.manifests {
		blobs++
		bytes += m.Descriptor.Size
	}
	for _, b := range r.g.blobs {
		blobs++
		bytes += b.desc.Size
	}
	return blobs, bytes
}
