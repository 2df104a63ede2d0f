package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"golang.org/x/sync/singleflight"

	"github.com/ferryproject/ferry/internal/registry"
)

// ExportOptions configure Export. The zero value exports every platform
// with 8 parallel downloads.
type ExportOptions struct {
	// Jobs is the number of blobs downloaded and compressed at once (default 8).
	Jobs int
	// Platforms, when set, keeps only these platforms ("os/arch[/variant]")
	// of multi-platform images. The index is rewritten, so its digest
	// changes; the original digest is kept in AnnotationOriginalDigest.
	Platforms []string
	Registry  RegistryOptions
	// Created is recorded in index.json; zero means now.
	Created time.Time
	// Version of the writing program, recorded in index.json.
	Version string
	// TempDir holds the compressed blobs waiting for their turn to be
	// written (at most about 2×Jobs of them). Default: os.TempDir().
	TempDir  string
	Encoder  EncoderOptions
	Progress ProgressFunc
	// Sign, when set, is called with the exact index.json bytes and returns
	// signature files (SignatureFile, SigstoreBundleFile) to store after it.
	Sign func(index []byte) (map[string][]byte, error)
	// Bases, when set, make the bundle a delta (docs/format.md, section
	// 5.6): the configs and layers a base holds are left out of the
	// archive, and index.json names every base. ReadBase reads one.
	Bases []*Base
	// NoReferrers leaves out the referrers of the images (signatures,
	// SBOMs, attestations), which are carried by default (docs/format.md,
	// section 5.7).
	NoReferrers bool
	// ReferrerTypes, when set, keeps only referrers of these artifact types.
	ReferrerTypes []string
	// RequireSignature, when set, makes Export check, after resolving the
	// references and finding their referrers, and before writing anything,
	// that every image carries a publisher signature the policy accepts
	// (cosign's .sig tag, or a Sigstore bundle referrer). It checks the
	// referrers the bundle will carry (so ReferrerTypes must keep the
	// signatures' types), or, with NoReferrers, the image's repository.
	// Otherwise it returns a *PublisherSignatureError (ErrSignatureRequired)
	// naming each image that does not. An image whose index --platform
	// rewrites is checked by its source digest. Cosign's own tags
	// (sha256-<hex>.sig, .att, .sbom) named as images need no signature.
	RequireSignature *SignaturePolicy
}

// ExportSummary reports what Export wrote.
type ExportSummary struct {
	Images    int
	Platforms int
	// Referrers counts the referrers carried with the images.
	Referrers int
	Blobs     int
	// UniqueBytes is the total of distinct blobs stored.
	UniqueBytes int64
	// LeftOut and LeftOutBytes count the configs and layers a delta leaves
	// out because a base holds them (not in Blobs and UniqueBytes).
	LeftOut      int
	LeftOutBytes int64
	// ReferencedBytes is the total over every image of the blobs it uses;
	// ReferencedBytes - UniqueBytes is what deduplication saved.
	ReferencedBytes int64
	ArchiveBytes    int64
	Duration        time.Duration
	// Rewritten lists references whose index was rewritten by the platform
	// filter, so their digest differs from the source.
	Rewritten []RewrittenIndex
	// PublisherSignatures lists, with RequireSignature, each image checked
	// and what signed it (for an index rewritten by --platform, the
	// signature of the source index).
	PublisherSignatures []PublisherSignature
	// Index is the index.json written.
	Index ocispec.Index
	// Exported lists every image written, in index.json order.
	Exported []Image
}

// RewrittenIndex records an index changed by a platform filter.
type RewrittenIndex struct {
	Ref                 string
	Original, Rewritten digest.Digest
	// LeftBehind names the referrers of the source index (its cosign
	// signature, say) found at the source: they refer to Original, not to
	// the rewritten index, and are not carried.
	LeftBehind []string
}

// image is a resolved reference.
type image struct {
	ref  Reference
	src  upstream
	desc ocispec.Descriptor
	// original digest when the platform filter rewrote the index
	original digest.Digest
}

type fetched struct {
	bytes []byte
	src   upstream
}

