package bundle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
)

// registry → bundle → oci:DIR → bundle → registry: every digest is kept,
// and the layout reads in go-containerregistry's layout package and in
// skopeo.
func TestLayoutRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	first, _ := f.export(t, bundle.ExportOptions{})

	dir := filepath.Join(t.TempDir(), "layout")
	res, err := bundle.ImportFile(ctx, first, "oci:"+dir, bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("import into oci:%s: %v", dir, err)
	}
	if len(res.Images) != len(f.sample.Refs) || res.BlobsUploaded == 0 {
		t.Fatalf("import into the layout: %d images, %d blobs written", len(res.Images), res.BlobsUploaded)
	}
	for _, img := range res.Images {
		if img.Digest != img.DestinationDigest || !strings.HasPrefix(img.Destination, "oci:"+dir+":"+img.Source) {
			t.Errorf("layout image %+v", img)
		}
	}

	// go-containerregistry reads every image back, each content-valid.
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]v1.Descriptor{}
	for _, d := range im.Manifests {
		byName[d.Annotations[ocispec.AnnotationRefName]] = d
	}
	for _, ref := range f.sample.Refs {
		d, ok := byName[ref]
		if !ok {
			t.Errorf("the layout's index.json does not list %s", ref)
			continue
		}
		if d.Digest.String() != f.sample.Digests[ref] {
			t.Errorf("%s is %s in the layout, want %s", ref, d.Digest, f.sample.Digests[ref])
		}
		switch {
		case d.MediaType.IsIndex():
			ii, err := p.ImageIndex()
			if err == nil {
				var sub v1.ImageIndex
				if sub, err = ii.ImageIndex(d.Digest); err == nil {
					err = validate.Index(sub, validate.Fast)
				}
			}
			if err != nil {
				t.Errorf("layout index %s: %v", ref, err)
			}
		case d.MediaType.IsImage():
			img, err := p.Image(d.Digest)
			if err == nil {
				err = validate.Image(img, validate.Fast)
			}
			if err != nil {
				t.Errorf("layout image %s: %v", ref, err)
			}
		}
	}

	// Every blob file holds what its name says.
	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("blobs of the layout: %v", err)
	}
	for _, b := range blobs {
		content, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(content); hex.EncodeToString(sum[:]) != filepath.Base(b) {
			t.Errorf("layout blob %s holds other content", filepath.Base(b))
		}
	}

	// Importing again writes nothing new and lists each image once.
	again, err := bundle.ImportFile(ctx, first, "oci:"+dir, bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.BlobsUploaded != 0 {
		t.Errorf("a second import into the layout wrote %d blobs", again.BlobsUploaded)
	}
	var raw ocispec.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || json.Unmarshal(b, &raw) != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(raw.Manifests) != len(f.sample.Refs) {
		t.Errorf("index.json lists %d images after two imports, want %d", len(raw.Manifests), len(f.sample.Refs))
	}

	// Back to a bundle, from every tagged image of the layout.
	second := filepath.Join(t.TempDir(), "again.tar.zst")
	sum, err := bundle.ExportFile(ctx, []string{"oci:" + dir}, second, bundle.ExportOptions{Created: created})
	if err != nil {
		t.Fatalf("export oci:%s: %v", dir, err)
	}
	if sum.Images != len(f.sample.Refs) {
		t.Errorf("exported %d images from the layout, want %d", sum.Images, len(f.sample.Refs))
	}
	if _, err := bundle.ImportFile(ctx, second, f.dst.Host+"/mirror", bundle.ImportOptions{}); err != nil {
		t.Fatalf("import of the bundle made from the layout: %v", err)
	}
	for _, ref := range f.sample.Refs {
		if got := destDigest(t, strings.Replace(ref, f.src.Host, f.dst.Host+"/mirror", 1)); got != f.sample.Digests[ref] {
			t.Errorf("%s arrived as %s, want %s", ref, got, f.sample.Digests[ref])
		}
	}

	// One image by its name.
	one := filepath.Join(t.TempDir(), "one.tar.zst")
	ref := f.src.Host + "/team/app:1.0"
	sum, err = bundle.ExportFile(ctx, []string{"oci:" + dir + ":" + ref}, one, bundle.ExportOptions{})
	if err != nil || sum.Images != 1 || sum.Index.Manifests[0].Digest.String() != f.sample.Digests[ref] {
		t.Fatalf("export oci:DIR:%s: %+v, %v", ref, sum, err)
	}

	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed (.ci/run installs it); the layout was checked with go-containerregistry")
	}
	// skopeo 1.9 reads OCI-typed images only, and rewrites indexes that carry
	// artifactType: check the single OCI image, digest for digest.
	out, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+dir+":"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if d := sha256.Sum256(out); "sha256:"+hex.EncodeToString(d[:]) != f.sample.Digests[ref] {
		t.Errorf("skopeo read another manifest for %s", ref)
	}
	if out, err := exec.Command("skopeo", "copy", "--preserve-digests", "oci:"+dir+":"+ref, "oci:"+t.TempDir()+":copy").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy from the layout: %v\n%s", err, out)
	}
}

