package bundle_test

// Tests of import receipts and rollback protection (issue 11): receipts
// kept at the destination and merged, read back by another import with no
// shared state, tampered receipts, rollback refused or allowed, and
// unsigned imports.

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

var (
	jan = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feb = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	mar = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
)

// rfix is a source registry whose tags the test moves between exports, a
// destination, and a signing key.
type rfix struct {
	src, dst *registrytest.Registry
	key      crypto.Signer
}

func newRfix(t *testing.T) *rfix {
	t.Helper()
	k, err := bundle.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	return &rfix{src: registrytest.New(t, registrytest.Options{}), dst: registrytest.New(t, registrytest.Options{}), key: k}
}

// push writes a one-layer image made from seed to src/repoTag and returns
// its digest.
func (f *rfix) push(t *testing.T, repoTag, seed string) digest.Digest {
	t.Helper()
	img, err := testimages.Image("linux/amd64", false, testimages.Layer(seed, 2000))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(f.src.Host + "/" + repoTag)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return digest.Digest(d.String())
}

// export writes a bundle of src/repoTags created at created, signed by
// signer (unsigned when nil), and returns its path and index digest.
func (f *rfix) export(t *testing.T, created time.Time, signer crypto.Signer, repoTags ...string) (string, digest.Digest) {
	t.Helper()
	var refs []string
	for _, r := range repoTags {
		refs = append(refs, f.src.Host+"/"+r)
	}
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	opts := bundle.ExportOptions{Created: created}
	if signer != nil {
		opts.Sign = bundle.Signer(signer)
	}
	if _, err := bundle.ExportFile(context.Background(), refs, path, opts); err != nil {
		t.Fatal(err)
	}
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return path, digest.FromBytes(r.IndexBytes())
}

// imp imports path to dst/m as a separate import host would: a fresh
// reader, verifying with keys (unverified when none), nothing shared.
func (f *rfix) imp(t *testing.T, path string, opts bundle.ImportOptions, keys ...crypto.PublicKey) (*bundle.ImportResult, error) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var ro []bundle.ReadOption
	if len(keys) > 0 {
		ro = append(ro, bundle.WithVerifier(bundle.KeyVerifier(keys...)))
	}
	r, err := bundle.Open(path, ro...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return bundle.Import(context.Background(), r, f.dst.Host+"/m", opts)
}

func (f *rfix) tag(t *testing.T, repoTag string) digest.Digest {
	t.Helper()
	return digest.Digest(destDigest(t, f.dst.Host+"/m/"+repoTag))
}

