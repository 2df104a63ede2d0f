package bundle

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the sequential and the random-access
// readers. They read untrusted input: they may refuse it, never panic or
// hang. The seed corpus is a valid bundle and variants; more inputs found by
// `go test -fuzz` are kept in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	s := newSample([]byte("layer content for the fuzzer"))
	valid := writeBundle(f, s)
	f.Add(valid)
	f.Add(craft(f, s.entries()))
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = readAll(data)
		r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		defer r.Close()
		if !r.RandomAccess() {
			return
		}
		for _, b := range r.Blobs() {
			rc, err := r.OpenBlob(b)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, rc)
			rc.Close()
		}
	})
}

// FuzzSeekTable feeds arbitrary trailers to the seek table parser.
func FuzzSeekTable(f *testing.F) {
	valid := writeBundle(f, newSample([]byte("x")))
	f.Add(valid)
	f.Add(valid[len(valid)-64:])
	f.Fuzz(func(t *testing.T, data []byte) {
		tbl, end, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, e := range tbl.Entries {
			if e.Offset < 0 || e.Offset+e.Length > end {
				t.Fatalf("accepted entry outside the archive: %+v (end %d)", e, end)
			}
		}
	})
}

// FuzzParseManifest feeds arbitrary JSON to the manifest walker's parser.
func FuzzParseManifest(f *testing.F) {
	s := newSample([]byte("x"))
	f.Add(s.manifest, "")
	f.Add(s.index, "application/vnd.oci.image.index.v1+json")
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[]}`), "")
	f.Fuzz(func(t *testing.T, data []byte, mt string) {
		_, children, err := parseManifest(data, mt)
		if err != nil {
			return
		}
		for _, c := range children {
			if validateDigest(c.desc.Digest) != nil || c.desc.Size < 0 {
				t.Fatalf("accepted invalid child %+v", c.desc)
			}
		}
	})
}
