package bundle

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors. Every error returned by this package that falls in one of
// these classes wraps the sentinel, so callers can test with errors.Is.
var (
	// ErrNotBundle: the input is not a ferry bundle (not zstd, not tar, or
	// no OCI layout at the start).
	ErrNotBundle = errors.New("not a ferry bundle")
	// ErrTruncated: the archive ends before its content is complete.
	ErrTruncated = errors.New("archive is truncated")
	// ErrCorrupt: the archive is structurally invalid (unsafe or unexpected
	// entries, bad seek table, entries out of order, duplicates), or holds
	// content that ferry export never writes (metadata over
	// MaxManifestBytes, a tar extended header over 1 MiB, a digest
	// algorithm other than sha256 and sha512, a Docker schema 1 manifest);
	// those errors also wrap ErrTooLarge or ErrUnsupported.
	ErrCorrupt = errors.New("archive is corrupt")
	// ErrDigestMismatch: content does not match its digest or size.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrMissingBlob: a descriptor names a blob that the archive does not hold.
	ErrMissingBlob = errors.New("blob missing from archive")
	// ErrUnsupported: a manifest type ferry refuses to carry (Docker schema 1)
	// or a digest algorithm it does not accept, or a bundle format version
	// newer than this ferry reads. Found in a bundle (but for the format
	// version), it is also ErrCorrupt.
	ErrUnsupported = errors.New("unsupported content")
	// ErrTooLarge: a manifest, index or metadata file exceeds
	// MaxManifestBytes, or a manifest graph exceeds the limits of
	// docs/format.md, section 6. A metadata entry of a bundle over
	// MaxManifestBytes is also ErrCorrupt.
	ErrTooLarge = errors.New("content exceeds size limit")
	// ErrConflict: two source references map to one destination tag with
	// different digests, or a tag was moved by another push during an
	// import.
	ErrConflict = errors.New("destination conflict")
	// ErrDestination: after an import, the destination answers another
	// digest for a manifest pushed by digest: it does not keep what it was
	// sent.
	ErrDestination = errors.New("destination does not hold what was pushed")
	// ErrNoMatchingPlatform: a platform filter left nothing of an image.
	ErrNoMatchingPlatform = errors.New("no matching platform")
	// ErrBaseMissing: a blob that a delta bundle leaves out is not at the
	// destination of its import (nor mountable there), or not in the bases
	// given to check it offline.
	ErrBaseMissing = errors.New("delta base content missing")
	// ErrInvalidReference: an image reference cannot be parsed.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrRollback: a signed bundle older than the one that last set a
	// destination tag (by the trusted history of the receipt) would move
	// the tag to another digest; see ImportOptions.AllowRollback.
	ErrRollback = errors.New("rollback refused")
	// ErrReferrer: a registry's list of referrers is not an image index,
	// names an unsupported digest or a manifest whose subject is another
	// one, or referrers nest deeper than export follows; in a bundle, an
	// index.json entry marked as a referrer that is not one (also
	// ErrCorrupt).
	ErrReferrer = errors.New("invalid referrer")
)

// notByFerry is what the operator is told of content in a bundle that ferry
// export refuses to write.
const notByFerry = "ferry export never writes this, so the bundle was changed after export or made by another tool: export the images again"

// inBundle marks err, content found in a bundle that ferry export never
// writes (ErrTooLarge, ErrUnsupported), as ErrCorrupt too: whatever the
// path reading it, such a bundle is refused as a bundle that fails its
// checks (exit code 3 of the CLI), while the same content met at export is
// a failure of the source (exit code 1). err keeps its own sentinel for
// errors.Is; an error already ErrCorrupt is returned as it is.
func inBundle(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %w; %s", ErrCorrupt, err, notByFerry)
}

// BlobError says which blob failed, which images use it, and on which side
// of the copy.
type BlobError struct {
	Op     string // "fetch", "verify", "push", "read", "write"
	Digest digest.Digest
	Images []string // references of the images that use the blob
	Err    error
}

func (e *BlobError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s blob %s", e.Op, e.Digest)
	if len(e.Images) > 0 {
		fmt.Fprintf(&b, " (used by %s)", joinLimited(e.Images, 3))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *BlobError) Unwrap() error { return e.Err }

// RefError is the failure of one image reference.
type RefError struct {
	Ref string
	Err error
}

func (e *RefError) Error() string { return fmt.Sprintf("%s: %v", e.Ref, e.Err) }
func (e *RefError) Unwrap() error { return e.Err }

// ResolveError collects the failures of every reference that could not be
// resolved, so an operator sees all of them at once.
type ResolveError struct {
	Failures []*RefError
}

func (e *ResolveError) Error() string {
	if len(e.Failures) == 1 {
		return "resolving " + e.Failures[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of the images could not be resolved:", len(e.Failures))
	for _, f := range e.Failures {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns every failure, so errors.Is finds any of their causes.
func (e *ResolveError) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f
	}
	return out
}

func joinLimited(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(s[:n], ", "), len(s)-n)
}
