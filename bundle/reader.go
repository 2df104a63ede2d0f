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
	switch h.Name {
	case LayoutFile, IndexFile, SignatureFile, SigstoreBundleFile:
		// Held in memory: refused by the size its header gives (which a PAX
		// record may set), before anything is read, whatever the seek table
		// or the frame says.
		if h.Size > MaxManifestBytes {
			return tooLarge(h.Name, h.Size)
		}
	}
	return nil
}

// tooLarge is the error for a metadata entry of a bundle, named by what,
// that is larger than MaxManifestBytes.
func tooLarge(what string, size int64) error {
	return inBundle(fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrTooLarge, what, size, MaxManifestBytes))
}

// extendedHeaderTooLarge is the error for the tar header of entry i (the
// number the seek table gives it, counted from 0), which follows the entry
// named prev, when the tar reader refuses its extended header (PAX
// records, or a GNU long name) for being over 1 MiB. ferry writes only a
// PAX path of 141 bytes. The entry's own name is in the refused header.
func extendedHeaderTooLarge(i int, prev string) error {
	where := "the first entry"
	if i > 0 {
		where = fmt.Sprintf("entry %d (after %s)", i, truncate(prev, 200))
	}
	return inBundle(fmt.Errorf("%s has an extended tar header (PAX or GNU long name) of more than 1 MiB", where))
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
	// Referrers are the signatures, SBOMs and attestations carried for the
	// image (and for its referrers), in index.json order.
	Referrers []Referrer
}

// Reader reads a bundle. A Reader made by Open on a file with a seek table
// has random access (OpenBlob, in parallel); otherwise blobs are read once, in
// archive order, with Next. Either way, the index and every manifest are read
// and checked before Open or NewReader returns.
//
// Both ways apply the same rules to the same entries (docs/format.md,
// section 7): a file with a seek table is read through it only when the
// table describes the file exactly, frame by frame, and a stream that ends
// with a seek table is checked against it. What one way accepts, the other
// accepts; what one refuses, the other refuses with the same error class.
type Reader struct {
	indexBytes []byte
	index      ocispec.Index
	files      map[string][]byte // signature files
	// sha256 of oci-layout, index.json and the signature files, for the
	// seek table check of a stream
	metaDigests map[string]digest.Digest
	g           *graph

	// random access
	ra      io.ReaderAt
	size    int64
	seek    map[string]SeekEntry
	table   *SeekTable
	headers []*tar.Header // of every table entry, read from its frame

	// sequential
	fs     *frameStream
	tr     *tar.Reader
	spans  []entrySpan
	noEOA  bool // the tar stream ended without its end-of-archive marker
	cur    io.Reader
	seen   map[digest.Digest]bool
	done   bool
	closer io.Closer

	// src is the entry source of the shared reading rules; pushed back is
	// the entry read one too far.
	src    entrySource
	pushed *tar.Header

	verifier Verifier
	sig      SignatureInfo

	// a delta bundle (delta.go): its bases, and the base each left-out
	// blob is named under
	delta   *Delta
	leftOut map[digest.Digest]int
}

// entrySource yields the entries of the archive in order: the tar stream of
// a sequential reader, or the seek table of a random-access one (whose
// frames were all checked against it first).
type entrySource interface {
	next() (*tar.Header, error)
	// content reads the entry next returned last.
	content(h *tar.Header) (io.ReadCloser, error)
}

