package archivetest_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
)

// sampleBundle writes a one-image bundle with bundle.Writer and returns it
// with the layer's descriptor.
func sampleBundle(t *testing.T) ([]byte, ocispec.Descriptor) {
	t.Helper()
	desc := func(mt string, b []byte) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte("archivetest layer "), 500)
	cDesc, lDesc := desc(ocispec.MediaTypeImageConfig, config), desc(ocispec.MediaTypeImageLayerGzip, layer)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, cDesc.MediaType, cDesc.Digest, cDesc.Size, lDesc.MediaType, lDesc.Digest, lDesc.Size))
	mDesc := desc(ocispec.MediaTypeImageManifest, manifest)
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:"example.com/app:1.0"}}]}`,
		ocispec.MediaTypeImageIndex, mDesc.MediaType, mDesc.Digest, mDesc.Size, bundle.AnnotationRefName))
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, bundle.EncoderOptions{})
	for _, err := range []error{
		w.WriteFile(bundle.LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		w.WriteFile(bundle.IndexFile, index),
		w.WriteBlob(mDesc, bytes.NewReader(manifest)),
		w.WriteBlob(cDesc, bytes.NewReader(config)),
		w.WriteBlob(lDesc, bytes.NewReader(layer)),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes(), lDesc
}

// readLayer opens data with bundle.OpenReaderAt and reads the layer
// through the reader's random access.
func readLayer(t *testing.T, data []byte, layer ocispec.Descriptor) ([]byte, error) {
	t.Helper()
	r, err := bundle.OpenReaderAt(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if !r.RandomAccess() {
		t.Fatal("bundle read sequentially, want random access through the seek table")
	}
	rc, err := r.OpenBlob(layer)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestFramedOpensWithRandomAccess(t *testing.T) {
	data, layer := sampleBundle(t)
	ents, eoa := archivetest.Split(t, data)
	name := bundle.BlobPath(layer.Digest)
	want := ents[archivetest.Index(t, ents, name)].Body

	// Unchanged: the same frames and an equivalent seek table.
	reframed := archivetest.Framed(t, ents, eoa)
	if !bytes.Equal(reframed, data) {
		t.Errorf("Framed of unchanged entries differs from the original bundle (%d vs %d bytes)", len(reframed), len(data))
	}
	if _, err := bundle.ReadSeekTable(bytes.NewReader(reframed), int64(len(reframed))); err != nil {
		t.Fatalf("seek table of Framed: %v", err)
	}
	got, err := readLayer(t, reframed, layer)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reading the layer of Framed = %d bytes, %v; want %d bytes", len(got), err, len(want))
	}

	// Tampered: the re-encoded frame is found through the seek table and
	// its content is refused.
	tampered := archivetest.Framed(t, archivetest.Flipped(t, ents, name), eoa)
	if _, err := readLayer(t, tampered, layer); err == nil {
		t.Fatal("tampered layer read without error")
	}
}

// A WithPAX entry reads back, with the Go tar reader, as the entry with the
// records applied, in a bundle that still opens through its seek table.
func TestWithPAX(t *testing.T) {
	data, layer := sampleBundle(t)
	ents, eoa := archivetest.Split(t, data)
	name := bundle.BlobPath(layer.Digest)
	i := archivetest.Index(t, ents, name)
	want := ents[i].Body
	ents[i] = archivetest.WithPAX(t, ents[i], archivetest.PAXRecord("comment", "hello"))

	tr := tar.NewReader(bytes.NewReader(archivetest.Tar(t, ents[i:i+1], true)))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != name || h.PAXRecords["comment"] != "hello" {
		t.Errorf("header %q with records %v, want %q with comment=hello", h.Name, h.PAXRecords, name)
	}
	if body, err := io.ReadAll(tr); err != nil || !bytes.Equal(body, want) {
		t.Errorf("content: %d bytes, %v; want %d bytes", len(body), err, len(want))
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the entry: %v, want io.EOF", err)
	}
	if got, err := readLayer(t, archivetest.Framed(t, ents, eoa), layer); err != nil || !bytes.Equal(got, want) {
		t.Errorf("reading the layer through the seek table: %d bytes, %v", len(got), err)
	}
	if rec := archivetest.PAXRecord("k", "v"); rec != "6 k=v\n" {
		t.Errorf("PAXRecord(k, v) = %q", rec)
	}
	if rec := archivetest.PAXRecord("key", "valu"); rec != "12 key=valu\n" {
		t.Errorf("PAXRecord(key, valu) = %q", rec)
	}
}
