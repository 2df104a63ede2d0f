package bundle

import (
	"io"
	"os"
)

// VerifyReport is the result of a full offline check of a bundle.
type VerifyReport struct {
	Images    int
	Referrers int   // signatures, SBOMs and attestations carried for them
	Blobs     int   // manifests, configs and layers checked
	Bytes     int64 // content bytes checked
	Signature SignatureInfo
	// Delta is what index.json says of a delta bundle (nil for a full
	// bundle): the blobs it leaves out are not checked, since it does not
	// hold them; CheckBases checks them against the bases.
	Delta *Delta
}

// VerifyFile reads a whole bundle (a file path, or "-" for in) in order and
// checks everything without a registry: the signature (with WithVerifier),
// every manifest, config and layer against its digest and size,
// completeness, no unreachable or duplicate entries, safe entry names and
// types, nothing after the end of the archive but the seek table, and that
// the seek table, when there is one, describes the file exactly (so what
// VerifyFile passes is what Open reads through the table). It returns the
// first failure.
func VerifyFile(path string, in io.Reader, opts ...ReadOption) (*VerifyReport, error) {
	src := in
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		src = f
	}
	return verifyStream(src, opts)
}
