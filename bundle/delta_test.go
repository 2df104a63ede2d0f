package bundle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// releases are two "monthly releases" of a set of images in one source
// registry: most layers (the OS and runtime bases, the unchanged images)
// are shared; a few application layers change, and one image is new.
type releases struct {
	src        *registrytest.Registry
	r1, r2     []string
	images2    map[string]pushed // release 2, by reference
	newLayers2 []v1.Hash         // the layers release 2 adds
}

func monthlyReleases(t *testing.T, layerSize int) *releases {
	t.Helper()
	rel := &releases{src: registrytest.New(t, registrytest.Options{}), images2: map[string]pushed{}}
	host := rel.src.Host
	osLayer := testimages.Layer("os-2026", 8*layerSize)
	runtime := testimages.Layer("runtime-2026", 4*layerSize)
	layer := func(seed string) v1.Layer { return testimages.Layer(seed, layerSize) }
	// Release 1.
	for _, img := range []struct {
		ref    string
		layers []v1.Layer
	}{
		{"shop/api:1", []v1.Layer{osLayer, runtime, layer("api-1")}},
		{"shop/web:1", []v1.Layer{osLayer, runtime, layer("web-1")}},
		{"shop/worker:1", []v1.Layer{osLayer, runtime, layer("worker-1")}},
		{"ops/agent:1", []v1.Layer{osLayer, layer("agent-1")}},
	} {
		rel.r1 = append(rel.r1, pushImage(t, host, img.ref, img.layers...).ref)
	}
	// Release 2: api and worker change, web and agent do not, report is new
	// (its own repository, on the shared bases).
	for _, img := range []struct {
		ref    string
		layers []v1.Layer
		fresh  bool
	}{
		{"shop/api:2", []v1.Layer{osLayer, runtime, layer("api-2")}, true},
		{"shop/web:2", []v1.Layer{osLayer, runtime, layer("web-1")}, false},
		{"shop/worker:2", []v1.Layer{osLayer, runtime, layer("worker-2")}, true},
		{"ops/agent:2", []v1.Layer{osLayer, layer("agent-1")}, false},
		{"shop/report:2", []v1.Layer{osLayer, runtime, layer("report-2")}, true},
	} {
		p := pushImage(t, host, img.ref, img.layers...)
		rel.r2 = append(rel.r2, p.ref)
		rel.images2[p.ref] = p
		if img.fresh {
			rel.newLayers2 = append(rel.newLayers2, p.layers[len(p.layers)-1])
		}
	}
	return rel
}

func exportTo(t *testing.T, refs []string, path string, opts bundle.ExportOptions) *bundle.ExportSummary {
	t.Helper()
	opts.Created = created
	sum, err := bundle.ExportFile(context.Background(), refs, path, opts)
	if err != nil {
		t.Fatalf("export %s: %v", filepath.Base(path), err)
	}
	return sum
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func readBase(t *testing.T, path string) *bundle.Base {
	t.Helper()
	b, err := bundle.ReadBase(path)
	if err != nil {
		t.Fatalf("reading base: %v", err)
	}
	return b
}

func indexDigest(t *testing.T, path string) digest.Digest {
	t.Helper()
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return digest.FromBytes(r.IndexBytes())
}

// checkPulls pulls every image of release 2 from the destination: each
// resolves to its source digest, and every layer and config downloads
// and verifies.
func (rel *releases) checkPulls(t *testing.T, to string) {
	t.Helper()
	for _, ref := range rel.r2 {
		dst := strings.Replace(ref, rel.src.Host, to, 1)
		r, err := name.ParseReference(dst)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pulling %s: %v", dst, err)
		}
		if d, _ := img.Digest(); d != rel.images2[ref].manifest {
			t.Errorf("%s: digest %s, want %s", dst, d, rel.images2[ref].manifest)
		}
		// The config and every layer download and hash to their digests
		// (the test layers' diff IDs are not checked: testimages does not
		// make them right).
		if err := validate.Image(img, validate.Fast); err != nil {
			t.Errorf("pulling %s: %v", dst, err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			want, _ := l.Digest()
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("pulling a layer of %s: %v", dst, err)
			}
			got, _, err := v1.SHA256(rc)
			rc.Close()
			if err != nil || got != want {
				t.Errorf("%s: layer %s pulls as %s (%v)", dst, want, got, err)
			}
		}
	}
}

