package report

// SchemaVersion is the version of every document of this package.
const SchemaVersion = 1

// Header starts every document.
type Header struct {
	SchemaVersion int `json:"schemaVersion"`
	// Command is "export", "import", "inspect" or "verify".
	Command string `json:"command"`
	// OK is true when the command succeeded (exit code 0).
	OK bool `json:"ok"`
	// Error says why the command failed; absent on success.
	Error *Error `json:"error,omitempty"`
}

// NewHeader returns the header of a successful run of command.
func NewHeader(command string) Header {
	return Header{SchemaVersion: SchemaVersion, Command: command, OK: true}
}

// Error is a failure: the message printed on standard error, the exit
// code, and what failed when known.
type Error struct {
	Message  string `json:"message"`
	ExitCode int    `json:"exitCode"`
	// Op is what was done to Blob when it failed: fetch, verify, push,
	// read or write.
	Op   string `json:"op,omitempty"`
	Blob string `json:"blob,omitempty"`
	// Images are the references of the images concerned: those using
	// Blob, or those that could not be resolved.
	Images []string `json:"images,omitempty"`
}

// Failed is the document of a run that failed before it had anything
// else to say.
type Failed struct {
	Header
}

// Export is the document of ferry export --json.
type Export struct {
	Header
	// Output is the bundle file, or "-" for standard output.
	Output string        `json:"output"`
	Images []ExportImage `json:"images"`
	// Platforms is the number of platform manifests over all images.
	Platforms int `json:"platforms"`
	// Blobs and UniqueBytes count the distinct manifests, configs and
	// layers stored; ReferencedBytes is the sum over every image of
	// what it uses (ReferencedBytes - UniqueBytes - LeftOutBytes is what
	// deduplication saved).
	Blobs           int   `json:"blobs"`
	UniqueBytes     int64 `json:"uniqueBytes"`
	ReferencedBytes int64 `json:"referencedBytes"`
	// LeftOutBlobs and LeftOutBytes: what a delta (--base) leaves out.
	LeftOutBlobs    int     `json:"leftOutBlobs,omitempty"`
	LeftOutBytes    int64   `json:"leftOutBytes,omitempty"`
	ArchiveBytes    int64   `json:"archiveBytes"`
	DurationSeconds float64 `json:"durationSeconds"`
	// SignedBy is the fingerprint of the signing key; empty when unsigned.
	SignedBy string `json:"signedBy,omitempty"`
	// DryRun: --dry-run resolved the images and wrote no bundle; the
	// sizes are what the bundle would hold.
	DryRun bool `json:"dryRun,omitempty"`
	// Egress is every host the export contacted (also when it failed).
	Egress *EgressSummary `json:"egress,omitempty"`
}

// ExportImage is one image written to the bundle.
type ExportImage struct {
	Ref string `json:"ref"`
	// Digest is the digest the image has in the bundle.
	Digest    string   `json:"digest"`
	MediaType string   `json:"mediaType"`
	Platforms []string `json:"platforms,omitempty"`
	// Size is the sum of the manifests, configs and layers it uses.
	Size int64 `json:"size"`
	// UpstreamDigest is the source's digest when --platform rewrote the
	// index (Digest is then the rewritten one's).
	UpstreamDigest string `json:"upstreamDigest,omitempty"`
	// PublisherSignedBy, with --require-signature, names what signed the
	// image: "key sha256:…" or "certificate SUBJECT (issuer ISSUER)".
	PublisherSignedBy string `json:"publisherSignedBy,omitempty"`
}

// EgressSummary is every host an export contacted (registries, their
// token services, the hosts blob downloads were redirected to), as
// --egress-report records them; that file has the firewall rules too.
type EgressSummary struct {
	// Report is the file the full egress report was written to, if any.
	Report    string       `json:"report,omitempty"`
	Hosts     []EgressHost `json:"hosts"`
	Allowlist []string     `json:"allowlist"`
}

// EgressHost is one host an export contacted.
type EgressHost struct {
	Host string `json:"host"`
	// Roles: registry, token, redirect.
	Roles         []string `json:"roles"`
	Requests      int64    `json:"requests"`
	BytesReceived int64    `json:"bytesReceived"`
	BytesSent     int64    `json:"bytesSent"`
}

