package bundle_test

// Hostile review of issue 11 (receipts, rollback protection, deltas):
// holes found, each pinned by a test.

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
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

// impTo imports path to `to` with its own reader, verifying with keys; it
// touches no environment, so it may run on another goroutine.
func impTo(path, to string, opts bundle.ImportOptions, keys ...crypto.PublicKey) (*bundle.ImportResult, error) {
	var ro []bundle.ReadOption
	if len(keys) > 0 {
		ro = append(ro, bundle.WithVerifier(bundle.KeyVerifier(keys...)))
	}
	r, err := bundle.Open(path, ro...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return bundle.Import(context.Background(), r, to, opts)
}

// Importing one bundle again with the other --keep-source-registry mapping
// must not drop the history its first import recorded: the same signed
// index.json set other destination tags then. (The merge kept one entry
// per index.json, so the second import replaced the first, and an older
// bundle could then move the first mapping's tags back.)
func TestRollbackSameBundleBothMappings(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	if _, err := f.imp(t, p2, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	if _, err := f.imp(t, p2, bundle.ImportOptions{KeepSourceRegistry: true}, pub); err != nil {
		t.Fatal(err)
	}
	if r := f.stored(t); len(r.Bundles) != 2 || r.Bundles[0].KeepSourceRegistry || !r.Bundles[1].KeepSourceRegistry {
		t.Errorf("receipt bundles: %d, want the February bundle under each mapping", len(r.Bundles))
	}
	_, err := f.imp(t, p1, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", d2, i2, feb, i1, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if got := f.tag(t, "team/app:1.0"); got != d2 {
		t.Errorf("tag moved back to %s", got)
	}
	// Imported again under the same mapping, an entry still moves to the
	// end once.
	if _, err := f.imp(t, p2, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	if r := f.stored(t); len(r.Bundles) != 2 || !r.Bundles[0].KeepSourceRegistry || r.Bundles[1].KeepSourceRegistry {
		t.Errorf("receipt bundles after a re-import: %d", len(r.Bundles))
	}
}

// The receipt is kept per prefix, but a destination tag can be reached
// from two prefixes: --to REG/m --keep-source-registry and --to
// REG/m/HOST (without it) both write REG/m/HOST/team/app:1.0. An older
// bundle imported under the second spelling must also be judged against
// the receipt of REG/m/ferry-receipts, which records the newer bundle:
// the rollback check reads the receipts of every prefix above each
// target repository.
func TestRollbackNestedPrefixBypass(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	if _, err := f.imp(t, p2, bundle.ImportOptions{KeepSourceRegistry: true}, pub); err != nil {
		t.Fatal(err)
	}
	host := strings.ReplaceAll(f.src.Host, ":", "_")
	key := f.dst.Host + "/m/" + host + "/team/app:1.0"
	if got := digest.Digest(destDigest(t, key)); got != d2 {
		t.Fatalf("%s holds %s, want %s", key, got, d2)
	}
	_, err := impTo(p1, f.dst.Host+"/m/"+host, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(key, d2, i2, feb, i1, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if got := digest.Digest(destDigest(t, key)); got != d2 {
		t.Errorf("%s moved back to %s", key, got)
	}
}

// A receipt padded by someone with write access to the registry with a
// great many entries that do not verify costs each import one warning per
// entry, and the de-duplication of warnings was quadratic: 64 MiB of
// entries held every import for hours and printed millions of lines. The
// entries ignored are now reported in a bounded number of warnings.
func TestReceiptManyUnverifiedEntriesBounded(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	const junk = 100000
	f.tamper(t, func(r *bundle.Receipt) {
		for i := range junk {
			r.Bundles = append(r.Bundles, bundle.ReceiptBundle{Index: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
	})
	start := time.Now()
	res, err := f.imp(t, p1, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("import over a receipt with %d junk entries: %v", junk, time.Since(start))
	at := f.dst.Host + "/m/ferry-receipts:latest"
	var want []string
	for i := 1; i <= 3; i++ {
		want = append(want, fmt.Sprintf("ignoring entry %d of the receipt at %s (bundle %s): signature verification failed: bundle is not signed: the bundle has no index.json.sig; sign it at export with --key (ferry import accepts an unsigned bundle only with --insecure-skip-verify); it is not used for rollback decisions",
			i, at, digest.FromString(fmt.Sprintf(`{"n":%d}`, i-1))))
	}
	want = append(want, fmt.Sprintf("ignoring %d more entries of the receipt at %s for the same kinds of reason; they are not used for rollback decisions", junk-3, at))
	if strings.Join(res.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings (%d):\n%s\nwant:\n%s", len(res.Warnings), strings.Join(res.Warnings[:min(len(res.Warnings), 5)], "\n"), strings.Join(want, "\n"))
	}
	if r := f.stored(t); len(r.Bundles) != junk+1 || digest.FromBytes(r.Bundles[junk].Index) != i1 {
		t.Errorf("receipt bundles: %d", len(r.Bundles))
	}
}

// Two imports into one destination at once: B reads the receipt, A
// imports and records its bundle, then B writes the receipt it merged
// from what it read before A's write. B's read-back sees its own write
// and stops; A's signed bundle is gone from the history, and an older
// bundle moves A's tag back without a word.
func TestReceiptConcurrentImportsLoseHistory(t *testing.T) {
	t.Skip("BUG: the receipt's read-modify-write is guarded only by reading the tag back after the write; a write by another import between this import's read and its write is overwritten and lost (needs a per-import record, e.g. one tag per bundle, merged on read)")
	f := newRfix(t)
	pub := f.key.Public()
	to := f.dst.Host + "/m"
	d1 := f.push(t, "team/app:1.0", "app-1")
	pOld, iOld := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	pA, iA := f.export(t, mar, f.key, "team/app:1.0")
	f.push(t, "team/db:1.0", "db-1")
	pB, iB := f.export(t, feb, f.key, "team/db:1.0")
	slow := &registrytest.Fault{Method: "PUT", Path: "/m/ferry-receipts/manifests/latest", Delay: 3 * time.Second, Times: 1}
	f.dst.InjectFaults(slow)
	errB := make(chan error, 1)
	go func() {
		_, err := impTo(pB, to, bundle.ImportOptions{}, pub)
		errB <- err
	}()
	for deadline := time.Now().Add(20 * time.Second); slow.Hits() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("import B never wrote its receipt")
		}
	}
	if _, err := impTo(pA, to, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	if err := <-errB; err != nil {
		t.Fatal(err)
	}
	r := f.stored(t)
	var have []digest.Digest
	for _, b := range r.Bundles {
		have = append(have, digest.FromBytes(b.Index))
	}
	if len(have) != 2 || !(have[0] == iA || have[1] == iA) || !(have[0] == iB || have[1] == iB) {
		t.Errorf("receipt bundles %v, want A %s and B %s", have, iA, iB)
	}
	_, err := impTo(pOld, to, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(to+"/team/app:1.0", d2, iA, mar, iOld, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// An image named team/ferry-receipts imported under --to REG/m would land
// where an import with --to REG/m/team keeps its receipt: that import would
// take the image for an unreadable receipt and replace it, and the image
// import would replace that receipt's history. The name is reserved at
// every depth: such an image is refused before anything is pushed.
func TestReceiptOverwritesImageOfParentPrefix(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/ferry-receipts:latest", "not a receipt")
	pImg, _ := f.export(t, jan, f.key, "team/ferry-receipts:latest")
	_, err := impTo(pImg, f.dst.Host+"/m", bundle.ImportOptions{}, pub)
	src := f.src.Host + "/team/ferry-receipts:latest"
	repo := f.dst.Host + "/m/team/ferry-receipts"
	want := "destination conflict: " + src + " maps to " + repo + "; ferry keeps its import receipts in repositories named ferry-receipts (for an import to " + path.Dir(repo) + "), so it does not import an image there: import it under another name"
	if !errors.Is(err, bundle.ErrConflict) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if n := f.dst.BlobUploads.Load(); n != 0 {
		t.Errorf("%d blobs pushed before the refusal", n)
	}
}

// The receipt grows by one signed index.json per distinct bundle imported
// and is never pruned; a delta's index.json also lists its left-out blobs
// (some 75 bytes each), so a large mirror fed weekly reaches the 64 MiB
// cap within months. The import that crosses it writes the receipt; the
// next one finds it over the cap, ignores it "as if there were none" and
// replaces it: the whole signed history is gone, and an older bundle moves
// tags back. Here the history is padded with signed entries (as earlier
// imports would have left) to just under the cap.
func TestReceiptOverCapLosesHistory(t *testing.T) {
	t.Skip("BUG: an honest receipt that outgrows 64 MiB is written, then ignored and replaced by the next import: the signed history is lost (needs pruning of superseded entries, or refusing before the cap)")
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	pOld, iOld := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	pNew, iNew := f.export(t, feb, f.key, "team/app:1.0")
	f.push(t, "team/db:1.0", "db-1")
	pDB, _ := f.export(t, mar, f.key, "team/db:1.0")
	if _, err := f.imp(t, pNew, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	f.tamper(t, func(r *bundle.Receipt) {
		idx := string(r.Bundles[0].Index)
		// An earlier signed bundle whose index.json has pad more bytes (a
		// large delta's list of left-out blobs), created n seconds before
		// January.
		entry := func(n, pad int) bundle.ReceiptBundle {
			b := []byte(strings.Replace(idx, `"org.opencontainers.image.created": "`+feb.Format(time.RFC3339)+`"`,
				`"x-pad": "`+strings.Repeat("x", pad)+`", "org.opencontainers.image.created": "`+jan.Add(-time.Duration(n)*time.Second).Format(time.RFC3339)+`"`, 1))
			files, err := bundle.Signer(f.key)(b)
			if err != nil {
				t.Fatal(err)
			}
			return bundle.ReceiptBundle{Index: b, Signature: files[bundle.SignatureFile], SigstoreBundle: files[bundle.SigstoreBundleFile]}
		}
		size := func() int { b, _ := json.Marshal(r); return len(b) }
		for n, total := 1, size(); total < 60<<20; n++ {
			e := entry(n, 1<<20)
			eb, _ := json.Marshal(e)
			r.Bundles, total = append([]bundle.ReceiptBundle{e}, r.Bundles...), total+len(eb)+1
		}
		// One more, sized to leave less room than the next import needs.
		gap := 64<<20 - 200 - size()
		trial, _ := json.Marshal(entry(1000, gap*3/4))
		for pad := gap*3/4 - (len(trial)+1-gap)*3/4 - 8; ; pad-- {
			e := entry(1000, pad)
			eb, _ := json.Marshal(e)
			if len(eb)+1 <= gap {
				r.Bundles = append([]bundle.ReceiptBundle{e}, r.Bundles...)
				break
			}
		}
		if n := size(); n > 64<<20 || n < 64<<20-400 {
			t.Fatalf("padded receipt is %d bytes", n)
		}
	})
	if _, err := f.imp(t, pDB, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	res, err := f.imp(t, pOld, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", d2, iNew, feb, iOld, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		var w []string
		if res != nil {
			w = res.Warnings
		}
		t.Errorf("got %v (warnings %q)\nwant %s", err, w, want)
	}
}

// A hostile source registry serves a manifest whose layer descriptor has
// the digest of a blob the base holds but another size. A full export
// fetches the blob and refuses the lie; a delta left the blob out on its
// digest alone, signed the broken manifest, and its import pushed an
// image no client can pull. The base bundle's seek table gives each
// blob's size: a blob whose size differs is not left out, so the delta
// export fetches it and refuses as the full export does.
func TestDeltaLeftOutSizeLie(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{})
	p := pushImage(t, src.Host, "shop/api:1", testimages.Layer("os", 16<<10))
	full := filepath.Join(t.TempDir(), "full.tar.zst")
	exportTo(t, []string{p.ref}, full, bundle.ExportOptions{})
	ref, _ := name.ParseReference(p.ref)
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Size--
	mb, _ := json.Marshal(m)
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(src.Host + "/shop/api")
	if err := c.PutManifest(context.Background(), repo, "2", string(m.MediaType), mb); err != nil {
		t.Fatal(err)
	}
	lie := src.Host + "/shop/api:2"
	quick := bundle.RegistryOptions{Retries: -1}
	_, fullErr := bundle.ExportFile(context.Background(), []string{lie}, filepath.Join(t.TempDir(), "lie.tar.zst"), bundle.ExportOptions{Registry: quick})
	if !errors.Is(fullErr, bundle.ErrDigestMismatch) {
		t.Fatalf("full export of the lying manifest: %v", fullErr)
	}
	_, err = bundle.ExportFile(context.Background(), []string{lie}, filepath.Join(t.TempDir(), "delta.tar.zst"), bundle.ExportOptions{Registry: quick, Bases: []*bundle.Base{readBase(t, full)}})
	if !errors.Is(err, bundle.ErrDigestMismatch) || err.Error() != fullErr.Error() {
		t.Errorf("delta export of the lying manifest: %v\nwant %v", err, fullErr)
	}
}
