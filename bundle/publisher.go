package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/cosign"
	"github.com/ferryproject/ferry/internal/registry"
)

// ErrSignatureRequired: ExportOptions.RequireSignature or
// ImportOptions.RequireSignature is set and an image carries no publisher
// signature the policy accepts. Export writes nothing and Import pushes
// nothing. The error is a *PublisherSignatureError naming every such image,
// or, for an Import from a Reader without random access, says that the
// check needs one.
var ErrSignatureRequired = errors.New("publisher signature required")

// PublisherKey is a public key trusted to sign images (cosign.pub).
type PublisherKey struct{ k *cosign.Key }

// ParsePublisherKey reads a cosign public key: PEM "PUBLIC KEY" of an ECDSA
// (P-256, P-384, P-521), Ed25519 or RSA (2048 bits or more) key. name says
// where it came from, for messages.
func ParsePublisherKey(name string, pem []byte) (PublisherKey, error) {
	k, err := cosign.ParseKey(name, pem)
	if err != nil {
		return PublisherKey{}, err
	}
	return PublisherKey{k}, nil
}

// Fingerprint is "sha256:<hex>" of the key's PKIX DER encoding.
func (k PublisherKey) Fingerprint() string { return k.k.Fingerprint() }

// CertificateIdentity is a keyless signer, as cosign's
// --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]
// name it: one of Subject and SubjectRegexp, one of Issuer and
// IssuerRegexp. Regular expressions are Go's (RE2), matched anywhere unless
// anchored, as cosign does.
type CertificateIdentity struct {
	Subject, SubjectRegexp string
	Issuer, IssuerRegexp   string
}

// SignaturePolicy says which publisher signatures an image must carry; see
// NewSignaturePolicy.
type SignaturePolicy struct{ p *cosign.Policy }

