package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryproject/ferry/internal/cosign/cosigntest"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// The whole promise of issue 12, with stock tools at the destination: an
// image signed by the cosign CLI, with a cosign attestation and an SBOM
// attached as an OCI referrer, exported and imported with the defaults
// (a signed bundle, referrers on) into a registry without the Referrers
// API, verifies there with `cosign verify --key` and
// `cosign verify-attestation --key`, and `regctl artifact list` lists its
// SBOM. Each stock tool runs where it is installed (the tests say how to
// get them when they skip).
func TestInteropSignedImageAtDestination(t *testing.T) {
	t.Setenv("FERRY_PASSWORD", "interop") // the bundle's signing key
	ctx := context.Background()
	src := referrerRegistry(t, true)
	rec, err := cosigntest.Replay(ctx, src, "../../testdata/publisher/registry", "team/signed")
	if err != nil {
		t.Fatal(err)
	}
	img := rec.Images["team/signed"]
	ref := src + "/team/signed:1.0"
	// The SBOM, an OCI 1.1 referrer of the image.
	r, _ := name.ParseReference(ref)
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	doc := static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3"}`), "application/spdx+json")
	for _, l := range []v1.Layer{cfg, doc} {
		if err := remote.WriteLayer(r.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	cd, _ := cfg.Digest()
	dd, _ := doc.Digest()
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/spdx+json","digest":"%s","size":26}],"subject":{"mediaType":"%s","digest":"%s","size":%d}}`,
		cd, dd, desc.MediaType, img, desc.Size)
	sbom, _, _ := v1.SHA256(strings.NewReader(m))
	if err := remote.Put(r.Context().Digest(sbom.String()), testimages.Raw{Bytes: []byte(m), Type: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	ferry(t, nil, "keygen", "--output-prefix", key).expect(t, exitOK)
	out := filepath.Join(dir, "b.tar.zst")
	res := ferry(t, nil, "export", "--key", key+".key", "-o", out, ref)
	res.expect(t, exitOK)
	// The signature (.sig), the attestation (.att) and the SBOM.
	if !strings.Contains(res.stderr, "  referrers:      3 (signatures, SBOMs, attestations)") {
		t.Fatalf("the export does not carry the signature, the attestation and the SBOM:\n%s", res.stderr)
	}
	dst := registrytest.New(t, registrytest.Options{})
	ferry(t, nil, "import", "--key", key+".pub", "--to", dst.Host+"/mirror", out).expect(t, exitOK)
	at := dst.Host + "/mirror/team/signed:1.0"

	ran := 0
	if bin, err := exec.LookPath("cosign"); err != nil {
		t.Log("cosign is not in PATH (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5): cosign verify at the destination does not run")
	} else {
		emptyRoot := filepath.Join(dir, "empty_root.json")
		if err := os.WriteFile(emptyRoot, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"verify", "--key", "../../testdata/cosign/ecdsa.pub", at},
			{"verify-attestation", "--key", "../../testdata/cosign/ecdsa.pub", "--type", "slsaprovenance", at},
		} {
			// Offline: no transparency log, an empty trusted root (no
			// request for Sigstore's TUF repository).
			cmd := exec.Command(bin, append([]string{args[0], "--insecure-ignore-tlog", "--allow-insecure-registry", "--trusted-root", emptyRoot}, args[1:]...)...)
			cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("cosign %s at the destination: %v\n%s", strings.Join(args, " "), err, b)
			} else {
				t.Logf("cosign %s: ok", strings.Join(args, " "))
			}
		}
		// The air-gapped side signs the image with its own key, and the
		// next import of the same image adds the publisher's signature to
		// the tag without dropping the local one: both verify.
		cosignRun := func(args ...string) ([]byte, error) {
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "COSIGN_PASSWORD=local"}
			return cmd.CombinedOutput()
		}
		if b, err := cosignRun("generate-key-pair", "--output-key-prefix", "local"); err != nil {
			t.Fatalf("cosign generate-key-pair: %v\n%s", err, b)
		}
		if b, err := cosignRun("sign", "--key", "local.key", "--tlog-upload=false", "--allow-insecure-registry", "--yes", dst.Host+"/mirror/team/signed@"+img.String()); err != nil {
			t.Fatalf("cosign sign at the destination: %v\n%s", err, b)
		}
		ferry(t, nil, "import", "--key", key+".pub", "--to", dst.Host+"/mirror", out).expect(t, exitOK)
		publisher, _ := filepath.Abs("../../testdata/cosign/ecdsa.pub")
		for _, pub := range []string{filepath.Join(dir, "local.pub"), publisher} {
			if b, err := cosignRun("verify", "--insecure-ignore-tlog", "--allow-insecure-registry", "--trusted-root", emptyRoot, "--key", pub, at); err != nil {
				t.Errorf("after the image was signed at the destination and imported again, cosign verify --key %s: %v\n%s", pub, err, b)
			}
		}
		ran++
	}
	if bin, err := exec.LookPath("regctl"); err != nil {
		t.Log("regctl is not in PATH (go install github.com/regclient/regclient/cmd/regctl@v0.11.7): regctl artifact list at the destination does not run")
	} else {
		cmd := exec.Command(bin, "--host", "reg="+dst.Host+",tls=disabled", "artifact", "list", at, "--format", "{{jsonPretty .}}")
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), sbom.String()) || !strings.Contains(string(b), `"artifactType": "application/spdx+json"`) {
			t.Errorf("regctl artifact list at the destination: %v, does not list the SBOM %s:\n%s", err, sbom, b)
		} else {
			t.Logf("regctl artifact list: lists the SBOM %s", sbom)
		}
		ran++
	}
	if ran == 0 {
		t.Skip("neither cosign nor regctl is in PATH: only the export and import ran (see the log for how to install them)")
	}
}