// upstream is where Export resolves references and reads content: a repository of a registry, or an
// OCI image layout directory.
type upstream interface {
	// manifest fetches a manifest by tag or digest, at most limit bytes,
	// verified when ref is a digest.
	manifest(ctx context.Context, ref string, limit int64) (*registry.Manifest, error)
	// blob opens a blob; the caller verifies what it reads.
	blob(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
	String() string
}

// registrySource reads a repository of a registry.
type registrySource struct {
	client *registry.Client
	repo   name.Repository
}

var _ upstream = registrySource{}

func (s registrySource) String() string { return s.repo.Name() }

// manifest fetches a manifest, trying again when the transfer breaks (the
// transport retries only failures before the body).
func (s registrySource) manifest(ctx context.Context, ref string, limit int64) (*registry.Manifest, error) {
	return withRetries(ctx, s.client, func(ctx context.Context) (*registry.Manifest, bool, error) {
		m, err := s.client.GetManifest(ctx, s.repo, ref, limit)
		return m, registry.IsTemporary(err), err
	})
}

func (s registrySource) blob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	return s.client.GetBlob(ctx, s.repo, d)
}

// asDigestMismatch makes a registry's digest mismatch also this package's
// ErrDigestMismatch, without saying "digest mismatch" twice.
func asDigestMismatch(err error) error { return &sentinelError{sentinel: ErrDigestMismatch, err: err} }

type sentinelError struct{ sentinel, err error }

func (e *sentinelError) Error() string        { return e.err.Error() }
func (e *sentinelError) Unwrap() error        { return e.err }
func (e *sentinelError) Is(target error) bool { return target == e.sentinel }

// overNetwork reports whether a read that failed midway is worth trying again:
// a transfer over the network is, a local file is not.
func overNetwork(s upstream) bool {
	_, ok := s.(registrySource)
	return ok
}

// exportSource is what the engine copies from on export: each blob from
// the repository (or layout) of the image that first named it; configs,
// read to learn platforms, from memory.
type exportSource struct{ e *exporter }

func (s exportSource) fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if b, ok := s.e.configs[desc.Digest]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil // verified when read
	}
	rc, err := s.e.blobSrc[desc.Digest].blob(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{NewVerifyReader(rc, desc), rc}, nil
}

func (s exportSource) failed(desc ocispec.Descriptor, err error) (string, error, bool) {
	repo := s.e.blobSrc[desc.Digest]
	final := errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrUnauthorized) || errors.Is(err, registry.ErrDenied)
	return "fetch", fmt.Errorf("from %s (re-run the export to try again): %w", repo, err), overNetwork(repo) && !final
}

// exporter holds the state of one export.
type exporter struct {
	opts      ExportOptions
	client    *registry.Client
	platforms []ocispec.Platform

	mu        sync.Mutex
	manifests map[digest.Digest]fetched // every manifest, with the upstream to fetch its children from
	blobSrc   map[digest.Digest]upstream
	configs   map[digest.Digest][]byte
	inflight  singleflight.Group     // child manifests being fetched
	leftOut   map[digest.Digest]bool // blobs a delta leaves out
	signed    []PublisherSignature   // what RequireSignature checked
	// leftBehind: the referrers of source indexes --platform rewrote
	leftBehind map[digest.Digest][]string
}

