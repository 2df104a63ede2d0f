package bundle_test

// Hostile review of the per-import records and pruning of the import
// receipt (docs/format.md, 11.1 and 11.4): holes found, each pinned by a
// test.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/google/go-containerregistry/pkg/crane"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// Two import hosts share one destination: host A trusts the keys of two
// teams (K1, K2), host B trusts K1 alone. B imports K1's January bundle of
// team/app:1.0; A imports K2's February bundle of the same tag. A pruned
// the January entry as superseded, but only for A's key set: to B, which
// cannot verify February's entry, January's was the only signed history
// of the tag, and a K1-signed bundle older than January then passed B's
// rollback check. An entry is superseded only by a later entry signed
// with the same key, which every host that trusts the one trusts.
func TestReceiptPruneKeepsOtherKeySetHistory(t *testing.T) {
	f := newRfix(t)
	k2, err := bundle.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dec := jan.AddDate(0, -1, 0)
	d0 := f.push(t, "team/app:1.0", "app-0")
	pDec, iDec := f.export(t, dec, f.key, "team/app:1.0")
	d1 := f.push(t, "team/app:1.0", "app-1")
	pJan, iJan := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	pFeb, _ := f.export(t, feb, k2, "team/app:1.0")
	if _, err := f.imp(t, pJan, bundle.ImportOptions{}, f.key.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.imp(t, pFeb, bundle.ImportOptions{}, f.key.Public(), k2.Public()); err != nil {
		t.Fatal(err)
	}
	_, err = f.imp(t, pDec, bundle.ImportOptions{}, f.key.Public())
	key := f.dst.Host + "/m/team/app:1.0"
	want := fmt.Sprintf("rollback refused: %s holds %s, but bundle %s created %s set it to %s; this bundle (%s, created %s) is older and would set it to %s; nothing was pushed (to accept this knowingly, import again with --allow-rollback)",
		key, d2, iJan, jan.Format(time.RFC3339), d1, iDec, dec.Format(time.RFC3339), d0)
	if !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if got := f.tag(t, "team/app:1.0"); got != d2 {
		t.Errorf("tag moved back to %s", got)
	}
}

// putRecord pushes r to dst/m/ferry-receipts:tag as ferry pushes a
// receipt, as someone with write access to the registry can.
func (f *rfix) putRecord(t *testing.T, tag string, r *bundle.Receipt) {
	t.Helper()
	b, _ := json.Marshal(r)
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(f.dst.Host + "/m/" + bundle.ReceiptRepository)
	layer := ocispec.Descriptor{MediaType: bundle.ReceiptMediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := c.PushBlob(context.Background(), repo, layer.Digest, layer.Size, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if err := c.PushBlob(context.Background(), repo, ocispec.DescriptorEmptyJSON.Digest, 2, bytes.NewReader(ocispec.DescriptorEmptyJSON.Data)); err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: bundle.ReceiptMediaType, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	if err := c.PutManifest(context.Background(), repo, tag, ocispec.MediaTypeImageManifest, mb); err != nil {
		t.Fatal(err)
	}
}

// within runs imp and fails the test if it has not returned within d.
func within[T any](t *testing.T, d time.Duration, what string, imp func() (T, error)) (T, error) {
	t.Helper()
	type out struct {
		v   T
		err error
	}
	done := make(chan out, 1)
	go func() {
		v, err := imp()
		done <- out{v, err}
	}()
	select {
	case o := <-done:
		return o.v, o.err
	case <-time.After(d):
		t.Fatalf("%s still running after %v", what, d)
	}
	panic("unreachable")
}

// A record holds one import's receipt: at most one bundles entry. A
// reader merged a record's entries one at a time, each merge copying the
// whole receipt (and sorting its blobs): a record of a few MiB of tiny
// entries, written by someone with write access to the registry, cost
// every import quadratic time (hours for 64 MiB). A record's entries are
// merged in one pass.
func TestReceiptRecordManyEntriesLinear(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, i1 := f.export(t, jan, f.key, "team/app:1.0")
	const junk = 100000
	rec := &bundle.Receipt{Version: bundle.ReceiptVersion, Destination: f.dst.Host + "/m", Tags: map[string]bundle.ReceiptTag{}, Blobs: []digest.Digest{}}
	for i := range junk {
		rec.Bundles = append(rec.Bundles, bundle.ReceiptBundle{Index: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	f.putRecord(t, "import-0", rec)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	res, err := within(t, time.Minute, "the import", func() (*bundle.ImportResult, error) {
		return impTo(p1, f.dst.Host+"/m", bundle.ImportOptions{}, pub)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Warnings); n != 4 {
		t.Errorf("%d warnings, want 3 ignored entries named and one count", n)
	}
	r := f.stored(t)
	if len(r.Bundles) != 1 || digest.FromBytes(r.Bundles[0].Index) != i1 {
		t.Errorf("receipt bundles: %d, want the import's alone", len(r.Bundles))
	}
	if !slices.Contains(r.Records, "import-0") {
		t.Errorf("records %q: the junk record is not merged", r.Records)
	}
}

// putJunk tags a manifest that is not a receipt as dst/m/ferry-receipts:tag.
func (f *rfix) putJunk(t *testing.T, tag string) {
	t.Helper()
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(f.dst.Host + "/m/" + bundle.ReceiptRepository)
	if err := c.PushBlob(context.Background(), repo, ocispec.DescriptorEmptyJSON.Digest, 2, bytes.NewReader(ocispec.DescriptorEmptyJSON.Data)); err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	if err := c.PutManifest(context.Background(), repo, tag, ocispec.MediaTypeImageManifest, mb); err != nil {
		t.Fatal(err)
	}
}

// One import-… tag that is not a receipt (written by someone with write
// access, or by another tool) stayed pending for ever: the writer's check
// after its write found it missing from what it wrote each time, so every
// import wrote the merged receipt three times and warned that another
// import had replaced it. A record that cannot be read is ignored once
// (with its warning) and listed as merged; the check after the write asks
// only about records that appeared since the read.
func TestReceiptJunkRecordSettles(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, _ := f.export(t, jan, f.key, "team/app:1.0")
	f.putJunk(t, "import-junk")
	puts := &registrytest.Fault{Method: "PUT", Path: "/m/ferry-receipts/manifests/latest", Delay: time.Millisecond, Times: 100}
	f.dst.InjectFaults(puts)
	res, err := f.imp(t, p1, bundle.ImportOptions{}, pub)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ignoring the import record " + f.dst.Host + "/m/ferry-receipts:import-junk: not a ferry receipt: the manifest is not of artifactType " + bundle.ReceiptMediaType + " with one layer of that type"}
	if !slices.Equal(res.Warnings, want) {
		t.Errorf("warnings %q\nwant %q", res.Warnings, want)
	}
	if n := puts.Hits(); n != 1 {
		t.Errorf("the merged receipt was written %d times, want once", n)
	}
	if r := f.stored(t); !slices.Contains(r.Records, "import-junk") {
		t.Errorf("records %q: the junk record is read again by every import", r.Records)
	}
}

// A reader reads 16 pending records, in tag order. Someone with write
// access planted 16 import-… tags that are not receipts and sort first:
// they were never merged, so they took the 16 places for ever, and a
// genuine record left pending later (its import could not update the
// merged receipt) was never read: an older bundle then passed the
// rollback check, with nothing deleted after the genuine import. Records
// no reader can use are listed as merged by the next import that writes
// the receipt, so the trap is spent once.
func TestReceiptJunkRecordsDoNotHidePending(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/db:1.0", "db-1")
	pDB, _ := f.export(t, jan, f.key, "team/db:1.0")
	d1 := f.push(t, "team/app:1.0", "app-1")
	pOld, iOld := f.export(t, jan, f.key, "team/app:1.0")
	d2 := f.push(t, "team/app:1.0", "app-2")
	pNew, iNew := f.export(t, feb, f.key, "team/app:1.0")
	for i := range 16 {
		f.putJunk(t, fmt.Sprintf("import--%02d", i))
	}
	if _, err := f.imp(t, pDB, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	fail := &registrytest.Fault{Method: "PUT", Path: "/m/ferry-receipts/manifests/latest", Status: http.StatusForbidden, Times: 100}
	f.dst.InjectFaults(fail)
	if _, err := f.imp(t, pNew, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	fail.Times = 0
	_, err := f.imp(t, pOld, bundle.ImportOptions{}, pub)
	if want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", d2, iNew, feb, iOld, jan, d1); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// tagProxy serves dst through a proxy that adds extra to the tag list of
// m/ferry-receipts, and returns the proxy's host.
func tagProxy(t *testing.T, dst *registrytest.Registry, extra []string) string {
	t.Helper()
	u, _ := url.Parse(dst.URL())
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/v2/m/ferry-receipts/tags/list" || resp.StatusCode != http.StatusOK {
			return nil
		}
		var page struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return err
		}
		resp.Body.Close()
		page.Tags = append(page.Tags, extra...)
		b, _ := json.Marshal(page)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	pu, _ := url.Parse(srv.URL)
	return pu.Host
}

// Each distinct import leaves its record tag in the receipt repository;
// a reader lists every tag, so once a prefix had seen 100000 distinct
// imports every import to it failed listing them. An import that wrote
// the merged receipt deletes the records whose entry it no longer holds
// (superseded, unsigned, unreadable), and latest's records lists only
// tags that exist: the tags grow with the history, not with the imports.
// A record of an entry that stays is kept; a tag named import-… that is
// not a receipt is never deleted; a registry that refuses deletes only
// keeps the records.
func TestReceiptSupersededRecordsDeleted(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	ctx := context.Background()
	c := registry.New(registry.Options{})
	repo, _ := c.ParseRepository(f.dst.Host + "/m/" + bundle.ReceiptRepository)
	records := func() []string {
		t.Helper()
		tags, err := c.ListTags(ctx, repo, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(tags, func(s string) bool { return !strings.HasPrefix(s, bundle.RecordTagPrefix) })
	}
	// An image under a tag named like a record: not a receipt.
	planted := f.push(t, "team/app:1.0", "planted")
	if err := crane.Copy(f.src.Host+"/team/app:1.0", f.dst.Host+"/m/ferry-receipts:import-planted"); err != nil {
		t.Fatal(err)
	}
	d1 := f.push(t, "team/app:1.0", "app-1")
	pJan, iJan := f.export(t, jan, f.key, "team/app:1.0")
	f.push(t, "team/app:1.0", "app-2")
	pFeb, _ := f.export(t, feb, f.key, "team/app:1.0")
	d3 := f.push(t, "team/app:1.0", "app-3")
	pMar, iMar := f.export(t, mar, f.key, "team/app:1.0")
	d4 := f.push(t, "team/app:1.0", "app-4")
	pApr, _ := f.export(t, mar.AddDate(0, 1, 0), nil, "team/app:1.0") // unsigned
	for _, p := range []string{pJan, pFeb, pMar} {
		if _, err := f.imp(t, p, bundle.ImportOptions{}, pub); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.imp(t, pApr, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each import deletes what the receipt it read no longer needs: April's
	// unsigned record goes at the next import (March's again: it sets the
	// tag back to what March's signed bundle set, not a rollback).
	if _, err := f.imp(t, pMar, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]string{"import-planted", recordOf(t, pMar, false)}))
	if got := records(); !slices.Equal(got, want) {
		t.Errorf("record tags %q, want %q (March's, and the planted image)", got, want)
	}
	if got := digest.Digest(destDigest(t, f.dst.Host+"/m/ferry-receipts:import-planted")); got != planted {
		t.Errorf("the planted image's tag holds %s, want %s", got, planted)
	}
	// The history holds: January is refused.
	_, err := f.imp(t, pJan, bundle.ImportOptions{}, pub)
	key := f.dst.Host + "/m/team/app:1.0"
	_ = d4 // April's unsigned image, which March's import replaced
	wantErr := rollbackMsg(key, d3, iMar, mar, iJan, jan, d1)
	if !errors.Is(err, bundle.ErrRollback) || err.Error() != wantErr {
		t.Errorf("got %v\nwant %s", err, wantErr)
	}
	// A registry that refuses deletes keeps the records, and the imports
	// succeed: May supersedes March, June's import tries to delete
	// March's record and cannot.
	refuse := &registrytest.Fault{Method: "DELETE", Path: "/m/ferry-receipts/manifests/", Status: http.StatusMethodNotAllowed, Times: 1000}
	f.dst.InjectFaults(refuse)
	for i, month := range []time.Time{mar.AddDate(0, 2, 0), mar.AddDate(0, 3, 0)} {
		f.push(t, "team/app:1.0", fmt.Sprintf("app-%d", 5+i))
		p, _ := f.export(t, month, f.key, "team/app:1.0")
		if res, err := f.imp(t, p, bundle.ImportOptions{}, pub); err != nil || len(res.Warnings) != 0 {
			t.Fatalf("%v, warnings %q", err, res.Warnings)
		}
	}
	if refuse.Hits() == 0 {
		t.Fatal("no delete was tried")
	}
	if got := records(); len(got) != 4 || !slices.Contains(got, recordOf(t, pMar, false)) {
		t.Errorf("record tags %q, want the planted one, March's, May's and June's", got)
	}
}

// The same index.json can carry signatures by two keys (a bundle signed
// again with the new key at a rotation, or counter-signed with cosign by
// another team). Host B, which trusts K1, imports it signed by K1; host A,
// which trusts K2, imports it signed by K2. The receipt kept one entry per
// index.json and mapping, so A's import replaced B's entry (and A's
// record, of the same tag, B's): B then had no signed history of the tag,
// and a K1-signed bundle older than January passed B's rollback check.
// An entry (and a record) is one per index.json, mapping and signature.
func TestReceiptSameIndexTwoSignatures(t *testing.T) {
	f := newRfix(t)
	k2, err := bundle.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	dec := jan.AddDate(0, -1, 0)
	d0 := f.push(t, "team/app:1.0", "app-0")
	pDec, iDec := f.export(t, dec, f.key, "team/app:1.0")
	d1 := f.push(t, "team/app:1.0", "app-1")
	pK1, iJan := f.export(t, jan, f.key, "team/app:1.0")
	pK2, iJan2 := f.export(t, jan, k2, "team/app:1.0")
	if iJan != iJan2 {
		t.Fatalf("the two exports differ: %s, %s", iJan, iJan2)
	}
	if _, err := f.imp(t, pK1, bundle.ImportOptions{}, f.key.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.imp(t, pK2, bundle.ImportOptions{}, k2.Public()); err != nil {
		t.Fatal(err)
	}
	_, err = f.imp(t, pDec, bundle.ImportOptions{}, f.key.Public())
	if want := rollbackMsg(f.dst.Host+"/m/team/app:1.0", d1, iJan, jan, iDec, dec, d0); !errors.Is(err, bundle.ErrRollback) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// recordOf is the tag of the record of a signed import of the bundle at
// path (docs/format.md, 11.1).
func recordOf(t *testing.T, path string, keep bool) string {
	t.Helper()
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sig, ok := r.File(bundle.SignatureFile)
	if !ok {
		t.Fatalf("%s is not signed", path)
	}
	tag := "import-" + digest.FromBytes(r.IndexBytes()).Encoded() + "-s" + digest.FromBytes(sig).Encoded()[:16]
	if keep {
		tag += "-keep"
	}
	return tag
}

// padOtherKey pads the stored receipt with entries signed by a key the
// imports do not trust (which another import host may) until room bytes
// are left under the 64 MiB readers accept.
func (f *rfix) padOtherKey(t *testing.T, room int) {
	t.Helper()
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
		gap := capForTests - room - size()
		_, l0 := entry(100, 0)
		for pad := (gap - l0) * 3 / 4; ; pad-- {
			if e, l := entry(100, pad); l <= gap {
				r.Bundles = append(r.Bundles, e)
				break
			}
		}
		if n := size(); n > capForTests-room || n < capForTests-room-100 {
			t.Fatalf("padded receipt is %d bytes", n)
		}
	})
}

// An import with --insecure-skip-verify skipped the check that the merged
// receipt stays readable: over a nearly full receipt its record was
// written, the merged receipt was not (too large), and every later
// import read the record as pending, found the merge too large and was
// refused, even one that adds nothing to it: one unsigned import locked
// the prefix for signed ones. It is refused before anything is pushed, as
// a signed import is.
func TestReceiptRoomUnsignedRefusedBeforePush(t *testing.T) {
	// The cap lowered from 64 MiB to capForTests: the same code, a
	// sixteenth of the bytes to pad, parse and push (not parallel).
	defer bundle.SetMaxReceiptBytes(capForTests)()
	f := newRfix(t)
	f.dst = registrytest.New(t, registrytest.Options{Dir: t.TempDir()})
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, _ := f.export(t, jan, f.key, "team/app:1.0")
	f.push(t, "team/db:1.0", "db-1")
	pU, _ := f.export(t, feb, nil, "team/db:1.0")
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	f.padOtherKey(t, 200)
	before := f.dst.BlobUploads.Load()
	_, err := f.imp(t, pU, bundle.ImportOptions{})
	at := f.dst.Host + "/m/ferry-receipts:latest"
	want := regexp.MustCompile(`^content exceeds size limit: after this import the receipt at ` + regexp.QuoteMeta(at) + ` would be \d+ bytes, more than the 4194304 ferry reads back, even without the entries later bundles superseded; nothing was pushed \(import to another prefix to start a new history there\)$`)
	if !errors.Is(err, bundle.ErrTooLarge) || !want.MatchString(err.Error()) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if n := f.dst.BlobUploads.Load() - before; n != 0 {
		t.Errorf("%d blobs pushed before the refusal", n)
	}
	// Importing the January bundle again adds nothing to the receipt.
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Errorf("a signed import after the unsigned one: %v", err)
	}
}

// Each import checked the signature of every receipt entry four or five
// times (the size check's pruning, the history, the written receipt's
// pruning): a receipt padded by someone with write access with 64 MiB of
// entries signed by another key held each import for minutes, once per
// trusted key, four or five times as long as one pass. Each entry is
// checked once per import.
func TestReceiptEntriesVerifiedOnce(t *testing.T) {
	f := newRfix(t)
	pub := f.key.Public()
	f.push(t, "team/app:1.0", "app-1")
	p1, _ := f.export(t, jan, f.key, "team/app:1.0")
	if _, err := f.imp(t, p1, bundle.ImportOptions{}, pub); err != nil {
		t.Fatal(err)
	}
	other, err := bundle.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	f.tamper(t, func(r *bundle.Receipt) {
		for i := range n {
			b := []byte(fmt.Sprintf(`{"annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"},"n":%d}`, i))
			files, err := bundle.Signer(other)(b)
			if err != nil {
				t.Fatal(err)
			}
			r.Bundles = append(r.Bundles, bundle.ReceiptBundle{Index: b, Signature: files[bundle.SignatureFile]})
		}
	})
	var calls atomic.Int64
	key := bundle.KeyVerifier(pub)
	counting := func(index []byte, files map[string][]byte) (string, error) {
		if bytes.Contains(index, []byte(`"n":`)) {
			calls.Add(1)
		}
		return key(index, files)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r, err := bundle.Open(p1, bundle.WithVerifier(counting))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := bundle.Import(context.Background(), r, f.dst.Host+"/m", bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != n {
		t.Errorf("%d signature checks of %d padded entries, want one each", got, n)
	}
}