// stored reads the receipt artifact at dst/m/ferry-receipts:latest with
// another client than ferry's, checking its media types.
func (f *rfix) stored(t *testing.T) *bundle.Receipt {
	t.Helper()
	ref, _ := name.ParseReference(f.dst.Host + "/m/" + bundle.ReceiptRepository + ":" + bundle.ReceiptTagName)
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != bundle.ReceiptMediaType || m.Config.MediaType != ocispec.MediaTypeEmptyJSON ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != bundle.ReceiptMediaType {
		t.Fatalf("receipt manifest: %s", desc.Manifest)
	}
	l, err := remote.Layer(ref.Context().Digest(m.Layers[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	var r bundle.Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// tamper replaces the stored receipt by what change makes of it.
func (f *rfix) tamper(t *testing.T, change func(*bundle.Receipt)) {
	t.Helper()
	r := f.stored(t)
	change(r)
	b, _ := json.Marshal(r)
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(f.dst.Host + "/m/" + bundle.ReceiptRepository)
	layer := ocispec.Descriptor{MediaType: bundle.ReceiptMediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := c.PushBlob(context.Background(), repo, layer.Digest, layer.Size, strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: bundle.ReceiptMediaType, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	if err := c.PutManifest(context.Background(), repo, bundle.ReceiptTagName, ocispec.MediaTypeImageManifest, mb); err != nil {
		t.Fatal(err)
	}
}

func rollbackMsg(key string, holds, setBy digest.Digest, setAt time.Time, self digest.Digest, selfAt time.Time, to digest.Digest) string {
	return fmt.Sprintf("rollback refused: %s holds %s, set by bundle %s created %s; this bundle (%s, created %s) is older and would set it to %s; nothing was pushed (to accept this knowingly, import again with --allow-rollback)",
		key, holds, setBy, setAt.Format(time.RFC3339), self, selfAt.Format(time.RFC3339), to)
}

// Two imports of different bundles merge into one receipt at the
// destination; a third import host, sharing nothing with the first two,
// reads it back and builds on it.
func TestReceiptMergedAcrossImports(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	dApp := f.push(t, "team/app:1.0", "app-1")
	dDB := f.push(t, "team/db:1.0", "db-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	p2, i2 := f.export(t, feb, f.key, "team/db:1.0")
	res1, err := f.imp(t, p1, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.dst.Host + "/m/ferry-receipts:latest"; res1.ReceiptAt != want || len(res1.Warnings) != 0 {
		t.Fatalf("receipt at %q, warnings %q; want %q and none", res1.ReceiptAt, res1.Warnings, want)
	}
	res2, err := f.imp(t, p2, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	got := f.stored(t)
	fp := bundle.Fingerprint(pub)
	want := map[string]bundle.ReceiptTag{
		f.dst.Host + "/m/team/app:1.0": {Digest: dApp, Bundle: i1, Created: jan, Key: fp},
		f.dst.Host + "/m/team/db:1.0":  {Digest: dDB, Bundle: i2, Created: feb, Key: fp},
	}
	if got.Version != 1 || got.Destination != f.dst.Host+"/m" || len(got.Tags) != 2 {
		t.Fatalf("receipt: version %d, destination %q, tags %v", got.Version, got.Destination, got.Tags)
	}
	for k, w := range want {
		if g := got.Tags[k]; g.Digest != w.Digest || g.Bundle != w.Bundle || !g.Created.Equal(w.Created) || g.Key != w.Key {
			t.Errorf("tag %s: %+v, want %+v", k, g, w)
		}
	}
	if len(got.Bundles) != 2 || digest.FromBytes(got.Bundles[0].Index) != i1 || digest.FromBytes(got.Bundles[1].Index) != i2 || len(got.Bundles[1].Signature) == 0 || len(got.Bundles[1].SigstoreBundle) == 0 {
		t.Fatalf("bundles of the receipt: %d, want the two signed index.json files in import order", len(got.Bundles))
	}
	// Every blob of both bundles, sorted, as the result says.
	for _, p := range []string{p1, p2} {
		r, _ := bundle.Open(p)
		for _, b := range r.Blobs() {
			if !slices.Contains(got.Blobs, b.Digest) {
				t.Errorf("blob %s of %s not in the receipt", b.Digest, p)
			}
		}
		r.Close()
	}
	if !slices.IsSorted(got.Blobs) {
		t.Error("receipt blobs not sorted")
	}
	gb, _ := json.Marshal(got)
	rb, _ := json.Marshal(res2.Receipt)
	if string(gb) != string(rb) {
		t.Errorf("ImportResult.Receipt differs from the stored receipt:\n%s\n%s", rb, gb)
	}
	// Importing the first bundle again changes nothing and uploads nothing.
	before := f.dst.BlobUploads.Load()
	res3, err := f.imp(t, p1, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.dst.BlobUploads.Load() - before; n != 1 {
		// only the receipt, whose Bundles order changed (the record is
		// the same as before)
		t.Errorf("%d blob uploads on a re-import, want 1 (the receipt)", n)
	}
	if len(res3.Receipt.Bundles) != 2 || digest.FromBytes(res3.Receipt.Bundles[1].Index) != i1 {
		t.Errorf("a re-imported bundle moves to the end of Bundles, once")
	}
}

// A signed bundle older than the one that set a tag may not move the tag
// back: refused before anything is pushed, naming the tag, what it holds,
// the bundle that set it and both creation times.
func TestRollbackRefused(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	if _, err := f.imp(t, p2, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	uploads, reqs := f.dst.BlobUploads.Load(), f.dst.Requests.Load()
	puts := &registrytest.Fault{Method: "PUT", Path: "/v2/", Status: 500, Times: 1 << 30}
	f.dst.InjectFaults(puts)
	res, err := f.imp(t, p1, bundle.ImportOptions{}, pub)
	f.dst.InjectFaults()
	if n := puts.Hits(); n != 0 {
		t.Errorf("%d PUT requests (blob or manifest) for the refused import", n)
	}
	want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", d2, i2, feb, i1, jan, d1)
	if !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if res == nil || len(res.Images) != 0 {
		t.Errorf("result %+v", res)
	}
	if n := f.dst.BlobUploads.Load() - uploads; n != 0 {
		t.Errorf("%d blobs uploaded", n)
	}
	if got := f.tag(t, "team/app:1.0"); got != d2 {
		t.Errorf("tag moved to %s", got)
	}
	t.Logf("%d requests for the refused import", f.dst.Requests.Load()-reqs)
	// A newer bundle moves it on.
	d3 := f.push(t, "team/app:1.0", "app-3")
	p3, _ := f.export(t, mar, f.key, "team/app:1.0")
	if _, err := f.imp(t, p3, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	if got := f.tag(t, "team/app:1.0"); got != d3 {
		t.Errorf("tag holds %s, want %s", got, d3)
	}
}

// An older bundle imports normally when its tags are unrelated, or when
// it points them at the digests they already hold.
func TestRollbackUnrelatedOlderAccepted(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	dApp := f.push(t, "team/app:1.0", "app-1")
	f.push(t, "team/db:1.0", "db-1")
	pNew, _ := f.export(t, feb, f.key, "team/app:1.0")
	pOldOther, _ := f.export(t, jan, f.key, "team/db:1.0")
	pOldSame, _ := f.export(t, jan, f.key, "team/app:1.0") // same digest, older
	if _, err := f.imp(t, pNew, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pOldOther, pOldSame} {
		if res, err := f.imp(t, p, bundle.ImportOptions{}, pub); err != nil || len(res.Warnings) != 0 {
			t.Fatalf("older bundle %s: %v, warnings %q", p, err, res.Warnings)
		}
	}
	if got := f.tag(t, "team/app:1.0"); got != dApp {
		t.Errorf("app holds %s", got)
	}
	// Someone moved the tag by hand: an older bundle that sets it back to
	// what the newest signed bundle set restores it.
	img, _ := testimages.Image("linux/amd64", false, testimages.Layer("by-hand", 100))
	ref, _ := name.ParseReference(f.dst.Host + "/m/team/app:1.0")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if _, err := f.imp(t, pOldSame, bundle.ImportOptions{}, pub); err != nil {
		t.Fatalf("restoring the signed digest with an older bundle: %v", err)
	}
	if got := f.tag(t, "team/app:1.0"); got != dApp {
		t.Errorf("app holds %s", got)
	}
}

// --allow-rollback moves the tag, warns, and records the import; the
// history keeps the newest signed bundle, so a re-run of the same older
// bundle (which moves nothing) passes, and another older one is refused.
func TestRollbackAllowed(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d0 := f.push(t, "team/app:1.0", "app-0")
	p0, i0 := f.export(t, jan.AddDate(0, -1, 0), f.key, "team/app:1.0")
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	if _, err := f.imp(t, p2, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	res, err := f.imp(t, p1, bundle.ImportOptions{AllowRollback: true}, pub)
	if err != nil {
		t.Fatal(err)
	}
	key := f.dst.Host + "/m/team/app:1.0"
	warn := "--allow-rollback: moving a tag back to an older bundle: " + strings.TrimSuffix(strings.TrimPrefix(rollbackMsg(key, d2, i2, feb, i1, jan, d1), "rollback refused: "), "; nothing was pushed (to accept this knowingly, import again with --allow-rollback)")
	if !slices.Equal(res.Warnings, []string{warn}) {
		t.Errorf("warnings %q\nwant %q", res.Warnings, warn)
	}
	if got := f.tag(t, "team/app:1.0"); got != d1 {
		t.Fatalf("tag holds %s, want %s", got, d1)
	}
	if tg := f.stored(t).Tags[key]; tg.Digest != d1 || tg.Bundle != i1 {
		t.Errorf("receipt tag %+v, want the rollback recorded", tg)
	}
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Errorf("re-running the accepted rollback: %v", err)
	}
	_, err = f.imp(t, p0, bundle.ImportOptions{}, pub)
	want := fmt.Sprintf("rollback refused: %s holds %s, but bundle %s created %s set it to %s; this bundle (%s, created %s) is older and would set it to %s; nothing was pushed (to accept this knowingly, import again with --allow-rollback)",
		key, d1, i2, feb.Format(time.RFC3339), d2, i0, jan.AddDate(0, -1, 0).Format(time.RFC3339), d0)
	if !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// A receipt changed at the registry cannot forge history: Tags are never
// used for decisions, and a Bundles entry whose signature does not verify
// with the import's keys is ignored with a warning (history deleted, the
// documented limit), so the older bundle imports.
func TestReceiptTampered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *rfix, r *bundle.Receipt)
		// what the warning about the ignored entry says after its prefix;
		// empty: no warning, and the signed history still refuses
		warn string
		// the entry is dropped from the receipt when the import writes it:
		// no reader can use it
		dropped bool
	}{
		{"tags", func(f *rfix, r *bundle.Receipt) {
			// Claim that a newer bundle set the tag to another digest.
			k := f.dst.Host + "/m/team/app:1.0"
			r.Tags[k] = bundle.ReceiptTag{Digest: digest.FromString("x"), Bundle: digest.FromString("y"), Created: mar, Key: r.Tags[k].Key}
		}, "", false},
		{"index", func(f *rfix, r *bundle.Receipt) {
			// Make the recorded bundle look newer.
			r.Bundles[0].Index = []byte(strings.Replace(string(r.Bundles[0].Index), feb.Format(time.RFC3339), mar.Format(time.RFC3339), 1))
		}, "signature verification failed: signature is invalid: index.json was changed after it was signed", false},
		{"key", func(f *rfix, r *bundle.Receipt) {
			// The same index.json signed by a key the import does not trust.
			other, _ := bundle.GenerateKey("ed25519")
			files, _ := bundle.Signer(other)(r.Bundles[0].Index)
			r.Bundles[0].Signature, r.Bundles[0].SigstoreBundle = files[bundle.SignatureFile], files[bundle.SigstoreBundleFile]
		}, "signature verification failed: signed by an unknown key: signed by key " + "sha256:", false},
		{"created", func(f *rfix, r *bundle.Receipt) {
			// Signed by the trusted key, but with no creation time (not
			// written by ferry export): it cannot be ordered.
			r.Bundles[0].Index = []byte(strings.Replace(string(r.Bundles[0].Index), `"org.opencontainers.image.created"`, `"x-created"`, 1))
			files, _ := bundle.Signer(f.key)(r.Bundles[0].Index)
			r.Bundles[0].Signature, r.Bundles[0].SigstoreBundle = files[bundle.SignatureFile], files[bundle.SigstoreBundleFile]
		}, "index.json has no valid org.opencontainers.image.created", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRfix(t)
			pub := f.key.Public()
			dOld := f.push(t, "team/app:1.0", "app-1")
			pOld, iOld := f.export(t, jan, f.key, "team/app:1.0")
			dNew := f.push(t, "team/app:1.0", "app-2")
			pNew, iNew := f.export(t, feb, f.key, "team/app:1.0")
			if _, err := f.imp(t, pNew, bundle.ImportOptions{}, pub); err != nil {
				t.Fatal(err)
			}
			f.tamper(t, func(r *bundle.Receipt) { tc.change(f, r) })
			tampered := digest.FromBytes(f.stored(t).Bundles[0].Index)
			if tc.warn == "" {
				// The forged Tags entry neither refuses the bundle that
				// really set the tag nor changes what the refusal names.
				if res, err := f.imp(t, pNew, bundle.ImportOptions{}, pub); err != nil || len(res.Warnings) != 0 {
					t.Fatalf("re-import of the newest bundle: %v, warnings %q", err, res.Warnings)
				}
				_, err := f.imp(t, pOld, bundle.ImportOptions{}, pub)
				if want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", dNew, iNew, feb, iOld, jan, dOld); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
					t.Fatalf("got %v\nwant %s", err, want)
				}
				return
			}
			res, err := f.imp(t, pOld, bundle.ImportOptions{}, pub)
			if err != nil {
				t.Fatalf("the tampered entry was not ignored: %v", err)
			}
			prefix := fmt.Sprintf("ignoring entry 0 of the receipt at %s/m/ferry-receipts:latest (bundle %s): %s", f.dst.Host, tampered, tc.warn)
			if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], prefix) || !strings.HasSuffix(res.Warnings[0], "; it is not used for rollback decisions") {
				t.Errorf("warnings %q\nwant one starting %q", res.Warnings, prefix)
			}
			if got := f.tag(t, "team/app:1.0"); got != dOld {
				t.Errorf("tag holds %s, want %s", got, dOld)
			}
			// An entry another host may trust (its key) is kept, the import
			// recorded after it; one no host can use is dropped.
			r := f.stored(t)
			switch {
			case tc.dropped && (len(r.Bundles) != 1 || digest.FromBytes(r.Bundles[0].Index) != iOld):
				t.Errorf("receipt bundles after the import: %d, want the import's alone", len(r.Bundles))
			case !tc.dropped && (len(r.Bundles) != 2 || digest.FromBytes(r.Bundles[0].Index) != tampered || digest.FromBytes(r.Bundles[1].Index) != iOld):
				t.Errorf("receipt bundles after the import: %d, want the tampered entry and the import's", len(r.Bundles))
			}
		})
	}
}

// An unsigned import (no verifier: --insecure-skip-verify) neither consults
// nor advances the trusted history: no rollback check, a warning, its tags
// recorded with no key and no Bundles entry, so a later signed import
// older than it is still judged by the signed history alone.
func TestRollbackUnsignedImport(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	d3 := f.push(t, "team/app:1.0", "app-3")
	p3, i3 := f.export(t, mar, nil, "team/app:1.0") // unsigned, newest
	if _, err := f.imp(t, p2, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	const off = "rollback protection is off for this import: the bundle's signature was not checked, so its creation time cannot be trusted; the receipt records its tags as unsigned and the trusted history is neither consulted nor advanced"
	// Unsigned and older than the history: not checked, imported, warned.
	res, err := f.imp(t, p1, bundle.ImportOptions{})
	if err != nil || !slices.Equal(res.Warnings, []string{off}) {
		t.Fatalf("unsigned import: %v, warnings %q", err, res.Warnings)
	}
	if got := f.tag(t, "team/app:1.0"); got != d1 {
		t.Fatalf("tag holds %s, want %s", got, d1)
	}
	r := f.stored(t)
	key := f.dst.Host + "/m/team/app:1.0"
	if tg := r.Tags[key]; tg.Digest != d1 || tg.Bundle != i1 || tg.Key != "" || len(r.Bundles) != 1 || digest.FromBytes(r.Bundles[0].Index) != i2 {
		t.Fatalf("receipt after the unsigned import: tag %+v, %d bundles", tg, len(r.Bundles))
	}
	// An unsigned newer bundle does not advance the history either: the
	// signed bundle of February may still set the tag.
	if _, err := f.imp(t, p3, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := f.tag(t, "team/app:1.0"); got != d3 {
		t.Fatalf("tag holds %s, want %s", got, d3)
	}
	if res, err := f.imp(t, p2, bundle.ImportOptions{}, pub); err != nil || len(res.Warnings) != 0 {
		t.Fatalf("signed February bundle after an unsigned March one: %v, warnings %q", err, res.Warnings)
	}
	// The signed January bundle is still refused by February's.
	_, err = f.imp(t, p1, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(key, d2, i2, feb, i1, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	_ = i3
}

// An OCI layout destination keeps the receipt in ferry-receipt.json and
// gets the same rollback protection.
func TestReceiptLayout(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	dir := filepath.Join(t.TempDir(), "layout")
	imp := func(p string) (*bundle.ImportResult, error) {
		r, err := bundle.Open(p, bundle.WithVerifier(bundle.KeyVerifier(pub)))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return bundle.Import(context.Background(), r, "oci:"+dir, bundle.ImportOptions{})
	}
	res, err := imp(p2)
	if err != nil {
		t.Fatal(err)
	}
	if res.ReceiptAt != dir+"/ferry-receipt.json" || len(res.Receipt.Bundles) != 1 {
		t.Fatalf("receipt at %q: %+v", res.ReceiptAt, res.Receipt)
	}
	_, err = imp(p1)
	if want := rollbackMsg(f.src.Host+"/team/app:1.0", d2, i2, feb, i1, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// A source image that would land in the receipt repository is refused
// before anything is pushed.
func TestReceiptRepositoryConflict(t *testing.T) {
	f := newRfix(t)
	f.push(t, "ferry-receipts:1.0", "x")
	p, _ := f.export(t, jan, f.key, "ferry-receipts:1.0")
	before := f.dst.Requests.Load()
	_, err := f.imp(t, p, bundle.ImportOptions{}, f.key.Public())
	want := fmt.Sprintf("destination conflict: %s/ferry-receipts:1.0 maps to %s/m/ferry-receipts, the repository that holds ferry's import receipts; use --keep-source-registry or another prefix", f.src.Host, f.dst.Host)
	if !errors.Is(err, bundle.ErrConflict) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if n := f.dst.Requests.Load() - before; n != 0 {
		t.Errorf("%d requests to the destination", n)
	}
}

// What is not a receipt at the receipt's place is ignored with a warning
// and replaced; a receipt of a newer format is refused, not overwritten.
func TestReceiptUnreadable(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p, i := f.export(t, jan, f.key, "team/app:1.0")
	img, _ := testimages.Image("linux/amd64", false, testimages.Layer("junk", 100))
	ref, _ := name.ParseReference(f.dst.Host + "/m/ferry-receipts:latest")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	res, err := f.imp(t, p, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ignoring the receipt at %s/m/ferry-receipts:latest: not a ferry receipt: the manifest is not of artifactType %s with one layer of that type; it will be replaced", f.dst.Host, bundle.ReceiptMediaType)
	if !slices.Equal(res.Warnings, []string{want}) {
		t.Errorf("warnings %q\nwant %q", res.Warnings, want)
	}
	if r := f.stored(t); len(r.Bundles) != 1 || digest.FromBytes(r.Bundles[0].Index) != i {
		t.Errorf("receipt not replaced")
	}
	// A manifest that declares a receipt over the cap is not fetched.
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(f.dst.Host + "/m/" + bundle.ReceiptRepository)
	m := f.stored(t)
	mb, _ := json.Marshal(m)
	layer := ocispec.Descriptor{MediaType: bundle.ReceiptMediaType, Digest: digest.FromBytes(mb), Size: 64<<20 + 1}
	big := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: bundle.ReceiptMediaType, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{layer}}
	big.SchemaVersion = 2
	bb, _ := json.Marshal(big)
	if err := c.PushBlob(context.Background(), repo, layer.Digest, int64(len(mb)), strings.NewReader(string(mb))); err != nil {
		t.Fatal(err)
	}
	if err := c.PutManifest(context.Background(), repo, bundle.ReceiptTagName, ocispec.MediaTypeImageManifest, bb); err != nil {
		t.Fatal(err)
	}
	res, err = f.imp(t, p, bundle.ImportOptions{}, pub)
	want = fmt.Sprintf("ignoring the receipt at %s/m/ferry-receipts:latest: not a ferry receipt: the receipt is 67108865 bytes (at most 67108864) of digest %q; it will be replaced", f.dst.Host, layer.Digest)
	if err != nil || !slices.Equal(res.Warnings, []string{want}) {
		t.Errorf("%v, warnings %q\nwant %q", err, res.Warnings, want)
	}
	f.tamper(t, func(r *bundle.Receipt) { r.Version = 2 })
	_, err = f.imp(t, p, bundle.ImportOptions{}, pub)
	want = fmt.Sprintf("reading the import receipt at %s/m/ferry-receipts:latest: unsupported content: receipt format version 2; this ferry reads version 1", f.dst.Host)
	if !errors.Is(err, bundle.ErrUnsupported) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// A receipt replaced by another import between the write and its
// read-back is merged and written again; after three lost races the
// import warns: its own record holds its history until the next import
// merges it.
func TestReceiptRace(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p, _ := f.export(t, jan, f.key, "team/app:1.0")
	other := digest.FromString("another import's receipt").String()
	race := &registrytest.Fault{Method: "HEAD", Path: "/m/ferry-receipts/manifests/latest", Digest: other, Times: 2}
	f.dst.InjectFaults(race)
	if _, err := f.imp(t, p, bundle.ImportOptions{}, pub); err != nil || race.Hits() != 2 {
		t.Fatalf("%v after %d lost races", err, race.Hits())
	}
	race = &registrytest.Fault{Method: "HEAD", Path: "/m/ferry-receipts/manifests/latest", Digest: other, Times: 3}
	f.dst.InjectFaults(race)
	res, err := f.imp(t, p, bundle.ImportOptions{}, pub)
	want := fmt.Sprintf("another import replaced the receipt at %s/m/ferry-receipts:latest each of 3 times this one wrote it; this import's record %s is written, and the next import merges it", f.dst.Host, recordOf(t, p, false))
	if err != nil || !slices.Equal(res.Warnings, []string{want}) || len(res.Images) != 1 {
		t.Fatalf("got %v, warnings %q\nwant the warning %s", err, res.Warnings, want)
	}
}

// The history maps each recorded bundle with the mapping its import used
// (keepSourceRegistry): the same source tag under another mapping is
// another destination tag.
func TestRollbackKeepSourceRegistry(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	keep := bundle.ImportOptions{KeepSourceRegistry: true}
	if _, err := f.imp(t, p2, keep, pub); err != nil {
		t.Fatal(err)
	}
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Fatalf("another destination tag: %v", err)
	}
	_, err := f.imp(t, p1, keep, pub)
	key := f.dst.Host + "/m/" + strings.ReplaceAll(f.src.Host, ":", "_") + "/team/app:1.0"
	if want := rollbackMsg(key, d2, i2, feb, i1, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