// ExportFile exports refs to a bundle at path. The bundle is written under
// a temporary name in the same directory and renamed only when complete; on
// any error nothing is left at path.
func ExportFile(ctx context.Context, refs []string, path string, opts ExportOptions) (*ExportSummary, error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("output directory %s does not exist; create it or choose another output path: %w", dir, err)
	} else if err != nil {
		return nil, fmt.Errorf("output directory %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("output directory %s is not a directory", dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("output %s is a directory; name a file such as %s", path, filepath.Join(path, "images.tar.zst"))
	}
	// Leftovers of an export of the same output that was killed (see
	// partial.go); a running export's partial file is locked and kept.
	removeStalePartials(dir, filepath.Base(path))
	tmp, err := createPartial(dir, filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("cannot write to output directory %s (check its permissions and free space): %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if opts.TempDir == "" {
		opts.TempDir = dir
	}
	sum, err := Export(ctx, refs, tmp, opts)
	if err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	if !renameOpen {
		if err := tmp.Close(); err != nil {
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	// Where the partial file is locked, it is renamed before it is closed:
	// the lock keeps another export's cleanup (partial.go) away from it
	// until it has its final name.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("renaming the finished bundle to %s: %w", path, err)
	}
	done = true
	if renameOpen {
		_ = tmp.Close() // synced above; the bundle is complete under its name
	}
	return sum, nil
}

// Export resolves refs, then writes one bundle to w. If any reference cannot
// be resolved, it returns a *ResolveError listing every failure and writes
// nothing.
func Export(ctx context.Context, refs []string, w io.Writer, opts ExportOptions) (*ExportSummary, error) {
	start := time.Now()
	opts.Jobs = defaultJobs(opts.Jobs)
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	e, err := newExporter(opts)
	if err != nil {
		return nil, err
	}
	images, referrers, g, index, indexBytes, err := e.prepare(ctx, refs)
	if err != nil {
		return nil, err
	}
	sum := &ExportSummary{Images: len(images), Referrers: len(referrers), Index: index, PublisherSignatures: e.signed}
	for _, img := range images {
		if img.original != "" {
			sum.Rewritten = append(sum.Rewritten, RewrittenIndex{Ref: img.ref.String(), Original: img.original, Rewritten: img.desc.Digest, LeftBehind: e.leftBehind[img.original]})
		}
	}
	var sigs map[string][]byte
	if opts.Sign != nil {
		if sigs, err = opts.Sign(indexBytes); err != nil {
			return nil, fmt.Errorf("signing index.json: %w", err)
		}
	}
	blobs := g.orderedBlobs()
	if len(e.leftOut) > 0 {
		blobs = slices.DeleteFunc(blobs, func(d ocispec.Descriptor) bool { return e.leftOut[d.Digest] })
	}
	at, err := newArchiveTarget(w, g, blobs, indexBytes, sigs, opts)
	if err != nil {
		return nil, err
	}
	defer at.Close()
	c := newCopier("export", opts.Jobs, e.client, opts.Progress, g.Users)
	if err := c.copyBlobs(ctx, exportSource{e}, at, at.blobs); err != nil {
		return nil, err
	}
	if err := at.commit(); err != nil {
		return nil, err
	}
	sum.ArchiveBytes = at.bw.Size()
	sum.Exported = e.count(sum, g, index)
	sum.Duration = time.Since(start)
	return sum, nil
}

// resolveAll resolves every reference and fetches every manifest below it.
func (e *exporter) resolveAll(ctx context.Context, refs []string) ([]*image, error) {
	var failures []*RefError
	// One job per image: a registry reference, or an image of an OCI layout.
	type job struct {
		r      Reference
		layout *layoutSource
		desc   ocispec.Descriptor
	}
	var jobs []job
	// One reference named twice is one image; named by a layout and by a
	// registry (or by two layouts), it is two sources that must agree.
	seen := map[string]bool{}
	add := func(j job) {
		key := j.r.String()
		if j.layout != nil {
			key += " " + j.layout.String()
		}
		if !seen[key] {
			seen[key] = true
			jobs = append(jobs, j)
		}
	}
	for _, s := range refs {
		if dir, tag, ok := parseLayoutRef(s); ok {
			imgs, err := layoutImages(dir, tag)
			if err != nil {
				failures = append(failures, &RefError{Ref: s, Err: err})
				continue
			}
			for _, li := range imgs {
				add(job{r: li.ref, layout: &layoutSource{dir: dir}, desc: li.desc})
			}
			continue
		}
		r, err := ParseReference(s)
		if err != nil {
			failures = append(failures, &RefError{Ref: s, Err: err})
			continue
		}
		add(job{r: r})
	}
	images := make([]*image, len(jobs))
	errs := make([]error, len(jobs))
	var eg errgroup.Group
	eg.SetLimit(metaJobs(e.opts.Jobs))
	for i, j := range jobs {
		eg.Go(func() error {
			e.opts.Progress.emit(Event{Kind: EventResolving, Ref: j.r.String()})
			if j.layout != nil {
				images[i], errs[i] = e.resolveLayout(ctx, *j.layout, j.r, j.desc)
			} else {
				images[i], errs[i] = e.resolve(ctx, j.r)
			}
			if errs[i] == nil {
				e.opts.Progress.emit(Event{Kind: EventResolved, Ref: j.r.String(), Digest: images[i].desc.Digest.String()})
			}
			return nil
		})
	}
	_ = eg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			failures = append(failures, &RefError{Ref: jobs[i].r.String(), Err: err})
		}
	}
	if len(failures) > 0 {
		return nil, &ResolveError{Failures: failures}
	}
	// Keep each reference once; two sources that give it different digests
	// are an error, not a choice.
	byRef := map[string]int{}
	out := images[:0]
	for i, img := range images {
		ref := img.ref.String()
		j, dup := byRef[ref]
		if !dup {
			byRef[ref] = i
			out = append(out, img)
			continue
		}
		if prev := images[j]; prev.desc.Digest != img.desc.Digest {
			failures = append(failures, &RefError{Ref: ref, Err: fmt.Errorf("%w: it is %s in %s but %s in %s; export them separately, or name one otherwise",
				ErrConflict, prev.desc.Digest, prev.src, img.desc.Digest, img.src)})
		}
	}
	if len(failures) > 0 {
		return nil, &ResolveError{Failures: failures}
	}
	return out, nil
}

