package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxWindowSize is the largest zstd window a reader accepts (128 MiB, what
// `zstd --long` uses). Frames asking for more are refused rather than
// allocated.
const MaxWindowSize = 128 << 20

const zstdMagic = 0xFD2FB528

var blobNameRe = regexp.MustCompile(`^blobs/(sha256/[a-f0-9]{64}|sha512/[a-f0-9]{128})$`)

// checkEntryName accepts only the entry names of docs/format.md.
func checkEntryName(name string) error {
	switch name {
	case LayoutFile, IndexFile, SignatureFile, SigstoreBundleFile, "blobs/", "blobs/sha256/", "blobs/sha512/":
		return nil
	}
	if blobNameRe.MatchString(name) {
		return nil
	}
	if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/..") {
		return fmt.Errorf("%w: unsafe entry name %q (absolute or with ..)", ErrCorrupt, truncate(name, 200))
	}
	return fmt.Errorf("%w: unexpected entry %q", ErrCorrupt, truncate(name, 200))
}

func checkHeader(h *tar.Header) error {
	if err := checkEntryName(h.Name); err != nil {
		return err
	}
	dir := strings.HasSuffix(h.Name, "/")
	switch {
	case dir && h.Typeflag == tar.TypeDir:
	case !dir && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA): //nolint:staticcheck // TypeRegA is how old writers mark files
	default:
		return fmt.Errorf("%w: entry %q is a %s; bundles hold only regular files and directories", ErrCorrupt, h.Name, typeName(h.Typeflag))
	}
	if h.Size < 0 {
		return fmt.Errorf("%w: entry %q has negative size", ErrCorrupt, h.Name)
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeDir:
		return "directory"
	case tar.TypeReg:
		return "regular file"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// newDecoder returns a zstd decoder for untrusted input. It decodes on the
// caller's goroutine (no decoder goroutines, and faster on a stream than the
// concurrent decoder) and in low-memory mode, so buffers grow to what the
// frames need instead of several MiB being allocated for every decoder.
func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderMaxWindow(MaxWindowSize),
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
	)
}

// classifyErr maps low-level decoding errors to the package's sentinels.
func classifyErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s ends early (%v); copy the bundle again", ErrTruncated, what, err)
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("%w: %s: zstd frame needs more memory than allowed (%v)", ErrCorrupt, what, err)
	case errors.Is(err, zstd.ErrMagicMismatch):
		return fmt.Errorf("%w: %s: %v", ErrNotBundle, what, err)
	case errors.Is(err, tar.ErrHeader):
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrTruncated),
		errors.Is(err, ErrNotBundle), errors.Is(err, ErrUnsupported), errors.Is(err, ErrTooLarge), errors.Is(err, ErrMissingBlob):
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Image is one exported reference, as listed in index.json.
type Image struct {
	// Ref is the full normalised source reference.
	Ref        string
	Descriptor ocispec.Descriptor
	// Platforms of the image: one per child of an index, or the platform of
	// a single manifest when known.
	Platforms []ocispec.Platform
	// Size is the total of every distinct blob the image uses (manifests
	// included).
	Size int64
}

// Reader reads a bundle. A Reader made by Open on a file with a seek table
// has random access (OpenBlob, in parallel); otherwise blobs are read once, in
// archive order, with Next. Either way, the index and every manifest are read
// and checked before Open or NewReader returns.
type Reader struct {
	indexBytes []byte
	index      ocispec.Index
	files      map[string][]byte // signature files
	g          *graph

	// random access
	ra    io.ReaderAt
	size  int64
	seek  map[string]SeekEntry
	table *SeekTable

	// sequential
	zr     *zstd.Decoder
	tr     *tar.Reader
	cur    io.Reader
	seen   map[digest.Digest]bool
	done   bool
	closer io.Closer
	// seekErr is why a damaged seek table was ignored.
	seekErr error

	verifier Verifier
	sig      SignatureInfo
}

