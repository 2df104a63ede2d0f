package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/registry"
)

// Referrers: signatures, SBOMs and attestations attached to an image
// manifest, found at export through the OCI 1.1 Referrers API (or its
// fallback tag sha256-<hex>) and cosign's sha256-<hex>.sig, .att and .sbom
// tags. A bundle carries each one as an index.json entry of its own, marked
// with AnnotationSubject (docs/format.md, section 5.7).

// Limits on discovery, so that a registry cannot make an export's work
// unbounded whatever its lists of referrers say.
const (
	// maxReferrerDepth is how many levels of referrers below an image
	// manifest are followed: 1 is a signature or an SBOM of the image, 2 a
	// signature on that SBOM, and so on.
	maxReferrerDepth = 5
)

// maxReferrers bounds the referrers one export carries, and the length of
// any one list a registry answers (a variable for tests only).
var maxReferrers = 10000

// cosignSuffixes are the tags cosign attaches to sha256-<hex> of a manifest.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// fallbackTag is the tag of the referrers tag scheme (distribution-spec
// 1.1) for subject d: sha256-<hex>.
func fallbackTag(d digest.Digest) string {
	return string(d.Algorithm()) + "-" + d.Encoded()
}

// IsReferrer reports whether an index.json entry is a referrer (carries
// AnnotationSubject) rather than an exported image.
func IsReferrer(d ocispec.Descriptor) bool {
	_, ok := d.Annotations[AnnotationSubject]
	return ok
}

// artifactLinks is the part of a manifest that says what kind of artifact
// it is.
type artifactLinks struct {
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	Annotations  map[string]string    `json:"annotations"`
}

// artifactTypeOf is the type ferry shows and filters a referrer by: the
// manifest's artifactType; else its config's media type, unless that is the
// generic image config or the empty descriptor (cosign's signature tags),
// in which case the media type of its first layer.
func artifactTypeOf(a artifactLinks) string {
	if a.ArtifactType != "" {
		return a.ArtifactType
	}
	if a.Config != nil && a.Config.MediaType != ocispec.MediaTypeImageConfig && a.Config.MediaType != ocispec.MediaTypeEmptyJSON && a.Config.MediaType != "" {
		return a.Config.MediaType
	}
	if len(a.Layers) > 0 {
		return a.Layers[0].MediaType
	}
	return ""
}

// referrerDescriptor is a referrer's entry in a list of referrers, as
// distribution-spec 1.1 defines it: artifactType is the manifest's, else its
// config's media type; annotations are the manifest's.
func referrerDescriptor(m *Manifest) (ocispec.Descriptor, error) {
	var a artifactLinks
	if err := json.Unmarshal(m.Bytes, &a); err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: m.Descriptor.MediaType, Digest: m.Descriptor.Digest, Size: m.Descriptor.Size, ArtifactType: a.ArtifactType, Annotations: a.Annotations}
	if d.ArtifactType == "" && a.Config != nil {
		d.ArtifactType = a.Config.MediaType
	}
	return d, nil
}

// referrerSearch is the state of one export's discovery.
type referrerSearch struct {
	e     *exporter
	types map[string]bool // kept artifact types; nil keeps all
	// slots bounds the lookups in flight, all images together (each sends
	// up to four requests at once)
	slots chan struct{}
	mu    sync.Mutex
	count int
}

