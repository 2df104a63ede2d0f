package cosign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types, annotations and tags cosign uses.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SigstoreBundleType     = "application/vnd.dev.sigstore.bundle.v0.3+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	AnnotationCertificate  = "dev.sigstore.cosign/certificate"
	AnnotationChain        = "dev.sigstore.cosign/chain"
	AnnotationBundle       = "dev.sigstore.cosign/bundle"
	// SignPredicateType is the in-toto predicate of the statement cosign
	// signs (in a DSSE envelope) for `cosign sign --new-bundle-format`.
	SignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	simpleSigningType = "cosign container image signature"
	inTotoPayloadType = "application/vnd.in-toto+json"
	emptyMediaType    = "application/vnd.oci.empty.v1+json"
)

// Limits on what a source may make Verify read. A signature payload is a
// few hundred bytes and a Sigstore bundle a few kilobytes; anything larger
// is refused before it is fetched (by the declared size) and while it is
// read (by the bytes received).
const (
	MaxManifestBytes = 4 << 20 // a signature manifest or a referrers list
	MaxBlobBytes     = 1 << 20 // one payload or Sigstore bundle
	// MaxCandidates bounds the signatures examined per image: the layers
	// of the .sig manifest and the Sigstore bundle referrers, each.
	MaxCandidates = 32
)

// Errors. A failed image's error wraps ErrNoSignature, or ErrNoValidSignature
// and the reason of each signature found (ErrBadSignature, ErrWrongImage,
// ErrIdentityMismatch, ErrUntrustedCertificate, ErrMalformed, ErrTooLarge).
var (
	ErrNotFound             = errors.New("not found")
	ErrNoSignature          = errors.New("no signature found")
	ErrNoValidSignature     = errors.New("no valid signature")
	ErrBadSignature         = errors.New("signature does not verify")
	ErrWrongImage           = errors.New("signature is for another image")
	ErrIdentityMismatch     = errors.New("certificate identity mismatch")
	ErrUntrustedCertificate = errors.New("certificate not trusted")
	ErrMalformed            = errors.New("malformed signature")
	ErrTooLarge             = errors.New("signature artifact too large")
)

// Manifest is a manifest as a source served it.
type Manifest struct {
	Bytes     []byte
	MediaType string
	Digest    digest.Digest
}

// Source fetches the signature artifacts of one image's repository.
type Source interface {
	// Manifest fetches a manifest by tag or digest, at most limit bytes,
	// verified against ref when it is a digest. A missing manifest is an
	// error wrapping ErrNotFound.
	Manifest(ctx context.Context, ref string, limit int64) (*Manifest, error)
	// Blob opens a blob; Verify reads at most desc.Size (never more than
	// MaxBlobBytes) and checks the digest.
	Blob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
	// Referrers lists the manifests whose subject is d (the OCI
	// referrers API, or its fallback tag); none is an empty list or
	// ErrNotFound.
	Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error)
}

// Image is the image whose signature is checked.
type Image struct {
	Ref    string // for messages
	Digest digest.Digest
}

// SigTag is the tag of cosign's classic signature manifest for d.
func SigTag(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() + ".sig" }

// Verify checks that img carries a signature that p accepts. It returns
// the key fingerprint or certificate identity that signed it, or an error
// wrapping ErrNoSignature or ErrNoValidSignature.
func Verify(ctx context.Context, p *Policy, src Source, img Image) (string, error) {
	v := &verifier{p: p, src: src, img: img}
	if by, err := v.classic(ctx); by != "" || err != nil {
		return by, err
	}
	if by, err := v.bundles(ctx); by != "" || err != nil {
		return by, err
	}
	if len(v.reasons) == 0 {
		return "", fmt.Errorf("%w (looked for the tag %s and for referrers of type %s)", ErrNoSignature, SigTag(img.Digest), SigstoreBundleType)
	}
	errs := []error{ErrNoValidSignature}
	msgs := make([]string, len(v.reasons))
	for i, r := range v.reasons {
		errs = append(errs, r)
		msgs[i] = r.Error()
	}
	return "", &reasonsError{errs: errs, msg: fmt.Sprintf("%s: %s", ErrNoValidSignature, strings.Join(msgs, "; "))}
}