// NewSignaturePolicy makes a policy that accepts a signature by any of keys,
// or by a certificate that names one of identities and chains to a
// certificate authority of trustedRoot (the JSON of a Sigstore
// trusted_root.json; required with identities). Checks are offline: see
// docs/security.md, "Publisher signatures".
func NewSignaturePolicy(keys []PublisherKey, identities []CertificateIdentity, trustedRoot []byte) (*SignaturePolicy, error) {
	p := &cosign.Policy{}
	for i, k := range keys {
		if k.k == nil {
			return nil, fmt.Errorf("publisher key %d is empty: make keys with ParsePublisherKey", i+1)
		}
		p.Keys = append(p.Keys, k.k)
	}
	for i, id := range identities {
		var c cosign.Identity
		switch {
		case (id.Subject == "") == (id.SubjectRegexp == ""):
			return nil, fmt.Errorf("certificate identity %d: give exactly one of the subject and the subject regexp", i+1)
		case (id.Issuer == "") == (id.IssuerRegexp == ""):
			return nil, fmt.Errorf("certificate identity %d: give exactly one of the OIDC issuer and the issuer regexp", i+1)
		}
		c.Subject, c.Issuer = id.Subject, id.Issuer
		var err error
		if id.SubjectRegexp != "" {
			if c.SubjectRegexp, err = regexp.Compile(id.SubjectRegexp); err != nil {
				return nil, fmt.Errorf("certificate identity regexp %q: %w", id.SubjectRegexp, err)
			}
		}
		if id.IssuerRegexp != "" {
			if c.IssuerRegexp, err = regexp.Compile(id.IssuerRegexp); err != nil {
				return nil, fmt.Errorf("certificate OIDC issuer regexp %q: %w", id.IssuerRegexp, err)
			}
		}
		p.Identities = append(p.Identities, c)
	}
	if trustedRoot != nil {
		r, err := cosign.ParseTrustedRoot(trustedRoot)
		if err != nil {
			return nil, err
		}
		p.Root = r
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &SignaturePolicy{p}, nil
}

// PublisherSignatureError lists the images without a publisher signature
// that the policy accepts. It wraps ErrSignatureRequired and each image's
// reason.
type PublisherSignatureError struct {
	// Stage is "export" or "import".
	Stage    string
	Checked  int
	Failures []*RefError
}

func (e *PublisherSignatureError) Error() string {
	nothing := "nothing was written"
	if e.Stage == "import" {
		nothing = "nothing was pushed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d image(s) carry no valid signature by a trusted key or identity; %s (sign them with cosign, or leave them out):",
		ErrSignatureRequired, len(e.Failures), e.Checked, nothing)
	for _, f := range e.Failures {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns ErrSignatureRequired and every failure.
func (e *PublisherSignatureError) Unwrap() []error {
	out := []error{ErrSignatureRequired}
	for _, f := range e.Failures {
		out = append(out, f)
	}
	return out
}

// cosignTagRe matches the tags cosign keeps its artifacts under: the
// signature (.sig), attestation (.att) and SBOM (.sbom) of a digest, and
// the referrers fallback tag. They are not images, so no signature is
// required of them.
var cosignTagRe = regexp.MustCompile(`^sha256-[a-f0-9]{64}(\.sig|\.att|\.sbom)?$`)

// IsSignatureArtifact reports whether r names a cosign signature,
// attestation or SBOM tag, or a referrers fallback tag.
func IsSignatureArtifact(r Reference) bool { return cosignTagRe.MatchString(r.Tag) }

// signatureCheck is one image to check: the digests whose signatures count
// for it (all of them must verify).
type signatureCheck struct {
	name    string // the reference
	ref     string // the reference and its digest, for messages
	src     cosign.Source
	digests []digest.Digest
	note    string
}

// PublisherSignature is an image whose publisher signature was checked.
type PublisherSignature struct {
	Ref    string
	Digest digest.Digest
	// SignedBy names what signed it: "key sha256:…" or "certificate
	// SUBJECT (issuer ISSUER)".
	SignedBy string
}

// checkPublisherSignatures runs the checks, metaJobs at once, and reports
// every image that fails, or what signed each.
func checkPublisherSignatures(ctx context.Context, p *SignaturePolicy, stage string, jobs int, checks []signatureCheck) ([]PublisherSignature, error) {
	errs := make([]error, len(checks))
	signed := make([]PublisherSignature, len(checks))
	var eg errgroup.Group
	eg.SetLimit(jobs)
	for i, c := range checks {
		eg.Go(func() error {
			if len(c.digests) == 0 {
				errs[i] = fmt.Errorf("%w: the index%s lists no platform manifest", cosign.ErrNoSignature, c.note)
				return nil
			}
			for _, d := range c.digests {
				by, err := cosign.Verify(ctx, p.p, c.src, cosign.Image{Ref: c.ref, Digest: d})
				if err != nil {
					if len(c.digests) > 1 || c.note != "" {
						err = fmt.Errorf("%s%s: %w", d, c.note, err)
					}
					errs[i] = err
					return nil
				}
				signed[i] = PublisherSignature{Ref: c.name, Digest: d, SignedBy: by}
			}
			return nil
		})
	}
	_ = eg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := &PublisherSignatureError{Stage: stage, Checked: len(checks)}
	for i, err := range errs {
		if err != nil {
			e.Failures = append(e.Failures, &RefError{Ref: checks[i].ref, Err: err})
		}
	}
	if len(e.Failures) > 0 {
		return nil, e
	}
	return signed, nil
}

// registrySigSource reads signature artifacts from a repository of a
// registry: the .sig tag, the Referrers API or its fallback tag.
type registrySigSource struct {
	client *registry.Client
	repo   name.Repository
}

var _ cosign.Source = registrySigSource{}

func asCosign(err error) error {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return &sentinelError{sentinel: cosign.ErrNotFound, err: err}
	case errors.Is(err, registry.ErrTooLarge):
		return &sentinelError{sentinel: cosign.ErrTooLarge, err: err}
	case errors.Is(err, registry.ErrDigestMismatch):
		return &sentinelError{sentinel: cosign.ErrMalformed, err: err}
	}
	return err
}

func (s registrySigSource) Manifest(ctx context.Context, ref string, limit int64) (*cosign.Manifest, error) {
	m, err := withRetries(ctx, s.client, func(ctx context.Context) (*registry.Manifest, bool, error) {
		m, err := s.client.GetManifest(ctx, s.repo, ref, limit)
		return m, registry.IsTemporary(err), err
	})
	if err != nil {
		return nil, asCosign(err)
	}
	return &cosign.Manifest{Bytes: m.Bytes, MediaType: m.MediaType, Digest: m.Digest}, nil
}

func (s registrySigSource) Blob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.client.GetBlob(ctx, s.repo, desc.Digest)
	return rc, asCosign(err)
}

func (s registrySigSource) Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	var b []byte
	m, err := s.client.Referrers(ctx, s.repo, d, "", cosign.MaxManifestBytes)
	switch {
	case errors.Is(err, registry.ErrNoReferrersAPI):
		// The fallback tag, as cosign writes it.
		fm, err := s.Manifest(ctx, fallbackTag(d), cosign.MaxManifestBytes)
		if err != nil {
			return nil, err
		}
		b = fm.Bytes
	case err != nil:
		return nil, asCosign(err)
	default:
		b = m.Bytes // the first page: at most MaxCandidates are examined
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w: the referrers list of %s is not an image index: %v", cosign.ErrMalformed, d, err)
	}
	return idx.Manifests, nil
}

// layoutSigSource reads the .sig tag of an image of an OCI layout; a
// layout has no referrers API.
type layoutSigSource struct{ l layoutSource }