// findReferrers finds the referrers of every image: for each image manifest
// digest (an image's own manifest, each platform manifest of an index, and,
// recursively, each referrer found), the referrer descriptors found in the
// image's repository, with ArtifactType set and AnnotationRefName naming the
// referrer (REPO@DIGEST, or REPO:sha256-<hex>.sig for a cosign tag). Every
// referrer's manifests are fetched and recorded for the export, and their
// blobs located. Only images read from a registry are searched.
func (e *exporter) findReferrers(ctx context.Context, images []*image) (map[digest.Digest][]ocispec.Descriptor, error) {
	s := &referrerSearch{e: e, slots: make(chan struct{}, max(1, metaJobs(e.opts.Jobs)/2))}
	if len(e.opts.ReferrerTypes) > 0 {
		s.types = map[string]bool{}
		for _, t := range e.opts.ReferrerTypes {
			s.types[t] = true
		}
	}
	found := make([]map[digest.Digest][]ocispec.Descriptor, len(images))
	errs := make([]error, len(images))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var eg errgroup.Group
	eg.SetLimit(metaJobs(e.opts.Jobs))
	for i, img := range images {
		src, ok := img.src.(registrySource)
		if !ok {
			continue
		}
		eg.Go(func() error {
			found[i] = map[digest.Digest][]ocispec.Descriptor{}
			errs[i] = s.image(ctx, src, img, found[i])
			if errs[i] != nil && ctx.Err() == nil {
				cancel()
			}
			return nil
		})
	}
	// The referrers of an index --platform rewrote refer to the source
	// index: not carried, but named, so that nothing is left behind
	// without a word (the export summary says so).
	for _, img := range images {
		if src, ok := img.src.(registrySource); ok && img.original != "" && !e.opts.NoReferrers {
			eg.Go(func() error {
				if names := leftBehind(ctx, src, img.original); len(names) > 0 {
					e.mu.Lock()
					if e.leftBehind == nil {
						e.leftBehind = map[digest.Digest][]string{}
					}
					e.leftBehind[img.original] = names
					e.mu.Unlock()
				}
				return nil
			})
		}
	}
	_ = eg.Wait()
	var failures []*RefError
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			failures = append(failures, &RefError{Ref: images[i].ref.String(), Err: fmt.Errorf("finding its referrers (--no-referrers leaves them out): %w", err)})
		}
	}
	if len(failures) > 0 {
		return nil, &ResolveError{Failures: failures}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	out := map[digest.Digest][]ocispec.Descriptor{}
	named := map[string]bool{} // subject digest and reference name
	for _, f := range found {
		for d, list := range f {
			for _, r := range list {
				if k := d.String() + " " + r.Annotations[AnnotationRefName]; !named[k] {
					named[k] = true
					out[d] = append(out[d], r)
				}
			}
		}
	}
	return out, nil
}

// subjectsOf lists the manifests of img whose referrers are searched: its
// own manifest and, for an index, each platform manifest it lists (not
// the attestation manifests of unknown platform that buildx adds).
func (e *exporter) subjectsOf(img *image) []digest.Digest {
	out := []digest.Digest{img.desc.Digest}
	for _, d := range e.indexEntries(img) {
		if d.Platform != nil && d.Platform.OS == "unknown" {
			continue
		}
		if !slices.Contains(out, d.Digest) {
			out = append(out, d.Digest)
		}
	}
	return out
}

// indexEntries lists the manifests img's index lists (none for an image
// manifest).
func (e *exporter) indexEntries(img *image) []ocispec.Descriptor {
	if !IsIndex(img.desc.MediaType) {
		return nil
	}
	e.mu.Lock()
	b := e.manifests[img.desc.Digest].bytes
	e.mu.Unlock()
	var idx ocispec.Index
	if json.Unmarshal(b, &idx) != nil {
		return nil
	}
	return idx.Manifests
}

// subjectDescriptors returns the descriptors index.json and the image's
// index give its manifests: the image's own and, for an index, those of
// the manifests it lists.
func (e *exporter) subjectDescriptors(img *image) map[digest.Digest]ocispec.Descriptor {
	out := map[digest.Digest]ocispec.Descriptor{img.desc.Digest: img.desc}
	for _, d := range e.indexEntries(img) {
		if _, ok := out[d.Digest]; !ok {
			out[d.Digest] = d
		}
	}
	return out
}

