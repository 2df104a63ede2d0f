package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/registry"
)

// Where and how receipts are stored (docs/format.md, section 11).
const (
	// ReceiptMediaType is the media type of a receipt's JSON, and the
	// artifactType of the manifest that holds it at a registry.
	ReceiptMediaType = "application/vnd.ferryproject.receipt.v1+json"
	// ReceiptRepository is the repository, under the destination prefix,
	// that holds the receipt of a registry destination, tagged
	// ReceiptTagName.
	ReceiptRepository = "ferry-receipts"
	ReceiptTagName    = "latest"
	// ReceiptFile is the file that holds the receipt in an OCI layout
	// destination.
	ReceiptFile = "ferry-receipt.json"
	// ReceiptVersion is the receipt format version this package writes.
	ReceiptVersion = 1

	// receiptTries is how many times the merged receipt is written when
	// another import replaces it between the write and the read-back.
	receiptTries = 3
	// RecordTagPrefix starts the tag of each import's own record in the
	// receipt repository: one tag per bundle and mapping, written before
	// the merged receipt, so no import's history is lost to a concurrent
	// one (docs/format.md, section 11).
	RecordTagPrefix = "import-"
	// maxPendingRecords caps how many records not yet merged into the
	// merged receipt are read (normally one or two: an import that ran
	// alongside, or that stopped before merging), and maxPendingBytes
	// their total size.
	maxPendingRecords = 16
	maxPendingBytes   = 64 << 20
	// maxRecordTags caps the tag list of the receipt repository (one tag
	// per distinct bundle imported).
	maxRecordTags = 100000
	// maxIgnoredWarnings is how many ignored receipt entries are named in
	// warnings one by one; the rest are counted in one more warning.
	maxIgnoredWarnings = 3
	// futureSlack is how far ahead of this host's clock a bundle's signed
	// creation time may be before the import warns about it.
	futureSlack = 24 * time.Hour
)

// maxReceiptBytes caps a receipt read back. Each distinct bundle imported
// adds its index.json (a few KiB for tens of images). A variable for the
// tests only (SetMaxReceiptBytes).
var maxReceiptBytes int64 = 64 << 20

// errBadReceipt: what is stored where the receipt belongs cannot be read
// as one. It is ignored with a warning (as a deleted receipt would be).
var errBadReceipt = errors.New("not a ferry receipt")

// receiptStore keeps the receipt of one destination.
type receiptStore interface {
	// load returns the stored receipt, with any per-import records not yet
	// merged into it, and a token that changes when it is replaced; nil
	// and "" when there is none. A receipt or record that cannot be read
	// as one is ignored with a warning through warn.
	load(ctx context.Context, warn func(string)) (*Receipt, string, error)
	// record stores the receipt of one import under its own name, before
	// it is merged, and reports whether the store keeps such records (a
	// layout directory does not: one import at a time writes it).
	record(ctx context.Context, name string, rc *Receipt) (kept bool, err error)
	// save stores rc and returns its token.
	save(ctx context.Context, rc *Receipt) (string, error)
	// settled reports whether what is stored is still tok, with every
	// per-import record merged into rc.
	settled(ctx context.Context, tok string, rc *Receipt) (bool, error)
	// String names where the receipt is, for messages.
	String() string
}

// receiptDestination is Receipt.Destination for dest.
func receiptDestination(dest Destination) string {
	switch {
	case dest.Layout != "":
		return LayoutScheme + dest.Layout
	case dest.Prefix != "":
		return dest.Registry + "/" + dest.Prefix
	}
	return dest.Registry
}

// receiptKey is the key of a destination tag in Receipt.Tags.
func receiptKey(dest Destination, src Reference, keep bool) string {
	return dest.Map(src, keep) + ":" + src.Tag
}

// receiptRepository names the repository that holds the receipt of the
// imports to registry/prefix.
func receiptRepository(registry, prefix string) string {
	return path.Join(registry, prefix, ReceiptRepository)
}

// openReceipts returns the receipt store of dest. For a registry it adds
// the receipt repository to the target before the push-access check, so
// a read-only account fails there, before anything is pushed.
func (im *importer) openReceipts(dest Destination) (receiptStore, error) {
	switch t := im.dst.(type) {
	case *layoutTarget:
		return &layoutReceipts{t}, nil
	case *registryTarget:
		n := receiptRepository(dest.Registry, dest.Prefix)
		repo, err := t.repository(n)
		if err != nil {
			return nil, fmt.Errorf("receipt repository %q: %w", n, err)
		}
		for _, it := range im.targets {
			if it.repo == repo {
				return nil, fmt.Errorf("%w: %s maps to %s, the repository that holds ferry's import receipts; use --keep-source-registry or another prefix", ErrConflict, it.src, repo)
			}
			// The name is reserved at every depth: a repository named so
			// below the prefix is the receipt repository of an import to a
			// deeper prefix, whose history an image there would replace.
			if path.Base(it.repo) == ReceiptRepository {
				return nil, fmt.Errorf("%w: %s maps to %s; ferry keeps its import receipts in repositories named %s (for an import to %s), so it does not import an image there: import it under another name", ErrConflict, it.src, it.repo, ReceiptRepository, path.Dir(it.repo))
			}
		}
		return &registryReceipts{client: t.client, repo: t.repos[repo], own: true}, nil
	}
	return nil, nil
}

