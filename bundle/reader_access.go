package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// loadRandom reads the metadata entries through the seek table and checks
// that the table lists exactly the entries the index reaches.
func (r *Reader) loadRandom() error {
	es := r.table.Entries
	if len(es) < 2 || es[0].Name != LayoutFile || es[1].Name != IndexFile {
		return fmt.Errorf("%w: archive does not start with %s and %s", ErrNotBundle, LayoutFile, IndexFile)
	}
	b, err := r.readFile(es[0])
	if err != nil {
		return err
	}
	if err := checkLayout(b); err != nil {
		return err
	}
	index, err := r.readFile(es[1])
	if err != nil {
		return err
	}
	for i, name := range []string{SignatureFile, SigstoreBundleFile} {
		if e, ok := r.seek[name]; ok {
			if e.Offset > es[min(len(es)-1, 2+i)].Offset {
				return fmt.Errorf("%w: %s must directly follow index.json", ErrCorrupt, name)
			}
			if r.files[name], err = r.readFile(e); err != nil {
				return err
			}
		}
	}
	if err := r.checkSignature(index); err != nil {
		return err
	}
	if err := r.setIndex(index); err != nil {
		return err
	}
	w := &walker{g: r.g, fetch: func(d ocispec.Descriptor) ([]byte, error) {
		e, ok := r.seek[BlobPath(d.Digest)]
		if !ok {
			return nil, fmt.Errorf("%w: manifest %s", ErrMissingBlob, d.Digest)
		}
		rc, h, err := r.openEntry(e)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return readVerified(rc, d, h)
	}}
	roots, refs := r.roots()
	if err := w.walk(roots, refs); err != nil {
		return err
	}
	// Completeness: every blob present with the right size; nothing else.
	var lastManifest int64 = -1
	for _, d := range r.g.manifestOrder {
		lastManifest = max(lastManifest, r.seek[BlobPath(d)].Offset)
	}
	var missing []ocispec.Descriptor
	for _, desc := range r.g.orderedBlobs() {
		e, ok := r.seek[BlobPath(desc.Digest)]
		switch {
		case !ok:
			missing = append(missing, desc)
		case e.Size != desc.Size:
			return &BlobError{Op: "read", Digest: desc.Digest, Images: r.g.Users(desc.Digest),
				Err: fmt.Errorf("%w: archive entry is %d bytes, descriptor says %d", ErrDigestMismatch, e.Size, desc.Size)}
		case e.Offset < lastManifest:
			return fmt.Errorf("%w: blob %s comes before a manifest; entries are out of order", ErrCorrupt, desc.Digest)
		}
	}
	if len(missing) > 0 {
		pending := map[digest.Digest]ocispec.Descriptor{}
		for _, d := range missing {
			pending[d.Digest] = d
		}
		return r.missing(pending)
	}
	for _, e := range es {
		if !r.expected(e.Name) {
			return fmt.Errorf("%w: entry %s is not referenced by the index or any manifest", ErrCorrupt, e.Name)
		}
	}
	return nil
}

func (r *Reader) expected(name string) bool {
	switch name {
	case LayoutFile, IndexFile, SignatureFile, SigstoreBundleFile, "blobs/", "blobs/sha256/", "blobs/sha512/":
		return true
	}
	d := nameDigest(name)
	if _, ok := r.g.manifests[d]; ok {
		return true
	}
	_, ok := r.g.blobs[d]
	return ok
}

func (r *Reader) readFile(e SeekEntry) ([]byte, error) {
	rc, h, err := r.openEntry(e)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := readSmall(rc, h.Name, h.Size)
	if err != nil {
		return nil, err
	}
	if e.Digest != "" && e.Digest.Algorithm().FromBytes(b) != e.Digest {
		return nil, fmt.Errorf("%w: %s does not match the digest in the seek table", ErrDigestMismatch, e.Name)
	}
	return b, nil
}

// openEntry decompresses the frame of one entry and returns its content,
// after checking the tar header matches the seek table.
func (r *Reader) openEntry(e SeekEntry) (io.ReadCloser, *tar.Header, error) {
	src := io.NewSectionReader(r.ra, e.Offset, e.Length)
	zr, _ := entryDecoders.Get().(*zstd.Decoder)
	if zr == nil || zr.Reset(src) != nil {
		var err error
		if zr, err = newDecoder(src); err != nil {
			return nil, nil, err
		}
	}
	rc := &decoderReadCloser{zr: zr}
	tr := tar.NewReader(decodeErrs{zr})
	rc.r = tr
	h, err := tr.Next()
	if err != nil {
		rc.Close()
		return nil, nil, classifyErr("reading entry "+e.Name+" through the seek table", eofIsTruncation(err))
	}
	if err := checkHeader(h); err != nil {
		rc.Close()
		return nil, nil, err
	}
	if h.Name != e.Name || h.Size != e.Size {
		rc.Close()
		return nil, nil, fmt.Errorf("%w: seek table points at %q (%d bytes) where it lists %q (%d bytes)", ErrCorrupt, truncate(h.Name, 100), h.Size, e.Name, e.Size)
	}
	return rc, h, nil
}

