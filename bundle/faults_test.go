package bundle_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// fastRetries keeps the backoff short in tests.
var fastRetries = bundle.RegistryOptions{RetryBase: 5 * time.Millisecond}

// TestFaultsAreRetried runs export and import through registries that drop
// connections mid-blob and answer bursts of 500/502/503 and a 429 with
// Retry-After: both finish with identical digests.
func TestFaultsAreRetried(t *testing.T) {
	f := newFixture(t)
	srcFaults := []*registrytest.Fault{
		{Method: "GET", Path: "/blobs/", Status: 503, Times: 3},
		{Method: "GET", Path: "/blobs/", Drop: true, Times: 2},
		{Method: "GET", Path: "/manifests/", Status: 429, RetryAfter: "1", Times: 1},
		{Method: "GET", Path: "/manifests/", Status: 500, Times: 2},
	}
	f.src.InjectFaults(srcFaults...)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), f.sample.Refs, path, bundle.ExportOptions{Registry: fastRetries}); err != nil {
		t.Fatalf("export through faults: %v", err)
	}
	dstFaults := []*registrytest.Fault{
		{Method: "PUT", Path: "/blobs/uploads/", Drop: true, Times: 2},
		{Method: "PUT", Path: "/blobs/uploads/", Status: 503, Times: 2},
		{Method: "POST", Path: "/blobs/uploads/", Status: 502, Times: 2},
		{Method: "PUT", Path: "/manifests/", Status: 500, Times: 2},
	}
	f.dst.InjectFaults(dstFaults...)
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/file", bundle.ImportOptions{Registry: fastRetries}); err != nil {
		t.Fatalf("import through faults: %v", err)
	}
	for i, fl := range append(srcFaults, dstFaults...) {
		if fl.Hits() != fl.Times {
			t.Errorf("fault %d (%s %s) injected %d times, want %d", i, fl.Method, fl.Path, fl.Hits(), fl.Times)
		}
	}
	f.checkImported(t, "file/")

	// From a stream: a dropped upload is re-sent from the spooled copy.
	f.dst.InjectFaults(&registrytest.Fault{Method: "PUT", Path: "/blobs/uploads/", Drop: true, Times: 3})
	r := openStream(t, path)
	if _, err := bundle.Import(context.Background(), r, f.dst.Host+"/stream", bundle.ImportOptions{Registry: fastRetries}); err != nil {
		t.Fatalf("stream import through faults: %v", err)
	}
	f.checkImported(t, "stream/")
}

// TestFaultOutlastsRetries: when a fault lasts longer than the retries, the
// error names the registry and the blob, and a re-run finishes the job.
func TestFaultOutlastsRetries(t *testing.T) {
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	fault := &registrytest.Fault{Method: "PUT", Path: "/blobs/uploads/", Status: 503, Times: 1000}
	f.dst.InjectFaults(fault)
	opts := bundle.ImportOptions{Registry: bundle.RegistryOptions{Retries: 2, RetryBase: time.Millisecond}}
	_, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/m", opts)
	var be *bundle.BlobError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), f.dst.Host) || !strings.Contains(err.Error(), "UNAVAILABLE") || !strings.Contains(err.Error(), "giving up after 2 retries") {
		t.Fatalf("want a blob error naming the registry and the status, got %v", err)
	}
	f.dst.InjectFaults()
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/m", opts); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	f.checkImported(t, "m/")
}
