package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A delta that leaves out more blobs than index.json can list within the
// 4 MiB every reader accepts was written, and refused at import as
// "changed after export". Export refuses it instead.
func TestExportDeltaIndexTooLarge(t *testing.T) {
	const images, layers = 3, 20000
	base := &Base{Kind: BaseBundle, Digest: digest.FromString("base"), Name: "base.tar.zst", blobs: map[digest.Digest]bool{}}
	e := &exporter{opts: ExportOptions{Bases: []*Base{base}, Created: time.Unix(1700000000, 0)}, manifests: map[digest.Digest]fetched{}}
	var imgs []*image
	for i := range images {
		m := ocispec.Manifest{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString(fmt.Sprintf("config %d", i)), Size: 100}}
		base.blobs[m.Config.Digest] = true
		for j := range layers {
			d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprintf("layer %d %d", i, j)), Size: 1000}
			m.Layers = append(m.Layers, d)
			base.blobs[d.Digest] = true
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
		e.manifests[desc.Digest] = fetched{bytes: b}
		imgs = append(imgs, &image{ref: Reference{Domain: "registry.example", Path: fmt.Sprintf("app%d", i), Tag: "1"}, desc: desc})
	}
	_, _, _, err := e.buildIndex(imgs, nil)
	if err == nil {
		t.Fatal("export wrote an index.json no reader accepts")
	}
	var size int
	if _, serr := fmt.Sscanf(err.Error(), "content exceeds size limit: index.json would be %d bytes", &size); serr != nil || size <= MaxManifestBytes {
		t.Fatalf("error %v", err)
	}
	want := fmt.Sprintf("content exceeds size limit: index.json would be %d bytes, more than the %d a reader accepts (%d images, %d blobs left out); export the images in several bundles",
		size, MaxManifestBytes, images, images*(layers+1))
	if !errors.Is(err, ErrTooLarge) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