// entrySpan is where an entry ends in the decompressed stream.
type entrySpan struct {
	name string
	size int64
	end  int64
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

// Open opens a bundle file. With a seek table it checks that the table
// describes the file exactly, then reads only the metadata entries through
// it. A file without a seek table is read and checked in full first, so a
// damaged copy is refused before anything is done with it; the Reader then
// reads it again, in order.
func Open(path string, opts ...ReadOption) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = fmt.Errorf("%w: %s is a directory", ErrNotBundle, path)
	}
	var r *Reader
	if err == nil {
		r, err = openReaderAt(f, st.Size(), opts)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// OpenReaderAt opens a bundle held in ra (size bytes), as Open does.
func OpenReaderAt(ra io.ReaderAt, size int64, opts ...ReadOption) (*Reader, error) {
	return openReaderAt(ra, size, opts)
}

func openReaderAt(ra io.ReaderAt, size int64, opts []ReadOption) (*Reader, error) {
	if err := checkMagic(io.NewSectionReader(ra, 0, 4)); err != nil {
		return nil, err
	}
	table, end, err := readSeekTable(ra, size)
	if errors.Is(err, errNoSeekTable) {
		// No table: check everything in one pass, then read again.
		if _, err := verifyStream(io.NewSectionReader(ra, 0, size), opts); err != nil {
			return nil, err
		}
		return NewReader(io.NewSectionReader(ra, 0, size), opts...)
	}
	if err != nil {
		return nil, err
	}
	r := &Reader{ra: ra, size: size, table: table, seek: table.lookup(), files: map[string][]byte{}}
	r.apply(opts)
	if err := r.checkFrames(end); err != nil {
		return nil, err
	}
	r.src = &tableSource{r: r}
	r.seen = map[digest.Digest]bool{}
	if err := r.load(); err != nil {
		return nil, err
	}
	if err := r.checkMetaDigests(r.seek); err != nil {
		return nil, err
	}
	// The rest of the table: configs and layers, by the same rules as a
	// sequential read, and nothing missing.
	for {
		h, err := r.nextEntry()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := r.blobEntry(h); err != nil {
			return nil, err
		}
	}
	if err := r.complete(); err != nil {
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
// and returns positioned before the first config or layer. What follows the
// tar end-of-archive marker, and the seek table when the stream ends with
// one, are checked when Next reaches the end.
func NewReader(r io.Reader, opts ...ReadOption) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	m, err := br.Peek(4)
	if err != nil || binary.LittleEndian.Uint32(m) != zstdMagic {
		if err := checkMagic(bytes.NewReader(m)); err != nil {
			return nil, err
		}
	}
	fs, err := newFrameStream(br)
	if err != nil {
		return nil, err
	}
	rd := &Reader{fs: fs, seen: map[digest.Digest]bool{}, files: map[string][]byte{}}
	rd.tr = tar.NewReader(decodeErrs{fs})
	rd.src = &streamSource{r: rd}
	rd.apply(opts)
	if err := rd.load(); err != nil {
		fs.close()
		return nil, err
	}
	return rd, nil
}

// verifyStream reads a whole stream and checks everything.
func verifyStream(src io.Reader, opts []ReadOption) (*VerifyReport, error) {
	r, err := NewReader(src, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rep := &VerifyReport{Signature: r.Signature(), Delta: r.Delta()}
	for _, d := range r.Index().Manifests {
		if IsReferrer(d) {
			rep.Referrers++
		} else {
			rep.Images++
		}
	}
	for _, m := range r.Manifests() {
		rep.Blobs++
		rep.Bytes += m.Descriptor.Size
	}
	for {
		desc, rd, err := r.Next()
		if err == io.EOF {
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
		n, err := io.Copy(io.Discard, rd)
		if err != nil {
			return rep, &BlobError{Op: "verify", Digest: desc.Digest, Images: r.Users(desc.Digest), Err: err}
		}
		rep.Blobs++
		rep.Bytes += n
	}
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
	if len(r.index.Manifests) == 0 {
		return fmt.Errorf("%w: index.json lists no image", ErrCorrupt)
	}
	for i, d := range r.index.Manifests {
		if err := validateDescriptor(d); err != nil {
			where := fmt.Sprintf("index.json entry %d", i)
			if ref := d.Annotations[AnnotationRefName]; ref != "" {
				where += " (" + truncate(ref, 200) + ")"
			}
			return inBundle(fmt.Errorf("%s: %w", where, err))
		}
		// A reference pinned to a digest must name the digest it is stored under.
		if ref, err := ParseReference(d.Annotations[AnnotationRefName]); err == nil && ref.Digest != "" && ref.Digest != d.Digest {
			return fmt.Errorf("%w: %w: index.json entry %d names %s but its descriptor is %s", ErrCorrupt, ErrDescriptorConflict, i, truncate(ref.String(), 200), d.Digest)
		}
	}
	if err := r.setDelta(); err != nil {
		return err
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

// nextEntry returns the next entry of the source, or the one pushed back.
func (r *Reader) nextEntry() (*tar.Header, error) {
	if h := r.pushed; h != nil {
		r.pushed = nil
		return h, nil
	}
	return r.src.next()
}

// readEntry reads a metadata entry (at most MaxManifestBytes) whole.
func (r *Reader) readEntry(h *tar.Header) ([]byte, error) {
	if h.Size > MaxManifestBytes {
		return nil, tooLarge(h.Name, h.Size) // checkHeader and load say it first
	}
	rc, err := r.src.content(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := readSmall(rc, h.Name, h.Size)
	if err != nil {
		return nil, err
	}
	// Read to the end, so the entry's frame is checked whole.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, classifyErr("reading "+h.Name, err)
	}
	return b, nil
}

// load reads oci-layout, index.json, the signature files and every manifest
// from the entry source, by the rules of docs/format.md section 7, and
// builds the content graph. Sequential and random-access readers share it.
func (r *Reader) load() error {
	r.metaDigests = map[string]digest.Digest{}
	h, err := r.nextEntry()
	if err != nil {
		if err == io.EOF {
			return fmt.Errorf("%w: the archive holds no entries", ErrNotBundle)
		}
		return err
	}
	if h.Name != LayoutFile {
		return fmt.Errorf("%w: first entry is %q, not %s", ErrNotBundle, truncate(h.Name, 100), LayoutFile)
	}
	b, err := r.readEntry(h)
	if err != nil {
		return err
	}
	if err := checkLayout(b); err != nil {
		return err
	}
	r.metaDigests[LayoutFile] = digest.FromBytes(b)
	if h, err = r.nextEntry(); err != nil {
		return classifyErr("reading index.json", eofIsTruncation(err))
	}
	if h.Name != IndexFile {
		return fmt.Errorf("%w: second entry is %q, not %s", ErrNotBundle, truncate(h.Name, 100), IndexFile)
	}
	index, err := r.readEntry(h)
	if err != nil {
		return err
	}
	r.metaDigests[IndexFile] = digest.FromBytes(index)
	// Signature files directly follow index.json; verify before parsing.
	for {
		h, err := r.nextEntry()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if h.Name != SignatureFile && h.Name != SigstoreBundleFile {
			r.pushed = h
			break
		}
		if _, dup := r.files[h.Name]; dup {
			return fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
		}
		if r.files[h.Name], err = r.readEntry(h); err != nil {
			return err
		}
		r.metaDigests[h.Name] = digest.FromBytes(r.files[h.Name])
	}
	if err := r.checkSignature(index); err != nil {
		return err
	}
	if err := r.setIndex(index); err != nil {
		return err
	}
	// Manifests follow, each after a manifest (or index.json) that lists it.
	// Every descriptor is checked against the first of its digest as it is
	// met, in archive order, so a disagreement is reported the same way
	// whichever way the archive is read.
	pending := map[digest.Digest]ocispec.Descriptor{}
	// the reference of the first image found to use each pending manifest,
	// to name it in errors
	refOf := map[digest.Digest]string{}
	roots, refs := r.roots()
	for i, d := range roots {
		if err := r.g.see(d, "index.json entry "+refs[i]); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, &RefError{Ref: refs[i], Err: err})
		}
		pending[d.Digest] = d
		if _, ok := refOf[d.Digest]; !ok {
			refOf[d.Digest] = refs[i]
		}
	}
	got := map[digest.Digest][]byte{}
	parsed := map[digest.Digest]parsedManifest{}
	edges := len(roots)
	for len(pending) > 0 {
		h, err := r.nextEntry()
		if err != nil {
			if err == io.EOF {
				return r.missing(pending)
			}
			return err
		}
		if strings.HasSuffix(h.Name, "/") {
			continue
		}
		if err := r.checkLateEntry(h); err != nil {
			return err
		}
		d := nameDigest(h.Name)
		desc, ok := pending[d]
		if !ok {
			if _, dup := got[d]; dup {
				return fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
			}
			return fmt.Errorf("%w: entry %s comes before the manifests that reference it, or nothing references it", ErrCorrupt, h.Name)
		}
		if h.Size != desc.Size {
			return fmt.Errorf("%w: entry %s is %d bytes, its descriptor says %d", ErrDigestMismatch, h.Name, h.Size, desc.Size)
		}
		what := "manifest " + d.String() + " of " + truncate(refOf[d], 200)
		if h.Size > MaxManifestBytes {
			return tooLarge(what, h.Size)
		}
		b, err := r.readEntry(h)
		if err != nil {
			return err
		}
		if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
			return fmt.Errorf("%w: manifest %s hashes to %s", ErrDigestMismatch, desc.Digest, got)
		}
		got[d] = b
		delete(pending, d)
		mt, children, err := parseManifest(b, desc.MediaType)
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				return fmt.Errorf("manifest %s: %w", d, err)
			}
			return inBundle(fmt.Errorf("%s: %w", what, err))
		}
		parsed[d] = parsedManifest{mediaType: mt, children: children}
		if edges += len(children); edges > maxEdges {
			return fmt.Errorf("%w: the manifests list more than %d descriptors in all", ErrTooLarge, maxEdges)
		}
		for _, c := range children {
			if err := r.g.see(c.desc, "manifest "+d.String()); err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			if _, done := got[c.desc.Digest]; c.manifest && !done {
				pending[c.desc.Digest] = c.desc
				if _, ok := refOf[c.desc.Digest]; !ok {
					refOf[c.desc.Digest] = refOf[d]
				}
			}
		}
		if len(got) > maxManifests {
			return fmt.Errorf("%w: more than %d manifests", ErrTooLarge, maxManifests)
		}
	}
	w := &walker{g: r.g, parsed: parsed, fetch: func(d ocispec.Descriptor) ([]byte, error) { return got[d.Digest], nil }}
	if err := w.walk(roots, refs); err != nil {
		if errors.Is(err, ErrDescriptorConflict) {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return err
	}
	if err := r.checkReferrers(); err != nil {
		return err
	}
	return r.checkDelta()
}

// checkLateEntry refuses, after the signature files, the entries that may
// stand only at the start of the archive.
func (r *Reader) checkLateEntry(h *tar.Header) error {
	switch h.Name {
	case SignatureFile, SigstoreBundleFile:
		return fmt.Errorf("%w: %s must directly follow index.json", ErrCorrupt, h.Name)
	case LayoutFile, IndexFile:
		return fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
	}
	return nil
}

// blobEntry checks an entry after the manifests: a config or layer that a
// manifest references, not seen before, with its descriptor's size. It
// returns nil for a directory entry.
func (r *Reader) blobEntry(h *tar.Header) (*blobInfo, error) {
	if strings.HasSuffix(h.Name, "/") {
		return nil, nil
	}
	if err := r.checkLateEntry(h); err != nil {
		return nil, err
	}
	d := nameDigest(h.Name)
	b, ok := r.g.blobs[d]
	if _, isManifest := r.g.manifests[d]; isManifest || (ok && r.seen[d]) {
		return nil, fmt.Errorf("%w: duplicate entry %s", ErrCorrupt, h.Name)
	}
	if !ok {
		return nil, fmt.Errorf("%w: entry %s is not referenced by the index or any manifest", ErrCorrupt, h.Name)
	}
	if _, out := r.leftOut[d]; out {
		return nil, inBundle(fmt.Errorf("%w: entry %s is in the archive, but index.json says this delta leaves it out", ErrCorrupt, h.Name))
	}
	if h.Size != b.desc.Size {
		return nil, &BlobError{Op: "read", Digest: d, Images: r.g.Users(d),
			Err: fmt.Errorf("%w: archive entry is %d bytes, descriptor says %d", ErrDigestMismatch, h.Size, b.desc.Size)}
	}
	r.seen[d] = true
	return b, nil
}

// complete checks, at the end of the archive, that every referenced blob
// was there.
func (r *Reader) complete() error {
	pending := map[digest.Digest]ocispec.Descriptor{}
	for d, b := range r.g.blobs {
		// A blob a delta leaves out is allowed to be absent: only there,
		// and only when index.json (signed) names it under a base.
		if _, out := r.leftOut[d]; !r.seen[d] && !out {
			pending[d] = b.desc
		}
	}
	if len(pending) > 0 {
		return r.missing(pending)
	}
	return nil
}

func eofIsTruncation(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
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
	var users []string
	if r.g != nil {
		users = r.g.Users(first)
	}
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
