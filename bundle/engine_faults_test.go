package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// TestStreamImportFanOutToSeveralRepositories: a bundle read from a stream
// whose layer goes to three repositories of a registry that ignores mount
// requests, the first of which already holds it. The other two upload it at
// once: each must get the whole blob (the first to open it reads the
// stream through the spool, the other must wait for the spool rather than
// drain the stream under it).
func TestStreamImportFanOutToSeveralRepositories(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	layer := testimages.Layer("fan-out-stream", 6<<20)
	var refs []string
	for _, repo := range []string{"team/a:1.0", "team/b:1.0", "team/c:1.0"} {
		refs = append(refs, pushImage(t, src.Host, repo, layer).ref)
	}
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), refs, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{IgnoreMount: true})
	// The first repository of the blob already has it.
	repo, err := name.NewRepository(dst.Host + "/m/team/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, layer); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	res, err := bundle.Import(context.Background(), openStream(t, path), dst.Host+"/m", bundle.ImportOptions{TempDir: tmp})
	if err != nil {
		t.Fatalf("import from a stream: %v", err)
	}
	if len(res.Images) != 3 {
		t.Errorf("imported %d images, want 3", len(res.Images))
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the import left %d temporary file(s), such as %s", len(left), left[0].Name())
	}
}

// TestImportRetriesBoundRequests: with Retries 2, pushing one blob makes
// at most 3 requests of each kind, whatever fails and whether the bundle
// is read from a file or a stream: the engine's retries and the
// transport's share one budget per blob and repository.
func TestImportRetriesBoundRequests(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	layer := testimages.Layer("import-retries", 256<<10)
	a := pushImage(t, src.Host, "team/a:1.0", layer)
	b := pushImage(t, src.Host, "team/b:1.0", layer)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), []string{a.ref, b.ref}, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := bundle.ImportOptions{Jobs: 1, Registry: bundle.RegistryOptions{Retries: 2, RetryBase: time.Millisecond}}
	for _, tc := range []struct {
		name  string
		fault func() *registrytest.Fault
		want  string
	}{
		{"upload always 503", func() *registrytest.Fault {
			return &registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable, Times: 1000}
		}, "giving up after 2 retries (re-run the import to continue; --retries raises the limit): "},
		{"upload always cut", func() *registrytest.Fault {
			return &registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Drop: true, Times: 1000}
		}, "giving up after 2 retries (re-run the import to continue; --retries raises the limit): "},
		{"start always 503", func() *registrytest.Fault {
			// The upload request of the blob (a mount request), not the
			// push-access check before it.
			return &registrytest.Fault{Method: http.MethodPost, Path: "/blobs/uploads/", Query: "mount=", Status: http.StatusServiceUnavailable, Times: 1000}
		}, "starting the upload: "},
		{"mount to the second repository always 503", func() *registrytest.Fault {
			return &registrytest.Fault{Method: http.MethodPost, Path: "/m/team/b/blobs/uploads/", Query: "mount=", Status: http.StatusServiceUnavailable, Times: 1000}
		}, "starting the upload: "},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				t.Parallel()
				dst := registrytest.New(t, registrytest.Options{})
				f := tc.fault()
				dst.InjectFaults(f)
				var err error
				if stream {
					_, err = bundle.Import(context.Background(), openStream(t, path), dst.Host+"/m", opts)
				} else {
					_, err = bundle.ImportFile(context.Background(), path, dst.Host+"/m", opts)
				}
				var be *bundle.BlobError
				if !errors.As(err, &be) || be.Op != "push" || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %v, want a BlobError for a push that says %q", err, tc.want)
				}
				t.Log(err)
				if f.Hits() != 3 {
					t.Errorf("the failing request was sent %d times, want 3 (Retries 2)", f.Hits())
				}
			})
		}
	}
}

