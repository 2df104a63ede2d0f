package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
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

	// maxReceiptBytes caps a receipt read back. Each distinct bundle
	// imported adds its index.json (a few KiB for tens of images).
	maxReceiptBytes = 64 << 20
	// receiptTries is how many times a receipt is written when another
	// import replaces it between the write and the read-back.
	receiptTries = 3
	// maxIgnoredWarnings is how many ignored receipt entries are named in
	// warnings one by one; the rest are counted in one more warning.
	maxIgnoredWarnings = 3
)

// errBadReceipt: what is stored where the receipt belongs cannot be read
// as one. It is ignored with a warning (as a deleted receipt would be).
var errBadReceipt = errors.New("not a ferry receipt")

// receiptStore keeps the receipt of one destination.
type receiptStore interface {
	// load returns the stored receipt and a token that changes when it is
	// replaced; nil and "" when there is none.
	load(ctx context.Context) (*Receipt, string, error)
	// save stores rc and returns its token.
	save(ctx context.Context, rc *Receipt) (string, error)
	// token is the token of what is stored now ("" when nothing).
	token(ctx context.Context) (string, error)
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
		return &registryReceipts{client: t.client, repo: t.repos[repo]}, nil
	}
	return nil, nil
}

// loadReceipt reads the stored receipt; one that cannot be read as a
// receipt is ignored with a warning, as if there were none.
func (im *importer) loadReceipt(ctx context.Context) (*Receipt, string, error) {
	rc, tok, err := im.receipts.load(ctx)
	if errors.Is(err, errBadReceipt) {
		im.warn(fmt.Sprintf("ignoring the receipt at %s: %v; it will be replaced", im.receipts, err))
		return nil, tok, nil
	}
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
		id := digest.FromBytes(b.Index)
		ignore := func(why string) {
			if ignored++; ignored <= maxIgnoredWarnings {
				im.warn(fmt.Sprintf("ignoring entry %d of the receipt at %s (bundle %s): %s; it is not used for rollback decisions", i, where, id, why))
			}
		}
		files := map[string][]byte{}
		if b.Signature != nil {
			files[SignatureFile] = b.Signature
		}
		if b.SigstoreBundle != nil {
			files[SigstoreBundleFile] = b.SigstoreBundle
		}
		if _, err := v(b.Index, files); err != nil {
			ignore(err.Error())
			continue
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b.Index, &idx); err != nil {
			ignore("index.json is not valid JSON")
			continue
		}
		created := bundleCreated(idx)
		if created.IsZero() {
			ignore("index.json has no valid " + AnnotationCreated)
			continue
		}
		for _, d := range idx.Manifests {
			src, err := ParseReference(d.Annotations[AnnotationRefName])
			if err != nil || src.Tag == "" || validateDigest(d.Digest) != nil {
				continue
			}
			key := receiptKey(dest, src, b.KeepSourceRegistry)
			// The newest by signed time; of equal times the later entry.
			if h, ok := hist[key]; !ok || !h.created.After(created) {
				hist[key] = tagHistory{digest: d.Digest, bundle: id, created: created}
			}
		}
	}
	return hist
}

