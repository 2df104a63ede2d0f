package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// archiveTarget is the bundle archive as a target of the engine. Stored
// layers, whose frame length is known in advance, go straight into a place
// reserved for them when the output is a regular file, in any order and
// with no spool. Every other blob is encoded into a spool (memory, or a
// temporary file when large) and appended in archive order.
type archiveTarget struct {
	bw      *Writer
	blobs   []ocispec.Descriptor // in archive order
	opts    EncoderOptions
	tempDir string
	f       *os.File // the output, when stored blobs are placed
	base    int64    // where the archive starts in f
	places  map[digest.Digest]place

	mu     sync.Mutex
	spools map[digest.Digest]*spooled

	// encoders store blobs (they hold a block buffer, no zstd window).
	encoders sync.Pool
	// compressors are the encoders that compress (each holds a zstd
	// window): at most Jobs, however many small blobs are fetched at once.
	compressors chan *Encoder
	made        atomic.Int64
}

var _ orderedTarget = (*archiveTarget)(nil)

// newArchiveTarget starts the bundle of graph g on w: the layout file,
// the signed index.json and its signatures, then every manifest, written
// now because a reader of the stream needs the graph before the blobs.
// Blobs follow in archive order (blobs: g.orderedBlobs, less those a delta
// leaves out); commit ends
// the archive with its seek table.
func newArchiveTarget(w io.Writer, g *graph, blobs []ocispec.Descriptor, index []byte, sigs map[string][]byte, opts ExportOptions) (*archiveTarget, error) {
	bw := NewWriter(w, opts.Encoder)
	if err := bw.WriteFile(LayoutFile, []byte(layoutContent)); err != nil {
		return nil, err
	}
	if err := bw.WriteFile(IndexFile, index); err != nil {
		return nil, err
	}
	for _, n := range []string{SignatureFile, SigstoreBundleFile} {
		if b, ok := sigs[n]; ok {
			if err := bw.WriteFile(n, b); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range g.manifestOrder {
		m := g.manifests[d]
		if err := bw.WriteBlob(m.Descriptor, bytes.NewReader(m.Bytes)); err != nil {
			return nil, err
		}
	}
	t := &archiveTarget{
		bw: bw, opts: opts.Encoder, tempDir: opts.TempDir,
		blobs:       blobs,
		spools:      map[digest.Digest]*spooled{},
		compressors: make(chan *Encoder, opts.Jobs),
	}
	t.encoders.New = func() any { return NewEncoder(opts.Encoder) }
	stored := 0
	for stored < len(t.blobs) && opts.Encoder.stores(t.blobs[stored], nil) {
		stored++
	}
	f, pos, ok := seekableFile(w)
	if !ok || stored == 0 {
		return t, nil
	}
	// Stored layers come first and have a length known in advance:
	// reserve their place, to fetch them in parallel straight into it.
	t.f, t.base = f, pos-bw.Size()
	t.places = make(map[digest.Digest]place, stored)
	for _, desc := range t.blobs[:stored] {
		off, n, err := bw.reserveStored(desc)
		if err != nil {
			return nil, fmt.Errorf("writing the bundle: %w", err)
		}
		t.places[desc.Digest] = place{off, n}
	}
	return t, nil
}

// commit ends the archive: the end-of-archive frame and the seek table.
func (t *archiveTarget) commit() error {
	if err := t.bw.Close(); err != nil {
		return fmt.Errorf("writing the bundle: %w", err)
	}
	return nil
}

// place is where a stored frame goes in the archive.
type place struct{ offset, length int64 }

func (t *archiveTarget) inOrder(blobs []ocispec.Descriptor) (anyOrder, ordered []ocispec.Descriptor) {
	for _, desc := range blobs {
		if _, ok := t.places[desc.Digest]; ok {
			anyOrder = append(anyOrder, desc)
		} else {
			ordered = append(ordered, desc)
		}
	}
	return anyOrder, ordered
}

func (t *archiveTarget) display(string, string) string { return "the bundle" }

// pushBlob encodes desc into its place, or into its spool to wait for its
// turn, stored or compressed as EncoderOptions.stores decides. Errors of
// the output are writeErrors; the engine knows a failed read of the source
// by itself.
func (t *archiveTarget) pushBlob(ctx context.Context, _, _ string, desc ocispec.Descriptor, open opener) (blobOutcome, error) {
	var dst io.Writer
	var s *spooled
	p, placed := t.places[desc.Digest]
	if placed {
		dst = io.NewOffsetWriter(t.f, t.base+p.offset)
	} else {
		t.mu.Lock()
		s = t.spools[desc.Digest]
		if s == nil {
			s = &spooled{}
			t.spools[desc.Digest] = s
		}
		t.mu.Unlock()
		var err error
		if dst, err = s.prepare(t.tempDir, desc.Size); err != nil {
			return 0, &writeError{err}
		}
	}
	rc, err := open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var src io.Reader = rc
	var enc *Encoder
	if t.opts.stores(desc, nil) {
		enc = t.encoders.Get().(*Encoder)
		defer t.encoders.Put(enc)
	} else {
		// Compressed: a small blob is fetched first (many at once, it
		// costs a round trip), then compressed by one of Jobs encoders; a
		// large one streams through one.
		if desc.Size <= memSpoolLimit {
			b, err := io.ReadAll(io.LimitReader(src, desc.Size+1))
			if err != nil {
				return 0, err
			}
			src = bytes.NewReader(b)
		}
		if enc, err = t.compressor(ctx); err != nil {
			return 0, err
		}
		defer func() { t.compressors <- enc }()
	}
	entry, err := enc.encodeVerified(dst, desc, src)
	if err != nil {
		return 0, &writeError{err}
	}
	if placed {
		if entry.Length != p.length {
			return 0, &writeError{fmt.Errorf("frame is %d bytes, %d were reserved", entry.Length, p.length)}
		}
		startWriteback(t.f, t.base+p.offset, p.length)
	} else {
		s.entry = entry
	}
	return blobUploaded, nil
}

// flush appends the spooled entry of desc to the archive.
func (t *archiveTarget) flush(desc ocispec.Descriptor) error {
	t.mu.Lock()
	s := t.spools[desc.Digest]
	delete(t.spools, desc.Digest)
	t.mu.Unlock()
	r, err := s.reader()
	if err == nil {
		err = t.bw.AppendEncoded(s.entry, r)
	}
	s.release()
	if err != nil {
		return fmt.Errorf("writing blob %s to the bundle: %w", desc.Digest, err)
	}
	return nil
}

// Close removes the spools of blobs not appended (after a failure).
func (t *archiveTarget) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for d, s := range t.spools {
		s.release()
		delete(t.spools, d)
	}
	return nil
}

// compressor returns a free compressing encoder, making one while fewer
// than Jobs exist, else waiting for one.
func (t *archiveTarget) compressor(ctx context.Context) (*Encoder, error) {
	select {
	case c := <-t.compressors:
		return c, nil
	default:
	}
	if t.made.Add(1) <= int64(cap(t.compressors)) {
		return NewEncoder(t.opts), nil
	}
	select {
	case c := <-t.compressors:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// spooled is an encoded entry waiting for its turn.
type spooled struct {
	entry EncodedEntry
	mem   *bytes.Buffer
	file  *os.File
}

// prepare returns an empty spool for an attempt: memory for small blobs, a
// temporary file for larger ones.
func (s *spooled) prepare(tempDir string, size int64) (io.Writer, error) {
	if size <= memSpoolLimit {
		s.mem = new(bytes.Buffer)
		return s.mem, nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(tempDir, ".ferry-spool-*")
		if err != nil {
			return nil, fmt.Errorf("creating a temporary file in %s: %w", tempDir, err)
		}
		s.file = f
	}
	if err := s.file.Truncate(0); err != nil {
		return nil, err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.file, nil
}

func (s *spooled) reader() (io.Reader, error) {
	if s.mem != nil {
		return s.mem, nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.file, nil
}

func (s *spooled) release() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
	s.mem = nil
}

// memSpoolLimit: blobs up to this size are spooled in memory, larger ones
// in a temporary file.
const memSpoolLimit = 1 << 20

// seekableFile returns w as a regular file and its current offset, when it
// is one.
func seekableFile(w io.Writer) (*os.File, int64, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return nil, 0, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, 0, false
	}
	base, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false
	}
	// A file opened for appending cannot be written at an offset, and on a
	// file system without sparse files (FAT, exFAT: the usual USB disk)
	// writing past the end first fills the gap with zeros.
	if _, err := f.WriteAt(nil, base); err != nil || !sparseFiles(f) {
		return nil, 0, false
	}
	return f, base, true
}
