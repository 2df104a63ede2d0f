package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// spoolWatcher records, when each blob download finishes, whether a spool
// file (.ferry-spool-*) is in the temporary directory. A blob's spool file
// lives from its download until it is written to the bundle, which comes
// after the download is reported done.
type spoolWatcher struct {
	dir     string
	mu      sync.Mutex
	spooled map[string]bool
}

func (w *spoolWatcher) progress(ev bundle.Event) {
	if ev.Kind != bundle.EventBlobDone {
		return
	}
	ents, _ := os.ReadDir(w.dir)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".ferry-spool-") {
			w.spooled[ev.Digest] = true
		}
	}
}

// TestExportSpoolsLargeBlobsToDisk: blobs above the in-memory spool limit
// (1 MiB) that are compressed, not stored, wait for their turn in the
// bundle in temporary files when the output is a stream. The bundle holds
// them intact, and no temporary file is left, after a success or a failure.
func TestExportSpoolsLargeBlobsToDisk(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	rng := rand.New(rand.NewSource(1))
	content := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	// Plain tar layers: compressed into the bundle, so they are spooled.
	big1, big2, small := content(1<<20+1), content(2<<20), content(10<<10)
	var layers []v1.Layer
	for _, b := range [][]byte{big1, big2, small} {
		layers = append(layers, static.NewLayer(b, types.OCIUncompressedLayer))
	}
	img := pushImage(t, reg.Host, "team/big:1.0", layers...)
	want := map[string][]byte{img.layers[0].String(): big1, img.layers[1].String(): big2, img.layers[2].String(): small}

	tmp := t.TempDir()
	export := func(opts bundle.ExportOptions) ([]byte, *spoolWatcher, error) {
		w := &spoolWatcher{dir: tmp, spooled: map[string]bool{}}
		opts.TempDir, opts.Jobs, opts.Progress = tmp, 1, w.progress
		var out bytes.Buffer // not a file: blobs are written in order, through the spool
		_, err := bundle.Export(context.Background(), []string{img.ref}, &out, opts)
		if left, _ := os.ReadDir(tmp); len(left) > 0 {
			t.Errorf("the export left %d temporary file(s), such as %s", len(left), left[0].Name())
		}
		return out.Bytes(), w, err
	}
	spooledBig := func(t *testing.T, w *spoolWatcher) {
		t.Helper()
		for _, d := range img.layers[:2] {
			if !w.spooled[d.String()] {
				t.Errorf("no spool file in %s when blob %s (over 1 MiB) was downloaded: the disk spool was not used", tmp, d)
			}
		}
	}

	// check reads the bundle back, in order and through the seek table;
	// every blob is verified against its digest as it is read.
	check := func(t *testing.T, data []byte) {
		t.Helper()
		r, err := bundle.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		missing := maps.Clone(want)
		for {
			desc, rd, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading the bundle in order: %v", err)
			}
			b, err := io.ReadAll(rd)
			if err != nil {
				t.Fatalf("reading blob %s: %v", desc.Digest, err)
			}
			if c, ok := want[desc.Digest.String()]; ok && !bytes.Equal(b, c) {
				t.Errorf("blob %s differs from the layer pushed", desc.Digest)
			}
			delete(missing, desc.Digest.String())
		}
		if len(missing) > 0 {
			t.Errorf("the bundle lacks %d of the layers", len(missing))
		}
		path := filepath.Join(t.TempDir(), "b.tar.zst")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ra, err := bundle.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer ra.Close()
		if !ra.RandomAccess() {
			t.Error("the bundle has no seek table")
		}
		for _, b := range ra.Blobs() {
			rc, err := ra.OpenBlob(b)
			if err != nil {
				t.Fatalf("opening blob %s: %v", b.Digest, err)
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Errorf("reading blob %s through the seek table: %v", b.Digest, err)
			}
		}
	}

	data, w, err := export(bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spooledBig(t, w)
	check(t, data)

	// A download of a large blob broken midway is fetched again into the
	// same spool file, which starts afresh.
	drop := &registrytest.Fault{Method: http.MethodGet, Path: "/blobs/" + img.layers[1].String(), Drop: true, Times: 1}
	reg.InjectFaults(drop)
	data, w, err = export(bundle.ExportOptions{Registry: bundle.RegistryOptions{RetryBase: time.Millisecond}})
	reg.InjectFaults()
	if err != nil || drop.Hits() != 1 {
		t.Fatalf("export with one broken download (%d): %v", drop.Hits(), err)
	}
	spooledBig(t, w)
	check(t, data)

	// A failure after the large blobs were spooled (the last blob is
	// served corrupted) leaves no temporary file either.
	reg.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/blobs/" + img.layers[2].String(), Corrupt: true, Times: 1000})
	_, w, err = export(bundle.ExportOptions{Registry: bundle.RegistryOptions{Retries: -1, RetryBase: time.Millisecond}})
	if !errors.Is(err, bundle.ErrDigestMismatch) || !strings.Contains(err.Error(), "fetch blob "+img.layers[2].String()) {
		t.Fatalf("got %v, want ErrDigestMismatch fetching %s", err, img.layers[2])
	}
	spooledBig(t, w)
}
