package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/testimages"
)

// referrerRegistry starts go-containerregistry's registry with or without
// the Referrers API.
func referrerRegistry(t *testing.T, api bool) string {
	t.Helper()
	s := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(api), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// pushWithSBOM pushes an image and an SBOM referring to it; it returns the
// image reference and the digests of both.
func pushWithSBOM(t *testing.T, host string) (ref string, img, sbom v1.Hash) {
	t.Helper()
	ref = host + "/app/signed:1.0"
	im, err := testimages.Image("linux/amd64", false, testimages.Layer("cli-signed", 2048))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, im); err != nil {
		t.Fatal(err)
	}
	img, _ = im.Digest()
	size, _ := im.Size()
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	doc := static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3"}`), "application/spdx+json")
	for _, l := range []v1.Layer{cfg, doc} {
		if err := remote.WriteLayer(r.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	cd, _ := cfg.Digest()
	dd, _ := doc.Digest()
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/spdx+json","digest":"%s","size":26}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d}}`, cd, dd, img, size)
	sbom, _, _ = v1.SHA256(strings.NewReader(m))
	if err := remote.Put(r.Context().Digest(sbom.String()), testimages.Raw{Bytes: []byte(m), Type: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	return ref, img, sbom
}

// TestReferrersCLI: export carries the SBOM by default, inspect lists it
// under its image with its artifact type and size (text and JSON), verify
// (TestReferrersRoundTrip checks VerifyFile) and import makes it resolve at a registry without the
// Referrers API.
func TestReferrersCLI(t *testing.T) {
	t.Parallel()
	ref, img, sbom := pushWithSBOM(t, referrerRegistry(t, true))
	out := filepath.Join(t.TempDir(), "signed.tar.zst")
	res := ferry(t, nil, "export", "-o", out, ref)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, "  referrers:      1 (signatures, SBOMs, attestations)") {
		t.Errorf("export summary does not count the referrer:\n%s", res.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "--wide", out}, fmt.Sprintf("referrer %s application/spdx+json - 599 B", sbom)},
		// 100 columns: the artifact type after the name, a short digest.
		{[]string{"inspect", out}, fmt.Sprintf("referrer application/spdx+json sha256:%s - 599 B", sbom.Hex[:12])},
	} {
		res = ferry(t, nil, tc.args...)
		res.expect(t, exitOK)
		if lines := strings.Split(res.stdout, "\n"); !slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "  referrer ") && strings.Join(strings.Fields(l), " ") == tc.want
		}) {
			t.Errorf("%v does not list the SBOM under its image as\n%s\n%s", tc.args, tc.want, res.stdout)
		}
	}
	res = ferry(t, nil, "inspect", "--json", out)
	res.expect(t, exitOK)
	var rep report.Inspect
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Images) != 1 || len(rep.Images[0].Referrers) != 1 {
		t.Fatalf("inspect --json: %+v, want one image with one referrer", rep.Images)
	}
	if r := rep.Images[0].Referrers[0]; r.Digest != sbom.String() || r.Subject != img.String() || r.ArtifactType != "application/spdx+json" || r.Size != int64(len(mustManifest(t, ref, sbom)))+2+26 {
		t.Errorf("inspect --json referrer: %+v", r)
	}
	dst := referrerRegistry(t, false)
	res = ferry(t, nil, "import", "--insecure-skip-verify", "--to", dst, out)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, "imported 1 images and 1 referrers (1 fallback tags written: no Referrers API)") {
		t.Errorf("import summary:\n%s", res.stderr)
	}
	r, _ := name.NewRepository(dst + "/app/signed")
	idx, err := remote.Referrers(r.Digest(img.String()))
	if err != nil {
		t.Fatal(err)
	}
	if im, _ := idx.IndexManifest(); len(im.Manifests) != 1 || im.Manifests[0].Digest != sbom {
		t.Errorf("referrers at the destination: %+v, want the SBOM", im)
	}
}

func mustManifest(t *testing.T, ref string, d v1.Hash) []byte {
	t.Helper()
	r, _ := name.ParseReference(ref)
	desc, err := remote.Get(r.Context().Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	return desc.Manifest
}

// TestReferrersUsageErrors: the referrer flags that contradict each other
// or name no type are usage errors (exit code 2).
func TestReferrersUsageErrors(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "x.tar.zst")
	ref := "127.0.0.1:1/app/signed:1.0"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both", []string{"--no-referrers", "--referrers-type", "application/spdx+json"}, "ferry: --no-referrers leaves every referrer out; --referrers-type keeps some: give one or the other"},
		{"empty type", []string{"--referrers-type", " "}, `ferry: --referrers-type "": want one artifact type (a media type such as application/spdx+json), the flag repeated for several`},
		{"two types in one", []string{"--referrers-type", "application/spdx+json application/vnd.in-toto+json"}, `ferry: --referrers-type "application/spdx+json application/vnd.in-toto+json": want one artifact type (a media type such as application/spdx+json), the flag repeated for several`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := ferry(t, nil, append(append([]string{"export", "-o", out}, tc.args...), ref)...)
			res.expect(t, exitUsage)
			if !strings.HasPrefix(res.errMessage(), tc.want) {
				t.Errorf("error: %s\nwant %s", res.errMessage(), tc.want)
			}
		})
	}
}

// TestReferrersLeftBehindNote: with --platform the index's cosign
// signature cannot travel (it signs the source index); the export says so,
// and what to do.
func TestReferrersLeftBehindNote(t *testing.T) {
	t.Parallel()
	host := referrerRegistry(t, true)
	amd, _ := testimages.Image("linux/amd64", false, testimages.Layer("note-amd", 1024))
	arm, _ := testimages.Image("linux/arm64", false, testimages.Layer("note-arm", 1024))
	idx, err := testimages.Index(map[string]v1.Image{"linux/amd64": amd, "linux/arm64": arm})
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/app/multi:1.0"
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	sig := static.NewLayer([]byte(`{"critical":{}}`), "application/vnd.dev.cosign.simplesigning.v1+json")
	img, err := mutate.AppendLayers(empty.Image, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r.Context().Tag("sha256-"+d.Hex+".sig"), img); err != nil {
		t.Fatal(err)
	}
	res := ferry(t, nil, "export", "--platform", "linux/amd64", "-o", filepath.Join(t.TempDir(), "b.tar.zst"), ref)
	res.expect(t, exitOK)
	want := "  note: " + ref + ": what refers to the source index (sha256-" + d.Hex + ".sig) refers to no index the bundle holds and is not carried: a signature of it does not verify the rewritten one; sign the platform manifests (cosign sign --recursive) so that their signatures travel\n"
	if !strings.Contains(res.stderr, want) {
		t.Errorf("the export does not say the signature stays behind:\n%s\nwant the line\n%s", res.stderr, want)
	}
}
