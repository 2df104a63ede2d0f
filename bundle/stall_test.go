package bundle_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestTrickleAndStall runs export and import with a short stall timeout
// through registries that serve the largest layer at a trickle (slower in
// all than the stall timeout, but never silent for that long), stop
// sending two blob downloads halfway, and leave two existence checks
// unanswered. The trickle is not cut; each stall is abandoned after the
// stall timeout and tried again; digests are identical.
func TestTrickleAndStall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const stallTimeout = 300 * time.Millisecond
	opts := bundle.RegistryOptions{RetryBase: 5 * time.Millisecond, StallTimeout: stallTimeout}

	// The shared base layer is about 50 kB: about 1.25 s at this rate.
	trickle := &registrytest.Fault{Method: "GET", Path: "/blobs/" + f.sample.SharedLayer, Trickle: 40000, Times: 100}
	stall := &registrytest.Fault{Method: "GET", Path: "/blobs/", Stall: 20 * time.Second, Times: 2}
	f.src.InjectFaults(trickle, stall)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	start := time.Now()
	if _, err := bundle.ExportFile(context.Background(), f.sample.Refs, path, bundle.ExportOptions{Registry: opts}); err != nil {
		t.Fatalf("export through a trickle and stalls: %v", err)
	}
	took := time.Since(start)
	t.Logf("export took %s", took)
	if trickle.Hits() != 1 {
		t.Errorf("the trickled layer was requested %d times, want 1 (a trickle is not a stall)", trickle.Hits())
	}
	if took < 3*stallTimeout {
		t.Errorf("the export took %s: the trickle should have been slower than the stall timeout", took)
	}
	if stall.Hits() != 2 || stall.Abandoned() != 2 {
		t.Errorf("downloads stalled %d times and abandoned %d times, want 2 and 2", stall.Hits(), stall.Abandoned())
	}
	if took > 10*time.Second {
		t.Errorf("the export took %s: stalls should have been abandoned after %s", took, stallTimeout)
	}

	silent := &registrytest.Fault{Method: "POST", Path: "/blobs/uploads/", Delay: 20 * time.Second, Times: 2}
	f.dst.InjectFaults(silent)
	start = time.Now()
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/m", bundle.ImportOptions{Registry: opts}); err != nil {
		t.Fatalf("import through unanswered requests: %v", err)
	}
	t.Logf("import took %s", time.Since(start))
	if took := time.Since(start); silent.Hits() != 2 || silent.Abandoned() != 2 || took > 10*time.Second {
		t.Errorf("import took %s with %d unanswered requests, %d abandoned; want 2 and 2, and a quick import", took, silent.Hits(), silent.Abandoned())
	}
	f.checkImported(t, "m/")
}
