package bundle_test

// Found by a security review: export fetches a child manifest once for
// every image that lists it (singleflight keyed by digest alone), so the
// fetch from one repository decides for images of other repositories, or
// other registries: its failure is reported as theirs.

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
)

func TestSharedChildFetchBlamesItsOwnSource(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a := f.src.Host + "/multi/tool:1.0"
	b := f.src.Host + "/other/tool:1.0"
	if err := crane.Copy(a, b); err != nil {
		t.Fatal(err)
	}
	// Children of multi/tool answer 503 (retried, then given up); other/tool
	// serves them fine.
	// other/tool's index comes 200ms late, so its child fetch joins the one
	// multi/tool started (otherwise the outcome depends on who asks first:
	// multi/tool then succeeds from other/tool's fetch).
	f.src.InjectFaults(
		&registrytest.Fault{Method: http.MethodGet, Path: "/multi/tool/manifests/sha256:", Status: http.StatusServiceUnavailable, Times: 1000},
		&registrytest.Fault{Method: http.MethodGet, Path: "/other/tool/manifests/1.0", Delay: 200 * time.Millisecond, Times: 1000},
	)
	_, err := bundle.ExportFile(ctx, []string{a, b}, filepath.Join(t.TempDir(), "x.tar.zst"), bundle.ExportOptions{
		Registry: bundle.RegistryOptions{Retries: 3, RetryBase: 200 * time.Millisecond},
	})
	var re *bundle.ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("export: %v, want a ResolveError", err)
	}
	for _, fl := range re.Failures {
		if strings.Contains(fl.Ref, "other/tool") {
			t.Errorf("%s is reported as failed, though its repository serves every manifest: %v", fl.Ref, fl.Err)
		}
	}
}