// checkRollback refuses, before anything is pushed, a signed bundle older
// than the one that last set a destination tag if it would move the tag
// to another digest (or warns, with AllowRollback). An unsigned import
// neither consults nor advances the trusted history.
func (im *importer) checkRollback(ctx context.Context, dest Destination) error {
	if im.receipts == nil {
		return nil
	}
	if !im.signed() {
		im.warn("rollback protection is off for this import: the bundle's signature was not checked, so its creation time cannot be trusted; the receipt records its tags as unsigned and the trusted history is neither consulted nor advanced")
		return nil
	}
	rc, _, err := im.loadReceipt(ctx)
	if err != nil {
		return err
	}
	hist := im.trustedHistory(rc, im.receipts, dest, im.r.verifier)
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
	for _, t := range im.targets {
		if !t.tagged {
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
			rc, _, err := store.load(ctx)
			switch {
			case errors.Is(err, errBadReceipt):
				im.warn(fmt.Sprintf("ignoring the receipt at %s: %v", store, err))
				return nil
			case errors.Is(err, registry.ErrUnauthorized), errors.Is(err, registry.ErrDenied):
				im.warn(fmt.Sprintf("cannot read the receipt at %s (%v): its history is not used for rollback decisions", store, err))
				return nil
			case err != nil:
				return fmt.Errorf("reading the import receipt at %s for the rollback check, before pushing anything: %w", store, err)
			}
			hists[i] = im.trustedHistory(rc, store, Destination{Registry: dest.Registry, Prefix: prefix}, im.r.verifier)
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

// recordReceipt merges what this import set into the stored receipt and
// writes it back; when another import replaced the receipt between the
// write and its read-back, it merges again (receiptTries in all).
func (im *importer) recordReceipt(ctx context.Context, dest Destination) error {
	if im.receipts == nil {
		return nil
	}
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
	for try := 1; ; try++ {
		prev, _, err := im.loadReceipt(ctx)
		if err == nil {
			rc := mergeReceipt(prev, receiptDestination(dest), entry, tags, blobs)
			var tok, now string
			if tok, err = im.receipts.save(ctx, rc); err == nil {
				if now, err = im.receipts.token(ctx); err == nil && now == tok {
					im.res.Receipt, im.res.ReceiptAt = rc, im.receipts.String()
					return nil
				}
			}
		}
		if err != nil {
			return fmt.Errorf("the images were imported, but recording the import receipt at %s failed: %w; import again to record it", im.receipts, err)
		}
		if try == receiptTries {
			return fmt.Errorf("%w: the images were imported, but another import replaced the receipt at %s each of %d times this one wrote it; import again to record it", ErrConflict, im.receipts, receiptTries)
		}
	}
}

// mergeReceipt is prev with one import added: entry (nil for an unsigned
// import) last in Bundles (replacing an earlier copy of the same
// index.json imported with the same mapping), tags set, blobs added.
func mergeReceipt(prev *Receipt, dest string, entry *ReceiptBundle, tags map[string]ReceiptTag, blobs []digest.Digest) *Receipt {
	rc := &Receipt{Version: ReceiptVersion, Destination: dest, Tags: map[string]ReceiptTag{}}
	have := map[digest.Digest]bool{}
	if prev != nil {
		for k, v := range prev.Tags {
			// The same registry reached under another name: keep the keys
			// under this destination's name.
			if rest, ok := strings.CutPrefix(k, prev.Destination+"/"); ok && prev.Destination != dest && !strings.HasPrefix(dest, LayoutScheme) {
				k = dest + "/" + rest
			}
			rc.Tags[k] = v
		}
		for _, b := range prev.Blobs {
			have[b] = true
		}
		for _, b := range prev.Bundles {
			// The same index.json imported under the other mapping set
			// other tags: its entry stays.
			if entry == nil || !bytes.Equal(b.Index, entry.Index) || b.KeepSourceRegistry != entry.KeepSourceRegistry {
				rc.Bundles = append(rc.Bundles, b)
			}
		}
	}
	if entry != nil {
		rc.Bundles = append(rc.Bundles, *entry)
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

// registryReceipts keeps the receipt as an OCI artifact, REPO:latest.
type registryReceipts struct {
	client *registry.Client
	repo   name.Repository
}

func (s *registryReceipts) String() string { return s.repo.Name() + ":" + ReceiptTagName }

func (s *registryReceipts) load(ctx context.Context) (*Receipt, string, error) {
	m, err := s.client.GetManifest(ctx, s.repo, ReceiptTagName, MaxManifestBytes)
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
	if desc.Size > maxReceiptBytes || desc.Size < 0 || validateDigest(desc.Digest) != nil {
		return nil, m.Digest.String(), fmt.Errorf("%w: the receipt is %d bytes (at most %d) of digest %q", errBadReceipt, desc.Size, maxReceiptBytes, truncate(string(desc.Digest), 80))
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

func (s *registryReceipts) save(ctx context.Context, rc *Receipt) (string, error) {
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
	for _, blob := range []struct {
		d    ocispec.Descriptor
		data []byte
	}{{ocispec.DescriptorEmptyJSON, ocispec.DescriptorEmptyJSON.Data}, {layer, b}} {
		ok, err := s.client.BlobExists(ctx, s.repo, blob.d.Digest)
		if err == nil && !ok {
			err = s.client.PushBlob(ctx, s.repo, blob.d.Digest, blob.d.Size, bytes.NewReader(blob.data))
		}
		if err != nil {
			return "", fmt.Errorf("pushing blob %s: %w", blob.d.Digest, err)
		}
	}
	if err := s.client.PutManifest(ctx, s.repo, ReceiptTagName, ocispec.MediaTypeImageManifest, mb); err != nil {
		return "", fmt.Errorf("pushing the receipt manifest: %w", err)
	}
	return digest.FromBytes(mb).String(), nil
}

func (s *registryReceipts) token(ctx context.Context) (string, error) {
	d, err := s.client.HeadManifest(ctx, s.repo, ReceiptTagName)
	if errors.Is(err, registry.ErrNotFound) {
		return "", nil
	}
	return d.String(), err
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

func (s *layoutReceipts) load(context.Context) (*Receipt, string, error) {
	b, err := s.read()
	if b == nil || err != nil {
		return nil, "", err
	}
	rc, err := parseReceipt(b)
	return rc, digest.FromBytes(b).String(), err
}

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

func (s *layoutReceipts) token(context.Context) (string, error) {
	b, err := s.read()
	if b == nil || err != nil {
		return "", err
	}
	return digest.FromBytes(b).String(), nil
}
