package bundle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// fixture is a source registry with the sample set and an empty destination.
type fixture struct {
	src, dst *registrytest.Registry
	sample   *testimages.Sample
}

func newFixture(t *testing.T) *fixture { return newFixtureSized(t, 32<<10) }

// newFixtureSized is newFixture with sample layers of layerSize bytes
// uncompressed (base layers 4x).
func newFixtureSized(t *testing.T, layerSize int) *fixture {
	t.Helper()
	f := &fixture{
		src: registrytest.New(t, registrytest.Options{}),
		dst: registrytest.New(t, registrytest.Options{}),
	}
	var err error
	f.sample, err = testimages.Push(context.Background(), f.src.Host, layerSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var created = time.Unix(1700000000, 0)

func (f *fixture) export(t *testing.T, opts bundle.ExportOptions) (string, *bundle.ExportSummary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "images.tar.zst")
	if opts.Created.IsZero() {
		opts.Created = created
	}
	sum, err := bundle.ExportFile(context.Background(), f.sample.Refs, path, opts)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return path, sum
}

// destDigest resolves ref at the destination.
func destDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("resolving %s at the destination: %v", ref, err)
	}
	return d.Digest.String()
}

// checkImported asserts every sample image is at dst/prefix with its digest.
func (f *fixture) checkImported(t *testing.T, prefix string) {
	t.Helper()
	for _, ref := range f.sample.Refs {
		path := strings.TrimPrefix(ref, f.src.Host+"/")
		got := destDigest(t, f.dst.Host+"/"+prefix+path)
		if want := f.sample.Digests[ref]; got != want {
			t.Errorf("%s: destination digest %s, want %s", ref, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	path, sum := f.export(t, bundle.ExportOptions{})
	if sum.Images != len(f.sample.Refs) {
		t.Errorf("summary images = %d, want %d", sum.Images, len(f.sample.Refs))
	}
	if sum.ReferencedBytes <= sum.UniqueBytes {
		t.Errorf("shared layers should make referenced bytes (%d) exceed unique bytes (%d)", sum.ReferencedBytes, sum.UniqueBytes)
	}
	// Each blob stored once: the shared base layer appears in exactly one entry.
	entries := tarEntries(t, path)
	shared := "blobs/sha256/" + strings.TrimPrefix(f.sample.SharedLayer, "sha256:")
	if n := entries[shared]; n != 1 {
		t.Errorf("shared layer stored %d times, want 1", n)
	}
	for name, n := range entries {
		if n != 1 {
			t.Errorf("entry %s appears %d times", name, n)
		}
	}
	res, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/mirror", bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(res.Images) != len(f.sample.Refs) {
		t.Errorf("imported %d images, want %d", len(res.Images), len(f.sample.Refs))
	}
	for _, img := range res.Images {
		if img.Digest != img.DestinationDigest {
			t.Errorf("%s: %s != %s", img.Destination, img.Digest, img.DestinationDigest)
		}
	}
	f.checkImported(t, "mirror/")
	if res.BlobsMounted == 0 {
		t.Errorf("shared layers across repositories should be mounted, got %+v", res)
	}

	// A second import uploads no blob.
	before := f.dst.BlobUploads.Load()
	res2, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/mirror", bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	if got := f.dst.BlobUploads.Load() - before; got != 0 || res2.BlobsUploaded != 0 {
		t.Errorf("second import uploaded %d blobs (result says %d), want 0", got, res2.BlobsUploaded)
	}
	// ... and reports every blob it would have mounted as present: they
	// are, in every repository.
	if placed := res.BlobsUploaded + res.BlobsMounted + res.BlobsSkipped; res2.BlobsMounted != 0 || res2.BlobsSkipped != placed {
		t.Errorf("second import: %d mounted, %d present; want 0 and %d", res2.BlobsMounted, res2.BlobsSkipped, placed)
	}
}

// tarEntries decompresses with a plain streaming zstd decoder (as stock zstd
// would) and counts tar entry names.
func tarEntries(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	out := map[string]int{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name]++
	}
	return out
}