func (e *exporter) resolve(ctx context.Context, r Reference) (*image, error) {
	repo, err := e.client.ParseRepository(r.Name())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReference, err)
	}
	src := registrySource{client: e.client, repo: repo}
	m, err := src.manifest(ctx, r.Identifier(), MaxManifestBytes)
	if errors.Is(err, registry.ErrDigestMismatch) {
		return nil, asDigestMismatch(err)
	}
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return nil, fmt.Errorf("image not found in %s (check the name and tag): %w", r.Domain, err)
		}
		return nil, err
	}
	return e.expand(ctx, src, r, m)
}

// resolveLayout resolves an image of an OCI layout, listed in its index.json
// with descriptor desc.
func (e *exporter) resolveLayout(ctx context.Context, src layoutSource, r Reference, desc ocispec.Descriptor) (*image, error) {
	m, err := src.manifest(ctx, desc.Digest.String(), MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	if int64(len(m.Bytes)) != desc.Size {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes in %s, its index.json says %d", ErrDescriptorConflict, desc.Digest, len(m.Bytes), src, desc.Size)
	}
	if desc.MediaType != "" {
		m.MediaType = desc.MediaType
	}
	return e.expand(ctx, src, r, m)
}

// expand parses the manifest m that r resolved to, applies the platform
// filter and fetches every manifest below it.
func (e *exporter) expand(ctx context.Context, repo upstream, r Reference, m *registry.Manifest) (*image, error) {
	if isSchema1(m.MediaType) {
		return nil, errSchema1()
	}
	mt, children, err := parseManifest(m.Bytes, m.MediaType)
	if err != nil {
		return nil, err
	}
	img := &image{ref: r, src: repo, desc: ocispec.Descriptor{MediaType: mt, Digest: m.Digest, Size: int64(len(m.Bytes))}}
	body := m.Bytes
	if len(e.platforms) > 0 && IsIndex(mt) {
		body, children, err = e.filterIndex(m.Bytes, children)
		if err != nil {
			return nil, err
		}
		img.original = m.Digest
		img.desc.Digest = digest.FromBytes(body)
		img.desc.Size = int64(len(body))
	}
	e.addManifest(img.desc.Digest, body, repo)
	e.opts.Progress.emit(Event{Kind: EventManifest, Ref: r.String(), Digest: img.desc.Digest.String()})
	if !IsIndex(mt) {
		p, err := e.platformOf(ctx, repo, children)
		if err != nil {
			return nil, err
		}
		if p != nil {
			img.desc.Platform = p
			if len(e.platforms) > 0 && !e.matches(*p) {
				return nil, fmt.Errorf("%w: the image is %s only; --platform asked for %s", ErrNoMatchingPlatform, FormatPlatform(*p), strings.Join(e.opts.Platforms, ", "))
			}
		}
	}
	if err := e.fetchChildren(ctx, repo, children, 1); err != nil {
		return nil, err
	}
	return img, nil
}

func (e *exporter) addManifest(d digest.Digest, b []byte, repo upstream) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.manifests[d]; !ok {
		e.manifests[d] = fetched{bytes: b, src: repo}
	}
}

// fetchChildren fetches the manifests below a manifest and records where
// each blob can be fetched from.
func (e *exporter) fetchChildren(ctx context.Context, repo upstream, children []child, depth int) error {
	if depth > maxGraphDepth {
		return fmt.Errorf("%w: manifests nested deeper than %d levels", ErrCorrupt, maxGraphDepth)
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(e.opts.Jobs))
	listed := map[digest.Digest]bool{}
	for _, c := range children {
		if !c.manifest {
			e.mu.Lock()
			if _, ok := e.blobSrc[c.desc.Digest]; !ok {
				e.blobSrc[c.desc.Digest] = repo
			}
			e.mu.Unlock()
			continue
		}
		if listed[c.desc.Digest] {
			continue
		}
		listed[c.desc.Digest] = true
		eg.Go(func() error { return e.fetchManifest(ctx, repo, c.desc, depth) })
	}
	return eg.Wait()
}