// ReadOption configures Open, OpenReaderAt and NewReader.
type ReadOption func(*Reader)

// WithVerifier makes the reader check index.json against its signature
// with v before it parses anything; without it the signature is not checked.
func WithVerifier(v Verifier) ReadOption { return func(r *Reader) { r.verifier = v } }

func (r *Reader) apply(opts []ReadOption) {
	for _, o := range opts {
		o(r)
	}
}

// checkSignature runs the verifier over the exact index.json bytes.
func (r *Reader) checkSignature(index []byte) error {
	_, signed := r.files[SignatureFile]
	r.sig = SignatureInfo{Signed: signed, KeyFingerprint: signatureHint(r.files)}
	if r.verifier == nil {
		return nil
	}
	fp, err := r.verifier(index, r.files)
	if err != nil {
		return err
	}
	r.sig.KeyFingerprint, r.sig.Verified = fp, true
	return nil
}

// Signature says whether the bundle is signed, by which key, and whether
// the signature was verified.
func (r *Reader) Signature() SignatureInfo { return r.sig }

// SeekTableError returns why Open ignored a damaged seek table and fell
// back to a sequential read, or nil.
func (r *Reader) SeekTableError() error { return r.seekErr }

// Open opens a bundle file. With a valid seek table it reads only the
// metadata entries; without one it reads sequentially up to the first
// non-manifest blob.
func Open(path string, opts ...ReadOption) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := openFile(f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func openFile(f *os.File, opts []ReadOption) (*Reader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrNotBundle, f.Name())
	}
	if err := checkMagic(io.NewSectionReader(f, 0, 4)); err != nil {
		return nil, err
	}
	table, end, err := readSeekTable(f, st.Size())
	switch {
	case errors.Is(err, errNoSeekTable):
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		r, err := NewReader(f, opts...)
		if err != nil {
			return nil, err
		}
		r.closer = f
		return r, nil
	case err != nil:
		// The seek table is not covered by the signature and only speeds
		// reading up: fall back to reading the entries in order, which
		// checks everything anyway.
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return nil, serr
		}
		r, rerr := NewReader(f, opts...)
		if rerr != nil {
			return nil, rerr
		}
		r.closer, r.seekErr = f, err
		return r, nil
	}
	_ = end
	r := &Reader{ra: f, size: st.Size(), table: table, seek: table.lookup(), closer: f, files: map[string][]byte{}}
	r.apply(opts)
	if err := r.loadRandom(); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenReaderAt opens a bundle held in ra (size bytes) that has a seek table.
func OpenReaderAt(ra io.ReaderAt, size int64, opts ...ReadOption) (*Reader, error) {
	if err := checkMagic(io.NewSectionReader(ra, 0, 4)); err != nil {
		return nil, err
	}
	table, _, err := readSeekTable(ra, size)
	if errors.Is(err, errNoSeekTable) {
		return NewReader(io.NewSectionReader(ra, 0, size), opts...)
	}
	if err != nil {
		return nil, err
	}
	r := &Reader{ra: ra, size: size, table: table, seek: table.lookup(), files: map[string][]byte{}}
	r.apply(opts)
	if err := r.loadRandom(); err != nil {
		return nil, err
	}
	return r, nil
}

func checkMagic(r io.Reader) error {
	var m [4]byte
	if _, err := io.ReadFull(r, m[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: the file is empty or shorter than a zstd header", ErrNotBundle)
		}
		return err
	}
	if binary.LittleEndian.Uint32(m[:]) != zstdMagic {
		hint := ""
		if m[0] == 0x1f && m[1] == 0x8b {
			hint = " (it is gzip-compressed)"
		}
		return fmt.Errorf("%w: it does not start with a zstd frame%s", ErrNotBundle, hint)
	}
	return nil
}

