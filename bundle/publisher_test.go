package bundle_test

// Publisher signatures (ExportOptions.RequireSignature and
// ImportOptions.RequireSignature) against what the cosign CLI pushed for
// the test images, replayed from testdata/publisher into a loopback
// registry.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/cosign"
	"github.com/ferryproject/ferry/internal/cosign/cosigntest"
	"github.com/ferryproject/ferry/internal/registrytest"
)

const publisherFixtures = "../testdata/publisher"

func publisherKey(t *testing.T, file string) bundle.PublisherKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/cosign", file))
	if err != nil {
		t.Fatal(err)
	}
	k, err := bundle.ParsePublisherKey(file, b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPolicy(t *testing.T, files ...string) *bundle.SignaturePolicy {
	t.Helper()
	var keys []bundle.PublisherKey
	for _, f := range files {
		keys = append(keys, publisherKey(t, f))
	}
	p, err := bundle.NewSignaturePolicy(keys, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func keylessPolicy(t *testing.T, subject, issuer, root string) *bundle.SignaturePolicy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(publisherFixtures, "keyless", root))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bundle.NewSignaturePolicy(nil, []bundle.CertificateIdentity{{Subject: subject, Issuer: issuer}}, b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signedRegistry is a loopback registry holding the test images and what
// cosign pushed for them.
func signedRegistry(t *testing.T) (*registrytest.Registry, *cosigntest.Record) {
	t.Helper()
	reg := registrytest.New(t, registrytest.Options{})
	rec, err := cosigntest.Replay(context.Background(), reg.Host, filepath.Join(publisherFixtures, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	return reg, rec
}

func sigTag(d digest.Digest) string { return "sha256-" + d.Encoded() + ".sig" }

// imageRefs lists the references of repos (their referrers, signatures
// included, travel with them).
func imageRefs(host string, repos ...string) []string {
	var refs []string
	for _, r := range repos {
		refs = append(refs, host+"/"+r+":1.0")
	}
	return refs
}

// withSignatures lists the references of repos with the cosign tags the
// record holds for them, so that a bundle exported with NoReferrers
// carries them.
func withSignatures(host string, rec *cosigntest.Record, repos ...string) []string {
	var refs []string
	for _, r := range repos {
		refs = append(refs, host+"/"+r+":1.0")
		for _, o := range rec.Objects {
			if o.Repo == r && o.Tag != "" {
				refs = append(refs, host+"/"+r+":"+o.Tag)
			}
		}
	}
	return refs
}

func noSignature(host, repo string, d digest.Digest) string {
	return fmt.Sprintf("%s/%s:1.0 (%s): no signature found (looked for the tag %s and for referrers of type %s)", host, repo, d, sigTag(d), cosign.SigstoreBundleType)
}

// Signed images pass at export, classic and Sigstore bundle alike, an
// index by the signature of the index; the bundle carries the signatures,
// and the same policy passes at import, before the images are pushed.
// Export checks the referrers it carries, or, with NoReferrers, the
// registry (the cosign tags then named as images, so that the bundle
// carries them).
func TestRequireSignatureSignedPasses(t *testing.T) {
	reg, rec := signedRegistry(t)
	repos := []string{"team/signed", "team/bundled", "team/multi"}
	for _, mode := range []struct {
		name        string
		refs        []string
		noReferrers bool
	}{
		{"referrers carried", imageRefs(reg.Host, repos...), false},
		{"cosign tags named, no referrers", withSignatures(reg.Host, rec, repos...), true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.tar.zst")
			sum, err := bundle.ExportFile(context.Background(), mode.refs, path, bundle.ExportOptions{NoReferrers: mode.noReferrers, RequireSignature: keyPolicy(t, "ed25519.pub", "ecdsa.pub")})
			if err != nil {
				t.Fatal(err)
			}
			ecdsa := "key " + publisherKey(t, "ecdsa.pub").Fingerprint()
			want := []bundle.PublisherSignature{
				{Ref: reg.Host + "/team/signed:1.0", Digest: rec.Images["team/signed"], SignedBy: ecdsa},
				{Ref: reg.Host + "/team/bundled:1.0", Digest: rec.Images["team/bundled"], SignedBy: ecdsa},
				{Ref: reg.Host + "/team/multi:1.0", Digest: rec.Images["team/multi"], SignedBy: ecdsa},
			}
			if !slices.Equal(sum.PublisherSignatures, want) {
				t.Errorf("ExportSummary.PublisherSignatures\n%v, want\n%v", sum.PublisherSignatures, want)
			}
			dst := registrytest.New(t, registrytest.Options{})
			res, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.PublisherSignatures, want) {
				t.Errorf("ImportResult.PublisherSignatures\n%v, want\n%v", res.PublisherSignatures, want)
			}
		})
	}
}

// An unsigned image is refused at export, naming it, before anything is
// written; the signed image beside it does not help.
func TestRequireSignatureUnsignedExport(t *testing.T) {
	reg, rec := signedRegistry(t)
	dir := t.TempDir()
	refs := imageRefs(reg.Host, "team/signed", "team/unsigned")
	_, err := bundle.ExportFile(context.Background(), refs, filepath.Join(dir, "b.tar.zst"), bundle.ExportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	want := "publisher signature required: 1 of 2 image(s) carry no valid signature by a trusted key or identity; nothing was written (sign them with cosign, or leave them out):\n  " +
		noSignature(reg.Host, "team/unsigned", rec.Images["team/unsigned"])
	if !errors.Is(err, bundle.ErrSignatureRequired) || !errors.Is(err, cosign.ErrNoSignature) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("export left %d files behind", len(ents))
	}
}

// An unsigned image is refused at import, with the policy of the
// disconnected side, before anything is pushed.
func TestRequireSignatureUnsignedImport(t *testing.T) {
	reg, rec := signedRegistry(t)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	refs := imageRefs(reg.Host, "team/signed", "team/unsigned")
	if _, err := bundle.ExportFile(context.Background(), refs, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	_, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	want := "publisher signature required: 1 of 2 image(s) carry no valid signature by a trusted key or identity; nothing was pushed (sign them with cosign, or leave them out):\n  " +
		noSignature(reg.Host, "team/unsigned", rec.Images["team/unsigned"])
	if !errors.Is(err, bundle.ErrSignatureRequired) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if n := dst.Requests.Load(); n != 0 {
		t.Errorf("the destination received %d requests", n)
	}
}

// A signature by another key, a payload for another digest, a tampered
// signature, and keyless certificates that do not match are refused, each
// with its reason.
func TestRequireSignatureRefusals(t *testing.T) {
	reg, rec := signedRegistry(t)
	ctx := context.Background()
	fixtures := filepath.Join(publisherFixtures, "registry")
	var sigObj cosigntest.Object
	for _, o := range rec.Objects {
		if o.Repo == "team/signed" && o.Tag == sigTag(rec.Images["team/signed"]) {
			sigObj = o
		}
	}
	sigManifest, err := cosigntest.ReadBlob(fixtures, sigObj.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(sigManifest, &man); err != nil {
		t.Fatal(err)
	}
	pushSig := func(repo string, m []byte) {
		t.Helper()
		for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			b, err := cosigntest.ReadBlob(fixtures, d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := cosigntest.PushBlob(ctx, reg.Host+"/"+repo, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := cosigntest.PushManifest(ctx, reg.Host+"/"+repo+":"+sigTag(rec.Images[repo]), m, ocispec.MediaTypeImageManifest); err != nil {
			t.Fatal(err)
		}
	}
	// team/unsigned gets team/signed's signature: a payload for another digest.
	pushSig("team/unsigned", sigManifest)
	// In a registry of its own, team/signed's signature with one byte of
	// the signature changed.
	tamperedReg, _ := signedRegistry(t)
	tampered := man
	tampered.Layers = append([]ocispec.Descriptor(nil), man.Layers...)
	sig := tampered.Layers[0].Annotations[cosign.AnnotationSignature]
	flip := "A"
	if sig[10] == 'A' {
		flip = "B"
	}
	tampered.Layers[0].Annotations = map[string]string{cosign.AnnotationSignature: sig[:10] + flip + sig[11:]}
	tb, _ := json.Marshal(tampered)
	if err := cosigntest.PushManifest(ctx, tamperedReg.Host+"/team/signed:"+sigTag(rec.Images["team/signed"]), tb, ocispec.MediaTypeImageManifest); err != nil {
		t.Fatal(err)
	}

	signedSig := rec.Images["team/signed"]
	for _, tc := range []struct {
		name    string
		reg     *registrytest.Registry
		repo    string
		policy  *bundle.SignaturePolicy
		wantErr error
		want    string
	}{
		{"another key", reg, "team/signed", keyPolicy(t, "ed25519.pub"), cosign.ErrBadSignature,
			fmt.Sprintf("(%s): no valid signature: %s layer 0: signature does not verify with any of the 1 trusted key(s)", signedSig, sigTag(signedSig))},
		{"payload for another digest", reg, "team/unsigned", keyPolicy(t, "ecdsa.pub"), cosign.ErrWrongImage,
			fmt.Sprintf("layer 0: signature is for another image: the payload signs %s (", signedSig)},
		{"tampered", tamperedReg, "team/signed", keyPolicy(t, "ecdsa.pub"), cosign.ErrBadSignature,
			fmt.Sprintf("(%s): no valid signature: %s layer 0: signature does not verify with any of the 1 trusted key(s)", signedSig, sigTag(signedSig))},
		{"keyless: another identity", reg, "team/keyless", keylessPolicy(t, "ops@example.com", "https://issuer.example", "trusted_root.json"), cosign.ErrIdentityMismatch,
			"certificate identity mismatch: signed by release@example.com (issuer https://issuer.example), the policy accepts ops@example.com (issuer https://issuer.example)"},
		{"keyless: another issuer", reg, "team/keyless", keylessPolicy(t, "release@example.com", "https://accounts.example", "trusted_root.json"), cosign.ErrIdentityMismatch,
			"the policy accepts release@example.com (issuer https://accounts.example)"},
		{"keyless: another certificate authority", reg, "team/keyless", keylessPolicy(t, "release@example.com", "https://issuer.example", "other_root.json"), cosign.ErrUntrustedCertificate,
			"certificate not trusted: the certificate for release@example.com (issuer https://issuer.example) does not chain to a certificate authority of the trusted root valid now: x509: certificate signed by unknown authority"},
		{"keyless signature, key policy", reg, "team/keyless", keyPolicy(t, "ecdsa.pub"), cosign.ErrBadSignature,
			"it carries a certificate for release@example.com (issuer https://issuer.example): accept it with --certificate-identity, --certificate-oidc-issuer and --trusted-root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := bundle.ExportFile(ctx, []string{tc.reg.Host + "/" + tc.repo + ":1.0"}, filepath.Join(dir, "b.tar.zst"), bundle.ExportOptions{RequireSignature: tc.policy})
			prefix := "publisher signature required: 1 of 1 image(s) carry no valid signature by a trusted key or identity; nothing was written (sign them with cosign, or leave them out):\n  " + tc.reg.Host + "/" + tc.repo + ":1.0 ("
			if !errors.Is(err, bundle.ErrSignatureRequired) || !errors.Is(err, cosign.ErrNoValidSignature) || !errors.Is(err, tc.wantErr) ||
				!strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %v, starting %q and holding %q", err, tc.wantErr, prefix, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("export left %d files behind", len(ents))
			}
		})
	}
}

// A keyless signature (a certificate issued by the trusted root's
// certificate authority) passes when its identity and issuer match, at
// export and at import.
func TestRequireSignatureKeyless(t *testing.T) {
	reg, _ := signedRegistry(t)
	p := keylessPolicy(t, "release@example.com", "https://issuer.example", "trusted_root.json")
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), imageRefs(reg.Host, "team/keyless"), path, bundle.ExportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	if _, err := bundle.ImportFile(context.Background(), path, dst.Host, bundle.ImportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
}

// An attestation is not a signature: an image with only an attestation
// by the trusted key is refused (a bundle made with NoReferrers and the
// .att tag named, at import; a Sigstore bundle attestation found by
// referrer discovery, at export).
func TestRequireSignatureAttestationIsNotSignature(t *testing.T) {
	reg, rec := signedRegistry(t)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	d := rec.Images["team/signed"]
	refs := []string{reg.Host + "/team/signed:1.0", reg.Host + "/team/signed:sha256-" + d.Encoded() + ".att"}
	if _, err := bundle.ExportFile(context.Background(), refs, path, bundle.ExportOptions{NoReferrers: true}); err != nil {
		t.Fatal(err)
	}
	_, err := bundle.ImportFile(context.Background(), path, registrytest.New(t, registrytest.Options{}).Host, bundle.ImportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	if !errors.Is(err, bundle.ErrSignatureRequired) || !strings.HasSuffix(err.Error(), noSignature(reg.Host, "team/signed", d)) {
		t.Fatalf("got %v", err)
	}
	// A Sigstore bundle referrer holding an attestation (cosign attest
	// --new-bundle-format), at export.
	_, err = bundle.Export(context.Background(), []string{reg.Host + "/team/attested:1.0"}, io.Discard, bundle.ExportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	if !errors.Is(err, bundle.ErrSignatureRequired) || !strings.HasSuffix(err.Error(), noSignature(reg.Host, "team/attested", rec.Images["team/attested"])) {
		t.Fatalf("got %v", err)
	}
}

// With --platform, the import cannot check the rewritten index against
// its publisher's signature (the bundle does not hold the original): the
// platform manifests it keeps must be signed, as cosign sign --recursive
// does; an export without them is refused at import.
func TestRequireSignaturePlatformFilter(t *testing.T) {
	reg, rec := signedRegistry(t)
	p := keyPolicy(t, "ecdsa.pub")
	dir := t.TempDir()
	all := filepath.Join(dir, "all.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), imageRefs(reg.Host, "team/multi"), all, bundle.ExportOptions{Platforms: []string{"linux/arm64"}, RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.ImportFile(context.Background(), all, registrytest.New(t, registrytest.Options{}).Host, bundle.ImportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	// Without the platform manifests' signatures in the bundle.
	only := filepath.Join(dir, "index-sig-only.tar.zst")
	indexOnly := []string{reg.Host + "/team/multi:1.0", reg.Host + "/team/multi:" + sigTag(rec.Images["team/multi"])}
	if _, err := bundle.ExportFile(context.Background(), indexOnly, only, bundle.ExportOptions{NoReferrers: true, Platforms: []string{"linux/arm64"}, RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	_, err := bundle.ImportFile(context.Background(), only, registrytest.New(t, registrytest.Options{}).Host, bundle.ImportOptions{RequireSignature: p})
	if !errors.Is(err, bundle.ErrSignatureRequired) || !strings.Contains(err.Error(), ", platform manifest of an index rewritten by --platform: no signature found") {
		t.Fatalf("got %v", err)
	}
	// Export applies the same rule: the index signed, the arm64 manifest
	// not, is refused with --platform linux/arm64 (and passes without it).
	reg2, _ := signedRegistry(t)
	arm64 := ""
	fixtures := filepath.Join(publisherFixtures, "registry")
	for _, o := range rec.Objects {
		if o.Repo != "team/multi" || o.Tag == sigTag(rec.Images["team/multi"]) || !strings.HasSuffix(o.Tag, ".sig") {
			continue
		}
		// A platform manifest's signature: which platform does it sign?
		b, _ := cosigntest.ReadBlob(fixtures, o.Digest)
		var m ocispec.Manifest
		_ = json.Unmarshal(b, &m)
		payload, _ := cosigntest.ReadBlob(fixtures, m.Layers[0].Digest)
		var ss struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
		}
		_ = json.Unmarshal(payload, &ss)
		if platformOf(t, reg2.Host, ss.Critical.Image.Digest) == "linux/arm64" {
			arm64 = ss.Critical.Image.Digest
			deleteManifest(t, reg2.Host+"/team/multi@"+o.Digest.String())
		}
	}
	if arm64 == "" {
		t.Fatal("no signature of the arm64 manifest in the fixtures")
	}
	_, err = bundle.Export(context.Background(), imageRefs(reg2.Host, "team/multi"), io.Discard, bundle.ExportOptions{Platforms: []string{"linux/arm64"}, RequireSignature: p})
	want := fmt.Sprintf("%s/team/multi:1.0 (", reg2.Host)
	if !errors.Is(err, bundle.ErrSignatureRequired) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), "): "+arm64+", platform manifest of an index rewritten by --platform: no signature found") {
		t.Fatalf("got %v", err)
	}
	if _, err := bundle.Export(context.Background(), imageRefs(reg2.Host, "team/multi"), io.Discard, bundle.ExportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
}

// platformOf is the platform of manifest d of team/multi, from its config.
func platformOf(t *testing.T, host, d string) string {
	t.Helper()
	ref, err := name.ParseReference(host + "/team/multi@" + d)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.OS + "/" + cf.Architecture
}

func deleteManifest(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(r); err != nil {
		t.Fatal(err)
	}
}

// A hostile registry that answers the signature tag with an endless
// manifest, or a signature blob with endless bytes, cannot make export
// read more than the limits.
func TestRequireSignatureHostileRegistry(t *testing.T) {
	reg, rec := signedRegistry(t)
	target, _ := url.Parse(reg.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var served atomic.Int64
	endless := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = ' '
		}
		for served.Load() < 1<<30 {
			n, err := w.Write(buf)
			served.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
	signed, bundled := rec.Images["team/signed"], rec.Images["team/bundled"]
	var payload digest.Digest
	for _, o := range rec.Objects {
		if o.Repo == "team/bundled" && o.Tag == "" {
			b, _ := cosigntest.ReadBlob(filepath.Join(publisherFixtures, "registry"), o.Digest)
			var m ocispec.Manifest
			_ = json.Unmarshal(b, &m)
			payload = m.Layers[0].Digest
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/manifests/"+sigTag(signed)) || strings.HasSuffix(r.URL.Path, "/blobs/"+payload.String())) {
			endless(w)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	// With NoReferrers, the check reads the registry itself (referrer
	// discovery, on by default, applies limits of its own first).
	_, err := bundle.Export(context.Background(), []string{host + "/team/signed:1.0", host + "/team/bundled:1.0"}, io.Discard, bundle.ExportOptions{NoReferrers: true, RequireSignature: keyPolicy(t, "ecdsa.pub")})
	if !errors.Is(err, bundle.ErrSignatureRequired) || !errors.Is(err, cosign.ErrTooLarge) || !errors.Is(err, cosign.ErrMalformed) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{
		fmt.Sprintf("%s/team/signed:1.0 (%s): no valid signature: %s: manifest is more than the 4194304 bytes allowed", host, signed, sigTag(signed)),
		fmt.Sprintf("%s/team/bundled:1.0 (%s): no valid signature: referrer ", host, bundled),
		fmt.Sprintf("malformed signature: blob %s does not match its digest and size", payload),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	// What the registry wrote, up to the connection's buffers, not what
	// ferry read: far below what it was ready to send.
	if n := served.Load(); n > 64<<20 {
		t.Errorf("the hostile registry served %d bytes", n)
	}
}

// The cosign CLI itself, when installed: an image it signs now passes
// export --require-signature, and one it did not sign is refused; and
// cosign verify judges the fixtures as ferry does.
func TestRequireSignatureLiveCosign(t *testing.T) {
	bin, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign is not in PATH; testdata/publisher holds what it pushes, replayed by the other tests")
	}
	reg := registrytest.New(t, registrytest.Options{})
	images, err := cosigntest.PushImages(context.Background(), reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "sign", "--key", "../testdata/cosign/ecdsa.key", "--tlog-upload=false", "--allow-insecure-registry", "--yes",
		reg.Host+"/team/unsigned@"+images["team/unsigned"].String())
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "COSIGN_PASSWORD=ferry-test"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	p := keyPolicy(t, "ecdsa.pub")
	if _, err := bundle.Export(context.Background(), []string{reg.Host + "/team/unsigned:1.0"}, io.Discard, bundle.ExportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Export(context.Background(), []string{reg.Host + "/team/signed:1.0"}, io.Discard, bundle.ExportOptions{RequireSignature: p})
	if !errors.Is(err, bundle.ErrSignatureRequired) || !errors.Is(err, cosign.ErrNoSignature) {
		t.Fatalf("got %v", err)
	}

	// cosign verify agrees with ferry on the fixtures: what ferry accepts,
	// cosign accepts (offline), and the identity ferry refuses, cosign
	// refuses.
	fix, rec := signedRegistry(t)
	emptyRoot := filepath.Join(t.TempDir(), "empty_root.json")
	if err := os.WriteFile(emptyRoot, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	keylessRoot := filepath.Join(publisherFixtures, "keyless", "trusted_root.json")
	verify := func(args ...string) error {
		cmd := exec.Command(bin, append([]string{"verify", "--insecure-ignore-tlog", "--allow-insecure-registry"}, args...)...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		t.Logf("cosign verify %s:\n%s", strings.Join(args, " "), out)
		return err
	}
	ref := func(repo string) string { return fix.Host + "/" + repo + "@" + rec.Images[repo].String() }
	if err := verify("--key", "../testdata/cosign/ecdsa.pub", "--trusted-root", emptyRoot, ref("team/signed")); err != nil {
		t.Errorf("cosign refuses team/signed: %v", err)
	}
	if err := verify("--key", "../testdata/cosign/ecdsa.pub", "--new-bundle-format", "--trusted-root", emptyRoot, ref("team/bundled")); err != nil {
		t.Errorf("cosign refuses team/bundled: %v", err)
	}
	// Exported with --require-signature and imported with it, with the
	// defaults otherwise, the image verifies with cosign at the destination.
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), imageRefs(fix.Host, "team/signed", "team/bundled"), path, bundle.ExportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	if _, err := bundle.ImportFile(context.Background(), path, dst.Host+"/mirror", bundle.ImportOptions{RequireSignature: p}); err != nil {
		t.Fatal(err)
	}
	if err := verify("--key", "../testdata/cosign/ecdsa.pub", "--trusted-root", emptyRoot, dst.Host+"/mirror/team/signed:1.0"); err != nil {
		t.Errorf("cosign refuses team/signed at the destination: %v", err)
	}
	if err := verify("--key", "../testdata/cosign/ecdsa.pub", "--new-bundle-format", "--trusted-root", emptyRoot, dst.Host+"/mirror/team/bundled:1.0"); err != nil {
		t.Errorf("cosign refuses team/bundled at the destination: %v", err)
	}
	keyless := []string{"--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", keylessRoot, "--insecure-ignore-sct"}
	if err := verify(append(keyless, "--certificate-identity", "release@example.com", ref("team/keyless"))...); err != nil {
		t.Errorf("cosign refuses team/keyless: %v", err)
	}
	if err := verify(append(keyless, "--certificate-identity", "ops@example.com", ref("team/keyless"))...); err == nil {
		t.Error("cosign accepts team/keyless for ops@example.com")
	}
}

// An image of an OCI layout is checked against the .sig tag the layout
// holds beside it.
func TestRequireSignatureLayoutSource(t *testing.T) {
	reg, rec := signedRegistry(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "b.tar.zst")
	refs := imageRefs(reg.Host, "team/signed", "team/unsigned")
	if _, err := bundle.ExportFile(context.Background(), refs, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout")
	if _, err := bundle.ImportFile(context.Background(), path, "oci:"+layout, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := bundle.Export(context.Background(), []string{"oci:" + layout}, io.Discard, bundle.ExportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	want := "publisher signature required: 1 of 2 image(s) carry no valid signature by a trusted key or identity; nothing was written (sign them with cosign, or leave them out):\n  " +
		noSignature(reg.Host, "team/unsigned", rec.Images["team/unsigned"])
	if !errors.Is(err, bundle.ErrSignatureRequired) || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// A dry run (PlanExport) checks publisher signatures as the export would.
func TestRequireSignaturePlanExport(t *testing.T) {
	reg, rec := signedRegistry(t)
	_, err := bundle.PlanExport(context.Background(), []string{reg.Host + "/team/unsigned:1.0"}, bundle.ExportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	if !errors.Is(err, bundle.ErrSignatureRequired) || !strings.HasSuffix(err.Error(), noSignature(reg.Host, "team/unsigned", rec.Images["team/unsigned"])) {
		t.Fatalf("got %v", err)
	}
	if _, err := bundle.PlanExport(context.Background(), []string{reg.Host + "/team/signed:1.0"}, bundle.ExportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")}); err != nil {
		t.Fatal(err)
	}
}

// A bundle read as a stream cannot be checked before the push: Import
// refuses at once, contacting nothing.
func TestRequireSignatureStreamRefused(t *testing.T) {
	reg, _ := signedRegistry(t)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), imageRefs(reg.Host, "team/signed"), path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	_, err = bundle.Import(context.Background(), r, dst.Host, bundle.ImportOptions{RequireSignature: keyPolicy(t, "ecdsa.pub")})
	if !errors.Is(err, bundle.ErrSignatureRequired) || err.Error() != "publisher signature required: the signatures are read from the bundle before anything is pushed, which needs a file with a seek table, not standard input" {
		t.Fatalf("got %v", err)
	}
	if n := dst.Requests.Load(); n != 0 {
		t.Errorf("the destination received %d requests", n)
	}
}