// TestDeltaRoundTrip: release 1 exported in full and imported; release 2
// exported with --base the first bundle is much smaller, names its base in
// the signed index, imports into the same destination (mounting the base
// layers into the new repository) and every image pulls with its digests.
func TestDeltaRoundTrip(t *testing.T) {
	rel := monthlyReleases(t, 256<<10)
	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	dir := t.TempDir()
	full1 := filepath.Join(dir, "release-1.tar.zst")
	exportTo(t, rel.r1, full1, bundle.ExportOptions{})
	if _, err := bundle.ImportFile(context.Background(), full1, to, bundle.ImportOptions{}); err != nil {
		t.Fatalf("import release 1: %v", err)
	}

	full2 := filepath.Join(dir, "release-2-full.tar.zst")
	exportTo(t, rel.r2, full2, bundle.ExportOptions{})
	delta2 := filepath.Join(dir, "release-2-delta.tar.zst")
	sum := exportTo(t, rel.r2, delta2, bundle.ExportOptions{Bases: []*bundle.Base{readBase(t, full1)}})
	fullBytes, deltaBytes := fileSize(t, full2), fileSize(t, delta2)
	t.Logf("release 2: full bundle %d bytes, delta bundle %d bytes (%.1f%%); %d blobs (%d bytes) left out",
		fullBytes, deltaBytes, 100*float64(deltaBytes)/float64(fullBytes), sum.LeftOut, sum.LeftOutBytes)
	if deltaBytes*3 > fullBytes {
		t.Errorf("delta is %d bytes, full bundle %d: want under a third", deltaBytes, fullBytes)
	}

	r, err := bundle.Open(delta2)
	if err != nil {
		t.Fatalf("opening the delta: %v", err)
	}
	d := r.Delta()
	if d == nil || len(d.Bases) != 1 {
		t.Fatalf("delta bases = %+v, want one", d)
	}
	if want := indexDigest(t, full1); d.Bases[0].Digest != want || d.Bases[0].Kind != bundle.BaseBundle || d.Bases[0].Name != "release-1.tar.zst" {
		t.Errorf("base = %+v, want bundle %s (release-1.tar.zst)", d.Bases[0], want)
	}
	// The new application layers are in the archive; nothing else but
	// configs (of the changed images) and manifests.
	inArchive := map[digest.Digest]bool{}
	for _, b := range r.Blobs() {
		inArchive[b.Digest] = true
	}
	for _, l := range rel.newLayers2 {
		if !inArchive[digest.Digest(l.String())] {
			t.Errorf("new layer %s is not in the delta", l)
		}
	}
	if len(r.LeftOut()) != sum.LeftOut || sum.LeftOut == 0 {
		t.Errorf("reader says %d blobs left out, export %d", len(r.LeftOut()), sum.LeftOut)
	}
	r.Close()

	before := dst.BlobUploads.Load()
	res, err := bundle.ImportFile(context.Background(), delta2, to, bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("import of the delta: %v", err)
	}
	// The registry also receives the import receipt: two more blobs (the
	// JSON of this import's record and of the merged receipt; the empty
	// config of the artifact is there from release 1).
	if got := dst.BlobUploads.Load() - before; got != int64(len(inArchive))+2 || res.BlobsUploaded != len(inArchive) {
		t.Errorf("the delta import uploaded %d blobs (result %d), want the %d it carries and the two of the receipt", got, res.BlobsUploaded, len(inArchive))
	}
	if res.BlobsMounted == 0 {
		t.Errorf("the new repository needs the base layers mounted from another: %+v", res)
	}
	// The receipt lists the left-out blobs as present: they were found
	// at the destination before the push.
	if rd, err := bundle.Open(delta2); err != nil {
		t.Fatal(err)
	} else {
		for _, b := range rd.LeftOut() {
			if res.Receipt == nil || !slices.Contains(res.Receipt.Blobs, b.Digest) {
				t.Errorf("the receipt does not list left-out blob %s as present", b.Digest)
			}
		}
		rd.Close()
	}
	rel.checkPulls(t, to)
}

