package bundle_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// fixture is a source registry with the sample set and an empty destination.
type fixture struct {
	src, dst *registrytest.Registry
	sample   *testimages.Sample
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		src: registrytest.New(t, registrytest.Options{}),
		dst: registrytest.New(t, registrytest.Options{}),
	}
	var err error
	f.sample, err = testimages.Push(context.Background(), f.src.Host, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) export(t *testing.T, opts bundle.ExportOptions) (string, *bundle.ExportSummary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "images.tar.zst")
	if opts.Created.IsZero() {
		opts.Created = time.Unix(1700000000, 0)
	}
	sum, err := bundle.ExportFile(context.Background(), f.sample.Refs, path, opts)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return path, sum
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	path, sum := f.export(t, bundle.ExportOptions{})
	if sum.Images != len(f.sample.Refs) {
		t.Errorf("summary images = %d, want %d", sum.Images, len(f.sample.Refs))
	}
	res, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/mirror", bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	for _, img := range res.Images {
		want := f.sample.Digests[strings.Replace(img.Source, "docker.io/", "", 1)]
		if want == "" {
			// sources keep their host: 127.0.0.1:port/...
			want = f.sample.Digests[img.Source]
		}
		if img.DestinationDigest.String() != want {
			t.Errorf("%s -> %s: digest %s, want %s", img.Source, img.Destination, img.DestinationDigest, want)
		}
	}
	t.Logf("%+v", res)
}