func (s layoutSigSource) Manifest(ctx context.Context, ref string, limit int64) (*cosign.Manifest, error) {
	if _, err := digest.Parse(ref); err != nil {
		idx, err := readLayoutIndex(s.l.dir)
		if err != nil {
			return nil, err
		}
		found := false
		for _, d := range idx.Manifests {
			n := d.Annotations[AnnotationRefName]
			if n == ref || strings.HasSuffix(d.Annotations[annotationContainerdName], ":"+ref) {
				ref, found = d.Digest.String(), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: no image tagged %s in %s", cosign.ErrNotFound, ref, s.l)
		}
	}
	m, err := s.l.manifest(ctx, ref, limit)
	if err != nil {
		return nil, asCosign(err)
	}
	return &cosign.Manifest{Bytes: m.Bytes, MediaType: m.MediaType, Digest: m.Digest}, nil
}

func (s layoutSigSource) Blob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return s.l.blob(ctx, desc.Digest)
}

func (s layoutSigSource) Referrers(context.Context, digest.Digest) ([]ocispec.Descriptor, error) {
	return nil, cosign.ErrNotFound
}

// bundleSigSource reads signature artifacts from a bundle: the .sig tag is
// an image of index.json named REPO:sha256-<hex>.sig, and the referrers of
// a digest are the manifests of the bundle whose subject it is.
type bundleSigSource struct {
	r    *Reader
	repo string // the image's source repository, domain/path
	refs *referrersIndex
}

var _ cosign.Source = bundleSigSource{}

func (s bundleSigSource) Manifest(_ context.Context, ref string, limit int64) (*cosign.Manifest, error) {
	d, err := digest.Parse(ref)
	if err != nil {
		want := s.repo + ":" + ref
		for _, e := range s.r.Index().Manifests {
			if e.Annotations[AnnotationRefName] == want {
				d = e.Digest
				break
			}
		}
		if d == "" {
			return nil, fmt.Errorf("%w: the bundle holds no %s", cosign.ErrNotFound, want)
		}
	}
	m, ok := s.r.Manifest(d)
	if !ok {
		return nil, fmt.Errorf("%w: the bundle holds no manifest %s", cosign.ErrNotFound, d)
	}
	if int64(len(m.Bytes)) > limit {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes", cosign.ErrTooLarge, d, len(m.Bytes))
	}
	return &cosign.Manifest{Bytes: m.Bytes, MediaType: m.Descriptor.MediaType, Digest: d}, nil
}

func (s bundleSigSource) Blob(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return s.r.OpenBlob(desc)
}

func (s bundleSigSource) Referrers(_ context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	return s.refs.of(d), nil
}

// referrersIndex maps each digest to the manifests of a bundle whose
// subject it is, built once per import.
type referrersIndex struct {
	once sync.Once
	r    *Reader
	by   map[digest.Digest][]ocispec.Descriptor
}

func (x *referrersIndex) of(d digest.Digest) []ocispec.Descriptor {
	x.once.Do(func() {
		x.by = map[digest.Digest][]ocispec.Descriptor{}
		for _, m := range x.r.Manifests() {
			if !bytes.Contains(m.Bytes, []byte(`"subject"`)) {
				continue
			}
			var man struct {
				ArtifactType string              `json:"artifactType"`
				Config       ocispec.Descriptor  `json:"config"`
				Subject      *ocispec.Descriptor `json:"subject"`
			}
			if json.Unmarshal(m.Bytes, &man) != nil || man.Subject == nil {
				continue
			}
			desc := m.Descriptor
			desc.ArtifactType = man.ArtifactType
			if desc.ArtifactType == "" {
				desc.ArtifactType = man.Config.MediaType
			}
			x.by[man.Subject.Digest] = append(x.by[man.Subject.Digest], desc)
		}
		for _, l := range x.by {
			sort.Slice(l, func(i, j int) bool { return l[i].Digest < l[j].Digest })
		}
	})
	return x.by[d]
}

// checkSignatures checks the publisher signature of every resolved image
// before anything is written: against the referrers found for the bundle
// (found, so that export checks what the bundle will carry), or, with
// referrers left out (found nil) or for an OCI layout, at the source.
func (e *exporter) checkSignatures(ctx context.Context, images []*image, found map[digest.Digest][]ocispec.Descriptor) error {
	var checks []signatureCheck
	for _, img := range images {
		if IsSignatureArtifact(img.ref) {
			continue
		}
		var src cosign.Source
		switch s := img.src.(type) {
		case registrySource:
			if found != nil {
				src = foundSigSource{e: e, repo: img.ref.Name(), found: found}
			} else {
				src = registrySigSource{client: s.client, repo: s.repo}
			}
		case layoutSource:
			src = layoutSigSource{s}
		default:
			return fmt.Errorf("checking the signature of %s: source %s has no signatures", img.ref, img.src)
		}
		c := signatureCheck{name: img.ref.String(), ref: fmt.Sprintf("%s (%s)", img.ref, img.desc.Digest), src: src, digests: []digest.Digest{img.desc.Digest}}
		if img.original != "" {
			e.mu.Lock()
			b := e.manifests[img.desc.Digest].bytes
			e.mu.Unlock()
			c.digests, c.note = platformManifests(b), rewrittenNote
		}
		checks = append(checks, c)
	}
	signed, err := checkPublisherSignatures(ctx, e.opts.RequireSignature, "export", metaJobs(e.opts.Jobs), checks)
	e.signed = signed
	return err
}

