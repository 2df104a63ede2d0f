package bundle

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// benchBundle is a bundle of one image with n incompressible layers of
// size bytes (like gzip layers), written with the default encoder.
func benchBundle(b *testing.B, n, size int) ([]byte, []ocispec.Descriptor) {
	b.Helper()
	layers := make([][]byte, n)
	descs := make([]ocispec.Descriptor, n)
	var ls bytes.Buffer
	for i := range layers {
		layers[i] = make([]byte, size)
		_, _ = rand.Read(layers[i])
		descs[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layers[i]), Size: int64(size)}
		if i > 0 {
			ls.WriteByte(',')
		}
		fmt.Fprintf(&ls, `{"mediaType":%q,"digest":%q,"size":%d}`, descs[i].MediaType, descs[i].Digest, size)
	}
	s := newSample([]byte("x"))
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[%s]}`,
		ocispec.MediaTypeImageManifest, s.cDesc.MediaType, s.cDesc.Digest, s.cDesc.Size, ls.String()))
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:"example.com/bench:1"}}]}`,
		md.MediaType, md.Digest, md.Size, AnnotationRefName))
	var buf bytes.Buffer
	w := NewWriter(&buf, EncoderOptions{})
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(w.WriteFile(LayoutFile, []byte(layoutContent)))
	must(w.WriteFile(IndexFile, index))
	must(w.WriteBlob(md, bytes.NewReader(manifest)))
	must(w.WriteBlob(s.cDesc, bytes.NewReader(s.config)))
	for i := range layers {
		must(w.WriteBlob(descs[i], bytes.NewReader(layers[i])))
	}
	must(w.Close())
	return buf.Bytes(), descs
}

const benchLayers, benchLayerSize = 8, 4 << 20

// BenchmarkWriter measures compressing and writing incompressible layers
// (the common case: gzip layers) through one Writer.
func BenchmarkWriter(b *testing.B) {
	layer := make([]byte, benchLayerSize)
	_, _ = rand.Read(layer)
	d := ocispec.Descriptor{Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	b.SetBytes(int64(len(layer)))
	b.ReportAllocs()
	enc := NewEncoder(EncoderOptions{})
	for b.Loop() {
		if _, err := enc.EncodeBlob(io.Discard, d, bytes.NewReader(layer)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderSequential reads a whole bundle in order with verification.
func BenchmarkReaderSequential(b *testing.B) {
	data, _ := benchBundle(b, benchLayers, benchLayerSize)
	b.SetBytes(int64(benchLayers * benchLayerSize))
	b.ReportAllocs()
	for b.Loop() {
		if err := readAll(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderSeekTable reads every layer through the seek table.
func BenchmarkReaderSeekTable(b *testing.B) {
	data, descs := benchBundle(b, benchLayers, benchLayerSize)
	b.SetBytes(int64(benchLayers * benchLayerSize))
	b.ReportAllocs()
	for b.Loop() {
		r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range descs {
			rc, err := r.OpenBlob(d)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	}
}

// BenchmarkVerifyReader measures hashing while reading (the floor of every
// verified path).
func BenchmarkVerifyReader(b *testing.B) {
	layer := make([]byte, benchLayerSize)
	_, _ = rand.Read(layer)
	d := ocispec.Descriptor{Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	b.SetBytes(int64(len(layer)))
	for b.Loop() {
		if _, err := io.Copy(io.Discard, NewVerifyReader(bytes.NewReader(layer), d)); err != nil {
			b.Fatal(err)
		}
	}
}