// TestLocalSourcesAreNotReadAgain: content that does not match its digest
// in a local source (a blob file of an OCI layout on export, a blob of a
// bundle file or stream on import) fails the copy at once, as the source's
// damage: reading a local file again cannot help, so the retries (here
// with a one-minute backoff) are not spent on it.
func TestLocalSourcesAreNotReadAgain(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	layer := testimages.Layer("local-source", 256<<10)
	img := pushImage(t, src.Host, "team/app:1.0", layer)
	// A retry would wait a minute first: longer than each subtest's
	// context, which then ends the copy with its deadline instead of the
	// digest mismatch the subtests expect. (Each subtest makes its own
	// context: parallel subtests wait for the rest of the package first.)
	slow := bundle.RegistryOptions{Retries: 3, RetryBase: time.Minute}
	noRetry := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	var good bytes.Buffer
	if _, err := bundle.Export(context.Background(), []string{img.ref}, &good, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	d := img.layers[0].String()
	blobEntry := "blobs/sha256/" + img.layers[0].Hex
	want := "blob " + d + " (used by " + img.ref + "): "

	t.Run("export from a layout", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "layout")
		ctx := noRetry(t)
		if _, err := bundle.Import(ctx, mustReader(t, good.Bytes()), "oci:"+dir, bundle.ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, blobEntry)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = bundle.Export(ctx, []string{"oci:" + dir}, io.Discard, bundle.ExportOptions{Registry: slow})
		if !errors.Is(err, bundle.ErrDigestMismatch) {
			t.Fatalf("got %v, want ErrDigestMismatch", err)
		}
		var be *bundle.BlobError
		if !errors.As(err, &be) || be.Op != "fetch" || be.Digest.String() != d {
			t.Errorf("got %v, want a BlobError for fetching %s", err, d)
		}
		if w := "fetch " + want + "from oci:" + dir + " (re-run the export to try again): digest mismatch: content of blob " + d + " hashes to sha256:"; !strings.Contains(err.Error(), w) {
			t.Errorf("the message does not say %q:\n%v", w, err)
		}
	})
	entries, eoa := archivetest.Split(t, good.Bytes())
	bad := archivetest.Framed(t, archivetest.Flipped(t, entries, blobEntry), eoa)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("import stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			dst := registrytest.New(t, registrytest.Options{})
			var r *bundle.Reader
			if stream {
				r = mustReader(t, bad)
			} else {
				path := filepath.Join(t.TempDir(), "bad.tar.zst")
				if err := os.WriteFile(path, bad, 0o644); err != nil {
					t.Fatal(err)
				}
				var err error
				if r, err = bundle.Open(path); err != nil {
					t.Fatal(err)
				}
				defer r.Close()
			}
			_, err := bundle.Import(noRetry(t), r, dst.Host+"/m", bundle.ImportOptions{Registry: slow})
			if !errors.Is(err, bundle.ErrDigestMismatch) {
				t.Fatalf("got %v, want ErrDigestMismatch", err)
			}
			var be *bundle.BlobError
			if !errors.As(err, &be) || be.Op != "verify" || be.Digest.String() != d {
				t.Errorf("got %v, want a BlobError for verifying %s", err, d)
			}
			if w := "verify " + want + "digest mismatch: content of blob " + d + " hashes to sha256:"; !strings.Contains(err.Error(), w) {
				t.Errorf("the message does not say %q:\n%v", w, err)
			}
		})
	}
}

func mustReader(t *testing.T, b []byte) *bundle.Reader {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestImportToLayoutInterrupted: an import into an OCI layout interrupted
// (Ctrl-C) after its first blob stops there with context.Canceled; it does
// not go on to write manifests and an index.json that lists images whose
// blobs were never copied. The layout target and a bundle file never look
// at the context, so every transfer in progress completes; the ones not
// yet started used to be dropped as if done, and the import reported
// success.
func TestImportToLayoutInterrupted(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	var refs []string
	for i, repo := range []string{"team/a:1.0", "team/b:1.0", "team/c:1.0"} {
		refs = append(refs, pushImage(t, src.Host, repo, testimages.Layer(fmt.Sprint("interrupted", i), 64<<10)).ref)
	}
	var good bytes.Buffer
	if _, err := bundle.Export(context.Background(), refs, &good, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if err := os.WriteFile(path, good.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Interrupted when the first blob is in.
			progress := func(ev bundle.Event) {
				if ev.Kind == bundle.EventBlobDone {
					cancel()
				}
			}
			var r *bundle.Reader
			if stream {
				r = mustReader(t, good.Bytes())
			} else {
				var err error
				if r, err = bundle.Open(path); err != nil {
					t.Fatal(err)
				}
				defer r.Close()
			}
			dir, tmp := filepath.Join(t.TempDir(), "layout"), t.TempDir()
			res, err := bundle.Import(ctx, r, "oci:"+dir, bundle.ImportOptions{Jobs: 1, Progress: progress, TempDir: tmp})
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("the interrupted import left %s in its temporary directory", left[0].Name())
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v (%+v), want context.Canceled", err, res)
			}
			if w := "context canceled; no manifest or tag was pushed (1 blob(s) already pushed are content-addressed and harmless)"; err.Error() != w {
				t.Errorf("got %q, want %q", err, w)
			}
			if _, err := os.Stat(filepath.Join(dir, "index.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an interrupted import wrote the layout's index.json (%v)", err)
			}
		})
	}
}