// NewReader reads a bundle from a stream (stdin, a pipe) in one sequential
// pass. It reads oci-layout, index.json, signature files and every manifest,
// and returns positioned before the first config or layer.
func NewReader(r io.Reader, opts ...ReadOption) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	m, err := br.Peek(4)
	if err != nil || binary.LittleEndian.Uint32(m) != zstdMagic {
		if err := checkMagic(bytes.NewReader(m)); err != nil {
			return nil, err
		}
	}
	zr, err := newDecoder(br)
	if err != nil {
		return nil, err
	}
	rd := &Reader{zr: zr, tr: tar.NewReader(decodeErrs{zr}), seen: map[digest.Digest]bool{}, files: map[string][]byte{}}
	rd.apply(opts)
	if err := rd.loadStream(); err != nil {
		zr.Close()
		return nil, err
	}
	return rd, nil
}

func readSmall(r io.Reader, name string, size int64) ([]byte, error) {
	if size > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrTooLarge, name, size, MaxManifestBytes)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, classifyErr("reading "+name, err)
	}
	return b, nil
}

func checkLayout(b []byte) error {
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil || l.Version == "" {
		return fmt.Errorf("%w: oci-layout is not an OCI layout file", ErrNotBundle)
	}
	return nil
}

func (r *Reader) setIndex(b []byte) error {
	if err := json.Unmarshal(b, &r.index); err != nil {
		return fmt.Errorf("%w: index.json is not valid JSON: %v", ErrCorrupt, err)
	}
	if r.index.SchemaVersion != 2 {
		return fmt.Errorf("%w: index.json has schemaVersion %d, want 2", ErrCorrupt, r.index.SchemaVersion)
	}
	if v := r.index.Annotations[AnnotationFormatVersion]; v != "" && v != FormatVersion {
		return fmt.Errorf("%w: bundle format version %q; this ferry reads version %s", ErrUnsupported, v, FormatVersion)
	}
	for _, d := range r.index.Manifests {
		if err := validateDescriptor(d); err != nil {
			return err
		}
	}
	r.indexBytes = b
	r.g = newGraph()
	return nil
}

func (r *Reader) roots() ([]ocispec.Descriptor, []string) {
	refs := make([]string, len(r.index.Manifests))
	for i, d := range r.index.Manifests {
		refs[i] = d.Annotations[AnnotationRefName]
		if refs[i] == "" {
			refs[i] = d.Digest.String()
		}
	}
	return r.index.Manifests, refs
}

func (r *Reader) loadStream() error {
	h, err := r.tr.Next()
	if err != nil {
		if err == io.EOF {
			return fmt.Errorf("%w: the archive holds no entries", ErrNotBundle)
		}
		return classifyErr("reading the first entry", err)
	}
	if h.Name != LayoutFile {
		return fmt.Errorf("%w: first entry is %q, not %s", ErrNotBundle, truncate(h.Name, 100), LayoutFile)
	}
	b, err := readSmall(r.tr, LayoutFile, h.Size)
	if err != nil {
		return err
	}
	if err := checkLayout(b); err != nil {
		return err
	}
	if h, err = r.tr.Next(); err != nil {
		return classifyErr("reading index.json", eofIsTruncation(err))
	}
	if h.Name != IndexFile {
		return fmt.Errorf("%w: second entry is %q, not %s", ErrNotBundle, truncate(h.Name, 100), IndexFile)
	}
	if b, err = readSmall(r.tr, IndexFile, h.Size); err != nil {
		return err
	}
	// Signature files directly follow index.json; verify before parsing.
	var first *tar.Header
	for {
		h, err := r.nextHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if h.Name != SignatureFile && h.Name != SigstoreBundleFile {
			first = h
			break
		}
		if _, dup := r.files[h.Name]; dup {
			return fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
		}
		if r.files[h.Name], err = readSmall(r.tr, h.Name, h.Size); err != nil {
			return err
		}
	}
	if err := r.checkSignature(b); err != nil {
		return err
	}
	if err := r.setIndex(b); err != nil {
		return err
	}
	// Manifests follow in breadth-first order; read them as they come.
	pending := map[digest.Digest]ocispec.Descriptor{}
	roots, refs := r.roots()
	for _, d := range roots {
		pending[d.Digest] = d
	}
	got := map[digest.Digest][]byte{}
	for len(pending) > 0 {
		h, err := first, error(nil)
		if first != nil {
			first = nil
		} else {
			h, err = r.nextHeader()
		}
		if err != nil {
			if err == io.EOF {
				return r.missing(pending)
			}
			return err
		}
		if strings.HasSuffix(h.Name, "/") {
			continue
		}
		if h.Name == SignatureFile || h.Name == SigstoreBundleFile {
			return fmt.Errorf("%w: %s must directly follow index.json", ErrCorrupt, h.Name)
		}
		if h.Name == LayoutFile || h.Name == IndexFile {
			return fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
		}
		d := nameDigest(h.Name)
		desc, ok := pending[d]
		if !ok {
			if _, dup := got[d]; dup {
				return fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
			}
			return fmt.Errorf("%w: entry %s comes before the manifests that reference it, or nothing references it", ErrCorrupt, h.Name)
		}
		b, err := readVerified(r.tr, desc, h)
		if err != nil {
			return err
		}
		got[d] = b
		delete(pending, d)
		_, children, err := parseManifest(b, desc.MediaType)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
		for _, c := range children {
			if _, done := got[c.desc.Digest]; c.manifest && !done {
				pending[c.desc.Digest] = c.desc
			}
		}
		if len(got) > maxManifests {
			return fmt.Errorf("%w: more than %d manifests", ErrTooLarge, maxManifests)
		}
	}
	w := &walker{g: r.g, fetch: func(d ocispec.Descriptor) ([]byte, error) { return got[d.Digest], nil }}
	return w.walk(roots, refs)
}

