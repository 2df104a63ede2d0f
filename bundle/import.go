package bundle

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// ImportOptions configure Import. The zero value pushes with 8 parallel
// uploads and drops the source registry host from repository names.
type ImportOptions struct {
	// Jobs is the number of blobs uploaded at once (default 8). A
	// sequential reader uploads one at a time.
	Jobs int
	// KeepSourceRegistry keeps the source host as the first path element
	// under the prefix: docker.io/library/nginx:1.27 becomes
	// PREFIX/docker.io/library/nginx:1.27 (a port separator ':' becomes '_').
	KeepSourceRegistry bool
	Registry           RegistryOptions
	Progress           ProgressFunc
	// TempDir holds blobs of a sequential read that must be uploaded to
	// more than one repository when the registry refuses mounts.
	TempDir string
	// AllowRollback lets a signed bundle older than the one that last set
	// a destination tag move the tag to another digest; each such tag is
	// reported in ImportResult.Warnings. Without it Import refuses with
	// ErrRollback before pushing anything (see checkRollback).
	AllowRollback bool
	// RequireSignature, when set, makes Import check, before pushing
	// anything, that every image of the bundle carries a publisher
	// signature the policy accepts, among the signature artifacts the
	// bundle itself carries (cosign's .sig tags, Sigstore bundle
	// referrers). Otherwise it returns a *PublisherSignatureError
	// (ErrSignatureRequired). It needs a Reader with random access.
	RequireSignature *SignaturePolicy
}

// ImportedImage is one image pushed by Import.
type ImportedImage struct {
	Source      string
	Destination string // repository:tag, or repository@digest
	Digest      digest.Digest
	// DestinationDigest is what the destination resolved the reference to
	// after the push; equal to Digest on success.
	DestinationDigest digest.Digest
	// Upstream is the digest the source registry gave the image when a
	// platform filter at export rewrote its index (Digest is then the
	// rewritten index's); empty otherwise.
	Upstream digest.Digest
	// Confirmed: the destination resolved Destination to Digest after
	// the push.
	Confirmed bool
	// How the configs and layers of this image reached its repository:
	// sent, mounted from another repository of the destination, or
	// already there. BytesUploaded is the size of those sent. A blob
	// shared by images of one repository is counted in each of them; one
	// shared across repositories is sent to the first and mounted into
	// the others. The sums over images can therefore exceed the
	// ImportResult totals, which count each blob once per repository.
	BlobsUploaded, BlobsMounted, BlobsPresent int
	BytesUploaded                             int64
	// Subject is set for a referrer (a signature, SBOM or attestation)
	// pushed for the image manifest with this digest.
	Subject digest.Digest
}

// ImportResult reports what Import did.
type ImportResult struct {
	Images        []ImportedImage
	BlobsUploaded int
	BlobsMounted  int
	BlobsSkipped  int // already present at the destination
	BytesUploaded int64
	Manifests     int
	// ReferrerTags counts the fallback tags (sha256-<hex>) written so that
	// referrers resolve at a registry without the Referrers API.
	ReferrerTags int
	Duration     time.Duration
	// Receipt is the destination's receipt after this import was merged
	// into it (docs/format.md, section 11); ReceiptAt names where it is.
	Receipt   *Receipt
	ReceiptAt string
	// PublisherSignatures lists, with RequireSignature, each image checked
	// and what signed it (for an index rewritten by --platform at export,
	// the last of its platform manifests).
	PublisherSignatures []PublisherSignature
	// Warnings are what the operator should know: receipt entries ignored,
	// rollback protection off or overridden. Also set when Import fails.
	Warnings []string
}

// Destination is where Import puts images: a registry and an optional path
// prefix, or an OCI image layout directory.
type Destination struct {
	Registry string // host[:port]
	Prefix   string // optional path prefix, no leading or trailing slash
	// Layout is the directory of an OCI image layout ("oci:DIR"); Registry
	// and Prefix are then empty.
	Layout string
}

// LayoutScheme prefixes a destination or export source that is an OCI image
// layout directory: oci:DIR.
const LayoutScheme = "oci:"

