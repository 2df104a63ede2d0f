package bundle

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// Receipt records what imports put at one destination, and which signed
// bundles put it there. It is kept at the destination registry (merged
// across imports) and can be written to a file (--receipt-out) to carry
// back to the connected side, where it serves as the base of a delta
// bundle (ferry export --base RECEIPT). Its JSON form is its file format;
// docs/format.md describes it.
//
// A receipt read back is trusted only as far as signed data backs it: the
// tag history used for rollback decisions is derived from the signed
// index.json files in Bundles (checked against the trusted keys), never
// from Tags alone.
type Receipt struct {
	// Version of the receipt format: 1.
	Version int `json:"version"`
	// Destination is the registry and optional path prefix the imports
	// went to (the --to value, normalised).
	Destination string `json:"destination"`
	// Tags maps each destination reference (repository:tag) to what it
	// holds and which bundle set it.
	Tags map[string]ReceiptTag `json:"tags"`
	// Blobs are the digests of every blob known present at the
	// destination, sorted.
	Blobs []digest.Digest `json:"blobs"`
	// Bundles are the signed index.json files (with their signatures) of
	// the bundles recorded, oldest first. Entries that later bundles
	// superseded for every tag they set are dropped.
	Bundles []ReceiptBundle `json:"bundles"`
	// Records are the tags of the per-import records (in the receipt
	// repository of a registry destination) merged into this receipt,
	// sorted. A record not listed here is merged when the receipt is read.
	Records []string `json:"records,omitempty"`
}

// ReceiptTag is what one destination tag holds, and which bundle set it.
type ReceiptTag struct {
	Digest digest.Digest `json:"digest"`
	// Bundle is the digest of the index.json of the bundle that set the
	// tag; Created its signed creation time; Key the fingerprint of the key
	// that signed it (empty for an unsigned import).
	Bundle  digest.Digest `json:"bundle"`
	Created time.Time     `json:"created"`
	Key     string        `json:"key,omitempty"`
}

// ReceiptBundle is the signed root of one imported bundle: the exact
// index.json bytes and the signature files that came with them.
type ReceiptBundle struct {
	Index          []byte `json:"index"`
	Signature      []byte `json:"signature,omitempty"`
	SigstoreBundle []byte `json:"sigstoreBundle,omitempty"`
	// KeepSourceRegistry is how the import mapped the bundle's references
	// to destination tags (ImportOptions.KeepSourceRegistry). It is not
	// signed: changing it can only move the bundle's history onto the tags
	// the same signed index.json names under the other mapping.
	KeepSourceRegistry bool `json:"keepSourceRegistry,omitempty"`
}
