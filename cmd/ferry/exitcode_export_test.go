package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
)

// The content a bundle reader refuses as corrupt, with exit code 3 (see
// TestOneViewNotWrittenByFerry), is a failure of the source when export
// meets it: exit code 1, naming the reference, and nothing written. The
// source here is an OCI layout directory; a registry refuses such
// manifests when they are pushed.
func TestExportUnsupportedSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	blob := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := blob(config)
	sha1 := "sha1:" + strings.Repeat("1", 40)
	manifest := func(layer string, pad int) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":1}],"padding":%q}`,
			ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, cd, len(config), ocispec.MediaTypeImageLayerGzip, layer, strings.Repeat("x", pad)))
	}
	sha1Manifest := manifest(sha1, 0)
	base := len(manifest(sha1, 0))
	big := manifest(sha1, bundle.MaxManifestBytes+1-base)
	schema1 := []byte(`{"schemaVersion":1,"name":"app","tag":"s1","architecture":"amd64","fsLayers":[{"blobSum":"` + cd.String() + `"}],"history":[{"v1Compatibility":"{}"}]}`)
	const s1Type = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	var index ocispec.Index
	index.SchemaVersion = 2
	images := []struct {
		ref, mediaType string
		body           []byte
		want           string
	}{
		{"example.com/app:sha1", ocispec.MediaTypeImageManifest, sha1Manifest, fmt.Sprintf("unsupported content: digest %q (only sha256 and sha512 are accepted)", sha1)},
		{"example.com/app:big", ocispec.MediaTypeImageManifest, big, "content exceeds size limit"},
		{"example.com/app:s1", s1Type, schema1, "unsupported content: Docker schema 1 manifest (deprecated and not content-addressable); re-push the image with a current docker, podman or skopeo to convert it"},
	}
	for _, img := range images {
		index.Manifests = append(index.Manifests, ocispec.Descriptor{MediaType: img.mediaType, Digest: blob(img.body), Size: int64(len(img.body)),
			Annotations: map[string]string{bundle.AnnotationRefName: img.ref}})
	}
	ib, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": ib} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range images {
		t.Run(img.ref, func(t *testing.T) {
			out := t.TempDir()
			res := ferry(t, nil, "export", "-q", "-o", filepath.Join(out, "images.tar.zst"), "oci:"+dir+":"+img.ref)
			res.expect(t, exitFailure, img.ref, img.want)
			res.refute(t, "archive is corrupt")
			assertDirEmpty(t, out)
		})
	}
}