// ParseDestination parses REGISTRY[/PREFIX], or oci:DIR for an OCI image
// layout directory.
func ParseDestination(s string) (Destination, error) {
	if dir, ok := strings.CutPrefix(s, LayoutScheme); ok {
		if dir == "" {
			return Destination{}, fmt.Errorf("%w: destination %q: want oci:DIR, e.g. oci:/srv/images", ErrInvalidReference, s)
		}
		return Destination{Layout: filepath.Clean(dir)}, nil
	}
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://"), "/")
	host, prefix, _ := strings.Cut(s, "/")
	if host == "" {
		return Destination{}, fmt.Errorf("%w: destination %q: want REGISTRY[/PREFIX], e.g. registry.local:5000/mirror", ErrInvalidReference, s)
	}
	test := host + "/x"
	if prefix != "" {
		test = host + "/" + prefix + "/x"
	}
	if _, err := name.NewRepository(test, name.StrictValidation); err != nil {
		return Destination{}, fmt.Errorf("%w: destination %q: %v", ErrInvalidReference, s, err)
	}
	return Destination{Registry: host, Prefix: prefix}, nil
}

// Map returns the destination repository (host/prefix/path) for a source
// reference. In an OCI layout the repository is the source's own name.
func (d Destination) Map(src Reference, keepSourceRegistry bool) string {
	if d.Layout != "" {
		return src.Name()
	}
	parts := []string{d.Registry}
	if d.Prefix != "" {
		parts = append(parts, d.Prefix)
	}
	if keepSourceRegistry {
		// A port is not allowed in a repository path: host:5000 becomes host_5000.
		parts = append(parts, strings.ToLower(strings.ReplaceAll(src.Domain, ":", "_")))
	}
	return strings.Join(append(parts, src.Path), "/")
}

// imageTarget is one image to put at the destination.
type imageTarget struct {
	src    Reference
	repo   string // the destination's name for the repository
	root   ocispec.Descriptor
	tagged bool
}