type reasonsError struct {
	errs []error
	msg  string
}

func (e *reasonsError) Error() string   { return e.msg }
func (e *reasonsError) Unwrap() []error { return e.errs }

type verifier struct {
	p       *Policy
	src     Source
	img     Image
	reasons []error
}

func (v *verifier) fail(where string, sentinel error, format string, a ...any) {
	v.reasons = append(v.reasons, fmt.Errorf("%s: %w: %s", where, sentinel, fmt.Sprintf(format, a...)))
}

// failErr records err, which already wraps a sentinel, or ErrMalformed.
func (v *verifier) failErr(where string, err error) {
	for _, s := range []error{ErrBadSignature, ErrWrongImage, ErrIdentityMismatch, ErrUntrustedCertificate, ErrMalformed, ErrTooLarge} {
		if errors.Is(err, s) {
			v.reasons = append(v.reasons, fmt.Errorf("%s: %w", where, err))
			return
		}
	}
	v.reasons = append(v.reasons, fmt.Errorf("%s: %w: %w", where, ErrMalformed, err))
}

// fetchBlob reads a small blob, bounded and verified.
func (v *verifier) fetchBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxBlobBytes || desc.Size < 0 {
		return nil, fmt.Errorf("%w: blob %s is %d bytes, more than the %d accepted", ErrTooLarge, desc.Digest, desc.Size, MaxBlobBytes)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: blob digest %q: %v", ErrMalformed, desc.Digest, err)
	}
	rc, err := v.src.Blob(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("fetching blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("%w: blob %s does not match its digest and size (%d bytes)", ErrMalformed, desc.Digest, desc.Size)
	}
	return b, nil
}

func (v *verifier) manifest(ctx context.Context, ref string) (*ocispec.Manifest, error) {
	m, err := v.src.Manifest(ctx, ref, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(m.Bytes, &man); err != nil {
		return nil, fmt.Errorf("%w: manifest %s is not JSON: %v", ErrMalformed, ref, err)
	}
	return &man, nil
}

// classic checks the layers of the sha256-<hex>.sig manifest.
func (v *verifier) classic(ctx context.Context) (string, error) {
	tag := SigTag(v.img.Digest)
	man, err := v.manifest(ctx, tag)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
			v.failErr(tag, err)
			return "", nil
		}
		return "", fmt.Errorf("fetching %s: %w", tag, err)
	}
	n := 0
	for i, l := range man.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		if n++; n > MaxCandidates {
			v.fail(tag, ErrTooLarge, "more than %d signatures; the rest were not examined", MaxCandidates)
			break
		}
		where := fmt.Sprintf("%s layer %d", tag, i)
		by, err := v.classicLayer(ctx, l)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			v.failErr(where, err)
			continue
		}
		return by, nil
	}
	if n == 0 {
		v.fail(tag, ErrMalformed, "the manifest holds no %s layer", SimpleSigningMediaType)
	}
	return "", nil
}

// simpleSigning is cosign's payload (containers/image "simple signing").
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

func (v *verifier) classicLayer(ctx context.Context, l ocispec.Descriptor) (string, error) {
	sigB64 := l.Annotations[AnnotationSignature]
	if sigB64 == "" {
		return "", fmt.Errorf("%w: no %s annotation", ErrMalformed, AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return "", fmt.Errorf("%w: the %s annotation is not base64", ErrMalformed, AnnotationSignature)
	}
	payload, err := v.fetchBlob(ctx, l)
	if err != nil {
		return "", err
	}
	var ss simpleSigning
	if err := json.Unmarshal(payload, &ss); err != nil {
		return "", fmt.Errorf("%w: the payload is not JSON: %v", ErrMalformed, err)
	}
	if ss.Critical.Type != simpleSigningType {
		return "", fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, ss.Critical.Type, simpleSigningType)
	}
	if got := ss.Critical.Image.DockerManifestDigest; got != v.img.Digest.String() {
		return "", fmt.Errorf("%w: the payload signs %s (%s), not %s", ErrWrongImage, got, ss.Critical.Identity.DockerReference, v.img.Digest)
	}
	var ev evidence
	if c := l.Annotations[AnnotationCertificate]; c != "" {
		if ev.cert, ev.chain, err = parseCertPEM(c, l.Annotations[AnnotationChain]); err != nil {
			return "", err
		}
	}
	if b := l.Annotations[AnnotationBundle]; b != "" {
		ev.rekorBundle = []byte(b)
	}
	return v.check(payload, sig, &ev)
}