// Layout inputs an operator can get wrong: each gives its own error.
func TestLayoutErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
	write("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":10,"annotations":{"org.opencontainers.image.ref.name":"1.0"}}]}`)
	out := filepath.Join(t.TempDir(), "b.tar.zst")

	_, err := bundle.ExportFile(ctx, []string{"oci:" + dir}, out, bundle.ExportOptions{})
	if !errors.Is(err, bundle.ErrInvalidReference) || !strings.Contains(err.Error(), "the image(s) tagged 1.0 have no repository name") {
		t.Errorf("bare tag: got %v", err)
	}
	_, err = bundle.ExportFile(ctx, []string{"oci:" + dir + ":2.0"}, out, bundle.ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), "image not found: OCI layout "+dir+" has no image tagged 2.0") {
		t.Errorf("missing tag: got %v", err)
	}
	write("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":10,"annotations":{"org.opencontainers.image.ref.name":"1.0","io.containerd.image.name":"registry.example/team/app:1.0"}}]}`)
	_, err = bundle.ExportFile(ctx, []string{"oci:" + dir}, out, bundle.ExportOptions{})
	if want := "resolving registry.example/team/app:1.0: not found: manifest sha256:" + strings.Repeat("a", 64) + " is not in oci:" + dir; err == nil || err.Error() != want {
		t.Errorf("missing manifest blob: got %v, want %s", err, want)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left %s", out)
	}
	write("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":10,"annotations":{"org.opencontainers.image.ref.name":"registry.example/team/app:1.0"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("b", 64)+`","size":10,"annotations":{"org.opencontainers.image.ref.name":"registry.example/team/app:1.0"}}]}`)
	_, err = bundle.ExportFile(ctx, []string{"oci:" + dir}, out, bundle.ExportOptions{})
	if !errors.Is(err, bundle.ErrConflict) || !strings.Contains(err.Error(), "names registry.example/team/app:1.0 twice: sha256:"+strings.Repeat("a", 64)+" and sha256:"+strings.Repeat("b", 64)) {
		t.Errorf("one name twice in a layout: got %v", err)
	}
	_, err = bundle.ExportFile(ctx, []string{"oci:" + filepath.Join(dir, "missing")}, out, bundle.ExportOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: got %v", err)
	}

	// A destination that is a file, not a directory.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Import(ctx, nil, "oci:"+file, bundle.ImportOptions{})
	if err == nil || err.Error() != "OCI layout "+file+" is not a directory" {
		t.Errorf("import into a file: got %v", err)
	}
	if _, err := bundle.ParseDestination("oci:"); !errors.Is(err, bundle.ErrInvalidReference) {
		t.Errorf("oci: without a directory: got %v", err)
	}
}

// A blob of a source layout that is a FIFO is refused, not waited on.
func TestLayoutSourceFIFO(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, _ := f.export(t, bundle.ExportOptions{})
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := bundle.ImportFile(context.Background(), first, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(f.sample.SharedLayer, "sha256:"))
	if err := os.Remove(layer); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(layer, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	_, err := bundle.ExportFile(context.Background(), []string{"oci:" + dir}, filepath.Join(t.TempDir(), "b.tar.zst"), bundle.ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), layer+" is not a regular file") {
		t.Errorf("got %v, want the FIFO refused", err)
	}
}

// One reference from two sources (a layout and its registry) that disagree
// is refused naming both; when they agree it is exported once.
func TestLayoutAndRegistryName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	first, _ := f.export(t, bundle.ExportOptions{})
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := bundle.ImportFile(ctx, first, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	app, web := f.src.Host+"/team/app:1.0", f.src.Host+"/team/web:2.0"
	out := filepath.Join(t.TempDir(), "b.tar.zst")
	sum, err := bundle.ExportFile(ctx, []string{"oci:" + dir + ":" + app, app}, out, bundle.ExportOptions{})
	if err != nil || sum.Images != 1 {
		t.Fatalf("the same image from the layout and the registry: %v, %+v", err, sum)
	}
	// Point the layout's name at another image.
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var kept []ocispec.Descriptor
	for _, d := range idx.Manifests {
		switch d.Annotations[ocispec.AnnotationRefName] {
		case app:
			continue
		case web:
			d.Annotations = map[string]string{ocispec.AnnotationRefName: app}
		}
		kept = append(kept, d)
	}
	idx.Manifests = kept
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.ExportFile(ctx, []string{"oci:" + dir + ":" + app, app}, out, bundle.ExportOptions{})
	if !errors.Is(err, bundle.ErrConflict) || !strings.Contains(err.Error(), "it is "+f.sample.Digests[web]) || !strings.Contains(err.Error(), "but "+f.sample.Digests[app]+" in "+f.src.Host+"/team/app") {
		t.Errorf("a layout and a registry that disagree: got %v", err)
	}
}
