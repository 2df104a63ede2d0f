package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/report"
)

// deltaSet is a signed base bundle (the first three sample images), a
// signed delta of every sample image against it, and the key.
type deltaSet struct {
	dir, base, delta string
	key              crypto.Signer
	pub              string
	baseIndex        digest.Digest
	leftOut          int
}

func newDeltaSet(t *testing.T) *deltaSet {
	t.Helper()
	_, sample := source(t)
	_, key, _ := signedSample(t)
	s := &deltaSet{dir: t.TempDir(), key: key}
	s.pub = writeFile(t, "delta.pub", pubPEM(t, key.Public()))
	s.base = filepath.Join(s.dir, "2026-10.tar.zst")
	s.delta = filepath.Join(s.dir, "2026-11-delta.tar.zst")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := bundle.ExportOptions{Created: time.Unix(1700000000, 0), Sign: bundle.Signer(key)}
	if _, err := bundle.ExportFile(ctx, sample.Refs[:3], s.base, opts); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.ReadBase(s.base)
	if err != nil {
		t.Fatal(err)
	}
	s.baseIndex = b.Digest
	opts.Bases = []*bundle.Base{b}
	sum, err := bundle.ExportFile(ctx, sample.Refs, s.delta, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.leftOut = sum.LeftOut
	return s
}

// TestDeltaCLI: export --base, inspect, verify with and without --base,
// import into a destination without the base (refused, nothing pushed) and
// with it.
func TestDeltaCLI(t *testing.T) {
	_, sample := source(t)
	s := newDeltaSet(t)

	// export --base, from the CLI (unsigned: the flag, not the key, is
	// under test).
	out := filepath.Join(s.dir, "cli-delta.tar.zst")
	res := ferry(t, nil, append([]string{"export", "--base", s.base, "-o", out}, sample.Refs...)...)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, fmt.Sprintf("  delta:          %d blobs (", s.leftOut)) {
		t.Errorf("export summary does not report the blobs left out:\n%s", res.stderr)
	}
	full, _, _ := signedSample(t) // every sample image, in full
	if st, _ := os.Stat(out); st.Size() >= int64(len(full)) {
		t.Errorf("the delta of every image (%d bytes) is not smaller than their full bundle (%d)", st.Size(), len(full))
	}
	res = ferry(t, nil, "export", "-q", "--base", filepath.Join(s.dir, "nothing"), "-o", filepath.Join(s.dir, "x.tar.zst"), sample.Refs[0])
	res.expect(t, exitFailure, "open "+filepath.Join(s.dir, "nothing")+": no such file or directory")

	// inspect
	res = ferry(t, nil, "inspect", "--wide", s.delta)
	res.expect(t, exitOK)
	for _, want := range []string{
		fmt.Sprintf("delta:           yes, %d blobs (", s.leftOut),
		fmt.Sprintf("  base:          bundle %s (2026-10.tar.zst): %d blobs, ", s.baseIndex, s.leftOut),
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("inspect does not say %q:\n%s", want, res.stdout)
		}
	}
	res = ferry(t, nil, "inspect", "--json", s.delta)
	var rep report.Inspect
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Delta == nil || rep.Delta.LeftOutBlobs != s.leftOut || rep.Delta.LeftOutBytes == 0 || rep.Delta.Bases[0].Digest != s.baseIndex.String() {
		t.Errorf("inspect --json delta = %+v", rep.Delta)
	}
	res = ferry(t, nil, "inspect", s.base)
	if strings.Contains(res.stdout, "delta:") {
		t.Errorf("inspect of a full bundle mentions a delta:\n%s", res.stdout)
	}

	// verify
	res = ferry(t, nil, "verify", "--key", s.pub, s.delta)
	res.expect(t, exitOK)
	for _, want := range []string{
		fmt.Sprintf("delta:           yes, %d blobs left out", s.leftOut),
		"bases:      not checked (give them with --base to check the delta is complete)",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("verify does not say %q:\n%s", want, res.stdout)
		}
	}
	res = ferry(t, nil, "verify", "--key", s.pub, "--base", s.base, s.delta)
	res.expect(t, exitOK)
	if !strings.Contains(res.stdout, "bases:      every blob left out is in its base") {
		t.Errorf("verify --base does not say the delta is complete:\n%s", res.stdout)
	}
	res = ferry(t, nil, "verify", "--key", s.pub, "--base", s.base, "--json", s.delta)
	var vj report.Verify
	if err := json.Unmarshal([]byte(res.stdout), &vj); err != nil || !vj.BasesChecked || vj.Delta == nil || vj.Delta.LeftOutBlobs != s.leftOut {
		t.Errorf("verify --json = %s (%v)", res.stdout, err)
	}
	other, err := bundle.ReadBase(out) // a bundle, not a base of s.delta
	if err != nil {
		t.Fatal(err)
	}
	res = ferry(t, nil, "verify", "--key", s.pub, "--base", out, s.delta)
	res.expect(t, exitFailure)
	if want := fmt.Sprintf("ferry: verifying %s: delta base content missing: bundle %s (cli-delta.tar.zst) is not a base of this delta, which names bundle %s (2026-10.tar.zst)", s.delta, other.Digest, s.baseIndex); res.errMessage() != want {
		t.Errorf("verify --base with a foreign base:\n%s\nwant\n%s", res.errMessage(), want)
	}
	res = ferry(t, nil, "verify", "--key", s.pub, "--base", s.base, s.base)
	res.expect(t, exitFailure)
	if want := fmt.Sprintf("ferry: verifying %s: the bundle is not a delta: it needs no base", s.base); res.errMessage() != want {
		t.Errorf("verify --base of a full bundle: %s", res.errMessage())
	}

	// import into a registry without the base: refused before any push.
	empty := registrytest.New(t, registrytest.Options{})
	res = ferry(t, nil, "import", "-q", "--key", s.pub, "--to", empty.Host+"/mirror", s.delta)
	res.expect(t, exitFailure, "delta base content missing", fmt.Sprintf("%d blob(s) left out of this delta bundle are not at %s/mirror, and nothing was pushed", s.leftOut, empty.Host),
		fmt.Sprintf("import its base (bundle %s (2026-10.tar.zst)) there first", s.baseIndex), sample.SharedLayer)
	if n := empty.BlobUploads.Load() + empty.BlobMounts.Load(); n != 0 {
		t.Errorf("%d blobs pushed by a refused delta import", n)
	}
	assertNothingAt(t, empty, empty.Host+"/mirror", sample)

	// import the base, then the delta.
	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	ferry(t, nil, "import", "-q", "--key", s.pub, "--to", to, s.base).expect(t, exitOK)
	res = ferry(t, nil, "import", "-q", "--key", s.pub, "--to", to, s.delta)
	res.expect(t, exitOK)
	assertTagged(t, to, false, sample)
}