// fetchManifest fetches a child manifest and, in parallel, the manifests
// below it; images of one repository that share it wait for the one fetch.
func (e *exporter) fetchManifest(ctx context.Context, repo upstream, desc ocispec.Descriptor, depth int) error {
	// Keyed by repository too: a failure of one repository is not another's.
	_, err, _ := e.inflight.Do(repo.String()+"@"+desc.Digest.String(), func() (any, error) {
		e.mu.Lock()
		_, have := e.manifests[desc.Digest]
		e.mu.Unlock()
		if have {
			return nil, nil
		}
		m, err := repo.manifest(ctx, desc.Digest.String(), MaxManifestBytes)
		if errors.Is(err, registry.ErrDigestMismatch) {
			err = asDigestMismatch(err)
		}
		if err != nil {
			return nil, fmt.Errorf("fetching manifest %s: %w", desc.Digest, err)
		}
		if int64(len(m.Bytes)) != desc.Size {
			return nil, fmt.Errorf("manifest %s: %w: registry served %d bytes, descriptor says %d", desc.Digest, ErrDigestMismatch, len(m.Bytes), desc.Size)
		}
		_, grand, err := parseManifest(m.Bytes, desc.MediaType)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		e.addManifest(desc.Digest, m.Bytes, repo)
		e.opts.Progress.emit(Event{Kind: EventManifest, Ref: repo.String() + "@" + desc.Digest.String(), Digest: desc.Digest.String()})
		return nil, e.fetchChildren(ctx, repo, grand, depth+1)
	})
	return err
}

// fetchConfig downloads a small config blob, verified, trying again when
// the transfer breaks, as blobs are.
func (e *exporter) fetchConfig(ctx context.Context, repo upstream, desc ocispec.Descriptor) ([]byte, error) {
	return withRetries(ctx, e.client, func(ctx context.Context) ([]byte, bool, error) {
		rc, err := repo.blob(ctx, desc.Digest)
		if err != nil {
			return nil, registry.IsTemporary(err), err
		}
		defer rc.Close()
		b, err := io.ReadAll(NewVerifyReader(rc, desc))
		return b, overNetwork(repo), err
	})
}

// withRetries calls fn until it succeeds, fails with again false, the
// context ends or the client's retries run out, with backoff in between.
// The retries the transport makes inside fn count: all of them share one
// budget, so --retries N means at most N+1 requests.
func withRetries[T any](ctx context.Context, c *registry.Client, fn func(ctx context.Context) (v T, again bool, err error)) (T, error) {
	ctx, retry := c.RetryBudget(ctx)
	_, base := c.RetryPolicy()
	for attempt := 0; ; attempt++ {
		v, again, err := fn(ctx)
		if err == nil || !again || ctx.Err() != nil || !retry() {
			return v, err
		}
		if err := registry.Sleep(ctx, registry.Backoff(base, attempt)); err != nil {
			var zero T
			return zero, err
		}
	}
}

// platformOf reads the platform of an image manifest from its config.
func (e *exporter) platformOf(ctx context.Context, repo upstream, children []child) (*ocispec.Platform, error) {
	for _, c := range children {
		if !c.config || (c.desc.MediaType != ocispec.MediaTypeImageConfig && c.desc.MediaType != "application/vnd.docker.container.image.v1+json") || c.desc.Size > MaxManifestBytes {
			continue
		}
		b, err := e.fetchConfig(ctx, repo, c.desc)
		if err != nil {
			return nil, fmt.Errorf("reading config %s: %w", c.desc.Digest, err)
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(b, &cfg); err != nil || cfg.OS == "" {
			return nil, nil
		}
		e.mu.Lock()
		e.configs[c.desc.Digest] = b
		e.mu.Unlock()
		return &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}, nil
	}
	return nil, nil
}