func TestImportKeepSourceRegistryAndNoPrefix(t *testing.T) {
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	f.checkImported(t, "")
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/a/b", bundle.ImportOptions{KeepSourceRegistry: true}); err != nil {
		t.Fatal(err)
	}
	f.checkImported(t, "a/b/"+strings.ReplaceAll(f.src.Host, ":", "_")+"/")
}

func TestDestinationMapping(t *testing.T) {
	src, err := bundle.ParseReference("nginx:1.27")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := bundle.ParseDestination("reg.local:5000/mirror")
	if err != nil {
		t.Fatal(err)
	}
	if got := dst.Map(src, false) + ":" + src.Tag; got != "reg.local:5000/mirror/library/nginx:1.27" {
		t.Errorf("mapped to %s", got)
	}
	if got := dst.Map(src, true); got != "reg.local:5000/mirror/docker.io/library/nginx" {
		t.Errorf("mapped with source registry to %s", got)
	}
	for _, bad := range []string{"", "/x", "UPPER/case", "reg.local:5000/Bad Prefix"} {
		if _, err := bundle.ParseDestination(bad); !errors.Is(err, bundle.ErrInvalidReference) {
			t.Errorf("ParseDestination(%q) = %v, want ErrInvalidReference", bad, err)
		}
	}
}

func TestParseReference(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                "docker.io/library/nginx:latest",
		"nginx:1.27":           "docker.io/library/nginx:1.27",
		"user/app:v1":          "docker.io/user/app:v1",
		"reg.local:5000/a/b:c": "reg.local:5000/a/b:c",
		"nginx@sha256:" + strings.Repeat("a", 64):      "docker.io/library/nginx@sha256:" + strings.Repeat("a", 64),
		"nginx:1.27@sha256:" + strings.Repeat("b", 64): "docker.io/library/nginx:1.27@sha256:" + strings.Repeat("b", 64),
	} {
		r, err := bundle.ParseReference(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("%s normalised to %s, want %s", in, r, want)
		}
	}
	for _, bad := range []string{"", "UPPER", "nginx@sha256:short", "a b"} {
		if _, err := bundle.ParseReference(bad); !errors.Is(err, bundle.ErrInvalidReference) {
			t.Errorf("ParseReference(%q) = %v, want ErrInvalidReference", bad, err)
		}
	}
}