// ImportFile imports the bundle at path ("-" for standard input).
func ImportFile(ctx context.Context, path, to string, opts ImportOptions) (*ImportResult, error) {
	var r *Reader
	var err error
	if path == "-" {
		r, err = NewReader(os.Stdin)
	} else {
		r, err = Open(path)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return Import(ctx, r, to, opts)
}

// Import copies the content of r to the destination to (REGISTRY[/PREFIX],
// or oci:DIR). Blobs go first, then manifests children first, then tags;
// manifest bytes are copied unchanged so every digest is preserved. After
// the copy every destination reference is resolved again and compared.
//
// Before pushing anything, Import reads the destination's receipt and
// refuses with ErrRollback a bundle verified by r's Verifier that is older
// than the newest signed bundle that set one of its tags, if it would move
// the tag to another digest (see ImportOptions.AllowRollback). After the
// copy it merges this import into the receipt (ImportResult.Receipt). A
// Reader without a Verifier is an unsigned import: no rollback check, and
// its tags are recorded without joining the trusted history.
func Import(ctx context.Context, r *Reader, to string, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	opts.Jobs = defaultJobs(opts.Jobs)
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	dest, err := ParseDestination(to)
	if err != nil {
		return nil, err
	}
	var dst target
	if dest.Layout != "" {
		if dst, err = newLayoutTarget(dest.Layout); err != nil {
			return nil, err
		}
	} else {
		dst = &registryTarget{client: opts.Registry.client(), repos: map[string]name.Repository{}}
	}
	if c, ok := dst.(io.Closer); ok {
		defer c.Close()
	}
	im := &importer{r: r, opts: opts, dst: dst, res: &ImportResult{}}
	if err := im.plan(dest); err != nil {
		return nil, err
	}
	if opts.RequireSignature != nil {
		if err := im.checkSignatures(ctx); err != nil {
			return nil, err
		}
	}
	if im.receipts, err = im.openReceipts(dest); err != nil {
		return nil, err
	}
	// The push-access check and the rollback check (which reads the
	// receipts) both only read, and run side by side: each costs round
	// trips before the first blob moves.
	rollback := make(chan error, 1)
	go func() { rollback <- im.checkRollback(ctx, dest) }()
	if rt, ok := dst.(*registryTarget); ok {
		if err := rt.preflight(ctx, opts.Jobs); err != nil {
			<-rollback
			return nil, err
		}
	}
	if err := <-rollback; err != nil {
		return im.res, err
	}
	if err := im.checkLeftOut(ctx, to); err != nil {
		return im.res, err
	}
	if err := im.checkReferrerTags(ctx); err != nil {
		return im.res, err
	}
	if err := im.pushBlobs(ctx); err != nil {
		n := im.res.BlobsUploaded + im.res.BlobsMounted
		return im.res, &noteError{err: err, note: fmt.Sprintf("; no manifest or tag was pushed (%d blob(s) already pushed are content-addressed and harmless)", n)}
	}
	if err := im.pushManifests(ctx); err != nil {
		return nil, err
	}
	if err := im.indexReferrers(ctx); err != nil {
		return nil, err
	}
	if err := dst.commit(ctx); err != nil {
		return nil, err
	}
	if err := im.check(ctx); err != nil {
		return im.res, err
	}
	if err := im.recordReceipt(ctx, dest); err != nil {
		return im.res, err
	}
	im.res.Duration = time.Since(start)
	return im.res, nil
}

// target is where Import puts content: a registry, or an OCI image layout
// directory. The importer decides what goes where and in which order; a
// target only checks, puts and commits.
type target interface {
	blobTarget
	// repository validates a destination repository name and returns the
	// key the other methods take.
	repository(name string) (string, error)
	// pushManifest stores m in repo by digest, or under tag when not empty.
	pushManifest(ctx context.Context, repo, tag string, m *Manifest) error
	// commit makes what was pushed visible where that is a separate step.
	commit(ctx context.Context) error
	// resolve returns the digest ref (a tag or a digest) has in repo.
	resolve(ctx context.Context, repo, ref string) (digest.Digest, error)
}

type importer struct {
	r    *Reader
	opts ImportOptions
	dst  target
	res  *ImportResult
	// receipts is where the destination's receipt is kept.
	receipts receiptStore
	warnMu   sync.Mutex // warn is called by concurrent receipt reads
	// verdicts caches entryVerifier's checks of receipt entries, which the
	// size check, the history and the written receipt each read.
	verdictMu sync.Mutex
	verdicts  map[[sha256.Size]byte]verdict

	targets []imageTarget
	// repositories that need each blob, in a stable order
	blobRepos map[digest.Digest][]string
	// manifests each repository needs, children first
	repoManifests map[string][]*Manifest
	repoBlobs     map[string]map[digest.Digest]bool
	// how each repository came to hold each blob, for the counts of
	// each image
	outMu    sync.Mutex
	outcomes map[string]map[digest.Digest]blobOutcome
	// held: the digest a cosign tag holds after the bundle's signatures
	// were added to those already there (by target index; absent when it
	// holds the bundle's manifest).
	held map[int]digest.Digest
}

// record notes how repo came to hold blob d.
func (im *importer) record(repo string, d digest.Digest, how blobOutcome) {
	im.outMu.Lock()
	defer im.outMu.Unlock()
	if im.outcomes == nil {
		im.outcomes = map[string]map[digest.Digest]blobOutcome{}
	}
	if im.outcomes[repo] == nil {
		im.outcomes[repo] = map[digest.Digest]blobOutcome{}
	}
	im.outcomes[repo][d] = how
}

// count sets the blob counts of img, target t.
func (im *importer) count(img *ImportedImage, t imageTarget) {
	im.outMu.Lock()
	defer im.outMu.Unlock()
	im.r.g.closure(t.root.Digest, func(d digest.Digest, m *Manifest) bool {
		if m != nil {
			return true
		}
		how, ok := im.outcomes[t.repo][d]
		switch {
		case !ok:
		case how == blobUploaded:
			img.BlobsUploaded++
			if b := im.r.g.blobs[d]; b != nil {
				img.BytesUploaded += b.desc.Size
			}
		case how == blobMounted:
			img.BlobsMounted++
		case how == blobPresent:
			img.BlobsPresent++
		}
		return true
	})
}

func (im *importer) plan(dest Destination) error {
	im.blobRepos = map[digest.Digest][]string{}
	im.repoManifests = map[string][]*Manifest{}
	im.repoBlobs = map[string]map[digest.Digest]bool{}
	tags := map[string]imageTarget{}
	var conflicts []string
	for i, d := range im.r.Index().Manifests {
		refName := d.Annotations[AnnotationRefName]
		if refName == "" {
			return fmt.Errorf("%w: index.json entry %d (%s) has no %s annotation", ErrCorrupt, i, d.Digest, AnnotationRefName)
		}
		src, err := ParseReference(refName)
		if err != nil {
			return fmt.Errorf("%w: index.json entry %d: %v", ErrCorrupt, i, err)
		}
		repoName := dest.Map(src, im.opts.KeepSourceRegistry)
		repo, err := im.dst.repository(repoName)
		if err != nil {
			return fmt.Errorf("destination repository %q for %s: %w", repoName, src, err)
		}
		t := imageTarget{src: src, repo: repo, root: d, tagged: src.Tag != ""}
		if t.tagged {
			key := im.dst.display(repo, src.Tag)
			if prev, ok := tags[key]; ok && prev.root.Digest != d.Digest {
				conflicts = append(conflicts, fmt.Sprintf("%s (%s) and %s (%s) both map to %s", prev.src, prev.root.Digest, src, d.Digest, key))
			}
			tags[key] = t
		}
		im.targets = append(im.targets, t)
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("%w: %s; use --keep-source-registry or import them separately with different prefixes", ErrConflict, strings.Join(conflicts, "; "))
	}
	// Closure of each repository.
	for _, t := range im.targets {
		im.addClosure(t.repo, t.root.Digest)
	}
	return nil
}

func (im *importer) addClosure(repo string, root digest.Digest) {
	have := im.repoBlobs[repo]
	if have == nil {
		have = map[digest.Digest]bool{}
		im.repoBlobs[repo] = have
	}
	im.r.g.closure(root, func(d digest.Digest, m *Manifest) bool {
		if have[d] {
			return true
		}
		have[d] = true
		if m != nil {
			im.repoManifests[repo] = append(im.repoManifests[repo], m) // children first
		} else {
			im.blobRepos[d] = append(im.blobRepos[d], repo)
		}
		return true
	})
}

// pushBlobs copies every blob of the bundle to the repositories that need
// it, with the engine: a bundle read from a file in any order, largest
// first; one read from a stream as it comes.
func (im *importer) pushBlobs(ctx context.Context) error {
	c := newCopier("import", im.opts.Jobs, im.opts.Registry.client(), im.opts.Progress, im.r.Users)
	c.repos = func(d digest.Digest) []string { return im.blobRepos[d] }
	c.outcome = func(repo string, desc ocispec.Descriptor, how blobOutcome) { im.record(repo, desc.Digest, how) }
	defer func() {
		im.res.BlobsUploaded += int(c.uploaded.Load())
		im.res.BlobsMounted += int(c.mounted.Load())
		im.res.BlobsSkipped += int(c.present.Load())
		im.res.BytesUploaded += c.bytesUp.Load()
	}()
	var src source = bundleSource{im.r}
	if !im.r.RandomAccess() {
		src = &bundleStream{bundleSource{im.r}, im.opts.TempDir}
	}
	return c.copyBlobs(ctx, src, im.dst, im.r.Blobs())
}

func (im *importer) pushManifests(ctx context.Context) error {
	// A tagged root that nothing else in its repository refers to is pushed
	// once, by its tag, at the end; every other manifest by digest first.
	byTag := map[string]map[digest.Digest]bool{}
	for _, t := range im.targets {
		if t.tagged {
			if byTag[t.repo] == nil {
				byTag[t.repo] = map[digest.Digest]bool{}
			}
			byTag[t.repo][t.root.Digest] = true
		}
	}
	// Push level by level, image manifests first, then the indexes above
	// them, so a registry that checks an index's children finds them; all
	// repositories and all manifests of a level at once.
	type push struct {
		repo string
		m    *Manifest
	}
	var levels [][]push
	tagOnly := map[string]bool{} // repo@digest pushed only by tag
	for _, n := range slices.Sorted(maps.Keys(im.repoManifests)) {
		height := map[digest.Digest]int{}
		child := map[digest.Digest]bool{}
		for _, m := range im.repoManifests[n] { // children first
			h := 0
			for _, c := range m.kids {
				if c.manifest {
					child[c.desc.Digest] = true
					h = max(h, height[c.desc.Digest]+1)
				}
			}
			height[m.Descriptor.Digest] = h
		}
		for _, m := range im.repoManifests[n] {
			if byTag[n][m.Descriptor.Digest] && !child[m.Descriptor.Digest] {
				tagOnly[n+"@"+m.Descriptor.Digest.String()] = true
				continue
			}
			h := height[m.Descriptor.Digest]
			for len(levels) <= h {
				levels = append(levels, nil)
			}
			levels[h] = append(levels[h], push{n, m})
		}
	}
	var mu sync.Mutex
	for _, level := range levels {
		eg, gctx := errgroup.WithContext(ctx)
		eg.SetLimit(metaJobs(im.opts.Jobs))
		for _, p := range level {
			eg.Go(func() error {
				if err := im.dst.pushManifest(gctx, p.repo, "", p.m); err != nil {
					return fmt.Errorf("pushing manifest %s to %s (used by %s): %w", p.m.Descriptor.Digest, im.dst.display(p.repo, ""), joinLimited(im.r.Users(p.m.Descriptor.Digest), 3), err)
				}
				mu.Lock()
				im.res.Manifests++
				mu.Unlock()
				im.opts.Progress.emit(Event{Kind: EventManifest, Ref: im.dst.display(p.repo, p.m.Descriptor.Digest.String()), Digest: p.m.Descriptor.Digest.String()})
				return nil
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
	}
	// An OCI layout lists the images imported by digest in its index too.
	if n, ok := im.dst.(interface {
		nameRoot(repo string, desc ocispec.Descriptor)
	}); ok {
		for _, t := range im.targets {
			if !t.tagged {
				n.nameRoot(t.repo, t.root)
			}
		}
	}
	// Tags last, once everything they point at is in place.
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(im.opts.Jobs))
	im.held = map[int]digest.Digest{}
	for i, t := range im.targets {
		if !t.tagged {
			continue
		}
		eg.Go(func() error {
			m, _ := im.r.Manifest(t.root.Digest)
			var err error
			if rt, ok := im.dst.(*registryTarget); ok && isListTag(t.src.Tag) {
				// A list of signatures (or of referrers): the bundle's
				// are added to what the destination holds.
				var d digest.Digest
				if d, err = im.pushCosignTag(gctx, rt, t, m); err == nil && d != t.root.Digest {
					mu.Lock()
					im.held[i] = d
					mu.Unlock()
				}
			} else {
				err = im.dst.pushManifest(gctx, t.repo, t.src.Tag, m)
			}
			if err != nil {
				return fmt.Errorf("tagging %s (from %s): %w", im.dst.display(t.repo, t.src.Tag), t.src, err)
			}
			mu.Lock()
			if key := t.repo + "@" + t.root.Digest.String(); tagOnly[key] {
				delete(tagOnly, key) // count each manifest once, however many tags
				im.res.Manifests++
			}
			mu.Unlock()
			im.opts.Progress.emit(Event{Kind: EventManifest, Ref: im.dst.display(t.repo, t.src.Tag), Digest: t.root.Digest.String()})
			return nil
		})
	}
	return eg.Wait()
}

// check resolves every destination reference again and compares digests.
func (im *importer) check(ctx context.Context) error {
	images := make([]ImportedImage, len(im.targets))
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(im.opts.Jobs))
	for i, t := range im.targets {
		eg.Go(func() error {
			ref := t.root.Digest.String()
			if t.tagged {
				ref = t.src.Tag
			}
			dst := im.dst.display(t.repo, ref)
			got, err := im.dst.resolve(gctx, t.repo, ref)
			if err != nil {
				return fmt.Errorf("checking %s after the push: %w", dst, err)
			}
			want := t.root.Digest
			if d, ok := im.held[i]; ok {
				want = d
			}
			images[i] = ImportedImage{Source: t.src.String(), Destination: dst, Digest: t.root.Digest, DestinationDigest: got, Confirmed: got == want}
			im.count(&images[i], t)
			if up := digest.Digest(t.root.Annotations[AnnotationOriginalDigest]); validateDigest(up) == nil {
				images[i].Upstream = up
			}
			if IsReferrer(t.root) {
				images[i].Subject = digest.Digest(t.root.Annotations[AnnotationSubject])
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	// A tag that holds another digest was moved by someone else between our
	// push and this check; a digest that resolves to another is the
	// registry not keeping what it was sent. Neither is the bundle's fault.
	var moved, bad []string
	for i, img := range images {
		switch {
		case img.Confirmed:
		case im.targets[i].tagged:
			moved = append(moved, fmt.Sprintf("%s now holds %s, not %s", img.Destination, img.DestinationDigest, img.Digest))
		default:
			bad = append(bad, fmt.Sprintf("%s resolves to %s", img.Destination, img.DestinationDigest))
		}
	}
	im.res.Images = append(im.res.Images, images...)
	if len(bad) > 0 {
		return fmt.Errorf("%w: after the push: %s; the registry does not return the manifests it was sent: check it before using these images", ErrDestination, strings.Join(bad, "; "))
	}
	if len(moved) > 0 {
		return fmt.Errorf("%w: after the push: %s: another push moved the tag during this import; re-run the import to set it again, or find what else writes to these repositories", ErrConflict, strings.Join(moved, "; "))
	}
	return nil
}

// noteError adds a sentence to an error, keeping it on one line.
type noteError struct {
	err  error
	note string
}

func (e *noteError) Error() string { return strings.TrimSpace(e.err.Error()) + e.note }
func (e *noteError) Unwrap() error { return e.err }