// maxManifests bounds how many manifests a bundle may hold (all of them sit
// in memory).
const maxManifests = 1 << 20

// readVerified reads a manifest entry fully, capped, and checks it.
func readVerified(rd io.Reader, desc ocispec.Descriptor, h *tar.Header) ([]byte, error) {
	if h.Size != desc.Size {
		return nil, fmt.Errorf("%w: entry %s is %d bytes, its descriptor says %d", ErrDigestMismatch, h.Name, h.Size, desc.Size)
	}
	b, err := readSmall(rd, h.Name, h.Size)
	if err != nil {
		return nil, err
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("%w: manifest %s hashes to %s", ErrDigestMismatch, desc.Digest, got)
	}
	return b, nil
}

func eofIsTruncation(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextHeader returns the next checked tar header.
func (r *Reader) nextHeader() (*tar.Header, error) {
	h, err := r.tr.Next()
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, classifyErr("reading the archive", err)
	}
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	return h, nil
}

func nameDigest(name string) digest.Digest {
	rest := strings.TrimPrefix(name, BlobsDir+"/")
	alg, hex, _ := strings.Cut(rest, "/")
	return digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
}

func (r *Reader) missing(pending map[digest.Digest]ocispec.Descriptor) error {
	ds := make([]string, 0, len(pending))
	for d := range pending {
		ds = append(ds, d.String())
	}
	sort.Strings(ds)
	first := digest.Digest(ds[0])
	users := r.g.Users(first)
	msg := fmt.Sprintf("%d blob(s) are missing (the archive may be truncated), first %s", len(ds), first)
	if len(users) > 0 {
		msg += " used by " + joinLimited(users, 3)
	}
	return fmt.Errorf("%w: %s", ErrMissingBlob, msg)
}

// decodeErrs classifies errors of the zstd decoder: a stream that ends
// early is truncated, any other decoding failure means corrupt content.
type decodeErrs struct{ r io.Reader }

func (d decodeErrs) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	switch {
	case err == nil, err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%w: the compressed stream ends early (%v); copy the bundle again", ErrTruncated, err)
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrTruncated), errors.Is(err, ErrNotBundle):
	default:
		err = fmt.Errorf("%w: decompressing: %v", ErrCorrupt, err)
	}
	return n, err
}
