package bundle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// Artifact types of the test referrers.
const (
	sbomType   = "application/spdx+json"
	sigType    = "application/vnd.dev.sigstore.bundle.v0.3+json"
	cosignType = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// startGGCR starts go-containerregistry's registry, with or without the
// Referrers API, behind handler wrap (nil: none).
func startGGCR(t *testing.T, referrers bool, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.WithReferrersSupport(referrers), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// signed is an image with an SBOM (a referrer), a signature on the SBOM
// (a referrer of the referrer) and a cosign signature tag.
type signed struct {
	ref                   string // host/app/signed:1.0
	repo                  string
	image, sbom, sbomSig  v1.Descriptor
	cosignSig             v1.Descriptor
	cosignTag             string
	unrelated             string // an image without referrers
	unrelatedImageDigest  string
	sbomBytes, cosignBody []byte
}

// pushArtifact pushes a manifest of artifactType with one layer of payload,
// referring to subject when not nil, under tag (or by digest when tag is
// empty); ggcr keeps the fallback tag where the registry has no Referrers
// API. configType empty means the empty config and an artifactType field.
func pushArtifact(t *testing.T, repo string, subject *v1.Descriptor, artifactType, configType, payload, tag string) (v1.Descriptor, []byte) {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	cfgBody := []byte("{}")
	cfgType := "application/vnd.oci.empty.v1+json"
	if configType != "" {
		cfgType = configType
		cfgBody = []byte(`{"architecture":"","os":""}`)
	}
	cfg := static.NewLayer(cfgBody, types.MediaType(cfgType))
	layer := static.NewLayer([]byte(payload), types.MediaType(artifactType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
	}
	cd, _ := cfg.Digest()
	ld, _ := layer.Digest()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        map[string]any{"mediaType": cfgType, "digest": cd.String(), "size": len(cfgBody)},
		"layers":        []any{map[string]any{"mediaType": artifactType, "digest": ld.String(), "size": len(payload)}},
		"annotations":   map[string]string{"org.example.note": payload},
	}
	if configType == "" {
		m["artifactType"] = artifactType
	}
	if subject != nil {
		m["subject"] = map[string]any{"mediaType": subject.MediaType, "digest": subject.Digest.String(), "size": subject.Size}
	}
	b, _ := json.Marshal(m)
	h, n, _ := v1.SHA256(strings.NewReader(string(b)))
	var ref name.Reference = r.Digest(h.String())
	if tag != "" {
		ref = r.Tag(tag)
	}
	if err := remote.Put(ref, testimages.Raw{Bytes: b, Type: types.OCIManifestSchema1}); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n}, b
}

// pushSigned pushes the signed image and its referrers to host.
func pushSigned(t *testing.T, host string) *signed {
	t.Helper()
	s := &signed{repo: host + "/app/signed", ref: host + "/app/signed:1.0", unrelated: host + "/app/plain:1.0"}
	img, err := testimages.Image("linux/amd64", false, testimages.Layer("signed", 4096))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(s.ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	sz, _ := img.Size()
	s.image = v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: sz}
	s.sbom, s.sbomBytes = pushArtifact(t, s.repo, &s.image, sbomType, "", `{"spdxVersion":"SPDX-2.3"}`, "")
	s.sbomSig, _ = pushArtifact(t, s.repo, &s.sbom, sigType, "", "signature over the sbom", "")
	s.cosignTag = "sha256-" + d.Hex + ".sig"
	s.cosignSig, s.cosignBody = pushArtifact(t, s.repo, nil, cosignType, ocispec.MediaTypeImageConfig, `{"critical":{}}`, s.cosignTag)
	plain, err := testimages.Image("linux/amd64", false, testimages.Layer("plain", 4096))
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := name.ParseReference(s.unrelated)
	if err := remote.Write(pr, plain); err != nil {
		t.Fatal(err)
	}
	pd, _ := plain.Digest()
	s.unrelatedImageDigest = pd.String()
	return s
}

func exportRefs(t *testing.T, refs []string, opts bundle.ExportOptions) (string, *bundle.ExportSummary, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "images.tar.zst")
	if opts.Created.IsZero() {
		opts.Created = created
	}
	sum, err := bundle.ExportFile(context.Background(), refs, path, opts)
	return path, sum, err
}