// TestDeltaFromReceipt: the base is a receipt of what the destination
// holds, written by hand (the Receipt type), not a bundle.
func TestDeltaFromReceipt(t *testing.T) {
	rel := monthlyReleases(t, 32<<10)
	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	dir := t.TempDir()
	full1 := filepath.Join(dir, "release-1.tar.zst")
	exportTo(t, rel.r1, full1, bundle.ExportOptions{})
	if _, err := bundle.ImportFile(context.Background(), full1, to, bundle.ImportOptions{}); err != nil {
		t.Fatalf("import release 1: %v", err)
	}
	r, err := bundle.Open(full1)
	if err != nil {
		t.Fatal(err)
	}
	rc := bundle.Receipt{Version: 1, Destination: to, Tags: map[string]bundle.ReceiptTag{}}
	for _, b := range r.Blobs() {
		rc.Blobs = append(rc.Blobs, b.Digest)
	}
	r.Close()
	slices.Sort(rc.Blobs)
	js, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	receipt := filepath.Join(dir, "receipt.json")
	if err := os.WriteFile(receipt, js, 0o644); err != nil {
		t.Fatal(err)
	}
	delta := filepath.Join(dir, "release-2-delta.tar.zst")
	sum := exportTo(t, rel.r2, delta, bundle.ExportOptions{Bases: []*bundle.Base{readBase(t, receipt)}})
	if sum.LeftOut == 0 {
		t.Fatal("nothing left out")
	}
	dr, err := bundle.Open(delta)
	if err != nil {
		t.Fatal(err)
	}
	if b := dr.Delta().Bases[0]; b.Kind != bundle.BaseReceipt || b.Digest != digest.FromBytes(js) || b.Name != "receipt.json" {
		t.Errorf("base = %+v, want receipt %s (receipt.json)", b, digest.FromBytes(js))
	}
	dr.Close()
	if _, err := bundle.ImportFile(context.Background(), delta, to, bundle.ImportOptions{}); err != nil {
		t.Fatalf("import of the delta: %v", err)
	}
	rel.checkPulls(t, to)
}

