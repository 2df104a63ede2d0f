package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// doc is a manifest or index built in a test.
type doc struct {
	desc  ocispec.Descriptor
	bytes []byte
}

func descJSON(d ocispec.Descriptor) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, d.MediaType, d.Digest, d.Size)
}

func newDoc(mediaType, body string) doc {
	b := []byte(body)
	return doc{desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, bytes: b}
}

// imageDoc is an image manifest listing config and layers as given.
func imageDoc(config ocispec.Descriptor, layers ...ocispec.Descriptor) doc {
	ls := make([]string, len(layers))
	for i, l := range layers {
		ls[i] = descJSON(l)
	}
	return newDoc(ocispec.MediaTypeImageManifest, fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":%s,"layers":[%s]}`,
		ocispec.MediaTypeImageManifest, descJSON(config), strings.Join(ls, ",")))
}

// indexDoc is an index listing child n times.
func indexDoc(child ocispec.Descriptor, n int) doc {
	var b strings.Builder
	fmt.Fprintf(&b, `{"schemaVersion":2,"mediaType":%q,"manifests":[`, ocispec.MediaTypeImageIndex)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(descJSON(child))
	}
	b.WriteString("]}")
	return newDoc(ocispec.MediaTypeImageIndex, b.String())
}

type rootRef struct {
	ref  string
	desc ocispec.Descriptor
}

