package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// bundleSource is a bundle read from a file as a source of the engine:
// any blob, in any order, verified as it is read.
type bundleSource struct{ r *Reader }

func (s bundleSource) fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return s.r.OpenBlob(desc)
}

// failed: a local file is not read again; content that does not match is
// the bundle's damage (exit 3), anything else a failure to read it.
func (s bundleSource) failed(_ ocispec.Descriptor, err error) (string, error, bool) {
	if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated) {
		return "verify", err, false
	}
	return "read", err, false
}

// bundleStream is a bundle read from a stream: its blobs come once, in
// archive order.
type bundleStream struct {
	bundleSource
	tempDir string
}

var _ sequentialSource = (*bundleStream)(nil)

func (s *bundleStream) fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return nil, errors.New("a bundle read from a stream gives its blobs in order only")
}

func (s *bundleStream) next() (ocispec.Descriptor, opener, func(bool) error, error) {
	desc, rd, err := s.r.Next()
	if err == io.EOF {
		return desc, nil, nil, err
	}
	if err != nil {
		if desc.Digest == "" {
			return desc, nil, nil, fmt.Errorf("reading the bundle: %w", err)
		}
		return desc, nil, nil, &BlobError{Op: "read", Digest: desc.Digest, Images: s.r.Users(desc.Digest), Err: err}
	}
	sp := &streamSpool{stream: rd, desc: desc, dir: s.tempDir}
	done := func(finish bool) error {
		defer sp.release()
		if !finish {
			return nil
		}
		return sp.finish()
	}
	return desc, sp.open, done, nil
}

// streamSpool opens a blob of a sequential read: every reader reads the
// blob from its start, what the spool already holds from the temporary
// file and the rest from the stream, which the reader that gets there
// first copies into the spool. So a broken upload can be sent again and
// several repositories can get it at once when the destination cannot
// mount it, each whole (they used to share one reader of the stream, and
// got each other's bytes). One blob at a time: the disk budget is the
// largest blob of the bundle.
type streamSpool struct {
	mu     sync.Mutex // guards stream, file, n and err
	stream io.Reader  // verified as it is read
	desc   ocispec.Descriptor
	dir    string
	file   *os.File
	n      int64 // bytes of the stream in file
	err    error // how the stream ended (io.EOF: whole and verified)
}

func (s *streamSpool) open() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, ".ferry-import-*")
		if err != nil {
			return nil, fmt.Errorf("creating a temporary file in %s: %w", s.dir, err)
		}
		s.file = f
	}
	return io.NopCloser(&spoolReader{s: s}), nil
}

// spoolReader is one reader of a streamSpool.
type spoolReader struct {
	s   *streamSpool
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	if s.file == nil {
		s.mu.Unlock()
		return 0, fmt.Errorf("blob %s read after its spool was released", s.desc.Digest)
	}
	if r.off < s.n {
		// Spooled bytes do not change: read them without the lock.
		f, n := s.file, s.n
		s.mu.Unlock()
		m, err := f.ReadAt(p[:min(int64(len(p)), n-r.off)], r.off)
		r.off += int64(m)
		if err == io.EOF {
			err = nil // the stream goes on, or ends at the next read
		}
		return m, err
	}
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.stream.Read(p)
	if n > 0 {
		if _, werr := s.file.WriteAt(p[:n], s.n); werr != nil {
			s.err = fmt.Errorf("spooling blob %s in %s: %w", s.desc.Digest, s.dir, werr)
			return 0, s.err
		}
		s.n += int64(n)
		r.off += int64(n)
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// finish reads what the readers left of the stream (all of it when the
// destination had the blob), so the blob is verified whole even when the
// destination did not need all of it.
func (s *streamSpool) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		_, err := io.Copy(io.Discard, s.stream)
		if err == nil {
			err = io.EOF
		}
		s.err = err
	}
	if s.err == io.EOF {
		return nil
	}
	return s.err
}

func (s *streamSpool) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
}
