package bundle_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/bundle"
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
		fault registrytest.Fault
		want  string
	}{
		{"upload always 503", registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable}, "giving up after 2 retries (re-run the import to continue; --retries raises the limit): "},
		{"upload always cut", registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Drop: true}, "giving up after 2 retries (re-run the import to continue; --retries raises the limit): "},
		{"start always 503", registrytest.Fault{Method: http.MethodPost, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable}, "starting the upload: "},
		{"mount to the second repository always 503", registrytest.Fault{Method: http.MethodPost, Path: "/m/team/b/blobs/uploads/", Status: http.StatusServiceUnavailable}, "starting the upload: "},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				t.Parallel()
				dst := registrytest.New(t, registrytest.Options{})
				f := tc.fault
				f.Times = 1000
				dst.InjectFaults(&f)
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