// Import is the document of ferry import --json.
type Import struct {
	Header
	// Bundle is the bundle file, or "-" for standard input.
	Bundle string `json:"bundle"`
	// Destination is --to as given.
	Destination string        `json:"destination"`
	Images      []ImportImage `json:"images"`
	// Totals of the run: each blob counted once per repository that
	// needed it. BlobsPresent: the repository already held it.
	BlobsUploaded   int     `json:"blobsUploaded"`
	BlobsMounted    int     `json:"blobsMounted"`
	BlobsPresent    int     `json:"blobsPresent"`
	BytesUploaded   int64   `json:"bytesUploaded"`
	Manifests       int     `json:"manifests"`
	DurationSeconds float64 `json:"durationSeconds"`
	// Receipt is where the destination's receipt was recorded.
	Receipt  string   `json:"receipt,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// ImportImage is one image put at the destination.
type ImportImage struct {
	Source string `json:"source"`
	// Destination is repository:tag, or repository@digest.
	Destination string `json:"destination"`
	// Digest is the bundle's; DestinationDigest what the destination
	// resolved Destination to after the push; Confirmed says they match.
	Digest            string `json:"digest"`
	DestinationDigest string `json:"destinationDigest"`
	Confirmed         bool   `json:"confirmed"`
	UpstreamDigest    string `json:"upstreamDigest,omitempty"`
	// PublisherSignedBy, with --require-signature, names what signed the
	// image, as in ExportImage.
	PublisherSignedBy string `json:"publisherSignedBy,omitempty"`
	// How the configs and layers of this image reached its repository. A
	// blob shared by images of one repository counts in each of them; one
	// shared across repositories is uploaded to the first and mounted
	// into the others. Sums over images may exceed the run's totals.
	BlobsUploaded int   `json:"blobsUploaded"`
	BlobsMounted  int   `json:"blobsMounted"`
	BlobsPresent  int   `json:"blobsPresent"`
	BytesUploaded int64 `json:"bytesUploaded"`
}

// Inspect is the document of ferry inspect --json.
type Inspect struct {
	Header
	FormatVersion string            `json:"formatVersion"`
	Created       string            `json:"created,omitempty"`
	FerryVersion  string            `json:"ferryVersion,omitempty"`
	Platforms     string            `json:"platformFilter,omitempty"`
	Signed        bool              `json:"signed"`
	SignedBy      string            `json:"signedBy,omitempty"`
	SeekTable     bool              `json:"seekTable"`
	Images        []InspectImage    `json:"images"`
	Blobs         int               `json:"blobs"`
	UniqueBytes   int64             `json:"uniqueBytes"`
	ArchiveBytes  int64             `json:"archiveBytes,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Delta         *Delta            `json:"delta,omitempty"`
}

// InspectImage is one image of a bundle.
type InspectImage struct {
	Ref       string   `json:"ref"`
	Digest    string   `json:"digest"`
	MediaType string   `json:"mediaType"`
	Platforms []string `json:"platforms,omitempty"`
	Size      int64    `json:"size"`
	// Referrers are the signatures, SBOMs and attestations carried for
	// the image (docs/format.md, section 5.7).
	Referrers []InspectReferrer `json:"referrers,omitempty"`
}

// InspectReferrer is a signature, SBOM or attestation carried for an
// image: Subject is the manifest it refers to (the image, or one of its
// platform manifests or referrers).
type InspectReferrer struct {
	Ref          string `json:"ref"`
	Digest       string `json:"digest"`
	Subject      string `json:"subject"`
	ArtifactType string `json:"artifactType"`
	MediaType    string `json:"mediaType"`
	Size         int64  `json:"size"`
}

// Delta says what a delta bundle leaves out, and of which base.
type Delta struct {
	LeftOutBlobs int    `json:"leftOutBlobs"`
	LeftOutBytes int64  `json:"leftOutBytes"`
	Bases        []Base `json:"bases"`
}

// Base is one base of a delta.
type Base struct {
	Kind         string `json:"kind"`
	Digest       string `json:"digest"`
	Name         string `json:"name,omitempty"`
	LeftOutBlobs int    `json:"leftOutBlobs"`
	LeftOutBytes int64  `json:"leftOutBytes,omitempty"`
}

// Verify is the document of ferry verify --json.
type Verify struct {
	Header
	// Result is "ok" or "failed" (as OK; kept for scripts written before
	// the header).
	Result string `json:"result"`
	Images int    `json:"images"`
	// Referrers: signatures, SBOMs and attestations carried for the
	// images (docs/format.md, section 5.7).
	Referrers      int    `json:"referrers,omitempty"`
	Blobs          int    `json:"blobs"`
	Bytes          int64  `json:"bytes"`
	KeyFingerprint string `json:"keyFingerprint,omitempty"`
	Delta          *Delta `json:"delta,omitempty"`
	// BasesChecked: --base was given and the delta is complete against it.
	BasesChecked bool `json:"basesChecked,omitempty"`
}

// Fail marks the run failed with e.
func (h *Header) Fail(e *Error) {
	h.OK = false
	h.Error = e
}