func TestStreamExportAndImport(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	if _, err := bundle.Export(context.Background(), f.sample.Refs, &buf, bundle.ExportOptions{Created: created}); err != nil {
		t.Fatal(err)
	}
	// Sequential import, as from stdin: no seek table access.
	r, err := bundle.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.RandomAccess() {
		t.Fatal("a stream reader must not claim random access")
	}
	res, err := bundle.Import(context.Background(), r, f.dst.Host+"/s", bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsUploaded == 0 {
		t.Error("nothing uploaded")
	}
	f.checkImported(t, "s/")
}

func TestDeterministic(t *testing.T) {
	f := newFixture(t)
	a, _ := f.export(t, bundle.ExportOptions{Jobs: 1})
	b, _ := f.export(t, bundle.ExportOptions{Jobs: 8})
	if ha, hb := fileHash(t, a), fileHash(t, b); ha != hb {
		t.Errorf("two exports of the same pinned inputs differ: %s vs %s", ha, hb)
	}
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestSeekTableMatchesSequentialRead(t *testing.T) {
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	ra, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if !ra.RandomAccess() {
		t.Fatal("a file written by ferry must open with random access")
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	seq, err := bundle.NewReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if !bytes.Equal(ra.IndexBytes(), seq.IndexBytes()) {
		t.Fatal("index.json differs between random and sequential reads")
	}
	n := 0
	for {
		desc, rd, err := seq.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := ra.OpenBlob(desc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("blob %s differs between seek-table and sequential reads", desc.Digest)
		}
		n++
	}
	if n != len(ra.Blobs()) || n == 0 {
		t.Errorf("sequential read gave %d blobs, random reader lists %d", n, len(ra.Blobs()))
	}
}

// TestExtractedLayoutReadByGGCR extracts the archive as stock tools would
// and reads every image with go-containerregistry's layout package.
func TestExtractedLayoutReadByGGCR(t *testing.T) {
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	dir := t.TempDir()
	extract(t, path, dir)
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
	if len(im.Manifests) != len(f.sample.Refs) {
		t.Fatalf("layout lists %d images, want %d", len(im.Manifests), len(f.sample.Refs))
	}
	for _, d := range im.Manifests {
		ref := d.Annotations["org.opencontainers.image.ref.name"]
		if want := f.sample.Digests[ref]; d.Digest.String() != want {
			t.Errorf("%s: digest %s, want %s", ref, d.Digest, want)
		}
		if d.MediaType.IsIndex() {
			ii, err := idx.ImageIndex(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkIndex(t, ii)
			continue
		}
		if d.MediaType.IsImage() {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img)
		}
	}
}

func checkIndex(t *testing.T, ii v1.ImageIndex) {
	t.Helper()
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		img, err := ii.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img)
	}
}

func checkImage(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // ggcr verifies the digest while reading
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
}

func extract(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPlatformFilter(t *testing.T) {
	f := newFixture(t)
	multi := f.src.Host + "/multi/tool:1.0"
	path := filepath.Join(t.TempDir(), "arm.tar.zst")
	sum, err := bundle.ExportFile(context.Background(), []string{multi}, path, bundle.ExportOptions{Platforms: []string{"linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Rewritten) != 1 || sum.Rewritten[0].Original.String() != f.sample.Digests[multi] {
		t.Fatalf("summary should report the rewritten index, got %+v", sum.Rewritten)
	}
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	imgs := r.Images()
	if len(imgs) != 1 || len(imgs[0].Platforms) != 1 || imgs[0].Platforms[0].Architecture != "arm64" {
		t.Fatalf("want one image with only linux/arm64, got %+v", imgs)
	}
	if got := imgs[0].Descriptor.Annotations[bundle.AnnotationOriginalDigest]; got != f.sample.Digests[multi] {
		t.Errorf("original digest annotation = %q, want %s", got, f.sample.Digests[multi])
	}
	// A filter matching nothing is an error naming what exists.
	_, err = bundle.Export(context.Background(), []string{multi}, io.Discard, bundle.ExportOptions{Platforms: []string{"windows/amd64"}})
	if !errors.Is(err, bundle.ErrNoMatchingPlatform) || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("want ErrNoMatchingPlatform listing the platforms, got %v", err)
	}
	// A single-platform image of another platform is refused too.
	_, err = bundle.Export(context.Background(), []string{f.src.Host + "/team/app:1.0"}, io.Discard, bundle.ExportOptions{Platforms: []string{"linux/arm64"}})
	if !errors.Is(err, bundle.ErrNoMatchingPlatform) || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("want ErrNoMatchingPlatform naming linux/amd64, got %v", err)
	}
}

func TestExportReportsEveryFailure(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "x.tar.zst")
	refs := []string{f.src.Host + "/team/app:1.0", f.src.Host + "/nope:1", f.src.Host + "/team/app:9.9", "BAD REF"}
	_, err := bundle.ExportFile(context.Background(), refs, out, bundle.ExportOptions{})
	var re *bundle.ResolveError
	if !errors.As(err, &re) || len(re.Failures) != 3 {
		t.Fatalf("want a ResolveError with 3 failures, got %v", err)
	}
	for _, want := range []string{"nope:1", "app:9.9", "BAD REF"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("failed export left files: %v", ents)
	}
}

// TestStockTools checks the archive with the zstd, tar and skopeo commands
// when they are installed (.ci/run installs them).
func TestStockTools(t *testing.T) {
	for _, tool := range []string{"zstd", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("stock %s is not installed (.ci/run installs it); skipping the external check", tool)
		}
	}
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `zstd -dc "$1" | tar -x -C "$2"`, "sh", path, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zstd -dc | tar -x: %v\n%s", err, out)
	}
	if out, err := exec.Command("zstd", "-t", path).CombinedOutput(); err != nil {
		t.Fatalf("zstd -t: %v\n%s", err, out)
	}
	if _, err := layout.FromPath(dir); err != nil {
		t.Fatalf("extracted layout: %v", err)
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed (.ci/run installs it); zstd and tar checks passed")
	}
	// Debian's skopeo cannot read Docker v2 media types from an OCI layout, so
	// check an OCI-typed image, and the multi-platform index.
	for _, ref := range []string{f.src.Host + "/team/app:1.0", f.src.Host + "/multi/tool:1.0"} {
		out, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+dir+":"+ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect oci:%s: %v\n%s", ref, err, out)
		}
		if d := sha256.Sum256(out); "sha256:"+hex.EncodeToString(d[:]) != f.sample.Digests[ref] {
			t.Errorf("skopeo read a manifest of another digest for %s", ref)
		}
	}
	// oci-archive: reads the compressed bundle directly.
	out, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+path+":"+f.src.Host+"/multi/tool:1.0").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect oci-archive: %v\n%s", err, out)
	}
	if d := sha256.Sum256(out); "sha256:"+hex.EncodeToString(d[:]) != f.sample.Digests[f.src.Host+"/multi/tool:1.0"] {
		t.Error("skopeo read another index from oci-archive:")
	}
	// skopeo 1.9 rewrites indexes that carry artifactType (it predates the
	// field), so a digest-preserving copy is checked on the single image.
	ref := f.src.Host + "/team/app:1.0"
	cp := exec.Command("skopeo", "copy", "--preserve-digests", "oci:"+dir+":"+ref, "oci:"+t.TempDir()+":copy")
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
}