// foundSigSource reads signature artifacts from what referrer discovery
// found for the export: the referrers and cosign tags that the bundle will
// carry, their manifests as fetched (and verified) then, their blobs from
// the registry.
type foundSigSource struct {
	e     *exporter
	repo  string // the image's repository, domain/path
	found map[digest.Digest][]ocispec.Descriptor
}

var _ cosign.Source = foundSigSource{}

func (s foundSigSource) Manifest(_ context.Context, ref string, limit int64) (*cosign.Manifest, error) {
	d, err := digest.Parse(ref)
	if err != nil {
		want := s.repo + ":" + ref
		for _, list := range s.found {
			for _, r := range list {
				if r.Annotations[AnnotationRefName] == want {
					d = r.Digest
				}
			}
		}
		if d == "" {
			return nil, fmt.Errorf("%w: the export carries no %s", cosign.ErrNotFound, want)
		}
	}
	s.e.mu.Lock()
	f, ok := s.e.manifests[d]
	s.e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: the export carries no manifest %s", cosign.ErrNotFound, d)
	}
	if int64(len(f.bytes)) > limit {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes", cosign.ErrTooLarge, d, len(f.bytes))
	}
	return &cosign.Manifest{Bytes: f.bytes, Digest: d}, nil
}

func (s foundSigSource) Blob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s.e.mu.Lock()
	src, ok := s.e.blobSrc[desc.Digest]
	s.e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: the export carries no blob %s", cosign.ErrNotFound, desc.Digest)
	}
	rc, err := src.blob(ctx, desc.Digest)
	return rc, asCosign(err)
}

func (s foundSigSource) Referrers(_ context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	return s.found[d], nil
}

// rewrittenNote marks the digests checked for an index that --platform
// rewrote: it is not what its publisher signed, so each platform manifest
// it keeps must be signed instead, at export as at import (where the
// source index is not in the bundle).
const rewrittenNote = ", platform manifest of an index rewritten by --platform"

// platformManifests lists the platform manifests of an index, not the
// attestation manifests of unknown platform that buildx adds.
func platformManifests(index []byte) []digest.Digest {
	var idx ocispec.Index
	_ = json.Unmarshal(index, &idx) // parsed when it was fetched or read
	var out []digest.Digest
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS != "unknown" {
			out = append(out, d.Digest)
		}
	}
	return out
}

// errSequentialSignatures: signatures are read from the bundle before the
// import pushes anything, which needs random access.
var errSequentialSignatures = fmt.Errorf("%w: the signatures are read from the bundle before anything is pushed, which needs a file with a seek table, not standard input", ErrSignatureRequired)

// checkSignatures checks the publisher signature of every image of the
// bundle against what the bundle carries, before anything is pushed. An
// index rewritten by --platform at export is not what its publisher
// signed, and the bundle does not hold the original: each platform
// manifest it keeps must carry a signature instead (cosign sign
// --recursive makes them).
func (im *importer) checkSignatures(ctx context.Context) error {
	if !im.r.RandomAccess() {
		return errSequentialSignatures
	}
	refs := &referrersIndex{r: im.r}
	var checks []signatureCheck
	seen := map[string]bool{}
	for _, d := range im.r.Index().Manifests {
		ref, err := ParseReference(d.Annotations[AnnotationRefName])
		if err != nil || IsReferrer(d) || IsSignatureArtifact(ref) || seen[ref.String()] {
			continue // plan refused an unreadable name already
		}
		seen[ref.String()] = true
		c := signatureCheck{name: ref.String(), ref: fmt.Sprintf("%s (%s)", ref, d.Digest), src: bundleSigSource{r: im.r, repo: ref.Name(), refs: refs}, digests: []digest.Digest{d.Digest}}
		if d.Annotations[AnnotationOriginalDigest] != "" {
			c.digests, c.note = nil, rewrittenNote
			if m, ok := im.r.Manifest(d.Digest); ok {
				c.digests = platformManifests(m.Bytes)
			}
		}
		checks = append(checks, c)
	}
	signed, err := checkPublisherSignatures(ctx, im.opts.RequireSignature, "import", metaJobs(im.opts.Jobs), checks)
	im.res.PublisherSignatures = signed
	return err
}