// TestDeltaBaseMissingAtDestination: a delta into a registry that lacks a
// blob it leaves out fails before anything is pushed, naming the blob, its
// size, its base and the image that needs it.
func TestDeltaBaseMissingAtDestination(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{})
	osLayer := testimages.Layer("os", 64<<10)
	p := pushImage(t, src.Host, "shop/api:2", osLayer, testimages.Layer("api-2", 16<<10))
	dir := t.TempDir()
	receipt := filepath.Join(dir, "receipt.json")
	js := fmt.Sprintf(`{"version":1,"destination":"x","tags":{},"blobs":[%q],"bundles":[]}`, p.layers[0])
	if err := os.WriteFile(receipt, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	delta := filepath.Join(dir, "delta.tar.zst")
	exportTo(t, []string{p.ref}, delta, bundle.ExportOptions{Bases: []*bundle.Base{readBase(t, receipt)}})
	osSize, _ := osLayer.Size()

	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	_, err := bundle.ImportFile(context.Background(), delta, to, bundle.ImportOptions{})
	if !errors.Is(err, bundle.ErrBaseMissing) {
		t.Fatalf("import = %v, want ErrBaseMissing", err)
	}
	rd := digest.FromBytes([]byte(js))
	want := fmt.Sprintf("delta base content missing: 1 blob(s) left out of this delta bundle are not at %s, and nothing was pushed; "+
		"import its base (receipt %s (receipt.json)) there first, or export a full bundle (without --base):\n"+
		"  %s (%.1f KiB) from base receipt %s (receipt.json), needed by %s", to, rd, p.layers[0], float64(osSize)/1024, rd, p.ref)
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	if n := dst.BlobUploads.Load() + dst.BlobMounts.Load(); n != 0 {
		t.Errorf("%d blobs pushed before the check failed", n)
	}
	if _, err := remote.Head(mustRef(t, dst.Host+"/mirror/shop/api:2")); err == nil {
		t.Error("the tag was pushed")
	}
	// A repository of the destination that this import does not write is
	// not searched (a registry need not list its repositories): the layer
	// there does not help, and nothing is mounted.
	pushImage(t, dst.Host, "mirror/base/os:1", osLayer)
	before := dst.BlobMounts.Load()
	if _, err := bundle.ImportFile(context.Background(), delta, to, bundle.ImportOptions{}); err == nil {
		t.Fatal("a blob in a repository outside the import is not looked for; want the import to fail")
	}
	if dst.BlobMounts.Load() != before {
		t.Error("mounted although the check failed")
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rebuild writes a copy of the bundle at src with index.json edited and the
// blobs for which drop is true left out, unsigned, with a seek table.
func rebuild(t *testing.T, src string, edit func(*ocispec.Index), drop func(digest.Digest) bool) string {
	t.Helper()
	r, err := bundle.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	idx := r.Index()
	idx.Annotations = maps.Clone(idx.Annotations)
	edit(&idx)
	ib, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, bundle.EncoderOptions{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteFile(bundle.LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)))
	must(w.WriteFile(bundle.IndexFile, ib))
	for _, m := range r.Manifests() {
		must(w.WriteBlob(m.Descriptor, bytes.NewReader(m.Bytes)))
	}
	for _, b := range r.Blobs() {
		if drop(b.Digest) {
			continue
		}
		rc, err := r.OpenBlob(b)
		must(err)
		must(w.WriteBlob(b, rc))
		rc.Close()
	}
	must(w.Close())
	out := filepath.Join(t.TempDir(), "rebuilt.tar.zst")
	must(os.WriteFile(out, buf.Bytes(), 0o644))
	return out
}

// readAll reads path the three ways a bundle is read (through its seek
// table, as a stream, and verified in full) and returns what each says.
func readAll(t *testing.T, path string) map[string]error {
	t.Helper()
	out := map[string]error{}
	if r, err := bundle.Open(path); err == nil {
		r.Close()
	} else {
		out["open"] = err
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	func() {
		r, err := bundle.NewReader(f)
		if err != nil {
			out["stream"] = err
			return
		}
		defer r.Close()
		for {
			_, rd, err := r.Next()
			if err == io.EOF {
				return
			}
			if err == nil {
				_, err = io.Copy(io.Discard, rd)
			}
			if err != nil {
				out["stream"] = err
				return
			}
		}
	}()
	if _, err := bundle.VerifyFile(path, nil); err != nil {
		out["verify"] = err
	}
	return out
}

// TestDeltaReaderRules: a blob listed by a manifest and absent from the
// archive is accepted only in a delta, and only when index.json names it
// under a base; every way of reading the file agrees.
func TestDeltaReaderRules(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{})
	p := pushImage(t, src.Host, "shop/api:1", testimages.Layer("os", 64<<10), testimages.Layer("api", 16<<10))
	full := filepath.Join(t.TempDir(), "full.tar.zst")
	exportTo(t, []string{p.ref}, full, bundle.ExportOptions{})
	l0, l1 := digest.Digest(p.layers[0].String()), digest.Digest(p.layers[1].String())
	base := digest.FromString("base index")
	bases := func(js string) func(*ocispec.Index) {
		return func(idx *ocispec.Index) { idx.Annotations[bundle.AnnotationDeltaBases] = js }
	}
	leaveOut := func(ds ...digest.Digest) string {
		b, _ := json.Marshal([]bundle.DeltaBase{{Kind: bundle.BaseBundle, Digest: base, LeftOut: ds}})
		return string(b)
	}
	none := func(*ocispec.Index) {}
	dropL0 := func(d digest.Digest) bool { return d == l0 }
	keep := func(digest.Digest) bool { return false }
	for _, tc := range []struct {
		name    string
		edit    func(*ocispec.Index)
		drop    func(digest.Digest) bool
		wantErr error
		want    string
	}{
		{"delta, left-out blob absent", bases(leaveOut(l0)), dropL0, nil, ""},
		{"full bundle, blob absent", none, dropL0, bundle.ErrMissingBlob,
			"blob missing from archive: 1 blob(s) are missing (the archive may be truncated), first " + l0.String() + " used by " + p.ref},
		{"delta, another blob absent too", bases(leaveOut(l0)), func(d digest.Digest) bool { return d == l0 || d == l1 }, bundle.ErrMissingBlob,
			"blob missing from archive: 1 blob(s) are missing (the archive may be truncated), first " + l1.String() + " used by " + p.ref},
		{"delta, left-out blob present", bases(leaveOut(l0)), keep, bundle.ErrCorrupt,
			"archive is corrupt: entry blobs/sha256/" + l0.Encoded() + " is in the archive, but index.json says this delta leaves it out"},
		{"left out, not in any manifest", bases(leaveOut(l0, digest.FromString("stranger"))), dropL0, bundle.ErrCorrupt,
			"archive is corrupt: index.json leaves out blob " + digest.FromString("stranger").String() + " (base " + base.String() + "), which no manifest lists as a config or layer"},
		{"not JSON", bases("bundle:" + base.String()), dropL0, bundle.ErrCorrupt,
			"archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: not a JSON array of bases: invalid character 'b' looking for beginning of value"},
		{"no base", bases("[]"), dropL0, bundle.ErrCorrupt,
			"archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: names no base"},
		{"unknown kind", bases(`[{"kind":"tape","digest":"` + base.String() + `","leftOut":[]}]`), dropL0, bundle.ErrCorrupt,
			`archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: base 0 has kind "tape"; want "bundle" or "receipt"`},
		{"bad base digest", bases(`[{"kind":"bundle","digest":"md5:00","leftOut":[]}]`), dropL0, bundle.ErrCorrupt,
			`archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: base 0: unsupported content: digest "md5:00" (only sha256 and sha512 are accepted)`},
		{"bad left-out digest", bases(`[{"kind":"bundle","digest":"` + base.String() + `","leftOut":["sha256:AB"]}]`), dropL0, bundle.ErrCorrupt,
			`archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: base 0: left-out blob: unsupported content: digest "sha256:AB" (only sha256 and sha512 are accepted)`},
		{"base named twice", bases(`[{"kind":"bundle","digest":"` + base.String() + `","leftOut":["` + l0.String() + `"]},{"kind":"receipt","digest":"` + base.String() + `","leftOut":[]}]`), dropL0, bundle.ErrCorrupt,
			"archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: base " + base.String() + " is named twice"},
		{"blob left out twice", bases(`[{"kind":"bundle","digest":"` + base.String() + `","leftOut":["` + l0.String() + `"]},{"kind":"receipt","digest":"` + l1.String() + `","leftOut":["` + l0.String() + `"]}]`), dropL0, bundle.ErrCorrupt,
			"archive is corrupt: index.json annotation org.ferryproject.bundle.delta-bases: blob " + l0.String() + " is left out twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := rebuild(t, full, tc.edit, tc.drop)
			got := readAll(t, path)
			for _, way := range []string{"open", "stream", "verify"} {
				err := got[way]
				if tc.wantErr == nil {
					if err != nil {
						t.Errorf("%s: %v, want no error", way, err)
					}
					continue
				}
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("%s: %v, want %v", way, err, tc.wantErr)
					continue
				}
				msg := strings.TrimSuffix(err.Error(), "; ferry export never writes this, so the bundle was changed after export or made by another tool: export the images again")
				if msg != tc.want {
					t.Errorf("%s:\n got %s\nwant %s", way, msg, tc.want)
				}
			}
		})
	}
}

