package bundle_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestStoredLayersPlacedInFile checks the export path that fetches stored
// layers straight into their reserved place in the output file: the file
// is byte for byte what the streaming path writes, its layers are stored,
// a download cut halfway is fetched again into the same place, and the
// bundle imports with every digest intact.
func TestStoredLayersPlacedInFile(t *testing.T) {
	f := newFixtureSized(t, 600<<10) // layers over 64 KiB compressed: stored
	// Two dropped blob downloads: the placed frames must be rewritten whole.
	drop := &registrytest.Fault{Method: "GET", Path: "/blobs/sha256:", Drop: true, Times: 2}
	f.src.InjectFaults(drop)
	path, _ := f.export(t, bundle.ExportOptions{Jobs: 4, Registry: bundle.RegistryOptions{RetryBase: 1}})
	if drop.Hits() != 2 {
		t.Fatalf("the drop fault was hit %d times, want 2", drop.Hits())
	}
	var stream bytes.Buffer
	if _, err := bundle.Export(context.Background(), f.sample.Refs, &stream, bundle.ExportOptions{Created: created, Jobs: 3}); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, stream.Bytes()) {
		for i := range file {
			if file[i] != stream.Bytes()[i] {
				fr, _ := bundle.Open(path)
				for _, e := range fr.SeekTable().Entries {
					if e.Offset <= int64(i) && int64(i) < e.Offset+e.Length {
						t.Logf("first difference at %d, in %+v", i, e)
					}
				}
				break
			}
		}
		t.Fatalf("the file export (%d bytes) differs from the stream export (%d bytes)", len(file), stream.Len())
	}
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, e := range r.SeekTable().Entries {
		if e.Size > 64<<10 && e.Length == storedLength(e.Size) {
			stored++
		}
	}
	r.Close()
	if stored < 3 {
		t.Errorf("%d stored layers in the bundle, want at least 3", stored)
	}
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/m", bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	f.checkImported(t, "m/")
	if _, err := exec.LookPath("zstd"); err == nil {
		if out, err := exec.Command("zstd", "-t", path).CombinedOutput(); err != nil {
			t.Fatalf("stock zstd -t: %v\n%s", err, out)
		}
	}
	// A file that already holds 10 bytes, written at its offset, and one
	// opened for appending (as `ferry export -o - >> file` gives), which
	// cannot be written at an offset: both hold the same bundle after the
	// first 10 bytes.
	for _, flags := range []int{os.O_WRONLY | os.O_CREATE, os.O_WRONLY | os.O_CREATE | os.O_APPEND} {
		pre := filepath.Join(t.TempDir(), "offset.bin")
		if err := os.WriteFile(pre, []byte("0123456789"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(pre, flags, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if flags&os.O_APPEND == 0 {
			out.Seek(10, io.SeekStart)
		}
		if _, err := bundle.Export(context.Background(), f.sample.Refs, out, bundle.ExportOptions{Created: created}); err != nil {
			t.Fatalf("export to a file opened with flags %#x: %v", flags, err)
		}
		out.Close()
		got, _ := os.ReadFile(pre)
		if len(got) < 10 || !bytes.Equal(got[10:], file) {
			t.Errorf("flags %#x: the bundle written after 10 bytes of other content differs from the bundle alone", flags)
		}
	}
	// CompressAll: every layer is compressed, none stored.
	var all bytes.Buffer
	if _, err := bundle.Export(context.Background(), f.sample.Refs, &all, bundle.ExportOptions{Created: created, Encoder: bundle.EncoderOptions{CompressAll: true}}); err != nil {
		t.Fatal(err)
	}
	ar, err := bundle.OpenReaderAt(bytes.NewReader(all.Bytes()), int64(all.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ar.SeekTable().Entries {
		if e.Size > 64<<10 && e.Length == storedLength(e.Size) {
			t.Errorf("CompressAll: %s is stored (%d bytes for %d)", e.Name, e.Length, e.Size)
		}
	}
}

// TestTaggedChildOfIndex imports an index and, under another tag of the same
// repository, one of its child manifests: the child must be pushed by digest
// before the index (registries check an index's children), and each
// manifest is counted once.
func TestTaggedChildOfIndex(t *testing.T) {
	f := newFixture(t)
	indexRef := f.src.Host + "/multi/tool:1.0"
	r, _ := name.ParseReference(indexRef)
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child := im.Manifests[0].Digest
	img, err := remote.Image(r.Context().Digest(child.String()))
	if err != nil {
		t.Fatal(err)
	}
	childRef := f.src.Host + "/multi/tool:one"
	cr, _ := name.ParseReference(childRef)
	if err := remote.Tag(cr.(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), []string{indexRef, childRef}, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := bundle.ImportFile(context.Background(), path, f.dst.Host, bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(im.Manifests); res.Manifests != want {
		t.Errorf("%d manifests pushed, want %d (the index and its children, each once)", res.Manifests, want)
	}
	if got := destDigest(t, f.dst.Host+"/multi/tool:one"); got != child.String() {
		t.Errorf("multi/tool:one is %s at the destination, want %s", got, child)
	}
	if got, want := destDigest(t, f.dst.Host+"/multi/tool:1.0"), f.sample.Digests[indexRef]; got != want {
		t.Errorf("multi/tool:1.0 is %s at the destination, want %s", got, want)
	}
}

// storedLength is the length of the stored frame of a blob of size bytes
// (docs/format.md, section 2.3): a 512-byte tar header, the content and its
// padding, in raw blocks of 128 KiB with 3-byte headers, plus 14 bytes of
// frame header and a 4-byte checksum.
func storedLength(size int64) int64 {
	content := 512 + size + (512-size%512)%512
	return 14 + content + 3*((content+128<<10-1)/(128<<10)) + 4
}

// TestRegistryIgnoringMounts imports twice into a registry that answers
// every mount request with a plain upload session: the first import still
// completes, and the second finds every blob present and uploads nothing.
func TestRegistryIgnoringMounts(t *testing.T) {
	f := newFixture(t)
	dst := registrytest.New(t, registrytest.Options{IgnoreMount: true})
	path, sum := f.export(t, bundle.ExportOptions{})
	if _, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range f.sample.Refs {
		p := strings.TrimPrefix(ref, f.src.Host+"/")
		if got, want := destDigest(t, dst.Host+"/m/"+p), f.sample.Digests[ref]; got != want {
			t.Errorf("%s: destination digest %s, want %s", ref, got, want)
		}
	}
	uploads := dst.BlobUploads.Load()
	res, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.BlobUploads.Load() - uploads; n != 0 || res.BlobsUploaded != 0 {
		t.Errorf("the second import uploaded %d blobs (reported %d); want none", n, res.BlobsUploaded)
	}
	if res.BlobsSkipped == 0 || sum.Blobs == 0 {
		t.Errorf("the second import skipped %d blobs; want every blob skipped", res.BlobsSkipped)
	}
}