func openStream(t *testing.T, path string) *bundle.Reader {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	r, err := bundle.NewReader(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A registry is pinged once per run, however many repositories the jobs
// open at the same time and however many token scopes they need (it was
// twice per repository: ferry's ping and the library transport's).
func TestOnePingPerRegistry(t *testing.T) {
	f := newFixture(t)
	f.src.Pings.Store(0) // pushing the sample pinged it
	path, _ := f.export(t, bundle.ExportOptions{Jobs: 16})
	if n := f.src.Pings.Load(); n != 1 {
		t.Errorf("export pinged the source %d times, want 1", n)
	}
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/mirror", bundle.ImportOptions{Jobs: 16}); err != nil {
		t.Fatal(err)
	}
	if n := f.dst.Pings.Load(); n != 1 {
		t.Errorf("import pinged the destination %d times, want 1", n)
	}
	tok := registrytest.New(t, tokenOptions)
	if _, err := bundle.ImportFile(context.Background(), path, tok.Host+"/mirror", bundle.ImportOptions{Jobs: 16, Registry: bundle.RegistryOptions{Keychain: tokenKeys}}); err != nil {
		t.Fatal(err)
	}
	if n := tok.Pings.Load(); n != 1 {
		t.Errorf("import pinged a registry with token authentication %d times, want 1 (%d tokens issued)", n, tok.TokensIssued())
	}
}

// Export reports every manifest it reads, and import every manifest it
// pushes and every tag it sets, one event each.
func TestManifestProgressEvents(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	count := map[bundle.EventKind]int{}
	progress := func(e bundle.Event) {
		mu.Lock()
		count[e.Kind]++
		mu.Unlock()
	}
	path, _ := f.export(t, bundle.ExportOptions{Progress: progress})
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	manifests := len(r.Manifests())
	r.Close()
	if count[bundle.EventManifest] != manifests {
		t.Errorf("export reported %d manifests, the bundle holds %d", count[bundle.EventManifest], manifests)
	}
	count = map[bundle.EventKind]int{}
	res, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/mirror", bundle.ImportOptions{Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	tags := 0
	for _, img := range res.Images {
		if strings.Contains(img.Destination[strings.LastIndex(img.Destination, "/"):], ":") {
			tags++
		}
	}
	// Each manifest pushed by digest is one event, each tag one more; a
	// manifest pushed only by its tag is counted once among the manifests.
	if n := count[bundle.EventManifest]; n == 0 || n < res.Manifests || n < tags || n > res.Manifests+tags {
		t.Errorf("import reported %d manifest events for %d manifests and %d tags", n, res.Manifests, tags)
	}
}