// TestDeltaCheckBases: verify --base, offline: every blob left out must be
// in the base the delta names for it.
func TestDeltaCheckBases(t *testing.T) {
	rel := monthlyReleases(t, 16<<10)
	dir := t.TempDir()
	full1 := filepath.Join(dir, "release-1.tar.zst")
	exportTo(t, rel.r1, full1, bundle.ExportOptions{})
	other := filepath.Join(dir, "other.tar.zst")
	exportTo(t, rel.r1[:1], other, bundle.ExportOptions{})
	base := readBase(t, full1)
	delta := filepath.Join(dir, "delta.tar.zst")
	exportTo(t, rel.r2, delta, bundle.ExportOptions{Bases: []*bundle.Base{base}})
	rep, err := bundle.VerifyFile(delta, nil)
	if err != nil {
		t.Fatalf("verify of the delta: %v", err)
	}
	if rep.Delta == nil || rep.Delta.Bases[0].Digest != base.Digest {
		t.Fatalf("verify report delta = %+v", rep.Delta)
	}
	if err := bundle.CheckBases(rep.Delta, []*bundle.Base{base}); err != nil {
		t.Errorf("complete delta: %v", err)
	}
	ob := readBase(t, other)
	err = bundle.CheckBases(rep.Delta, []*bundle.Base{ob})
	want := fmt.Sprintf("delta base content missing: bundle %s (other.tar.zst) is not a base of this delta, which names bundle %s (release-1.tar.zst)", ob.Digest, base.Digest)
	if !errors.Is(err, bundle.ErrBaseMissing) || err.Error() != want {
		t.Errorf("foreign base: %v\nwant %s", err, want)
	}
	err = bundle.CheckBases(rep.Delta, nil)
	want = fmt.Sprintf("delta base content missing: the delta is not complete against the bases given:\n  base bundle %s (release-1.tar.zst) not given: its %d left-out blob(s) are not checked", base.Digest, len(rep.Delta.Bases[0].LeftOut))
	if !errors.Is(err, bundle.ErrBaseMissing) || err.Error() != want {
		t.Errorf("no base: %v\nwant %s", err, want)
	}
	// A copy of the base that lost a blob (same index.json, so the same
	// name): the delta is not complete against it.
	lost := rep.Delta.Bases[0].LeftOut[0]
	damaged := rebuild(t, full1, func(*ocispec.Index) {}, func(d digest.Digest) bool { return d == lost })
	db := readBase(t, damaged)
	if db.Digest != base.Digest {
		t.Fatalf("the rebuilt base has another index digest")
	}
	err = bundle.CheckBases(rep.Delta, []*bundle.Base{db})
	want = fmt.Sprintf("delta base content missing: the delta is not complete against the bases given:\n  %s, left out for base bundle %s (release-1.tar.zst), is not in it", lost, base.Digest)
	if !errors.Is(err, bundle.ErrBaseMissing) || err.Error() != want {
		t.Errorf("damaged base: %v\nwant %s", err, want)
	}
	if err := bundle.CheckBases(nil, []*bundle.Base{base}); err == nil || err.Error() != "the bundle is not a delta: it needs no base" {
		t.Errorf("full bundle: %v", err)
	}
}