// TestOneViewDelta: every read path treats a delta the same: verify and
// inspect accept it and say it is a delta; every import path refuses it,
// with the same message and nothing pushed, where the base is missing.
// A delta that lacks a blob it does not leave out is refused everywhere
// (exit 3), as a full bundle would be.
func TestOneViewDelta(t *testing.T) {
	_, sample := source(t)
	s := newDeltaSet(t)
	data, err := os.ReadFile(s.delta)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	everyPath(t, data, s.pub, func(t *testing.T, p readPath, res result, dst *registrytest.Registry, to string) {
		if !p.pushes {
			res.expect(t, exitOK)
			if !strings.Contains(res.stdout, fmt.Sprintf("delta:           yes, %d blobs", s.leftOut)) {
				t.Errorf("%s does not say it is a delta:\n%s", p.name, res.stdout)
			}
			return
		}
		res.expect(t, exitFailure, "delta base content missing")
		msgs = append(msgs, strings.ReplaceAll(res.errMessage(), dst.Host, "DEST"))
		if n := dst.BlobUploads.Load() + dst.BlobMounts.Load(); n != 0 {
			t.Errorf("%s: %d blobs pushed", p.name, n)
		}
	})
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("import paths disagree:\n%s\n%s", msgs[0], m)
		}
	}

	// The same delta without one more layer (not left out), re-signed.
	r, err := bundle.Open(s.delta)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	blobs := r.Blobs()
	drop := blobs[0].Digest
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, bundle.EncoderOptions{})
	sigs, err := bundle.Signer(s.key)(r.IndexBytes())
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteFile(bundle.LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)))
	must(w.WriteFile(bundle.IndexFile, r.IndexBytes()))
	must(w.WriteFile(bundle.SignatureFile, sigs[bundle.SignatureFile]))
	for _, m := range r.Manifests() {
		must(w.WriteBlob(m.Descriptor, bytes.NewReader(m.Bytes)))
	}
	for _, b := range blobs[1:] {
		rc, err := r.OpenBlob(b)
		must(err)
		must(w.WriteBlob(b, rc))
		rc.Close()
	}
	must(w.Close())
	// Into destinations that hold the base (so the check of what is left
	// out passes): every path refuses the missing blob as damage. (Into
	// one without the base, a stream is refused for the base first: its
	// damage shows only at its end.)
	path := writeFile(t, "damaged-delta.tar.zst", buf.Bytes())
	for _, p := range readPaths {
		t.Run(p.name, func(t *testing.T) {
			var dst *registrytest.Registry
			var to string
			if p.pushes {
				dst = registrytest.New(t, registrytest.Options{})
				to = dst.Host + "/mirror"
				if _, err := bundle.ImportFile(context.Background(), s.base, to, bundle.ImportOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			var stdin *bytes.Reader
			if p.stdin {
				stdin = bytes.NewReader(buf.Bytes())
			}
			var res result
			if stdin != nil {
				res = ferry(t, stdin, p.args(path, s.pub, to)...)
			} else {
				res = ferry(t, nil, p.args(path, s.pub, to)...)
			}
			res.expect(t, exitVerify, "blob missing from archive: 1 blob(s) are missing", drop.String())
			if dst != nil {
				// The images not in the base are not there.
				for _, ref := range sample.Refs[3:] {
					if _, err := remote.Head(mustParse(t, destRef(t, ref, to, false))); err == nil {
						t.Errorf("%s was pushed", ref)
					}
				}
			}
		})
	}
}

func mustParse(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeltaFromReceiptOut: the monthly cycle through a receipt. An import
// writes its receipt (--receipt-out); carried back, it is the base of the
// next export (--base RECEIPT), whose delta leaves out what the
// destination holds and imports there completely.
func TestDeltaFromReceiptOut(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dir := t.TempDir()
	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	first, receipt := filepath.Join(dir, "first.tar.zst"), filepath.Join(dir, "receipt.json")
	ferry(t, nil, append([]string{"export", "-q", "-o", first}, sample.Refs[:3]...)...).expect(t, exitOK)
	ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", to, "--receipt-out", receipt, first).expect(t, exitOK)

	full, delta := filepath.Join(dir, "full.tar.zst"), filepath.Join(dir, "delta.tar.zst")
	ferry(t, nil, append([]string{"export", "-q", "-o", full}, sample.Refs...)...).expect(t, exitOK)
	ferry(t, nil, append([]string{"export", "-q", "--base", receipt, "-o", delta}, sample.Refs...)...).expect(t, exitOK)
	fs, _ := os.Stat(full)
	ds, _ := os.Stat(delta)
	if ds == nil || fs == nil || ds.Size() >= fs.Size() {
		t.Fatalf("delta %v bytes, full %v bytes: want the delta smaller", ds, fs)
	}
	insp := ferry(t, nil, "inspect", delta)
	insp.expect(t, exitOK)
	if !strings.Contains(insp.stdout, "receipt") {
		t.Errorf("inspect does not name the receipt base:\n%s", insp.stdout)
	}
	ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", to, delta).expect(t, exitOK)
	assertTagged(t, to, false, sample)
}