// entryDecoders holds the decoders of frames opened through the seek table
// for reuse. A decoder allocates its window the first time a frame needs it
// (up to MaxWindowSize); a fresh decoder per entry would let a small file
// whose every frame declares a large window cost that allocation per entry.
var entryDecoders sync.Pool

// decoderReadCloser reads one entry; Close hands its decoder back to
// entryDecoders, after which Read fails. Close may come from another
// goroutine during a Read (an HTTP transport still sending the body); mu
// keeps the decoder out of the pool until that Read returns.
type decoderReadCloser struct {
	mu sync.Mutex
	r  io.Reader
	zr *zstd.Decoder
}

func (d *decoderReadCloser) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.zr == nil {
		return 0, errEntryClosed
	}
	return d.r.Read(p)
}

var errEntryClosed = errors.New("bundle: read of a closed entry")

func (d *decoderReadCloser) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.zr != nil {
		d.zr.Reset(nil) // drop the reference to the file
		entryDecoders.Put(d.zr)
		d.zr, d.r = nil, nil
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
	rc, _, err := r.openEntry(e)
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
		h, err := r.nextHeader()
		if err == io.EOF {
			pending := map[digest.Digest]ocispec.Descriptor{}
			for d, b := range r.g.blobs {
				if !r.seen[d] {
					pending[d] = b.desc
				}
			}
			if len(pending) > 0 {
				return ocispec.Descriptor{}, nil, r.missing(pending)
			}
			r.done = true
			return ocispec.Descriptor{}, nil, io.EOF
		}
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		if strings.HasSuffix(h.Name, "/") {
			continue
		}
		d := nameDigest(h.Name)
		b, ok := r.g.blobs[d]
		if !ok || r.seen[d] {
			if _, isManifest := r.g.manifests[d]; isManifest || r.seen[d] || h.Name == LayoutFile || h.Name == IndexFile || r.files[h.Name] != nil {
				return ocispec.Descriptor{}, nil, fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
			}
			return ocispec.Descriptor{}, nil, fmt.Errorf("%w: entry %s is not referenced by the index or any manifest", ErrCorrupt, h.Name)
		}
		if h.Size != b.desc.Size {
			return ocispec.Descriptor{}, nil, &BlobError{Op: "read", Digest: d, Images: r.g.Users(d),
				Err: fmt.Errorf("%w: archive entry is %d bytes, descriptor says %d", ErrDigestMismatch, h.Size, b.desc.Size)}
		}
		r.seen[d] = true
		r.cur = &classifyingReader{r: NewVerifyReader(r.tr, b.desc), what: "blob " + d.String()}
		return b.desc, r.cur, nil
	}
}

// Close releases the reader and closes the file it was opened on.
func (r *Reader) Close() error {
	if r.zr != nil {
		r.zr.Close()
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

// Blobs returns every config and layer descriptor, in the order this
// version of ferry writes them (docs/format.md, section 4.3); the archive
// itself may hold them in another order.
func (r *Reader) Blobs() []ocispec.Descriptor { return r.g.orderedBlobs() }

// Users returns the references of the images that use digest d.
func (r *Reader) Users(d digest.Digest) []string { return r.g.Users(d) }

// SeekTable returns the seek table, or nil for a sequential reader.
func (r *Reader) SeekTable() *SeekTable { return r.table }

// Images lists the exported references in index.json order.
func (r *Reader) Images() []Image {
	out := make([]Image, 0, len(r.index.Manifests))
	for _, d := range r.index.Manifests {
		img := Image{Ref: d.Annotations[AnnotationRefName], Descriptor: d}
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
	seen := map[digest.Digest]bool{}
	var total int64
	var visit func(d digest.Digest, size int64, depth int)
	visit = func(d digest.Digest, size int64, depth int) {
		if seen[d] || depth > maxGraphDepth+1 {
			return
		}
		seen[d] = true
		total += size
		if m, ok := r.g.manifests[d]; ok {
			for _, c := range m.kids {
				visit(c.desc.Digest, c.desc.Size, depth+1)
			}
		}
	}
	if m, ok := r.g.manifests[root]; ok {
		visit(root, m.Descriptor.Size, 0)
	}
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