// image searches the referrers of one image, breadth first, level by
// level, the subjects of a level at once.
func (s *referrerSearch) image(ctx context.Context, src registrySource, img *image, found map[digest.Digest][]ocispec.Descriptor) error {
	visited := map[digest.Digest]bool{}
	level := s.e.subjectsOf(img)
	for _, d := range level {
		visited[d] = true
	}
	// The descriptors of the subjects as the bundle will list them: a
	// referrer's subject must agree (its size and media type), else the
	// bundle would list one manifest two ways.
	known := s.e.subjectDescriptors(img)
	for depth := 1; len(level) > 0; depth++ {
		results := make([][]ocispec.Descriptor, len(level))
		eg, gctx := errgroup.WithContext(ctx)
		for i, subject := range level {
			eg.Go(func() error {
				select {
				case s.slots <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				defer func() { <-s.slots }()
				var err error
				results[i], err = s.lookup(gctx, src, img.ref, subject, known[subject])
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
		var next []digest.Digest
		for i, subject := range level {
			refs := results[i]
			if len(refs) > 0 && depth > maxReferrerDepth {
				return fmt.Errorf("%w: referrers nest deeper than %d levels below the image (%s has %d); keep some with --referrers-type",
					ErrReferrer, maxReferrerDepth, subject, len(refs))
			}
			slices.SortFunc(refs, func(a, b ocispec.Descriptor) int {
				return strings.Compare(a.Annotations[AnnotationRefName], b.Annotations[AnnotationRefName])
			})
			for _, r := range refs {
				found[subject] = append(found[subject], r)
				if _, ok := known[r.Digest]; !ok {
					known[r.Digest] = ocispec.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size}
				}
				if !visited[r.Digest] {
					visited[r.Digest] = true
					next = append(next, r.Digest)
				}
			}
		}
		level = next
	}
	return nil
}

// take counts n more referrers against the export's limit.
func (s *referrerSearch) take(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count += n; s.count > maxReferrers {
		return fmt.Errorf("%w: more than %d referrers in all; leave some out with --referrers-type, or all with --no-referrers", ErrTooLarge, maxReferrers)
	}
	return nil
}

// lookup returns the referrers of subject in src: those of the Referrers
// API (or of the fallback tag where the registry has no API) and cosign's
// tags, each fetched, checked and kept if its type is wanted.
func (s *referrerSearch) lookup(ctx context.Context, src registrySource, ref Reference, subject digest.Digest, sd ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	// The list and the cosign tags are asked for at once.
	var listed []ocispec.Descriptor
	type tagged struct {
		m    *Manifest
		a    artifactLinks
		kids []child
	}
	tags := make([]*tagged, len(cosignSuffixes))
	eg, gctx := errgroup.WithContext(ctx)
	if s.e.opts.Jobs == 1 {
		eg.SetLimit(1) // -j 1: one request at a time
	}
	eg.Go(func() error {
		var err error
		listed, err = s.list(gctx, src, subject)
		return err
	})
	for i, suffix := range cosignSuffixes {
		eg.Go(func() error {
			tag := fallbackTag(subject) + suffix
			// HEAD first: most images have no such tag, and a registry
			// that counts pulls (Docker Hub) does not count a HEAD.
			d, err := src.client.HeadManifest(gctx, src.repo, tag)
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("cosign tag %s: %w", tag, err)
			}
			m, a, kids, err := s.fetch(gctx, src, d.String(), ocispec.Descriptor{})
			if errors.Is(err, registry.ErrNotFound) {
				return nil // moved since the HEAD
			}
			if err != nil {
				return fmt.Errorf("cosign tag %s: %w", tag, err)
			}
			// cosign's tags have no subject; one that names another
			// manifest would carry it, and be listed as its referrer.
			if a.Subject != nil && a.Subject.Digest != subject {
				return fmt.Errorf("%w: %s:%s holds %s, whose subject is %s, not %s: the registry's cosign tag is wrong; leave referrers out with --no-referrers",
					ErrReferrer, src, tag, m.Descriptor.Digest, a.Subject.Digest, subject)
			}
			tags[i] = &tagged{m, a, kids}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	if len(listed) > maxReferrers { // a fallback tag; apiReferrers counts its pages
		return nil, fmt.Errorf("%w: %s lists more than %d referrers of %s, the most ferry carries; leave them out with --no-referrers",
			ErrTooLarge, src, maxReferrers, subject)
	}
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, d := range listed {
		if err := validateDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("%w: the list of referrers of %s in %s: %w", ErrReferrer, subject, src, err)
		}
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		if err := s.take(1); err != nil {
			return nil, err
		}
		m, a, kids, err := s.fetch(ctx, src, d.Digest.String(), d)
		if err != nil {
			return nil, fmt.Errorf("referrer %s of %s: %w", d.Digest, subject, err)
		}
		if a.Subject == nil || a.Subject.Digest != subject {
			got := "none"
			if a.Subject != nil {
				got = a.Subject.Digest.String()
			}
			return nil, fmt.Errorf("%w: %s lists %s as a referrer of %s, but its subject is %s: the registry's list of referrers is wrong; leave referrers out with --no-referrers",
				ErrReferrer, src, d.Digest, subject, got)
		}
		r := ref
		r.Tag, r.Digest = "", m.Descriptor.Digest
		if d, ok, err := s.keep(ctx, src, r, m, a, kids, sd, subject); err != nil {
			return nil, err
		} else if ok {
			out = append(out, d)
		}
	}
	for i, suffix := range cosignSuffixes {
		if tags[i] == nil {
			continue
		}
		if err := s.take(1); err != nil {
			return nil, err
		}
		r := ref
		r.Tag, r.Digest = fallbackTag(subject)+suffix, ""
		if d, ok, err := s.keep(ctx, src, r, tags[i].m, tags[i].a, tags[i].kids, sd, subject); err != nil {
			return nil, err
		} else if ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// maxReferrerPages bounds the pages of one list of referrers followed.
const maxReferrerPages = 64

// apiReferrers reads every page of the list the Referrers API of repo
// gives for subject: ErrNoReferrersAPI where the registry has none.
func apiReferrers(ctx context.Context, c *registry.Client, repo name.Repository, subject digest.Digest) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	page := ""
	for n := 0; ; n++ {
		if n == maxReferrerPages {
			return nil, fmt.Errorf("%w: %s gives more than %d pages of referrers of %s; leave them out with --no-referrers", ErrTooLarge, repo.Name(), maxReferrerPages, subject)
		}
		m, err := withRetries(ctx, c, func(ctx context.Context) (*registry.Manifest, bool, error) {
			m, err := c.Referrers(ctx, repo, subject, page, MaxManifestBytes)
			return m, registry.IsTemporary(err), err
		})
		if err != nil {
			return nil, err
		}
		list, err := parseReferrers(m.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: the list of referrers of %s in %s is not an OCI image index", ErrReferrer, subject, repo.Name())
		}
		// A page after the first brings a referrer not listed before:
		// empty pages, or the same referrers again, would cost 64 pages of
		// 4 MiB for every subject and carry nothing.
		fresh := 0
		for _, d := range list {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, d)
				fresh++
			}
		}
		if n > 0 && fresh == 0 {
			return nil, fmt.Errorf("%w: page %d of the list of referrers of %s in %s lists no referrer that earlier pages did not; leave referrers out with --no-referrers",
				ErrReferrer, n+1, subject, repo.Name())
		}
		if len(out) > maxReferrers {
			return nil, fmt.Errorf("%w: %s lists more than %d referrers of %s, the most ferry carries; leave them out with --no-referrers",
				ErrTooLarge, repo.Name(), maxReferrers, subject)
		}
		if page = m.Next; page == "" {
			return out, nil
		}
	}
}

// parseReferrers reads a list of referrers: an OCI image index. Only the
// media type, digest and size of each are kept (and used): a list is held
// while its pages are read, and a registry's annotations could be
// megabytes a page.
func parseReferrers(b []byte) ([]ocispec.Descriptor, error) {
	var idx struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []struct {
			MediaType string        `json:"mediaType"`
			Digest    digest.Digest `json:"digest"`
			Size      int64         `json:"size"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil || idx.SchemaVersion != 2 || (idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex) {
		return nil, errors.New("not an OCI image index")
	}
	out := make([]ocispec.Descriptor, len(idx.Manifests))
	for i, d := range idx.Manifests {
		out[i] = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	}
	return out, nil
}

// list asks the Referrers API for the referrers of subject, or reads the
// fallback tag where the registry has no API.
func (s *referrerSearch) list(ctx context.Context, src registrySource, subject digest.Digest) ([]ocispec.Descriptor, error) {
	list, err := apiReferrers(ctx, src.client, src.repo, subject)
	if !errors.Is(err, registry.ErrNoReferrersAPI) {
		return list, err
	}
	tag := fallbackTag(subject)
	m, err := src.manifest(ctx, tag, MaxManifestBytes)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the referrers tag %s: %w", tag, err)
	}
	if list, err = parseReferrers(m.Bytes); err != nil {
		return nil, fmt.Errorf("%w: the referrers tag %s in %s is not an OCI image index", ErrReferrer, tag, src)
	}
	return list, nil
}

// fetch reads a referrer's manifest by digest (checked against want when
// it has a size) or by tag, with the manifests below it, and locates its
// blobs.
func (s *referrerSearch) fetch(ctx context.Context, src registrySource, ref string, want ocispec.Descriptor) (*Manifest, artifactLinks, []child, error) {
	var a artifactLinks
	rm, err := src.manifest(ctx, ref, MaxManifestBytes)
	if errors.Is(err, registry.ErrDigestMismatch) {
		err = asDigestMismatch(err)
	}
	if err != nil {
		return nil, a, nil, err
	}
	if want.Size != 0 && int64(len(rm.Bytes)) != want.Size {
		return nil, a, nil, fmt.Errorf("%w: registry served %d bytes, its list of referrers says %d", ErrDigestMismatch, len(rm.Bytes), want.Size)
	}
	mt, children, err := parseManifest(rm.Bytes, rm.MediaType)
	if err != nil {
		return nil, a, nil, err
	}
	_ = json.Unmarshal(rm.Bytes, &a) // parseManifest has read it as JSON
	m := &Manifest{Descriptor: ocispec.Descriptor{MediaType: mt, Digest: rm.Digest, Size: int64(len(rm.Bytes))}, Bytes: rm.Bytes}
	return m, a, children, nil
}

// keep records a referrer for the export if its type is wanted, and
// returns its index.json descriptor.
func (s *referrerSearch) keep(ctx context.Context, src registrySource, ref Reference, m *Manifest, a artifactLinks, kids []child, sd ocispec.Descriptor, subject digest.Digest) (ocispec.Descriptor, bool, error) {
	at := artifactTypeOf(a)
	if s.types != nil && !s.types[at] {
		return ocispec.Descriptor{}, false, nil
	}
	if a.Subject != nil && sd.Digest != "" && (a.Subject.Size != sd.Size || !sameMediaType(a.Subject.MediaType, sd.MediaType)) {
		return ocispec.Descriptor{}, false, fmt.Errorf("%w: %s lists %s as a referrer of %s, which is %d bytes of %s, but the referrer's subject says %d bytes of %s; leave it out with --referrers-type, or all referrers with --no-referrers",
			ErrReferrer, src, m.Descriptor.Digest, subject, sd.Size, quoteType(sd.MediaType), a.Subject.Size, quoteType(a.Subject.MediaType))
	}
	s.e.addManifest(m.Descriptor.Digest, m.Bytes, src)
	if err := s.e.fetchChildren(ctx, src, kids, 1); err != nil {
		return ocispec.Descriptor{}, false, fmt.Errorf("referrer %s: %w", ref, err)
	}
	s.e.opts.Progress.emit(Event{Kind: EventManifest, Ref: ref.String(), Digest: m.Descriptor.Digest.String()})
	d := m.Descriptor
	d.ArtifactType = at
	d.Annotations = map[string]string{
		AnnotationRefName: ref.String(),
		AnnotationSubject: subject.String(),
	}
	return d, true, nil
}

// referrerEntries orders the referrers found for index.json: image by
// image, each image's manifests in order, each referrer followed by its
// own; a referrer named twice (by two tags of one image) once.
func (e *exporter) referrerEntries(images []*image, found map[digest.Digest][]ocispec.Descriptor) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	// A cosign tag also given as an image (an images list from before
	// referrers were carried) is the image's entry: named twice, it could
	// hold two digests if the tag moved meanwhile, which no import takes.
	named := map[string]bool{}
	for _, img := range images {
		if img.ref.Tag != "" {
			named[img.ref.Name()+":"+img.ref.Tag] = true
		}
	}
	var visit func(d digest.Digest, depth int)
	visit = func(d digest.Digest, depth int) {
		if depth > maxReferrerDepth {
			return
		}
		for _, r := range found[d] {
			n := r.Annotations[AnnotationRefName]
			if named[n] {
				continue
			}
			named[n] = true
			out = append(out, r)
			visit(r.Digest, depth+1)
		}
	}
	for _, img := range images {
		for _, d := range e.subjectsOf(img) {
			visit(d, 1)
		}
	}
	return out
}

// Referrer is a referrer carried in a bundle: an index.json entry with
// AnnotationSubject.
type Referrer struct {
	// Ref is the entry's reference: REPO@DIGEST, or REPO:sha256-<hex>.sig
	// (.att, .sbom) for a cosign tag.
	Ref        string
	Descriptor ocispec.Descriptor
	// Subject is the manifest it refers to: a manifest of an image, or
	// another referrer.
	Subject digest.Digest
	// ArtifactType is what ferry shows and filters it by (see
	// ExportOptions.ReferrerTypes).
	ArtifactType string
	// Size is its manifest and the blobs it lists, its subject not included.
	Size int64
}

// checkReferrers applies the rules of docs/format.md, section 5.7, to the
// index.json entries marked as referrers, once every manifest is read:
// whichever way a bundle is read, it has the same referrers or is refused.
func (r *Reader) checkReferrers() error {
	attached := r.attachedReferrers()
	for i, d := range r.index.Manifests {
		s, ok := d.Annotations[AnnotationSubject]
		if !ok {
			continue
		}
		where := fmt.Sprintf("index.json entry %d (%s)", i, truncate(d.Annotations[AnnotationRefName], 200))
		subject := digest.Digest(s)
		if err := validateDigest(subject); err != nil {
			return inBundle(fmt.Errorf("%w: %s: annotation %s: %w", ErrReferrer, where, AnnotationSubject, err))
		}
		if _, ok := r.g.manifests[subject]; !ok {
			return inBundle(fmt.Errorf("%w: %s is a referrer of %s, which the bundle does not hold", ErrReferrer, where, subject))
		}
		var a artifactLinks
		_ = json.Unmarshal(r.g.manifests[d.Digest].Bytes, &a) // parsed when read
		ref, _ := ParseReference(d.Annotations[AnnotationRefName])
		cosign := false
		for _, suffix := range cosignSuffixes {
			cosign = cosign || ref.Tag == fallbackTag(subject)+suffix
		}
		if !cosign && (a.Subject == nil || a.Subject.Digest != subject) {
			return inBundle(fmt.Errorf("%w: %s is marked as a referrer of %s, but neither its manifest's subject nor a cosign tag names it", ErrReferrer, where, subject))
		}
		// A cosign tag whose manifest has a subject: import would list it
		// as a referrer of that subject, inspect under the one marked.
		if a.Subject != nil && a.Subject.Digest != subject {
			return inBundle(fmt.Errorf("%w: %s is marked as a referrer of %s, but its manifest's subject is %s", ErrReferrer, where, subject, a.Subject.Digest))
		}
		// Import pushes a tagged entry by its tag: a referrer may set its
		// cosign tag, no other.
		if ref.Tag != "" && !cosign {
			return inBundle(fmt.Errorf("%w: %s names the tag %s: a referrer is named REPOSITORY@DIGEST, or by the cosign tag %s.sig (.att, .sbom) of its subject",
				ErrReferrer, where, truncate(ref.Tag, 200), fallbackTag(subject)))
		}
		// Import pushes every entry; inspect lists a referrer only under an
		// image of its repository.
		if !attached[i] {
			return inBundle(fmt.Errorf("%w: %s is a referrer of %s, which neither an image of %s nor a referrer listed before it holds",
				ErrReferrer, where, subject, truncate(ref.Name(), 200)))
		}
	}
	return nil
}

// attachedReferrers marks the index.json entries of the referrers that
// Images lists under an image (see referrersOf): those whose subject is a
// manifest of an image of the same repository, or a referrer of it listed
// before them.
func (r *Reader) attachedReferrers() map[int]bool {
	mine := map[string]map[digest.Digest]bool{} // repository → manifests
	for _, d := range r.index.Manifests {
		if IsReferrer(d) {
			continue
		}
		ref, err := ParseReference(d.Annotations[AnnotationRefName])
		if err != nil {
			continue
		}
		m := mine[ref.Name()]
		if m == nil {
			m = map[digest.Digest]bool{}
			mine[ref.Name()] = m
		}
		if m[d.Digest] {
			continue // another tag of an image already seen
		}
		r.g.closure(d.Digest, func(x digest.Digest, mf *Manifest) bool {
			if mf != nil {
				m[x] = true
			}
			return true
		})
	}
	out := map[int]bool{}
	for i, d := range r.index.Manifests {
		s, ok := d.Annotations[AnnotationSubject]
		if !ok {
			continue
		}
		ref, err := ParseReference(d.Annotations[AnnotationRefName])
		if err != nil || !mine[ref.Name()][digest.Digest(s)] {
			continue
		}
		out[i] = true
		mine[ref.Name()][d.Digest] = true
	}
	return out
}

// referrersOf returns the referrers carried for the image of repository
// repo with root digest root: those of the same repository whose subject
// is a manifest of the image, and, recursively, their own referrers.
func (r *Reader) referrersOf(repo string, root digest.Digest) []Referrer {
	mine := map[digest.Digest]bool{}
	r.g.closure(root, func(d digest.Digest, m *Manifest) bool {
		if m != nil {
			mine[d] = true
		}
		return true
	})
	var out []Referrer
	// index.json lists each referrer after its subject's referrer, so one
	// pass in order finds the nested ones.
	for _, d := range r.index.Manifests {
		s, ok := d.Annotations[AnnotationSubject]
		if !ok || !mine[digest.Digest(s)] {
			continue
		}
		if ref, err := ParseReference(d.Annotations[AnnotationRefName]); err != nil || ref.Name() != repo {
			continue // the same image in another repository has its own
		}
		mine[d.Digest] = true
		var a artifactLinks
		_ = json.Unmarshal(r.g.manifests[d.Digest].Bytes, &a)
		out = append(out, Referrer{
			Ref:          d.Annotations[AnnotationRefName],
			Descriptor:   d,
			Subject:      digest.Digest(s),
			ArtifactType: artifactTypeOf(a),
			Size:         r.ownSize(d.Digest),
		})
	}
	return out
}

// ownSize is the size of a manifest and of the blobs and manifests it
// lists, but not its subject.
func (r *Reader) ownSize(d digest.Digest) int64 {
	m := r.g.manifests[d]
	total := m.Descriptor.Size
	var a artifactLinks
	_ = json.Unmarshal(m.Bytes, &a)
	for _, c := range m.kids {
		if a.Subject != nil && c.desc.Digest == a.Subject.Digest {
			continue
		}
		total += c.desc.Size
	}
	return total
}

// referrerIndexer is a target where referrers need more than their push
// to be found: a registry without the Referrers API, where the fallback
// tag sha256-<hex> must list them.
type referrerIndexer interface {
	// indexReferrers makes refs, pushed to repo, resolve as referrers of
	// subject, and reports whether it wrote the fallback tag.
	indexReferrers(ctx context.Context, repo string, subject digest.Digest, refs []ocispec.Descriptor) (bool, error)
	// checkReferrersTag fails, before anything is pushed, where
	// indexReferrers would refuse to merge into the fallback tag.
	checkReferrersTag(ctx context.Context, repo string, subject digest.Digest) error
}

// indexReferrers makes every referrer pushed with a subject resolve at the
// destination: through the Referrers API where the registry lists it, or
// else through the fallback tag, merged with what the tag already lists.
// It runs after every manifest and tag is pushed.
func (im *importer) indexReferrers(ctx context.Context) error {
	ri, ok := im.dst.(referrerIndexer)
	if !ok {
		return nil
	}
	keys, groups, err := im.referrerGroups()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(im.opts.Jobs))
	for _, k := range keys {
		eg.Go(func() error {
			wrote, err := ri.indexReferrers(gctx, k.repo, k.subject, groups[k])
			tag := im.dst.display(k.repo, fallbackTag(k.subject))
			if err != nil {
				return fmt.Errorf("listing the referrers of %s at %s: %w", k.subject, tag, err)
			}
			if wrote {
				mu.Lock()
				im.res.ReferrerTags++
				mu.Unlock()
				im.opts.Progress.emit(Event{Kind: EventManifest, Ref: tag, Digest: k.subject.String()})
			}
			return nil
		})
	}
	return eg.Wait()
}

// checkReferrerTags reads, before anything is pushed, the fallback tags
// that indexReferrers would merge into where the destination has no
// Referrers API: one that holds anything but an OCI image index fails the
// import now, rather than once every tag has moved.
func (im *importer) checkReferrerTags(ctx context.Context) error {
	ri, ok := im.dst.(referrerIndexer)
	if !ok {
		return nil
	}
	keys, _, err := im.referrerGroups()
	if err != nil {
		return err
	}
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(im.opts.Jobs))
	for _, k := range keys {
		eg.Go(func() error {
			if err := ri.checkReferrersTag(gctx, k.repo, k.subject); err != nil {
				return fmt.Errorf("listing the referrers of %s at %s, before pushing anything: %w", k.subject, im.dst.display(k.repo, fallbackTag(k.subject)), err)
			}
			return nil
		})
	}
	return eg.Wait()
}

// referrerKey is a subject in a destination repository.
type referrerKey struct {
	repo    string
	subject digest.Digest
}

// referrerGroups groups the referrers pushed with a subject by repository
// and subject, in index.json order.
func (im *importer) referrerGroups() ([]referrerKey, map[referrerKey][]ocispec.Descriptor, error) {
	type key = referrerKey
	groups := map[key][]ocispec.Descriptor{}
	var keys []key
	for _, t := range im.targets {
		if !IsReferrer(t.root) {
			continue
		}
		m, _ := im.r.Manifest(t.root.Digest)
		var a artifactLinks
		_ = json.Unmarshal(m.Bytes, &a)
		if a.Subject == nil {
			continue // a cosign tag: its name is how it is found
		}
		d, err := referrerDescriptor(m)
		if err != nil {
			return nil, nil, err
		}
		k := key{t.repo, a.Subject.Digest}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		if !slices.ContainsFunc(groups[k], func(x ocispec.Descriptor) bool { return x.Digest == d.Digest }) {
			groups[k] = append(groups[k], d)
		}
	}
	return keys, groups, nil
}

var _ referrerIndexer = (*registryTarget)(nil)

func (t *registryTarget) indexReferrers(ctx context.Context, repoName string, subject digest.Digest, refs []ocispec.Descriptor) (bool, error) {
	repo := t.repos[repoName]
	api, err := apiReferrers(ctx, t.client, repo, subject)
	switch {
	case err == nil:
		have := map[digest.Digest]bool{}
		for _, d := range api {
			have[d.Digest] = true
		}
		if !slices.ContainsFunc(refs, func(r ocispec.Descriptor) bool { return !have[r.Digest] }) {
			return false, nil // the Referrers API lists them all
		}
		// An API that does not list what was just pushed with a subject:
		// the fallback tag too, so that they resolve.
	case errors.Is(err, registry.ErrNoReferrersAPI):
	default:
		return false, fmt.Errorf("asking its Referrers API: %w", err)
	}
	_, wrote, err := t.mergeReferrersTag(ctx, repo, subject, refs)
	return wrote, err
}

// mergeReferrersTag adds to the fallback tag of subject in repo the refs
// it does not list, keeping everything it lists, and reports the digest
// the tag holds afterwards and whether it was written.
func (t *registryTarget) mergeReferrersTag(ctx context.Context, repo name.Repository, subject digest.Digest, refs []ocispec.Descriptor) (digest.Digest, bool, error) {
	raw, listed, cur, err := t.readReferrersTag(ctx, repo, subject)
	if err != nil {
		return "", false, err
	}
	tag := fallbackTag(subject)
	have := map[digest.Digest]bool{}
	for _, l := range listed {
		var d ocispec.Descriptor
		if json.Unmarshal(l, &d) == nil {
			have[d.Digest] = true
		}
	}
	added := 0
	for _, r := range refs {
		if have[r.Digest] {
			continue
		}
		b, err := json.Marshal(r)
		if err != nil {
			return "", false, err
		}
		listed = append(listed, b)
		have[r.Digest] = true
		added++
	}
	if added == 0 {
		return cur, false, nil // another import, or another tool, listed them
	}
	if listed == nil {
		listed = []json.RawMessage{}
	}
	var err2 error
	if raw["manifests"], err2 = json.Marshal(listed); err2 != nil {
		return "", false, err2
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return "", false, err
	}
	if len(b) > MaxManifestBytes {
		return "", false, fmt.Errorf("%w: the tag would list %d referrers in %d bytes, more than the %d a manifest may have", ErrTooLarge, len(listed), len(b), MaxManifestBytes)
	}
	if err := t.client.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageIndex, b); err != nil {
		return "", false, fmt.Errorf("writing the tag: %w", err)
	}
	return digest.FromBytes(b), true, nil
}

// readReferrersTag reads the fallback tag of subject in repo: its fields
// and the descriptors it lists, as they are (a new index when there is no
// tag), and its digest (empty when none); ErrConflict when it holds
// anything but an OCI image index.
func (t *registryTarget) readReferrersTag(ctx context.Context, repo name.Repository, subject digest.Digest) (map[string]json.RawMessage, []json.RawMessage, digest.Digest, error) {
	cur, err := t.client.GetManifest(ctx, repo, fallbackTag(subject), MaxManifestBytes)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return map[string]json.RawMessage{
			"schemaVersion": json.RawMessage(`2`),
			"mediaType":     json.RawMessage(`"` + ocispec.MediaTypeImageIndex + `"`),
		}, nil, "", nil
	case err != nil:
		return nil, nil, "", fmt.Errorf("reading the tag: %w", err)
	}
	var raw map[string]json.RawMessage
	var idx struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(cur.Bytes, &idx) != nil || idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || json.Unmarshal(cur.Bytes, &raw) != nil {
		return nil, nil, "", fmt.Errorf("%w: the tag holds %s, not the OCI image index of the referrers tag scheme; ferry leaves it as it is: move it away, then import again",
			ErrConflict, quoteType(cur.MediaType))
	}
	return raw, idx.Manifests, cur.Digest, nil
}

func (t *registryTarget) checkReferrersTag(ctx context.Context, repoName string, subject digest.Digest) error {
	repo := t.repos[repoName]
	_, err := apiReferrers(ctx, t.client, repo, subject)
	switch {
	case err == nil:
		return nil // the API will list them; the tag is not written
	case errors.Is(err, registry.ErrNoReferrersAPI):
	default:
		return fmt.Errorf("asking its Referrers API: %w", err)
	}
	_, _, _, err = t.readReferrersTag(ctx, repo, subject)
	return err
}

// leftBehind names what refers to d at src, as far as one look tells
// (best effort: the cosign tags, and the first page of the Referrers API
// or of the fallback tag): "sha256-<hex>.sig", or a referrer's digest.
func leftBehind(ctx context.Context, src registrySource, d digest.Digest) []string {
	var (
		mu    sync.Mutex
		names []string
	)
	var eg errgroup.Group
	for _, suffix := range cosignSuffixes {
		eg.Go(func() error {
			if _, err := src.client.HeadManifest(ctx, src.repo, fallbackTag(d)+suffix); err == nil {
				mu.Lock()
				names = append(names, fallbackTag(d)+suffix)
				mu.Unlock()
			}
			return nil
		})
	}
	eg.Go(func() error {
		m, err := src.client.Referrers(ctx, src.repo, d, "", MaxManifestBytes)
		if errors.Is(err, registry.ErrNoReferrersAPI) {
			m, err = src.client.GetManifest(ctx, src.repo, fallbackTag(d), MaxManifestBytes)
		}
		var idx ocispec.Index
		if err != nil || json.Unmarshal(m.Bytes, &idx) != nil {
			return nil
		}
		mu.Lock()
		for _, r := range idx.Manifests {
			names = append(names, r.Digest.String())
		}
		mu.Unlock()
		return nil
	})
	_ = eg.Wait()
	slices.Sort(names)
	return slices.Compact(names)
}