// filterIndex rewrites an index keeping the children that match the
// platform filter, and attestation manifests that refer to a kept child.
func (e *exporter) filterIndex(b []byte, children []child) ([]byte, []child, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, nil, err
	}
	kept := map[digest.Digest]bool{}
	var out []ocispec.Descriptor
	for _, d := range idx.Manifests {
		if d.Platform != nil && e.matches(*d.Platform) {
			kept[d.Digest] = true
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		var have []string
		for _, d := range idx.Manifests {
			if d.Platform != nil && d.Platform.OS != "unknown" {
				have = append(have, FormatPlatform(*d.Platform))
			}
		}
		return nil, nil, fmt.Errorf("%w: --platform %s matches none of %s", ErrNoMatchingPlatform, strings.Join(e.opts.Platforms, ","), strings.Join(have, ", "))
	}
	for _, d := range idx.Manifests {
		if ref := d.Annotations["vnd.docker.reference.digest"]; ref != "" && kept[digest.Digest(ref)] && !kept[d.Digest] {
			kept[d.Digest] = true
			out = append(out, d)
		}
	}
	ms, err := json.Marshal(out)
	if err != nil {
		return nil, nil, err
	}
	raw["manifests"] = ms
	ann := map[string]string{}
	if a, ok := raw["annotations"]; ok {
		_ = json.Unmarshal(a, &ann)
	}
	ann[AnnotationOriginalDigest] = digest.FromBytes(b).String()
	if raw["annotations"], err = json.Marshal(ann); err != nil {
		return nil, nil, err
	}
	nb, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, err
	}
	var keptChildren []child
	for _, c := range children {
		if !c.manifest || kept[c.desc.Digest] {
			keptChildren = append(keptChildren, c)
		}
	}
	return nb, keptChildren, nil
}

func (e *exporter) matches(p ocispec.Platform) bool {
	for _, want := range e.platforms {
		if p.OS == want.OS && p.Architecture == want.Architecture && (want.Variant == "" || p.Variant == want.Variant) {
			return true
		}
	}
	return false
}

// buildIndex makes index.json and the content graph.
func (e *exporter) buildIndex(images []*image, referrers []ocispec.Descriptor) (*graph, ocispec.Index, []byte, error) {
	index := ocispec.Index{
		Versioned: specsVersioned(),
		MediaType: ocispec.MediaTypeImageIndex,
	}
	created := e.opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	version := e.opts.Version
	if version == "" {
		version = "devel"
	}
	index.Annotations = map[string]string{
		AnnotationFormatVersion: FormatVersion,
		AnnotationCreated:       created.UTC().Format(time.RFC3339),
		AnnotationFerryVersion:  version,
	}
	if len(e.opts.Platforms) > 0 {
		ps := make([]string, len(e.platforms))
		for i, p := range e.platforms {
			ps[i] = FormatPlatform(p)
		}
		index.Annotations[AnnotationPlatforms] = strings.Join(ps, ",")
	}
	roots := make([]ocispec.Descriptor, len(images))
	refs := make([]string, len(images))
	for i, img := range images {
		d := img.desc
		d.Annotations = map[string]string{AnnotationRefName: img.ref.String()}
		if img.original != "" {
			d.Annotations[AnnotationOriginalDigest] = img.original.String()
		}
		roots[i], refs[i] = d, img.ref.String()
	}
	for _, d := range referrers {
		roots, refs = append(roots, d), append(refs, d.Annotations[AnnotationRefName])
	}
	index.Manifests = roots
	g := newGraph()
	w := &walker{g: g, fetch: func(d ocispec.Descriptor) ([]byte, error) {
		f, ok := e.manifests[d.Digest]
		if !ok {
			return nil, fmt.Errorf("%w: manifest %s was not fetched", ErrMissingBlob, d.Digest)
		}
		return f.bytes, nil
	}}
	if err := w.walk(roots, refs); err != nil {
		return nil, index, nil, err
	}
	if len(e.opts.Bases) > 0 {
		a, left, err := deltaIndex(g, e.opts.Bases)
		if err != nil {
			return nil, index, nil, err
		}
		index.Annotations[AnnotationDeltaBases] = a
		e.leftOut = left
	}
	b, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return nil, index, nil, err
	}
	// Every reader refuses a larger index.json as corrupt (docs/format.md,
	// section 6): say so here, not at the other end of the air gap.
	if len(b) > MaxManifestBytes {
		return nil, index, nil, fmt.Errorf("%w: index.json would be %d bytes, more than the %d a reader accepts (%d images, %d blobs left out); export the images in several bundles",
			ErrTooLarge, len(b), MaxManifestBytes, len(roots), len(e.leftOut))
	}
	return g, index, b, nil
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// FormatPlatform formats a platform as os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
