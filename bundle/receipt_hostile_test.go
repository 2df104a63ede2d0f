package bundle_test

// Hostile review of issue 11 (receipts, rollback protection, deltas):
// holes found, each pinned by a test.

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"path/filepath"
	"regexp"
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
	// No reader can use the junk (no creation time): the import that
	// writes the receipt drops it.
	if r := f.stored(t); len(r.Bundles) != 1 || digest.FromBytes(r.Bundles[0].Index) != i1 {
		t.Errorf("receipt bundles: %d, want the import's alone", len(r.Bundles))
	}
}

// Two imports into one destination at once: B reads the receipt, A
// imports and records its bundle, then B writes the receipt it merged
// from what it read before A's write. Each import first writes its own
// record (a tag of its own, which no other import replaces), and after
// writing the merged receipt checks that every record is in it: B finds
// A's record missing and merges again. A's signed bundle stays in the
// history, and an older bundle is refused.
func TestReceiptConcurrentImportsKeepHistory(t *testing.T) {
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

// A receipt that kept every signed index.json ever imported would reach
// the 64 MiB cap within months on a large mirror fed weekly (a delta's
// index.json also lists its left-out blobs, some 75 bytes each); the next
// import would then ignore it as unreadable and the signed history would
// be gone. Each import that writes the receipt drops the entries later
// bundles superseded for every tag they set, so the history derived from
// it is unchanged. Here it is padded with signed entries older than the
// bundle that set the tag (as earlier imports would have left) to just
// under the cap: the next import prunes them, and the history holds.
// capForTests is the receipt cap of the tests that pad a receipt to it.
const capForTests = 4 << 20

func TestReceiptPrunedBeforeCap(t *testing.T) {
	// The cap lowered from 64 MiB to capForTests: the same code, a
	// sixteenth of the bytes to pad, parse and push (not parallel).
	defer bundle.SetMaxReceiptBytes(capForTests)()
	f := newRfix(t)
	// The in-memory store copies a blob at each write: 64 MiB in small
	// writes takes it tens of seconds. The filesystem does not.
	f.dst = registrytest.New(t, registrytest.Options{Dir: t.TempDir()})
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
		for n, total := 1, size(); total < capForTests-capForTests/16; n++ {
			e := entry(n, capForTests/64)
			eb, _ := json.Marshal(e)
			r.Bundles, total = append([]bundle.ReceiptBundle{e}, r.Bundles...), total+len(eb)+1
		}
		// One more, sized to leave less room than the next import needs.
		gap := capForTests - 200 - size()
		trial, _ := json.Marshal(entry(1000, gap*3/4))
		for pad := gap*3/4 - (len(trial)+1-gap)*3/4 - 8; ; pad-- {
			e := entry(1000, pad)
			eb, _ := json.Marshal(e)
			if len(eb)+1 <= gap {
				r.Bundles = append([]bundle.ReceiptBundle{e}, r.Bundles...)
				break
			}
		}
		if n := size(); n > capForTests || n < capForTests-400 {
			t.Fatalf("padded receipt is %d bytes", n)
		}
	})
	if _, err := f.imp(t, pDB, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	if r := f.stored(t); len(r.Bundles) != 2 {
		t.Errorf("%d entries in the receipt after pruning, want 2 (app and db)", len(r.Bundles))
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

// An import whose merged receipt would be larger than ferry reads back,
// even after pruning (here: entries signed by a key this import does not
// trust, which another import host may), is refused before anything is
// pushed: written, the receipt would be ignored and its history lost.
func TestReceiptRoomRefusedBeforePush(t *testing.T) {
	// The cap lowered from 64 MiB to capForTests: the same code, a
	// sixteenth of the bytes to pad, parse and push (not parallel).
	defer bundle.SetMaxReceiptBytes(capForTests)()
	f := newRfix(t)
	f.dst = registrytest.New(t, registrytest.Options{Dir: t.TempDir()})
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, _ := f.export(t, jan, f.key, "team/app:1.0")
	f.push(t, "team/db:1.0", "db-1")
	p2, _ := f.export(t, feb, f.key, "team/db:1.0")
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	other, err := bundle.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	f.tamper(t, func(r *bundle.Receipt) {
		idx := string(r.Bundles[0].Index)
		entry := func(n, pad int) (bundle.ReceiptBundle, int) {
			b := []byte(strings.Replace(idx, `"org.opencontainers.image.created"`, fmt.Sprintf(`"x-pad-%d": %q, "org.opencontainers.image.created"`, n, strings.Repeat("x", pad)), 1))
			files, err := bundle.Signer(other)(b)
			if err != nil {
				t.Fatal(err)
			}
			e := bundle.ReceiptBundle{Index: b, Signature: files[bundle.SignatureFile]}
			eb, _ := json.Marshal(e)
			return e, len(eb) + 1
		}
		size := func() int { b, _ := json.Marshal(r); return len(b) }
		total := size()
		for n := 0; total < capForTests-capForTests/32; n++ {
			e, l := entry(n, capForTests/64)
			r.Bundles, total = append(r.Bundles, e), total+l
		}
		// The last one leaves 300 bytes: less than this import's entry.
		gap := capForTests - 300 - size()
		_, l0 := entry(100, 0)
		for pad := (gap - l0) * 3 / 4; ; pad-- {
			if e, l := entry(100, pad); l <= gap {
				r.Bundles = append(r.Bundles, e)
				break
			}
		}
		if n := size(); n > capForTests || n < capForTests-400 {
			t.Fatalf("padded receipt is %d bytes", n)
		}
	})
	before := f.dst.BlobUploads.Load()
	_, err = f.imp(t, p2, bundle.ImportOptions{}, pub)
	at := f.dst.Host + "/m/ferry-receipts:latest"
	want := regexp.MustCompile(`^content exceeds size limit: after this import the receipt at ` + regexp.QuoteMeta(at) + ` would be \d+ bytes, more than the 4194304 ferry reads back, even without the entries later bundles superseded; nothing was pushed \(import to another prefix to start a new history there\)$`)
	if !errors.Is(err, bundle.ErrTooLarge) || !want.MatchString(err.Error()) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if n := f.dst.BlobUploads.Load() - before; n != 0 {
		t.Errorf("%d blobs pushed before the refusal", n)
	}
}

// An import whose merged receipt cannot be written (the registry fails
// the write) has written its own record first: it warns, and the next
// import reads the record and refuses an older bundle all the same.
func TestReceiptRecordSurvivesFailedMerge(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	d1 := f.push(t, "team/app:1.0", "app-1")
	pOld, iOld := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	pNew, iNew := f.export(t, feb, f.key, "team/app:1.0")
	fail := &registrytest.Fault{Method: "PUT", Path: "/m/ferry-receipts/manifests/latest", Status: http.StatusForbidden, Times: 100}
	f.dst.InjectFaults(fail)
	res, err := f.imp(t, pNew, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	record := recordOf(t, pNew, false)
	if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "this import's record "+record+" is written, but updating the merged receipt at "+f.dst.Host+"/m/ferry-receipts:latest failed: ") ||
		!strings.HasSuffix(res.Warnings[0], "; the next import merges the record") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	fail.Times = 0
	_, err = f.imp(t, pOld, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", d2, iNew, feb, iOld, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// A receipt keeps the entries some tag's history needs, not every import:
// the January bundle, superseded by February's for its one tag, is
// dropped; the March bundle of another tag stays.
func TestReceiptPrunesSupersededEntries(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, _ := f.export(t, jan, f.key, "team/app:1.0")
	f.push(t, "team/app:1.0", "app-2")
	p2, i2 := f.export(t, feb, f.key, "team/app:1.0")
	f.push(t, "team/db:1.0", "db-1")
	p3, i3 := f.export(t, mar, f.key, "team/db:1.0")
	for _, p := range []string{p1, p2, p3} {
		if _, err := f.imp(t, p, bundle.ImportOptions{}, pub); err != nil {
			t.Fatal(err)
		}
	}
	r := f.stored(t)
	var got []digest.Digest
	for _, b := range r.Bundles {
		got = append(got, digest.FromBytes(b.Index))
	}
	if !slices.Equal(got, []digest.Digest{i2, i3}) {
		t.Errorf("receipt entries %v, want February's %s and March's %s", got, i2, i3)
	}
	// January's record went with its entry: February's import pruned the
	// entry, March's (the next to read the receipt) deleted the record.
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(f.dst.Host + "/m/" + bundle.ReceiptRepository)
	tags, err := c.ListTags(context.Background(), repo, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]string{bundle.ReceiptTagName, recordOf(t, p2, false), recordOf(t, p3, false)}))
	if !slices.Equal(slices.Sorted(slices.Values(tags)), want) {
		t.Errorf("tags of the receipt repository %q, want latest, February's and March's records %q", tags, want)
	}
}

// A bundle exported on a host whose clock ran years ahead would, once
// recorded, make every later bundle look older: the import says so, with
// what to check.
func TestRollbackFutureCreationWarned(t *testing.T) {
	f := newRfix(t)
	f.push(t, "team/app:1.0", "app-1")
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	p, _ := f.export(t, future, f.key, "team/app:1.0")
	res, err := f.imp(t, p, bundle.ImportOptions{}, f.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^this bundle's signed creation time 2099-01-01T00:00:00Z is \d+h0m0s ahead of this host's clock: once it is recorded, every bundle created before that time is refused as older for the tags it sets \(check the clock of the host that exported it; --allow-rollback accepts them knowingly\)$`)
	if len(res.Warnings) != 1 || !want.MatchString(res.Warnings[0]) {
		t.Errorf("warnings %q\nwant one matching %s", res.Warnings, want)
	}
	// A bundle created now is not warned about (only refused as older
	// than the 2099 one, here accepted knowingly).
	f.push(t, "team/app:1.0", "app-2")
	p, _ = f.export(t, time.Now().Add(time.Hour), f.key, "team/app:1.0")
	if res, err := f.imp(t, p, bundle.ImportOptions{AllowRollback: true}, f.key.Public()); err != nil || len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "--allow-rollback: ") {
		t.Errorf("%v, warnings %q", err, res.Warnings)
	}
}
