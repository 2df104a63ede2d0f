package bundle

import (
	"bytes"
	"flag"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the sequential and the random-access
// readers. They read untrusted input: they may refuse it, never panic or
// hang. The seed corpus is a valid bundle and variants; more inputs found by
// `go test -fuzz` are kept in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	limitMinimization(f, "5000x")
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

// limitMinimization sets -test.fuzzminimizetime to limit unless it was given.
//
// When fuzzing finds an input that reaches new code, a worker minimizes it
// before fuzzing on: it reruns the target with every single byte, then every
// range of bytes, removed (O(n²) runs), for up to -test.fuzzminimizetime (60s
// by default). FuzzReader's new inputs are bundles of 1-5 KiB in which nearly
// every byte is needed (frame and tar headers, digests), so that never ends
// early: each new input stalled fuzzing for the whole time limit, after which
// the coordinator kills the worker and drops its exec count ("execs: 6
// (0/sec)" for a whole -fuzztime 15s run; see golang/go#48820). A limit in
// runs ("5000x") ends minimization normally, after the byte-by-byte pass.
func limitMinimization(f *testing.F, limit string) {
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == "test.fuzzminimizetime" })
	if fl := flag.Lookup("test.fuzzminimizetime"); fl != nil && !given {
		if err := fl.Value.Set(limit); err != nil {
			f.Fatal(err)
		}
	}
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
