package bundle

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Format constants. docs/format.md is the specification; these follow it.
const (
	// FormatVersion is the bundle format version this package writes.
	FormatVersion = "1"

	// MaxManifestBytes caps index.json, every manifest and index, and every
	// other metadata file read into memory.
	MaxManifestBytes = 4 << 20

	// Entry names.
	LayoutFile = "oci-layout"
	IndexFile  = "index.json"
	// SignatureFile and SigstoreBundleFile are reserved for the signed index:
	// when present they directly follow index.json.
	SignatureFile      = "index.json.sig"
	SigstoreBundleFile = "index.json.sigstore.json"
	BlobsDir           = "blobs"

	layoutContent = `{"imageLayoutVersion":"1.0.0"}`
)

// Annotation keys written by ferry.
const (
	// AnnotationRefName is the OCI annotation carrying the full normalised
	// source reference of an exported image.
	AnnotationRefName = "org.opencontainers.image.ref.name"

	annotationPrefix = "org.ferryproject.bundle."
	// AnnotationFormatVersion (index.json top level): bundle format version.
	AnnotationFormatVersion = annotationPrefix + "format-version"
	// AnnotationCreated (index.json top level): creation time, RFC 3339.
	AnnotationCreated = "org.opencontainers.image.created"
	// AnnotationFerryVersion (index.json top level): version of the writer.
	AnnotationFerryVersion = annotationPrefix + "ferry-version"
	// AnnotationPlatforms (index.json top level): the platform filter used
	// at export, comma separated; absent when every platform was kept.
	AnnotationPlatforms = annotationPrefix + "platforms"
	// AnnotationOriginalDigest: on an index rewritten by a platform filter
	// (in index.json and in the rewritten index), the digest of the index as
	// the source registry served it.
	AnnotationOriginalDigest = annotationPrefix + "original-digest"
	// AnnotationDeltaBases (index.json top level): present only in a delta
	// bundle; names its bases and the blobs it leaves out of each (a JSON
	// array, see DeltaBase and docs/format.md, section 5.6).
	AnnotationDeltaBases = annotationPrefix + "delta-bases"
	// AnnotationSubject (on an index.json entry): the entry is a referrer
	// (a signature, SBOM or attestation) of the manifest with this digest,
	// not an exported image (docs/format.md, section 5.7).
	AnnotationSubject = annotationPrefix + "subject"
)

var hexRe = map[digest.Algorithm]*regexp.Regexp{
	digest.SHA256: regexp.MustCompile(`^[a-f0-9]{64}$`),
	digest.SHA512: regexp.MustCompile(`^[a-f0-9]{128}$`),
}

// BlobPath is the entry name of a blob in the archive: blobs/<alg>/<hex>.
func BlobPath(d digest.Digest) string {
	return BlobsDir + "/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// validateDigest accepts only sha256 and sha512 digests in canonical form.
func validateDigest(d digest.Digest) error {
	alg, enc, found := strings.Cut(string(d), ":")
	re, ok := hexRe[digest.Algorithm(alg)]
	if !found || !ok || !re.MatchString(enc) {
		return fmt.Errorf("%w: digest %q (only sha256 and sha512 are accepted)", ErrUnsupported, truncate(string(d), 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