// craftBundle writes a bundle (with seek table) whose index.json lists
// roots, holding manifests and blobs as given.
func craftBundle(t testing.TB, roots []rootRef, manifests []doc, blobs []doc) []byte {
	t.Helper()
	ds := make([]string, len(roots))
	for i, r := range roots {
		ds[i] = fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:%q}}`, r.desc.MediaType, r.desc.Digest, r.desc.Size, AnnotationRefName, r.ref)
	}
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, ocispec.MediaTypeImageIndex, strings.Join(ds, ","))
	var buf bytes.Buffer
	w := NewWriter(&buf, EncoderOptions{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteFile(LayoutFile, []byte(layoutContent)))
	must(w.WriteFile(IndexFile, []byte(index)))
	for _, m := range manifests {
		must(w.WriteBlob(m.desc, bytes.NewReader(m.bytes)))
	}
	for _, b := range blobs {
		must(w.WriteBlob(b.desc, bytes.NewReader(b.bytes)))
	}
	must(w.Close())
	return buf.Bytes()
}

// readEveryWay reads data as a stream, as a file through its seek table,
// and with VerifyFile, and returns the three results.
func readEveryWay(t *testing.T, data []byte) map[string]error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]error{"stream": readAll(data)}
	r, err := Open(path)
	if err == nil {
		if !r.RandomAccess() {
			t.Fatal("not read through the seek table")
		}
		err = consume(r)
		r.Close()
	}
	out["seek table"] = err
	_, out["verify"] = VerifyFile(path, nil)
	return out
}

// Every descriptor of a digest must agree on size and media type, however
// the references are ordered, and a ref name pinned to a digest must match
// its descriptor: every way of reading refuses the bundle.
func TestDescriptorConflicts(t *testing.T) {
	t.Parallel()
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	layer := bytes.Repeat([]byte("shared layer "), 100)
	lDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	blobs := []doc{{cDesc, config}, {lDesc, layer}}
	other := []byte("another layer")
	oDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(other), Size: int64(len(other))}
	blobsWithOther := []doc{{cDesc, config}, {lDesc, layer}, {oDesc, other}}

	m1 := imageDoc(cDesc, lDesc)
	bigger := lDesc
	bigger.Size += 1000
	m2 := imageDoc(cDesc, oDesc, bigger)
	tar := lDesc
	tar.MediaType = ocispec.MediaTypeImageLayer
	m3 := imageDoc(cDesc, oDesc, tar)
	m1b := m1.desc
	m1b.Size++
	pinned := "example.com/app@" + m2.desc.Digest.String()

	cases := []struct {
		name  string
		data  []byte
		words []string
	}{
		{"a second manifest declares a shared layer 1000 bytes larger", craftBundle(t,
			[]rootRef{{"example.com/app:1", m1.desc}, {"example.com/app:2", m2.desc}}, []doc{m1, m2}, blobsWithOther),
			[]string{fmt.Sprintf("%s is %d bytes", lDesc.Digest, lDesc.Size), fmt.Sprintf("but %d bytes", lDesc.Size+1000)}},
		{"the same, the larger one first", craftBundle(t,
			[]rootRef{{"example.com/app:2", m2.desc}, {"example.com/app:1", m1.desc}}, []doc{m2, m1}, blobsWithOther),
			[]string{fmt.Sprintf("%s is %d bytes", lDesc.Digest, lDesc.Size+1000), fmt.Sprintf("but %d bytes", lDesc.Size)}},
		{"a second manifest gives a shared layer another media type", craftBundle(t,
			[]rootRef{{"example.com/app:1", m1.desc}, {"example.com/app:3", m3.desc}}, []doc{m1, m3}, blobsWithOther),
			[]string{`of "application/vnd.oci.image.layer.v1.tar+gzip"`, `of "application/vnd.oci.image.layer.v1.tar" in manifest ` + m3.desc.Digest.String()}},
		{"index.json lists one manifest twice with different sizes", craftBundle(t,
			[]rootRef{{"example.com/app:1", m1.desc}, {"example.com/app:2", m1b}}, []doc{m1}, blobs),
			[]string{"index.json entry example.com/app:2"}},
		{"a pinned ref name names another digest", craftBundle(t,
			[]rootRef{{pinned, m1.desc}}, []doc{m1}, blobs),
			[]string{"index.json entry 0 names " + pinned + " but its descriptor is " + m1.desc.Digest.String()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for way, err := range readEveryWay(t, tc.data) {
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrDescriptorConflict) {
					t.Errorf("%s: got %v, want ErrCorrupt and ErrDescriptorConflict", way, err)
					continue
				}
				for _, w := range tc.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not say %q", way, err, w)
					}
				}
			}
		})
	}

	// Docker and OCI names of the same layer agree.
	docker := lDesc
	docker.MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	m4 := imageDoc(cDesc, docker)
	ok := craftBundle(t, []rootRef{{"example.com/app:1", m1.desc}, {"example.com/app:4", m4.desc}}, []doc{m1, m4}, blobs)
	for way, err := range readEveryWay(t, ok) {
		if err != nil {
			t.Errorf("Docker and OCI media types of one layer: %s: %v", way, err)
		}
	}
}

// allocated returns the bytes allocated by f.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// fanOut is an index listing index B 20,000 times, B listing one image
// 20,000 times (two documents of about 3 MB), and a chain of ten indexes,
// each listing the next ten times.
func fanOut() (wide, deep []doc, image doc, blobs []doc) {
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	layer := []byte("fan-out layer")
	lDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	blobs = []doc{{cDesc, config}, {lDesc, layer}}
	image = imageDoc(cDesc, lDesc)
	b := indexDoc(image.desc, 20000)
	wide = []doc{indexDoc(b.desc, 20000), b}
	child := image
	for range 10 {
		child = indexDoc(child.desc, 10)
		deep = append([]doc{child}, deep...)
	}
	return wide, deep, image, blobs
}

// The manifest graph is expanded once per manifest: a bundle whose index
// reaches one image 400 million times through two 3 MB indexes reads in
// memory proportional to its size, and ten nested levels of ten are refused
// for their depth without walking 10^10 paths.
func TestFanOutBundle(t *testing.T) {
	wide, deep, image, blobs := fanOut()
	data := craftBundle(t, []rootRef{{"example.com/fan:wide", wide[0].desc}}, append(wide, image), blobs)
	var errs map[string]error
	alloc := allocated(func() { errs = readEveryWay(t, data) })
	for way, err := range errs {
		if err != nil {
			t.Errorf("two levels of 20,000: %s: %v", way, err)
		}
	}
	t.Logf("two levels of 20,000: bundle %d bytes; three reads allocated %d MiB", len(data), alloc>>20)
	if alloc > 512<<20 {
		t.Errorf("reading allocated %d MiB", alloc>>20)
	}

	data = craftBundle(t, []rootRef{{"example.com/fan:deep", deep[0].desc}}, append(deep, image), blobs)
	alloc = allocated(func() { errs = readEveryWay(t, data) })
	for way, err := range errs {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "example.com/fan:deep: archive is corrupt: manifests nested deeper than 8 levels") {
			t.Errorf("ten levels of ten: %s: got %v, want ErrCorrupt saying the nesting is too deep", way, err)
		}
	}
	t.Logf("ten levels of ten: three reads allocated %d MiB", alloc>>20)
}

// The same graphs upstream: export resolves them with work linear in their
// size.
func TestFanOutExport(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	wide, deep, image, blobs := fanOut()
	ctx := context.Background()
	repo, err := name.NewRepository(reg.Host + "/fan")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := remote.WriteLayer(repo, static.NewLayer(b.bytes, types.MediaType(b.desc.MediaType)), remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	push := func(tag string, docs ...doc) {
		for i := len(docs) - 1; i >= 0; i-- {
			ref := repo.Digest(docs[i].desc.Digest.String())
			var r name.Reference = ref
			if i == 0 {
				r = repo.Tag(tag)
			}
			if err := remote.Put(r, testimages.Raw{Bytes: docs[i].bytes, Type: types.MediaType(docs[i].desc.MediaType)}, remote.WithContext(ctx)); err != nil {
				t.Fatal(err)
			}
		}
	}
	push("image", image)
	push("wide", append(wide, image)...)
	push("deep", append(deep, image)...)

	var sum *ExportSummary
	alloc := allocated(func() {
		sum, err = Export(ctx, []string{reg.Host + "/fan:wide"}, io.Discard, ExportOptions{})
	})
	if err != nil {
		t.Fatalf("export of two levels of 20,000: %v", err)
	}
	t.Logf("export of two levels of 20,000: %d blobs, %d bytes; allocated %d MiB", sum.Blobs, sum.ArchiveBytes, alloc>>20)
	if sum.Blobs != 5 {
		t.Errorf("exported %d blobs, want 5 (two indexes, the image, its config and layer)", sum.Blobs)
	}
	if alloc > 512<<20 {
		t.Errorf("export allocated %d MiB", alloc>>20)
	}
	start := time.Now()
	_, err = Export(ctx, []string{reg.Host + "/fan:deep"}, io.Discard, ExportOptions{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "nested deeper than 8 levels") {
		t.Errorf("export of ten levels of ten: got %v, want ErrCorrupt saying the nesting is too deep", err)
	}
	t.Logf("export of ten levels of ten refused in %v", time.Since(start))
}

// Upstream, two manifests that disagree on a shared layer's size are
// refused in either argument order, naming the reference (not a bundle
// error: exit 1, not 3).
func TestExportDescriptorConflict(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	ctx := context.Background()
	repo, err := name.NewRepository(reg.Host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	cDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	layer := bytes.Repeat([]byte("shared layer "), 100)
	lDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	for _, b := range []doc{{cDesc, config}, {lDesc, layer}} {
		if err := remote.WriteLayer(repo, static.NewLayer(b.bytes, types.MediaType(b.desc.MediaType)), remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	bigger := lDesc
	bigger.Size += 1000
	for tag, m := range map[string]doc{"a": imageDoc(cDesc, lDesc), "b": imageDoc(cDesc, bigger)} {
		if err := remote.Put(repo.Tag(tag), testimages.Raw{Bytes: m.bytes, Type: types.OCIManifestSchema1}, remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := reg.Host+"/app:a", reg.Host+"/app:b"
	for _, refs := range [][]string{{a, b}, {b, a}} {
		_, err := Export(ctx, refs, io.Discard, ExportOptions{})
		if !errors.Is(err, ErrDescriptorConflict) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrDigestMismatch) {
			t.Errorf("export %v: got %v, want ErrDescriptorConflict only", refs, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), refs[1]+": ") || !strings.Contains(err.Error(), lDesc.Digest.String()) {
			t.Errorf("export %v: %q does not name %s and the layer", refs, err, refs[1])
		}
	}
}
