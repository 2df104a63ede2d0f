package bundle

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"hash/crc32"
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

// FuzzSeekTable replaces the seek table JSON of a valid bundle with
// arbitrary bytes, behind a footer with a correct checksum so the table
// reaches validation, and checks one bundle, one view: the seek-table reader
// and a sequential read of the same bytes accept or refuse together, with
// the same exit class.
func FuzzSeekTable(f *testing.F) {
	valid := writeBundle(f, newSample(bytes.Repeat([]byte("layer "), 2000)))
	tbl, end, err := readSeekTable(bytes.NewReader(valid), int64(len(valid)))
	if err != nil {
		f.Fatal(err)
	}
	js, err := json.Marshal(tbl)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(js)
	f.Add([]byte(`{"entries":[]}`))
	n := len(tbl.Entries)
	for _, edit := range []func(e []SeekEntry) []SeekEntry{
		func(e []SeekEntry) []SeekEntry { return append(e[:n-1:n-1], e[n:]...) },
		func(e []SeekEntry) []SeekEntry { e[n-1], e[n-2] = e[n-2], e[n-1]; return e },
		func(e []SeekEntry) []SeekEntry { e[n-1].Length /= 2; return e },
		func(e []SeekEntry) []SeekEntry {
			e[n-1].Name, e[n-1].Digest, e[n-2].Name, e[n-2].Digest = e[n-2].Name, e[n-2].Digest, e[n-1].Name, e[n-1].Digest
			return e
		},
	} {
		b, err := json.Marshal(SeekTable{Entries: edit(append([]SeekEntry(nil), tbl.Entries...))})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		if len(js) > 1<<16 {
			return
		}
		frame := binary.LittleEndian.AppendUint32(nil, seekFrameMagic)
		frame = binary.LittleEndian.AppendUint32(frame, uint32(len(js)+seekFooterSize))
		frame = append(frame, js...)
		frame = binary.LittleEndian.AppendUint64(frame, uint64(len(js)))
		frame = binary.LittleEndian.AppendUint64(frame, uint64(end))
		frame = binary.LittleEndian.AppendUint32(frame, crc32.Checksum(js, castagnoli))
		frame = binary.LittleEndian.AppendUint32(frame, seekTableVersion)
		data := append(append([]byte(nil), valid[:end]...), append(frame, seekFooterMagic...)...)
		if tbl, _, err := readSeekTable(bytes.NewReader(data), int64(len(data))); err == nil {
			var next int64
			for _, e := range tbl.Entries {
				if e.Offset != next || e.Length <= 0 || e.Offset+e.Length >= end {
					t.Fatalf("accepted an entry that does not tile the archive: %+v (next %d, end %d)", e, next, end)
				}
				next = e.Offset + e.Length
			}
		}
		raErr := func() error {
			r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				return err
			}
			defer r.Close()
			return consume(r)
		}()
		stErr := readAll(data)
		if exitClass(raErr) != exitClass(stErr) {
			t.Fatalf("two views of one file:\nseek table: %v\nsequential: %v", raErr, stErr)
		}
	})
}

// exitClass is the exit code ferry gives an error: 0, 3 for a bundle that
// fails verification, 1 for anything else.
func exitClass(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrTruncated), errors.Is(err, ErrMissingBlob):
		return 3
	}
	return 1
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