// TestProgressOnceThroughRetries: a blob whose download breaks midway and
// is fetched again reports one start, its size in bytes (not its size
// plus what the broken attempt read: a bar past 100%) and one done.
func TestProgressOnceThroughRetries(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	img := pushImage(t, src.Host, "team/app:1.0", testimages.Layer("progress-retry", 4<<20))
	layer := img.layers[0].String()
	fault := &registrytest.Fault{Method: http.MethodGet, Path: "/blobs/" + layer, Drop: true, Times: 1}
	src.InjectFaults(fault)
	var mu sync.Mutex
	starts, dones := map[string]int{}, map[string]int{}
	bytesOf, sizes := map[string]int64{}, map[string]int64{}
	progress := func(ev bundle.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case bundle.EventBlobStart:
			starts[ev.Digest]++
			sizes[ev.Digest] = ev.Size
		case bundle.EventBlobBytes:
			bytesOf[ev.Digest] += ev.Bytes
		case bundle.EventBlobDone:
			dones[ev.Digest]++
		}
	}
	opts := bundle.ExportOptions{Progress: progress, Registry: bundle.RegistryOptions{Retries: 2, RetryBase: time.Millisecond}}
	if _, err := bundle.Export(context.Background(), []string{img.ref}, io.Discard, opts); err != nil {
		t.Fatal(err)
	}
	if fault.Hits() != 1 {
		t.Fatalf("the fault was injected %d times, want 1", fault.Hits())
	}
	for d, size := range sizes {
		if starts[d] != 1 || dones[d] != 1 || bytesOf[d] != size {
			t.Errorf("blob %s (%d bytes): %d start(s), %d byte(s) reported, %d done(s); want 1, %d, 1", d, size, starts[d], bytesOf[d], dones[d], size)
		}
	}
	if sizes[layer] == 0 {
		t.Errorf("no start for the layer %s", layer)
	}
}

// TestExportInterruptedLeavesNothing: an export interrupted after its
// first blob fails with context.Canceled and leaves no spool file in its
// temporary directory and nothing in its output directory, writing to a
// stream (every blob spooled) or to a file.
func TestExportInterruptedLeavesNothing(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	var layers []v1.Layer
	for i := range 4 {
		layers = append(layers, static.NewLayer(testimages.LayerBytes(fmt.Sprint("interrupt-export", i), 3<<20), types.OCIUncompressedLayer))
	}
	img := pushImage(t, src.Host, "team/big:1.0", layers...)
	for _, toFile := range []bool{false, true} {
		t.Run(fmt.Sprintf("file=%v", toFile), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tmp, out := t.TempDir(), t.TempDir()
			opts := bundle.ExportOptions{Jobs: 2, TempDir: tmp, Progress: func(ev bundle.Event) {
				if ev.Kind == bundle.EventBlobDone {
					cancel()
				}
			}}
			var err error
			if toFile {
				_, err = bundle.ExportFile(ctx, []string{img.ref}, filepath.Join(out, "b.tar.zst"), opts)
			} else {
				_, err = bundle.Export(ctx, []string{img.ref}, io.Discard, opts)
			}
			if !errors.Is(err, context.Canceled) || err.Error() != "context canceled" {
				t.Errorf("got %v, want context.Canceled", err)
			}
			for _, dir := range []string{tmp, out} {
				if left, _ := os.ReadDir(dir); len(left) > 0 {
					t.Errorf("the interrupted export left %s in %s", left[0].Name(), dir)
				}
			}
		})
	}
}