// TestDeltaBaseReadsOnlyTableAndIndex: a base bundle's blobs are never
// read: a base whose every blob frame is zeroed reads the same.
func TestDeltaBaseReadsOnlyTableAndIndex(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{})
	p := pushImage(t, src.Host, "shop/api:1", testimages.Layer("os", 64<<10), testimages.Layer("api", 16<<10))
	full := filepath.Join(t.TempDir(), "full.tar.zst")
	exportTo(t, []string{p.ref}, full, bundle.ExportOptions{})
	want := readBase(t, full)
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := bundle.ReadSeekTable(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tbl.Entries[2:] {
		clear(b[e.Offset : e.Offset+e.Length])
	}
	if err := os.WriteFile(full, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got := readBase(t, full)
	if got.Digest != want.Digest || got.Blobs() != want.Blobs() || !got.Holds(digest.Digest(p.layers[0].String())) {
		t.Errorf("base read from a file with its blobs zeroed: %v (%d blobs), want %v (%d blobs)", got, got.Blobs(), want, want.Blobs())
	}
}

// TestDeltaReadBaseErrors: what ReadBase refuses, and an export naming one
// base twice.
func TestDeltaReadBaseErrors(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{})
	p := pushImage(t, src.Host, "shop/api:1", testimages.Layer("os", 16<<10))
	dir := t.TempDir()
	full := filepath.Join(dir, "full.tar.zst")
	exportTo(t, []string{p.ref}, full, bundle.ExportOptions{})
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	_, tableAt := seekTableOffset(t, b)
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, path string
		wantErr    error
		want       string
	}{
		{"directory", dir, nil, "base " + dir + " is a directory; give a bundle or a receipt file"},
		{"neither", write("notes.txt", []byte("hello")), nil, "base " + filepath.Join(dir, "notes.txt") + " is neither a ferry bundle nor a receipt (JSON)"},
		{"no seek table", write("cut.tar.zst", b[:tableAt]), bundle.ErrNotBundle, "reading base " + filepath.Join(dir, "cut.tar.zst") +
			": not a ferry bundle: it has no seek table, so its blobs cannot be listed without reading it whole (a copy that lost its end, or a bundle another tool wrote): use the bundle as ferry export wrote it, or a receipt"},
		{"receipt version", write("r2.json", []byte(`{"version":2,"blobs":[]}`)), bundle.ErrUnsupported, "reading base " + filepath.Join(dir, "r2.json") + ": unsupported content: receipt version 2; this ferry reads version 1"},
		{"receipt digest", write("rd.json", []byte(` {"version":1,"blobs":["sha256:00"]}`)), bundle.ErrUnsupported, "reading base " + filepath.Join(dir, "rd.json") + `: receipt blob: unsupported content: digest "sha256:00" (only sha256 and sha512 are accepted)`},
		{"receipt not JSON", write("bad.json", []byte(`{"version":`)), nil, "reading base " + filepath.Join(dir, "bad.json") + ": not a receipt: unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundle.ReadBase(tc.path)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || err.Error() != tc.want {
				t.Errorf("ReadBase = %v\nwant %s", err, tc.want)
			}
		})
	}
	base := readBase(t, full)
	_, err = bundle.ExportFile(context.Background(), []string{p.ref}, filepath.Join(dir, "d.tar.zst"), bundle.ExportOptions{Bases: []*bundle.Base{base, base}})
	if want := "base bundle " + base.Digest.String() + " (full.tar.zst) is given twice"; err == nil || err.Error() != want {
		t.Errorf("export with one base twice: %v, want %s", err, want)
	}
}

