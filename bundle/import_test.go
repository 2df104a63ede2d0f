package bundle_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// Two sources that map to one destination tag with different digests are
// refused before anything is pushed.
func TestImportConflictRefusedBeforePush(t *testing.T) {
	a := registrytest.New(t, registrytest.Options{})
	b := registrytest.New(t, registrytest.Options{})
	dst := registrytest.New(t, registrytest.Options{})
	for i, reg := range []*registrytest.Registry{a, b} {
		img, err := testimages.Image("linux/amd64", false, testimages.Layer(strings.Repeat("x", i+1), 100))
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(reg.Host + "/team/app:1.0")
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), []string{a.Host + "/team/app:1.0", b.Host + "/team/app:1.0"}, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	before := dst.Requests.Load()
	_, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{})
	if !errors.Is(err, bundle.ErrConflict) || !strings.Contains(err.Error(), dst.Host+"/m/team/app:1.0") {
		t.Fatalf("want ErrConflict naming the destination tag, got %v", err)
	}
	if n := dst.Requests.Load() - before; n != 0 {
		t.Errorf("the destination received %d requests before the conflict was reported", n)
	}
	// Keeping the source registry in the path resolves the conflict.
	if _, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{KeepSourceRegistry: true}); err != nil {
		t.Fatal(err)
	}
}

func TestImportRefusingRegistry(t *testing.T) {
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	ro := registrytest.New(t, registrytest.Options{ReadOnly: true})
	_, err := bundle.ImportFile(context.Background(), path, ro.Host+"/m", bundle.ImportOptions{})
	// Refused at the push-access check, before any blob.
	want := "checking that " + ro.Host + "/m/"
	if !errors.Is(err, registry.ErrDenied) || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "405 Method Not Allowed") {
		t.Fatalf("got %v, want ErrDenied starting %q and naming the 405", err, want)
	}
	if n := ro.BlobUploads.Load(); n != 0 {
		t.Errorf("%d blobs pushed", n)
	}
}

func TestExportUnreachableAndUnauthorized(t *testing.T) {
	auth := registrytest.New(t, registrytest.Options{Username: "u", Password: "p"})
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials
	_, err := bundle.Export(context.Background(), []string{"127.0.0.1:1/x:1", auth.Host + "/x:1"}, nil, bundle.ExportOptions{})
	if err == nil {
		t.Fatal("export should fail")
	}
	t.Log(err)
	for _, want := range []string{"unreachable", "127.0.0.1:1", "authentication refused", auth.Host} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
}