// loadReceipt reads the stored receipt; one that cannot be read as a
// receipt is ignored with a warning, as if there were none.
func (im *importer) loadReceipt(ctx context.Context) (*Receipt, string, error) {
	rc, tok, err := im.receipts.load(ctx, im.warn)
	if err != nil {
		return nil, "", fmt.Errorf("reading the import receipt at %s: %w", im.receipts, err)
	}
	return rc, tok, nil
}

func (im *importer) warn(s string) {
	im.warnMu.Lock()
	defer im.warnMu.Unlock()
	if !slices.Contains(im.res.Warnings, s) {
		im.res.Warnings = append(im.res.Warnings, s)
	}
}

// verdict is the outcome of one signature check.
type verdict struct {
	fp  string
	err error
}

// entryVerifier is the import's verifier (nil when none), checking each
// receipt entry (index.json and signature files) once per import however
// often the receipt is read.
func (im *importer) entryVerifier() Verifier {
	v := im.r.verifier
	if v == nil {
		return nil
	}
	return func(index []byte, files map[string][]byte) (string, error) {
		h := sha256.New()
		for _, b := range [][]byte{index, files[SignatureFile], files[SigstoreBundleFile]} {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
		var k [sha256.Size]byte
		h.Sum(k[:0])
		im.verdictMu.Lock()
		c, ok := im.verdicts[k]
		im.verdictMu.Unlock()
		if ok {
			return c.fp, c.err
		}
		fp, err := v(index, files)
		im.verdictMu.Lock()
		if im.verdicts == nil {
			im.verdicts = map[[sha256.Size]byte]verdict{}
		}
		im.verdicts[k] = verdict{fp, err}
		im.verdictMu.Unlock()
		return fp, err
	}
}

// signed reports whether the bundle's signature was verified, so that its
// creation time may be trusted.
func (im *importer) signed() bool { return im.r.verifier != nil && im.r.sig.Verified }

// bundleCreated is the creation time index.json records (zero when absent
// or unreadable).
func bundleCreated(idx ocispec.Index) time.Time {
	t, err := time.Parse(time.RFC3339, idx.Annotations[AnnotationCreated])
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// tagHistory is what the trusted history says of one destination tag: the
// newest signed bundle (by its signed creation time) that set it.
type tagHistory struct {
	digest  digest.Digest
	bundle  digest.Digest
	created time.Time
}

// receiptEntry is what one entry of Receipt.Bundles says once read: the
// destination tags its index.json sets (under the entry's mapping, for
// dest) and its creation time. verified is whether its signature checks
// with the import's verifier; an entry that does not is never used for
// rollback decisions, but may be another key's.
type receiptEntry struct {
	id       digest.Digest
	tags     map[string]digest.Digest
	created  time.Time
	verified bool
	// key is the fingerprint of the key that verified the entry.
	key string
	// why says why the entry is not verified or cannot be read.
	why string
	// useless: the entry cannot be read by any reader (not JSON, no
	// creation time).
	useless bool
}

func readReceiptEntry(b ReceiptBundle, dest Destination, v Verifier) receiptEntry {
	e := receiptEntry{id: digest.FromBytes(b.Index), why: "no key to check it with"}
	if v != nil {
		files := map[string][]byte{}
		if b.Signature != nil {
			files[SignatureFile] = b.Signature
		}
		if b.SigstoreBundle != nil {
			files[SigstoreBundleFile] = b.SigstoreBundle
		}
		fp, err := v(b.Index, files)
		if e.verified = err == nil; err != nil {
			e.why = err.Error()
		}
		e.key = fp
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b.Index, &idx); err != nil {
		e.useless = true
		if e.verified {
			e.verified, e.why = false, "index.json is not valid JSON"
		}
		return e
	}
	if e.created = bundleCreated(idx); e.created.IsZero() {
		e.useless = true
		if e.verified {
			e.verified, e.why = false, "index.json has no valid "+AnnotationCreated
		}
		return e
	}
	e.tags = map[string]digest.Digest{}
	for _, d := range idx.Manifests {
		src, err := ParseReference(d.Annotations[AnnotationRefName])
		if err != nil || src.Tag == "" || validateDigest(d.Digest) != nil {
			continue
		}
		e.tags[receiptKey(dest, src, b.KeepSourceRegistry)] = d.Digest
	}
	return e
}

// trustedHistory derives the tag history from the signed index.json files
// of rc.Bundles alone, each checked with v (the import's own verifier).
// Entries that do not verify are ignored with a warning. Receipt.Tags is
// never read: it is not signed.
func (im *importer) trustedHistory(rc *Receipt, where fmt.Stringer, dest Destination, v Verifier) map[string]tagHistory {
	hist := map[string]tagHistory{}
	if rc == nil {
		return hist
	}
	// Entries ignored are named one by one up to maxIgnoredWarnings, then
	// counted: a receipt padded with junk must not cost a warning each.
	ignored := 0
	defer func() {
		if n := ignored - maxIgnoredWarnings; n > 0 {
			im.warn(fmt.Sprintf("ignoring %d more entries of the receipt at %s for the same kinds of reason; they are not used for rollback decisions", n, where))
		}
	}()
	for i, b := range rc.Bundles {
		e := readReceiptEntry(b, dest, v)
		if !e.verified {
			if ignored++; ignored <= maxIgnoredWarnings {
				im.warn(fmt.Sprintf("ignoring entry %d of the receipt at %s (bundle %s): %s; it is not used for rollback decisions", i, where, e.id, e.why))
			}
			continue
		}
		for key, d := range e.tags {
			// The newest by signed time; of equal times the later entry.
			if h, ok := hist[key]; !ok || !h.created.After(e.created) {
				hist[key] = tagHistory{digest: d, bundle: e.id, created: e.created}
			}
		}
	}
	return hist
}

// pruneReceipt drops from rc.Bundles the entries no reader needs, so the
// receipt stays the size of the tags it holds, not of every import ever
// made: an entry that cannot be read at all, and a verified entry that is
// superseded, for every tag it sets, by a later or newer entry signed with
// the same key (the history derived from what stays is the same for every
// set of trusted keys, not only v's: another host that trusts the one key
// but not the other would otherwise lose the history the superseded entry
// gave it). An entry that v does not verify stays: it may be another
// key's.
func pruneReceipt(rc *Receipt, dest Destination, v Verifier) {
	if v == nil || rc == nil {
		return
	}
	type keyTag struct{ key, tag string }
	entries := make([]receiptEntry, len(rc.Bundles))
	newest := map[keyTag]int{}
	for i, b := range rc.Bundles {
		e := readReceiptEntry(b, dest, v)
		entries[i] = e
		if !e.verified {
			continue
		}
		for tag := range e.tags {
			k := keyTag{e.key, tag}
			if j, ok := newest[k]; !ok || !entries[j].created.After(e.created) {
				newest[k] = i
			}
		}
	}
	kept := rc.Bundles[:0:0]
	for i, b := range rc.Bundles {
		e := entries[i]
		keep := !e.verified && !e.useless
		for tag := range e.tags {
			keep = keep || (e.verified && newest[keyTag{e.key, tag}] == i)
		}
		if keep {
			kept = append(kept, b)
		}
	}
	rc.Bundles = kept
}

// checkRollback refuses, before anything is pushed, a signed bundle older
// than the one that last set a destination tag if it would move the tag
// to another digest (or warns, with AllowRollback), and any import after
// which the receipt would not fit (checkReceiptRoom). An unsigned import
// neither consults nor advances the trusted history.
func (im *importer) checkRollback(ctx context.Context, dest Destination) error {
	if im.receipts == nil {
		return nil
	}
	if !im.signed() {
		im.warn("rollback protection is off for this import: the bundle's signature was not checked, so its creation time cannot be trusted; the receipt records its tags as unsigned and the trusted history is neither consulted nor advanced")
	}
	if c := bundleCreated(im.r.Index()); im.signed() && time.Until(c) > futureSlack {
		im.warn(fmt.Sprintf("this bundle's signed creation time %s is %s ahead of this host's clock: once it is recorded, every bundle created before that time is refused as older for the tags it sets (check the clock of the host that exported it; --allow-rollback accepts them knowingly)", c.Format(time.RFC3339), time.Until(c).Round(time.Hour)))
	}
	rc, _, err := im.loadReceipt(ctx)
	if err != nil {
		return err
	}
	// An unsigned import's record is merged too: one that did not fit
	// would be read, and refused, by every later import.
	if err := im.checkReceiptRoom(rc, dest); err != nil || !im.signed() {
		return err
	}
	hist := im.trustedHistory(rc, im.receipts, dest, im.entryVerifier())
	// A destination tag can be reached from more than one prefix (--to
	// REG/m with --keep-source-registry, and --to REG/m/HOST, write the
	// same tags): the receipts of the prefixes above each target
	// repository count too, each for the tags of its own destination.
	others, err := im.ancestorHistories(ctx, dest)
	if err != nil {
		return err
	}
	for _, h := range others {
		for key, th := range h {
			if cur, ok := hist[key]; !ok || th.created.After(cur.created) {
				hist[key] = th
			}
		}
	}
	created := bundleCreated(im.r.Index())
	self := digest.FromBytes(im.r.IndexBytes())
	var back []string
	seen := map[string]bool{}
	_, registryDest := im.dst.(*registryTarget)
	for _, t := range im.targets {
		// A cosign or fallback tag at a registry gains the bundle's
		// entries and loses none (pushCosignTag): it cannot be moved back.
		if !t.tagged || registryDest && isListTag(t.src.Tag) {
			continue
		}
		key := receiptKey(dest, t.src, im.opts.KeepSourceRegistry)
		h, ok := hist[key]
		if !ok || seen[key] || h.digest == t.root.Digest || !h.created.After(created) {
			continue
		}
		seen[key] = true
		// A tag that already holds what this bundle sets is not moved (a
		// re-run after a knowing rollback): nothing to refuse.
		now, err := im.holds(ctx, t)
		if err != nil {
			return fmt.Errorf("reading %s for the rollback check, before pushing anything: %w", key, err)
		}
		if now == t.root.Digest {
			continue
		}
		was := fmt.Sprintf("%s holds %s, set by bundle %s created %s", key, h.digest, h.bundle, h.created.Format(time.RFC3339))
		if now != h.digest {
			holds := "holds " + now.String()
			if now == "" {
				holds = "is not set"
			}
			was = fmt.Sprintf("%s %s, but bundle %s created %s set it to %s", key, holds, h.bundle, h.created.Format(time.RFC3339), h.digest)
		}
		back = append(back, fmt.Sprintf("%s; this bundle (%s, created %s) is older and would set it to %s", was, self, formatCreated(created), t.root.Digest))
	}
	if len(back) == 0 {
		return nil
	}
	slices.Sort(back)
	if im.opts.AllowRollback {
		for _, b := range back {
			im.warn("--allow-rollback: moving a tag back to an older bundle: " + b)
		}
		return nil
	}
	return fmt.Errorf("%w: %s; nothing was pushed (to accept this knowingly, import again with --allow-rollback)", ErrRollback, strings.Join(back, "; "))
}

// ancestorHistories reads, for a registry destination, the receipts of
// every prefix above each target repository other than the --to prefix
// (REG/ferry-receipts, REG/a/ferry-receipts, … for REG/a/b/repo), and
// derives the trusted history of each for the destination its location
// names (not what the receipt says of itself, which is not signed). A
// receipt that is missing, or that this account may not read, counts as
// none.
func (im *importer) ancestorHistories(ctx context.Context, dest Destination) ([]map[string]tagHistory, error) {
	rt, ok := im.dst.(*registryTarget)
	if !ok {
		return nil, nil
	}
	own := dest.Prefix
	prefixes := map[string]bool{}
	for _, t := range im.targets {
		repo := strings.TrimPrefix(t.repo, dest.Registry+"/")
		for dir := path.Dir(repo); ; dir = path.Dir(dir) {
			if dir == "." {
				dir = ""
			}
			if dir != own {
				prefixes[dir] = true
			}
			if dir == "" {
				break
			}
		}
	}
	names := slices.Sorted(maps.Keys(prefixes))
	hists := make([]map[string]tagHistory, len(names))
	var eg errgroup.Group
	eg.SetLimit(metaJobs(im.opts.Jobs))
	for i, prefix := range names {
		eg.Go(func() error {
			n := receiptRepository(dest.Registry, prefix)
			repo, err := rt.client.ParseRepository(n)
			if err != nil {
				return nil // not a valid repository name: no receipt can be there
			}
			store := &registryReceipts{client: rt.client, repo: repo}
			rc, _, err := store.load(ctx, im.warn)
			switch {
			case errors.Is(err, registry.ErrUnauthorized), errors.Is(err, registry.ErrDenied):
				im.warn(fmt.Sprintf("cannot read the receipt at %s (%v): its history is not used for rollback decisions", store, err))
				return nil
			case err != nil:
				return fmt.Errorf("reading the import receipt at %s for the rollback check, before pushing anything: %w", store, err)
			}
			hists[i] = im.trustedHistory(rc, store, Destination{Registry: dest.Registry, Prefix: prefix}, im.entryVerifier())
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return hists, nil
}

// holds is the digest the destination tag of t holds now ("" when none).
func (im *importer) holds(ctx context.Context, t imageTarget) (digest.Digest, error) {
	if lt, ok := im.dst.(*layoutTarget); ok {
		idx, err := lt.readIndex()
		if err != nil {
			return "", err
		}
		for _, d := range idx.Manifests {
			if d.Annotations[AnnotationRefName] == t.repo+":"+t.src.Tag {
				return d.Digest, nil
			}
		}
		return "", nil
	}
	d, err := im.dst.resolve(ctx, t.repo, t.src.Tag)
	if errors.Is(err, registry.ErrNotFound) {
		return "", nil
	}
	return d, err
}

func formatCreated(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format(time.RFC3339)
}

// recordTag is the tag of one import's own record: one per bundle
// (index.json digest), signature (entry's, nil for an unsigned import) and
// mapping. The same index.json signed by two keys makes two records: one
// must not replace the other, whose key another host may trust alone.
func recordTag(index digest.Digest, keep bool, entry *ReceiptBundle) string {
	t := RecordTagPrefix + index.Encoded()
	if entry != nil {
		t += "-s" + digest.FromBytes(entry.Signature).Encoded()[:16]
	}
	if keep {
		t += "-keep"
	}
	if entry == nil {
		t += "-unsigned"
	}
	return t
}

// receiptOf is the receipt of this import alone: its signed entry (none
// for an unsigned import), the tags it set and the blobs it found or put
// at dest.
func (im *importer) receiptOf(dest Destination) (*Receipt, *ReceiptBundle) {
	self := digest.FromBytes(im.r.IndexBytes())
	created := bundleCreated(im.r.Index())
	key := ""
	var entry *ReceiptBundle
	if im.signed() {
		key = im.r.sig.KeyFingerprint
		entry = &ReceiptBundle{Index: im.r.IndexBytes(), KeepSourceRegistry: im.opts.KeepSourceRegistry}
		if b, ok := im.r.files[SignatureFile]; ok {
			entry.Signature = b
		}
		if b, ok := im.r.files[SigstoreBundleFile]; ok {
			entry.SigstoreBundle = b
		}
	}
	tags := map[string]ReceiptTag{}
	for _, t := range im.targets {
		if t.tagged {
			tags[receiptKey(dest, t.src, im.opts.KeepSourceRegistry)] = ReceiptTag{Digest: t.root.Digest, Bundle: self, Created: created, Key: key}
		}
	}
	blobs := make([]digest.Digest, 0, len(im.r.Blobs()))
	for _, b := range im.r.Blobs() {
		blobs = append(blobs, b.Digest)
	}
	// A delta's left-out blobs were found (or mounted) at the destination
	// before the push: they are present too.
	for _, b := range im.r.LeftOut() {
		blobs = append(blobs, b.Digest)
	}
	return mergeReceipt(nil, receiptDestination(dest), entry, tags, blobs), entry
}

// mergedWith is prev with this import (own, its receipt alone) merged in
// and superseded entries pruned; record names own's record, "" where the
// store keeps none.
func (im *importer) mergedWith(prev, own *Receipt, entry *ReceiptBundle, record string, dest Destination) *Receipt {
	rc := mergeReceipt(prev, own.Destination, entry, own.Tags, own.Blobs)
	if record != "" && !slices.Contains(rc.Records, record) {
		rc.Records = append(rc.Records, record)
		slices.Sort(rc.Records)
	}
	pruneReceipt(rc, dest, im.entryVerifier())
	return rc
}

// checkReceiptRoom refuses, before anything is pushed, an import after
// which the merged receipt would be larger than ferry reads back: it
// would be ignored and the history lost.
func (im *importer) checkReceiptRoom(prev *Receipt, dest Destination) error {
	own, entry := im.receiptOf(dest)
	b, err := json.Marshal(im.mergedWith(prev, own, entry, recordTag(digest.FromBytes(im.r.IndexBytes()), im.opts.KeepSourceRegistry, entry), dest))
	if err != nil {
		return err
	}
	if int64(len(b)) > maxReceiptBytes {
		return fmt.Errorf("%w: after this import the receipt at %s would be %d bytes, more than the %d ferry reads back, even without the entries later bundles superseded; nothing was pushed (import to another prefix to start a new history there)", ErrTooLarge, im.receipts, len(b), maxReceiptBytes)
	}
	return nil
}

// recordReceipt records what this import set: first its own record (where
// the store keeps them), which no other import can replace, then the
// merged receipt. When another import replaces the merged receipt between
// the write and its read-back, it merges again (receiptTries in all);
// after that, or if the merged receipt cannot be written, the record
// holds this import's history until the next import merges it.
func (im *importer) recordReceipt(ctx context.Context, dest Destination) error {
	if im.receipts == nil {
		return nil
	}
	own, entry := im.receiptOf(dest)
	name := recordTag(digest.FromBytes(im.r.IndexBytes()), im.opts.KeepSourceRegistry, entry)
	// The record is written while the receipt is read the first time: the
	// record must be in place before the merged receipt is written, not
	// before it is read (a record read back is merged once only).
	var (
		prev    *Receipt
		prevTok string
		loadErr error
		loaded  = make(chan struct{})
	)
	go func() {
		defer close(loaded)
		prev, prevTok, loadErr = im.loadReceipt(ctx)
	}()
	kept, err := im.receipts.record(ctx, name, own)
	<-loaded
	// The records the stored receipt no longer needs are deleted while
	// this import merges and writes (see collect).
	collected := make(chan struct{})
	if rs, ok := im.receipts.(*registryReceipts); ok && loadErr == nil && prev != nil && err == nil {
		read, tok := prev, prevTok // prev is read again below
		go func() {
			defer close(collected)
			rs.collect(ctx, read, tok, im.warn)
		}()
	} else {
		close(collected)
	}
	defer func() { <-collected }()
	if err != nil {
		return fmt.Errorf("the images were imported, but recording the import receipt at %s failed: %w; import again to record it", im.receipts, err)
	}
	if !kept {
		name = ""
	}
	var rc *Receipt
	for try := 1; ; try++ {
		if err = loadErr; try > 1 {
			prev, _, err = im.loadReceipt(ctx)
		}
		if err == nil {
			rc = im.mergedWith(prev, own, entry, name, dest)
			var b []byte
			if b, err = json.Marshal(rc); err == nil && int64(len(b)) > maxReceiptBytes {
				err = fmt.Errorf("%w: the merged receipt would be %d bytes, more than the %d ferry reads back", ErrTooLarge, len(b), maxReceiptBytes)
			}
		}
		var tok string
		ok := false
		if err == nil {
			if tok, err = im.receipts.save(ctx, rc); err == nil {
				ok, err = im.receipts.settled(ctx, tok, rc)
			}
		}
		switch {
		case err == nil && ok:
			im.res.Receipt, im.res.ReceiptAt = rc, im.receipts.String()
			return nil
		case err != nil && !kept:
			return fmt.Errorf("the images were imported, but recording the import receipt at %s failed: %w; import again to record it", im.receipts, err)
		case err != nil:
			im.warn(fmt.Sprintf("this import's record %s is written, but updating the merged receipt at %s failed: %v; the next import merges the record", name, im.receipts, err))
			im.res.Receipt, im.res.ReceiptAt = own, im.receipts.String()
			return nil
		case try == receiptTries && !kept:
			return fmt.Errorf("%w: the images were imported, but another import replaced the receipt at %s each of %d times this one wrote it; import again to record it", ErrConflict, im.receipts, receiptTries)
		case try == receiptTries:
			im.warn(fmt.Sprintf("another import replaced the receipt at %s each of %d times this one wrote it; this import's record %s is written, and the next import merges it", im.receipts, receiptTries, name))
			im.res.Receipt, im.res.ReceiptAt = rc, im.receipts.String()
			return nil
		}
	}
}

// mergeReceipt is prev with one import added: entry (nil for an unsigned
// import) last in Bundles (replacing an earlier copy of the same
// index.json and signature imported with the same mapping), tags set,
// blobs added.
func mergeReceipt(prev *Receipt, dest string, entry *ReceiptBundle, tags map[string]ReceiptTag, blobs []digest.Digest) *Receipt {
	var entries []ReceiptBundle
	if entry != nil {
		entries = []ReceiptBundle{*entry}
	}
	return mergeEntries(prev, dest, entries, tags, blobs)
}

// entryKey identifies a Receipt.Bundles entry: its index.json, mapping
// and signature (the same index.json signed by another key is another
// entry: a host may trust the one key alone).
type entryKey struct {
	index, sig digest.Digest
	keep       bool
}

func keyOf(b ReceiptBundle) entryKey {
	return entryKey{digest.FromBytes(b.Index), digest.FromBytes(b.Signature), b.KeepSourceRegistry}
}

// mergeEntries is mergeReceipt with any number of entries, in one pass:
// each is added last in Bundles, in order, replacing an earlier copy.
func mergeEntries(prev *Receipt, dest string, entries []ReceiptBundle, tags map[string]ReceiptTag, blobs []digest.Digest) *Receipt {
	rc := &Receipt{Version: ReceiptVersion, Destination: dest, Tags: map[string]ReceiptTag{}}
	// last is the position in entries of the last copy of each.
	last := make(map[entryKey]int, len(entries))
	for i, e := range entries {
		last[keyOf(e)] = i
	}
	have := map[digest.Digest]bool{}
	if prev != nil {
		for k, v := range prev.Tags {
			rc.Tags[rekey(k, prev.Destination, dest)] = v
		}
		for _, b := range prev.Blobs {
			have[b] = true
		}
		for _, b := range prev.Bundles {
			// The same index.json imported under the other mapping set
			// other tags, and signed by another key may be another host's
			// only history: its entry stays.
			if _, again := last[keyOf(b)]; len(entries) == 0 || !again {
				rc.Bundles = append(rc.Bundles, b)
			}
		}
		rc.Records = slices.Clone(prev.Records)
	}
	for i, e := range entries {
		if last[keyOf(e)] == i {
			rc.Bundles = append(rc.Bundles, e)
		}
	}
	maps.Copy(rc.Tags, tags)
	for _, b := range blobs {
		have[b] = true
	}
	rc.Blobs = slices.Sorted(maps.Keys(have))
	if rc.Blobs == nil {
		rc.Blobs = []digest.Digest{}
	}
	return rc
}

// rekey keeps a tag key recorded under destination from under dest: the
// same registry reached under another name.
func rekey(k, from, dest string) string {
	if rest, ok := strings.CutPrefix(k, from+"/"); ok && from != dest && !strings.HasPrefix(dest, LayoutScheme) {
		return dest + "/" + rest
	}
	return k
}

// mergeRecord merges the record named name (one import's receipt, not yet
// in rc) into rc. Of two imports that set the same tag, Tags keeps the
// one created later (it is not signed, and says what the tag holds, not
// what may be set).
func mergeRecord(rc, rec *Receipt, name string) *Receipt {
	dest := rec.Destination
	if rc != nil {
		dest = rc.Destination
	}
	rc = mergeEntries(rc, dest, rec.Bundles, nil, rec.Blobs)
	for k, v := range rec.Tags {
		k = rekey(k, rec.Destination, dest)
		if cur, ok := rc.Tags[k]; !ok || !cur.Created.After(v.Created) {
			rc.Tags[k] = v
		}
	}
	if !slices.Contains(rc.Records, name) {
		rc.Records = append(rc.Records, name)
		slices.Sort(rc.Records)
	}
	return rc
}

// parseReceipt reads a receipt's JSON.
func parseReceipt(b []byte) (*Receipt, error) {
	var rc Receipt
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadReceipt, err)
	}
	if rc.Version != ReceiptVersion {
		return nil, fmt.Errorf("%w: receipt format version %d; this ferry reads version %d", ErrUnsupported, rc.Version, ReceiptVersion)
	}
	return &rc, nil
}

// registryReceipts keeps the receipt as an OCI artifact, REPO:latest,
// and each import's own record as REPO:import-….
type registryReceipts struct {
	client *registry.Client
	repo   name.Repository
	// own: the receipt of this import's destination, which it replaces
	// when it cannot be read (not a receipt of a prefix above).
	own bool
	// skipped are the records the last load found pending but left for a
	// later reader (past the count or size read at once, or gone since the
	// tag list): settled does not wait for them.
	skipped map[string]bool
}

// errOverBudget: a record is larger than what is left of maxPendingBytes
// for this read (not larger than any reader reads).
var errOverBudget = errors.New("more than is left to read")

func (s *registryReceipts) String() string { return s.repo.Name() + ":" + ReceiptTagName }

func (s *registryReceipts) load(ctx context.Context, warn func(string)) (*Receipt, string, error) {
	var (
		rc   *Receipt
		tok  string
		tags []string
	)
	var eg errgroup.Group
	eg.Go(func() error {
		var err error
		rc, tok, err = s.fetch(ctx, ReceiptTagName, maxReceiptBytes)
		if errors.Is(err, errBadReceipt) {
			replaced := ""
			if s.own {
				replaced = "; it will be replaced"
			}
			warn(fmt.Sprintf("ignoring the receipt at %s: %v%s", s, err, replaced))
			rc, err = nil, nil
		}
		return err
	})
	eg.Go(func() (err error) {
		tags, err = s.tags(ctx)
		return err
	})
	if err := eg.Wait(); err != nil {
		return nil, "", err
	}
	pending := pendingRecords(tags, rc)
	s.skipped = map[string]bool{}
	if len(pending) > maxPendingRecords {
		warn(fmt.Sprintf("%s holds %d import records not merged into %s; reading %d of them", s.repo.Name(), len(pending), s, maxPendingRecords))
		for _, name := range pending[maxPendingRecords:] {
			s.skipped[name] = true
		}
		pending = pending[:maxPendingRecords]
	}
	budget := int64(maxPendingBytes)
	var bad []string
	for _, name := range pending {
		rec, _, err := s.fetch(ctx, name, budget)
		switch {
		case errors.Is(err, errOverBudget):
			warn(fmt.Sprintf("not reading the import record %s:%s now: %v; a later import merges it", s.repo.Name(), name, err))
			s.skipped[name] = true
			continue
		case errors.Is(err, errBadReceipt):
			// No reader can use it: listed as merged, so that it is not
			// read again, nor waited for, by every import.
			warn(fmt.Sprintf("ignoring the import record %s:%s: %v", s.repo.Name(), name, err))
			bad = append(bad, name)
			continue
		case err != nil:
			return nil, "", fmt.Errorf("reading the import record %s:%s: %w", s.repo.Name(), name, err)
		case rec == nil:
			s.skipped[name] = true
			continue // deleted since the tag list
		}
		b, _ := json.Marshal(rec)
		budget -= int64(len(b))
		rc = mergeRecord(rc, rec, name)
	}
	if rc != nil {
		// A merged record whose tag is gone was deleted as superseded
		// (collect): records lists the tags that exist, not every import
		// ever made.
		present := make(map[string]bool, len(tags))
		for _, t := range tags {
			present[t] = true
		}
		rc.Records = slices.DeleteFunc(rc.Records, func(n string) bool { return !present[n] })
	}
	if len(bad) > 0 {
		if rc == nil {
			rc = &Receipt{Version: ReceiptVersion, Destination: strings.TrimSuffix(s.repo.Name(), "/"+ReceiptRepository), Tags: map[string]ReceiptTag{}, Blobs: []digest.Digest{}}
		}
		rc.Records = slices.Sorted(slices.Values(append(rc.Records, bad...)))
	}
	return rc, tok, nil
}

// maxCollect caps how many superseded records one import deletes.
const maxCollect = 64

// collect deletes, best effort, the record tags merged into rc (the stored
// receipt as an import read it, its token tok) whose entry rc no longer holds: entries pruned
// as superseded, unsigned imports' records, records no reader can use. A
// record whose entry stays is kept, so an import that read the receipt
// before this one merged and writes it after still finds, and merges, the
// record of every entry the history needs (a record deleted here is
// superseded, for every tag it set, by one that stays). Without it the
// tags of a prefix grow by one per distinct import until listing them
// fails. Only manifests that are ferry receipts, and not the one latest
// holds, are deleted: a tag named import-… that points at anything else
// is left alone.
func (s *registryReceipts) collect(ctx context.Context, rc *Receipt, tok string, warn func(string)) {
	live := map[string]bool{}
	for _, b := range rc.Bundles {
		live[recordTag(digest.FromBytes(b.Index), b.KeepSourceRegistry, &b)] = true
	}
	var dead []string
	for _, n := range rc.Records {
		if !live[n] && len(dead) < maxCollect {
			dead = append(dead, n)
		}
	}
	var (
		mu     sync.Mutex
		refuse error
	)
	var eg errgroup.Group
	eg.SetLimit(4)
	for _, n := range dead {
		eg.Go(func() error {
			mu.Lock()
			stop := refuse != nil
			mu.Unlock()
			if stop {
				return nil
			}
			m, err := s.client.GetManifest(ctx, s.repo, n, MaxManifestBytes)
			if err != nil {
				return nil // gone, or unreadable now: a later import tries again
			}
			var man ocispec.Manifest
			if json.Unmarshal(m.Bytes, &man) != nil || man.ArtifactType != ReceiptMediaType || m.Digest.String() == tok {
				return nil
			}
			err = s.client.DeleteManifest(ctx, s.repo, m.Digest)
			if errors.Is(err, registry.ErrUnsupported) || errors.Is(err, registry.ErrDenied) || errors.Is(err, registry.ErrUnauthorized) {
				mu.Lock()
				refuse = err
				mu.Unlock()
			}
			return nil
		})
	}
	eg.Wait()
	if refuse != nil && len(rc.Records) > maxRecordTags/10 {
		warn(fmt.Sprintf("%s holds %d import records that later imports superseded, and deleting them failed (%v): imports to this prefix fail once it holds %d; allow this account to delete manifests there, or delete the superseded import-… tags another way", s.repo.Name(), len(rc.Records), refuse, maxRecordTags))
	}
}

// tags lists the tags of the receipt repository (latest and the records).
func (s *registryReceipts) tags(ctx context.Context) ([]string, error) {
	tags, err := s.client.ListTags(ctx, s.repo, maxRecordTags)
	if err != nil {
		return nil, fmt.Errorf("listing the import records in %s: %w", s.repo.Name(), err)
	}
	return tags, nil
}

// pendingRecords are the import records among tags not merged into rc,
// sorted.
func pendingRecords(tags []string, rc *Receipt) []string {
	merged := map[string]bool{}
	if rc != nil {
		for _, r := range rc.Records {
			merged[r] = true
		}
	}
	var out []string
	for _, t := range tags {
		if strings.HasPrefix(t, RecordTagPrefix) && !merged[t] {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// fetch reads the receipt tagged tag, of at most limit bytes: nil when
// there is none, and the manifest digest as its token.
func (s *registryReceipts) fetch(ctx context.Context, tag string, limit int64) (*Receipt, string, error) {
	m, err := s.client.GetManifest(ctx, s.repo, tag, MaxManifestBytes)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(m.Bytes, &man); err != nil || man.ArtifactType != ReceiptMediaType || len(man.Layers) != 1 || man.Layers[0].MediaType != ReceiptMediaType {
		return nil, m.Digest.String(), fmt.Errorf("%w: the manifest is not of artifactType %s with one layer of that type", errBadReceipt, ReceiptMediaType)
	}
	desc := man.Layers[0]
	if desc.Size > limit && desc.Size <= maxReceiptBytes && validateDigest(desc.Digest) == nil {
		return nil, m.Digest.String(), fmt.Errorf("%w: it is %d bytes, and %d are left of the %d read at once", errOverBudget, desc.Size, limit, maxPendingBytes)
	}
	if desc.Size > limit || desc.Size < 0 || validateDigest(desc.Digest) != nil {
		return nil, m.Digest.String(), fmt.Errorf("%w: the receipt is %d bytes (at most %d) of digest %q", errBadReceipt, desc.Size, limit, truncate(string(desc.Digest), 80))
	}
	rc, err := s.client.GetBlob(ctx, s.repo, desc.Digest)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(NewVerifyReader(rc, desc))
	if err != nil {
		return nil, "", fmt.Errorf("fetching receipt blob %s: %w", desc.Digest, err)
	}
	r, err := parseReceipt(b)
	return r, m.Digest.String(), err
}

func (s *registryReceipts) record(ctx context.Context, name string, rc *Receipt) (bool, error) {
	_, err := s.put(ctx, name, rc)
	return true, err
}

func (s *registryReceipts) save(ctx context.Context, rc *Receipt) (string, error) {
	return s.put(ctx, ReceiptTagName, rc)
}

// put pushes rc as an artifact tagged tag and returns its manifest digest.
func (s *registryReceipts) put(ctx context.Context, tag string, rc *Receipt) (string, error) {
	b, err := json.Marshal(rc)
	if err != nil {
		return "", err
	}
	layer := ocispec.Descriptor{MediaType: ReceiptMediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	man := ocispec.Manifest{
		Versioned:    specsVersioned(),
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ReceiptMediaType,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{layer},
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	var eg errgroup.Group
	for _, blob := range []struct {
		d    ocispec.Descriptor
		data []byte
	}{{ocispec.DescriptorEmptyJSON, ocispec.DescriptorEmptyJSON.Data}, {layer, b}} {
		eg.Go(func() error {
			// Asked first: a re-run, whose receipt is unchanged, sends
			// nothing.
			ok, err := s.client.BlobExists(ctx, s.repo, blob.d.Digest)
			if err == nil && !ok {
				err = s.client.PushBlob(ctx, s.repo, blob.d.Digest, blob.d.Size, bytes.NewReader(blob.data))
			}
			if err != nil {
				return fmt.Errorf("pushing blob %s: %w", blob.d.Digest, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return "", err
	}
	if err := s.client.PutManifest(ctx, s.repo, tag, ocispec.MediaTypeImageManifest, mb); err != nil {
		return "", fmt.Errorf("pushing the receipt manifest %s: %w", tag, err)
	}
	return digest.FromBytes(mb).String(), nil
}

func (s *registryReceipts) settled(ctx context.Context, tok string, rc *Receipt) (bool, error) {
	var (
		now  digest.Digest
		tags []string
	)
	var eg errgroup.Group
	eg.Go(func() error {
		var err error
		now, err = s.client.HeadManifest(ctx, s.repo, ReceiptTagName)
		if errors.Is(err, registry.ErrNotFound) {
			now, err = "", nil
		}
		return err
	})
	eg.Go(func() (err error) {
		tags, err = s.tags(ctx)
		return err
	})
	if err := eg.Wait(); err != nil {
		return false, err
	}
	for _, name := range pendingRecords(tags, rc) {
		if !s.skipped[name] {
			return false, nil
		}
	}
	return now.String() == tok, nil
}

// layoutReceipts keeps the receipt in the file ReceiptFile of an OCI
// layout directory.
type layoutReceipts struct{ t *layoutTarget }

func (s *layoutReceipts) String() string { return s.t.dir + "/" + ReceiptFile }

func (s *layoutReceipts) read() ([]byte, error) {
	st, err := s.t.root.Lstat(ReceiptFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", s)
	}
	if st.Size() > maxReceiptBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, s, maxReceiptBytes)
	}
	return s.t.root.ReadFile(ReceiptFile)
}

func (s *layoutReceipts) load(_ context.Context, warn func(string)) (*Receipt, string, error) {
	b, err := s.read()
	if b == nil || err != nil {
		return nil, "", err
	}
	rc, err := parseReceipt(b)
	if errors.Is(err, errBadReceipt) {
		warn(fmt.Sprintf("ignoring the receipt at %s: %v; it will be replaced", s, err))
		return nil, digest.FromBytes(b).String(), nil
	}
	return rc, digest.FromBytes(b).String(), err
}

func (s *layoutReceipts) record(context.Context, string, *Receipt) (bool, error) { return false, nil }

func (s *layoutReceipts) save(_ context.Context, rc *Receipt) (string, error) {
	b, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		return "", err
	}
	if err := s.t.write(ReceiptFile, bytes.NewReader(b)); err != nil {
		return "", err
	}
	return digest.FromBytes(b).String(), nil
}

func (s *layoutReceipts) settled(_ context.Context, tok string, _ *Receipt) (bool, error) {
	b, err := s.read()
	if err != nil {
		return false, err
	}
	now := ""
	if b != nil {
		now = digest.FromBytes(b).String()
	}
	return now == tok, nil
}