// seekTableOffset returns the seek table of bundle b and where it starts.
func seekTableOffset(t *testing.T, b []byte) (*bundle.SeekTable, int64) {
	t.Helper()
	tbl, err := bundle.ReadSeekTable(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	last := tbl.Entries[len(tbl.Entries)-1]
	// The end-of-archive frame follows the last entry; the table after it.
	off := last.Offset + last.Length
	for off < int64(len(b)) && !(b[off] == 0x5B && b[off+1] == 0x2A && b[off+2] == 0x4D && b[off+3] == 0x18) {
		off++
	}
	return tbl, off
}

// TestDeltaIntoLayout: into an OCI layout, a delta needs the layout to hold
// what it leaves out, as a registry does.
func TestDeltaIntoLayout(t *testing.T) {
	rel := monthlyReleases(t, 16<<10)
	dir := t.TempDir()
	full1 := filepath.Join(dir, "release-1.tar.zst")
	exportTo(t, rel.r1, full1, bundle.ExportOptions{})
	delta := filepath.Join(dir, "delta.tar.zst")
	sum := exportTo(t, rel.r2, delta, bundle.ExportOptions{Bases: []*bundle.Base{readBase(t, full1)}})

	empty := filepath.Join(dir, "empty")
	_, err := bundle.ImportFile(context.Background(), delta, "oci:"+empty, bundle.ImportOptions{})
	if !errors.Is(err, bundle.ErrBaseMissing) || !strings.Contains(err.Error(), fmt.Sprintf("%d blob(s) left out of this delta bundle are not at oci:%s, and nothing was pushed", sum.LeftOut, empty)) {
		t.Fatalf("import into an empty layout: %v", err)
	}
	layout := filepath.Join(dir, "layout")
	if _, err := bundle.ImportFile(context.Background(), full1, "oci:"+layout, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := bundle.ImportFile(context.Background(), delta, "oci:"+layout, bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("import of the delta into the layout: %v", err)
	}
	for _, img := range res.Images {
		if img.Digest != img.DestinationDigest {
			t.Errorf("%s: %s, want %s", img.Destination, img.DestinationDigest, img.Digest)
		}
	}
}
