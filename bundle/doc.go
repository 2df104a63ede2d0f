// Package bundle reads and writes ferry bundles and moves images between
// registries and bundles.
//
// A bundle is one file: a sequence of zstd frames whose decompressed content
// is a POSIX tar stream of an OCI image layout (oci-layout, index.json,
// blobs/sha256/...). Every blob is stored once, byte for byte as the registry
// served it, so digests never change. Each tar entry is its own zstd frame
// and a seek table in a trailing skippable frame gives random access; stock
// `zstd -dc | tar -x` still yields a valid layout. The format is specified in
// docs/format.md.
//
// Export and ExportFile resolve image references and write a bundle;
// PlanExport reports what they would write without downloading layers, and
// RegistryOptions.Egress records every host contacted; Open and
// NewReader read one, checking every manifest before returning; Import and
// ImportFile push a bundle's content to a registry. Writer, Encoder and
// Reader give lower-level access to the format.
//
// Export carries each image's referrers (signatures, SBOMs, attestations) as
// index.json entries marked with AnnotationSubject; Reader.Images lists them
// under their image, and Import makes them resolve at the destination
// (docs/format.md, section 5.7).
//
// Errors wrap the sentinels in errors.go (ErrDigestMismatch, ErrCorrupt,
// ErrTruncated, ...), test them with errors.Is. *BlobError names the blob
// and the images that use it; *ResolveError lists every reference that
// failed to resolve.
package bundle
