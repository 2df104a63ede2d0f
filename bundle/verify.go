package bundle

import (
	"io"
	"os"
)

// VerifyReport is the result of a full offline check of a bundle.
type VerifyReport struct {
	Images         int
	Blobs          int   // manifests, configs and layers checked
	Bytes          int64 // content bytes checked
	Signature      SignatureInfo
	SeekTableError error // a damaged seek table (the content was still checked)
}

// VerifyFile reads a whole bundle (a file path, or "-" for in) in order and
// checks everything without a registry: the signature (with WithVerifier),
// every manifest, config and layer against its digest and size,
// completeness, no unreachable or duplicate entries, safe entry names and
// types. It returns the first failure.
func VerifyFile(path string, in io.Reader, opts ...ReadOption) (*VerifyReport, error) {
	src := in
	rep := &VerifyReport{}
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && !st.IsDir() {
			if _, _, serr := readSeekTable(f, st.Size()); serr != nil && serr != errNoSeekTable {
				rep.SeekTableError = serr
			}
		}
		src = f
	}
	r, err := NewReader(src, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rep.Signature = r.Signature()
	rep.Images = len(r.Index().Manifests)
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
