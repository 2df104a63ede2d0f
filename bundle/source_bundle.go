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

// streamSpool opens a blob of a sequential read: the stream the first
// time, kept in a temporary file as it streams, so that a broken upload can
// be sent again and other repositories can get it when the destination
// cannot mount it. One blob at a time: the disk budget is the largest blob
// of the bundle.
type streamSpool struct {
	mu     sync.Mutex // open is called by the uploads to several repositories at once
	stream io.Reader
	desc   ocispec.Descriptor
	dir    string
	tee    io.Reader
	file   *os.File
}

func (s *streamSpool) open() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, ".ferry-import-*")
		if err != nil {
			return nil, fmt.Errorf("creating a temporary file in %s: %w", s.dir, err)
		}
		s.file, s.tee = f, io.TeeReader(s.stream, f)
		return io.NopCloser(s.tee), nil
	}
	// Finish reading (and verifying) the blob into the spool first.
	if err := s.drain(); err != nil {
		return nil, err
	}
	return io.NopCloser(NewVerifyReader(io.NewSectionReader(s.file, 0, s.desc.Size), s.desc)), nil
}

// finish reads what the first reader left of the stream (all of it when
// the destination had the blob), so the blob is verified whole even when
// the destination did not need all of it.
func (s *streamSpool) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		s.tee = s.stream
	}
	return s.drain()
}

func (s *streamSpool) drain() error {
	if s.tee == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, s.tee)
	s.tee = nil
	return err
}

func (s *streamSpool) release() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}
