package bundle

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// gzipBlob returns a gzip stream of at least size bytes of half-random
// text.
func gzipBlob(t testing.TB, size int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	for out.Len() < size {
		if rng.IntN(2) == 0 {
			zw.Write([]byte("the same line of text, again and again\n"))
		} else {
			var b [8]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			zw.Write(b[:])
		}
	}
	zw.Close()
	return out.Bytes()
}

// TestStoredFrames checks that gzip layers are stored in raw zstd blocks,
// that other content is compressed, and that both read back through the
// seek table, sequentially, with klauspost's decoder and with stock zstd.
func TestStoredFrames(t *testing.T) {
	for _, size := range []int{storeMinSize, rawBlockMax - 512, rawBlockMax*3 + 17, 1 << 20} {
		layer := gzipBlob(t, size, uint64(size))
		s := newSample(layer)
		data := writeBundle(t, s)
		table, _, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range table.Entries {
			if e.Digest != s.lDesc.Digest {
				continue
			}
			// A stored frame is the content plus 14 bytes of frame header,
			// 3 per block and a 4-byte checksum: never smaller than the layer.
			content := int64(512) + e.Size + padding(e.Size)
			blocks := (content + rawBlockMax - 1) / rawBlockMax
			if want := 14 + content + 3*blocks + 4; e.Length != want {
				t.Errorf("layer of %d bytes: frame is %d bytes, want %d (stored)", len(layer), e.Length, want)
			}
		}
		if err := readAll(data); err != nil {
			t.Fatalf("layer of %d bytes, sequential read: %v", len(layer), err)
		}
		r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := r.OpenBlob(s.lDesc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, layer) {
			t.Fatalf("layer of %d bytes via the seek table: %d bytes back, %v", len(layer), len(got), err)
		}
		dec, _ := zstd.NewReader(bytes.NewReader(data))
		all, err := io.ReadAll(dec)
		dec.Close()
		if err != nil || !bytes.Contains(all, layer) {
			t.Fatalf("klauspost zstd decoding the whole file: %v (layer found: %v)", err, bytes.Contains(all, layer))
		}
		if _, err := exec.LookPath("zstd"); err == nil {
			path := filepath.Join(t.TempDir(), "b.tar.zst")
			os.WriteFile(path, data, 0o644)
			out, err := exec.Command("zstd", "-dc", path).Output()
			if err != nil || !bytes.Equal(out, all) {
				t.Fatalf("stock zstd -dc: %v (same output: %v)", err, bytes.Equal(out, all))
			}
		}
	}
	// A small config is compressed, and so is a large layer that is not
	// compressed already (by its media type and its content).
	plain := bytes.Repeat([]byte("uncompressed tar layer "), 10000)
	s := newSampleTyped(plain, ocispec.MediaTypeImageLayer)
	data := writeBundle(t, s)
	if len(data) > len(plain)/4 {
		t.Errorf("an uncompressed layer of %d bytes made a bundle of %d: not compressed", len(plain), len(data))
	}
	// CompressAll turns storing off.
	layer := gzipBlob(t, 1<<20, 7)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	var stored, compressed bytes.Buffer
	e1, err := NewEncoder(EncoderOptions{}).EncodeBlob(&stored, desc, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := NewEncoder(EncoderOptions{CompressAll: true}).EncodeBlob(&compressed, desc, bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	if e1.Length <= e2.Length {
		t.Errorf("stored frame %d bytes, compressed %d: CompressAll had no effect", e1.Length, e2.Length)
	}
}

// TestStoredFrameBadContent checks that a stored blob that is shorter,
// longer or other than its descriptor says fails with ErrDigestMismatch.
func TestStoredFrameBadContent(t *testing.T) {
	layer := gzipBlob(t, 300<<10, 3)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	flipped := append([]byte(nil), layer...)
	flipped[len(flipped)/2] ^= 1
	// An empty blob with a digest that is not the empty one.
	if _, err := NewEncoder(EncoderOptions{}).EncodeBlob(io.Discard, ocispec.Descriptor{Digest: desc.Digest, Size: 0}, bytes.NewReader(nil)); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("empty content under a non-empty digest: err = %v, want ErrDigestMismatch", err)
	}
	for name, content := range map[string][]byte{
		"short":   layer[:len(layer)-1000],
		"long":    append(append([]byte(nil), layer...), 1, 2, 3),
		"flipped": flipped,
	} {
		plain := desc
		plain.MediaType = ocispec.MediaTypeImageLayer
		_, err := NewEncoder(EncoderOptions{}).EncodeBlob(io.Discard, plain, bytes.NewReader(content))
		if !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("%s content: err = %v, want ErrDigestMismatch", name, err)
		}
		_, err = NewEncoder(EncoderOptions{}).EncodeBlob(io.Discard, desc, io.MultiReader(bytes.NewReader(content), &zeroOnce{}))
		if !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("%s content, stored: err = %v, want ErrDigestMismatch", name, err)
		}
	}
}

// zeroOnce returns (0, nil) once, then io.EOF: legal for an io.Reader,
// and must not let content end without its digest being checked.
type zeroOnce struct{ done bool }

func (z *zeroOnce) Read(p []byte) (int, error) {
	if !z.done {
		z.done = true
		return 0, nil
	}
	return 0, io.EOF
}

// TestStoresDecision: EncoderOptions.stores is the one place that decides
// between storing and compressing, for the placed frames of an export and
// for every other entry alike.
func TestStoresDecision(t *testing.T) {
	gz, zst, plain := []byte{0x1f, 0x8b, 0x08, 0}, []byte{0x28, 0xb5, 0x2f, 0xfd}, []byte("tar ")
	big := int64(storeMinSize)
	for _, tc := range []struct {
		name string
		opts EncoderOptions
		desc ocispec.Descriptor
		head []byte
		want bool
	}{
		{"gzip layer by type", EncoderOptions{}, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Size: big}, nil, true},
		{"zstd layer by type", EncoderOptions{}, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Size: big}, plain, true},
		{"Docker gzip layer by type", EncoderOptions{}, ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Size: big}, nil, true},
		{"unknown type, gzip content", EncoderOptions{}, ocispec.Descriptor{MediaType: "application/octet-stream", Size: big}, gz, true},
		{"unknown type, zstd content", EncoderOptions{}, ocispec.Descriptor{Size: big}, zst, true},
		{"uncompressed layer", EncoderOptions{}, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Size: big}, plain, false},
		{"too small", EncoderOptions{}, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Size: big - 1}, gz, false},
		{"CompressAll", EncoderOptions{CompressAll: true}, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Size: big}, gz, false},
	} {
		if got := tc.opts.stores(tc.desc, tc.head); got != tc.want {
			t.Errorf("%s: stores = %v, want %v", tc.name, got, tc.want)
		}
	}
}
