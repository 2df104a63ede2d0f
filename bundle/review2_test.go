package bundle_test

import (
	"context"
	"os"
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