// referrersAt lists the referrers of subject at repo (through the API or
// the fallback tag, as ggcr does).
func referrersAt(t *testing.T, repo string, subject v1.Hash) []string {
	t.Helper()
	r, _ := name.NewRepository(repo)
	idx, err := remote.Referrers(r.Digest(subject.String()))
	if err != nil {
		t.Fatalf("listing the referrers of %s in %s: %v", subject, repo, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range im.Manifests {
		out = append(out, d.Digest.String()+" "+d.ArtifactType)
	}
	slices.Sort(out)
	return out
}

// checkReferrersImported asserts the referrers of s resolve at dst, as the
// source had them. ggcr's registry answers the config's media type as
// artifactType, whatever the manifest says (api): there only the digests
// are compared.
func checkReferrersImported(t *testing.T, s *signed, dstRepo string, api bool) {
	t.Helper()
	sbom, sig := " "+sbomType, " "+sigType
	if api {
		sbom, sig = " "+ocispec.MediaTypeEmptyJSON, " "+ocispec.MediaTypeEmptyJSON
	}
	if got, want := referrersAt(t, dstRepo, s.image.Digest), []string{s.sbom.Digest.String() + sbom}; !slices.Equal(got, want) {
		t.Errorf("referrers of the image at the destination: %v, want %v", got, want)
	}
	if got, want := referrersAt(t, dstRepo, s.sbom.Digest), []string{s.sbomSig.Digest.String() + sig}; !slices.Equal(got, want) {
		t.Errorf("referrers of the SBOM at the destination: %v, want %v", got, want)
	}
	if got := destDigest(t, dstRepo+":"+s.cosignTag); got != s.cosignSig.Digest.String() {
		t.Errorf("cosign tag %s at the destination: %s, want %s", s.cosignTag, got, s.cosignSig.Digest)
	}
}

// checkBundleReferrers asserts what every reader of the bundle lists.
func checkBundleReferrers(t *testing.T, r *bundle.Reader, s *signed) {
	t.Helper()
	imgs := r.Images()
	if len(imgs) != 2 {
		t.Fatalf("Images: %d, want the 2 images (referrers are listed under their image)", len(imgs))
	}
	var got []string
	for _, ref := range imgs[0].Referrers {
		got = append(got, fmt.Sprintf("%s %s %s %d", strings.TrimPrefix(ref.Ref, s.repo), ref.Subject, ref.ArtifactType, ref.Size))
	}
	want := []string{
		fmt.Sprintf(":%s %s %s %d", s.cosignTag, s.image.Digest, cosignType, s.cosignSig.Size+int64(len(`{"architecture":"","os":""}`))+int64(len(`{"critical":{}}`))),
		fmt.Sprintf("@%s %s %s %d", s.sbom.Digest, s.image.Digest, sbomType, s.sbom.Size+2+int64(len(`{"spdxVersion":"SPDX-2.3"}`))),
		fmt.Sprintf("@%s %s %s %d", s.sbomSig.Digest, s.sbom.Digest, sigType, s.sbomSig.Size+2+int64(len("signature over the sbom"))),
	}
	if !slices.Equal(got, want) {
		t.Errorf("referrers of %s:\n%s\nwant\n%s", imgs[0].Ref, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(imgs[1].Referrers) != 0 {
		t.Errorf("the image without referrers lists %v", imgs[1].Referrers)
	}
}

// TestReferrersRoundTrip exports a signed image with an SBOM and a
// signature on the SBOM from a registry with and without the Referrers
// API, and imports it into registries with and without it: every referrer
// resolves at the destination as it did at the source.
func TestReferrersRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		srcAPI, dstAPI bool
		distribution   bool // the destination is distribution (no Referrers API)
	}{
		{name: "api to api", srcAPI: true, dstAPI: true},
		{name: "api to fallback tag", srcAPI: true},
		{name: "fallback tag to api", dstAPI: true},
		{name: "api to distribution", srcAPI: true, distribution: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := startGGCR(t, tc.srcAPI, nil)
			s := pushSigned(t, src)
			path, sum, err := exportRefs(t, []string{s.ref, s.unrelated}, bundle.ExportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Images != 2 || sum.Referrers != 3 {
				t.Errorf("summary: %d images, %d referrers; want 2 and 3", sum.Images, sum.Referrers)
			}
			// Every reader sees the same referrers.
			r, err := bundle.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			checkBundleReferrers(t, r, s)
			r.Close()
			f, _ := os.Open(path)
			sr, err := bundle.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			checkBundleReferrers(t, sr, s)
			f.Close()

			var dst string
			if tc.distribution {
				dst = registrytest.New(t, registrytest.Options{}).Host
			} else {
				dst = startGGCR(t, tc.dstAPI, nil)
			}
			res, err := bundle.ImportFile(context.Background(), path, dst+"/mirror", bundle.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantTags := 2 // the fallback tags of the image and of the SBOM
			if tc.dstAPI {
				wantTags = 0
			}
			if res.ReferrerTags != wantTags {
				t.Errorf("fallback tags written: %d, want %d", res.ReferrerTags, wantTags)
			}
			checkReferrersImported(t, s, dst+"/mirror/app/signed", tc.dstAPI)
		})
	}
}