// bundles checks the referrers holding a Sigstore bundle.
func (v *verifier) bundles(ctx context.Context) (string, error) {
	refs, err := v.src.Referrers(ctx, v.img.Digest)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrMalformed) {
			v.failErr("referrers", err)
			return "", nil
		}
		return "", fmt.Errorf("listing the referrers of %s: %w", v.img.Digest, err)
	}
	n := 0
	for _, r := range refs {
		// cosign 2.6 lists its bundle in the referrers fallback tag with
		// the artifact type of its config, the empty descriptor; the
		// manifest itself says what it is.
		if r.ArtifactType != SigstoreBundleType && r.ArtifactType != emptyMediaType && r.ArtifactType != "" {
			continue
		}
		if n++; n > MaxCandidates {
			v.fail("referrers", ErrTooLarge, "more than %d Sigstore bundles; the rest were not examined", MaxCandidates)
			break
		}
		where := "referrer " + r.Digest.String()
		by, err := v.bundleReferrer(ctx, r)
		if errors.Is(err, errNotSignature) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			v.failErr(where, err)
			continue
		}
		return by, nil
	}
	return "", nil
}

// errNotSignature: a Sigstore bundle that is an attestation, not a
// signature of the image.
var errNotSignature = errors.New("not a signature")

func (v *verifier) bundleReferrer(ctx context.Context, r ocispec.Descriptor) (string, error) {
	if err := r.Digest.Validate(); err != nil {
		return "", fmt.Errorf("%w: referrer digest %q: %v", ErrMalformed, r.Digest, err)
	}
	if r.Size > MaxManifestBytes {
		return "", fmt.Errorf("%w: referrer manifest is %d bytes, more than the %d accepted", ErrTooLarge, r.Size, MaxManifestBytes)
	}
	man, err := v.manifest(ctx, r.Digest.String())
	if err != nil {
		return "", err
	}
	if man.ArtifactType != SigstoreBundleType {
		return "", fmt.Errorf("%w: a referrer of artifact type %q", errNotSignature, man.ArtifactType)
	}
	if man.Subject == nil || man.Subject.Digest != v.img.Digest {
		return "", fmt.Errorf("%w: the referrer's subject is not %s", ErrWrongImage, v.img.Digest)
	}
	for _, l := range man.Layers {
		if l.MediaType != SigstoreBundleType {
			continue
		}
		b, err := v.fetchBlob(ctx, l)
		if err != nil {
			return "", err
		}
		return v.sigstoreBundle(ctx, b)
	}
	return "", fmt.Errorf("%w: the referrer holds no %s layer", ErrMalformed, SigstoreBundleType)
}

// check verifies sig over message with the policy's keys, then, when ev
// carries a certificate, keyless.
func (v *verifier) check(message, sig []byte, ev *evidence) (string, error) {
	for _, k := range v.p.Keys {
		if verifySig(k.Pub, message, sig) {
			return "key " + k.Fingerprint(), nil
		}
	}
	if ev.cert != nil && len(v.p.Identities) > 0 {
		return v.keyless(message, sig, ev)
	}
	what := fmt.Sprintf("with any of the %d trusted key(s)", len(v.p.Keys))
	if len(v.p.Keys) == 0 {
		what = "with a trusted key: the policy names only certificate identities, and this signature carries no certificate"
	}
	if ev.cert != nil {
		subj, iss := certIdentity(ev.cert)
		what += fmt.Sprintf("; it carries a certificate for %s (issuer %s): accept it with --certificate-identity, --certificate-oidc-issuer and --trusted-root", strings.Join(subj, ", "), iss)
	}
	return "", fmt.Errorf("%w %s", ErrBadSignature, what)
}
