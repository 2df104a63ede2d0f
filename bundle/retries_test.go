package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// pushed is an image pushed by pushImage.
type pushed struct {
	ref              string
	manifest, config v1.Hash
	layers           []v1.Hash
}

// pushImage pushes a linux/amd64 image of layers to host/repoTag.
func pushImage(t *testing.T, host, repoTag string, layers ...v1.Layer) pushed {
	t.Helper()
	img, err := testimages.Image("linux/amd64", false, layers...)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	p := pushed{ref: ref.String()}
	if p.manifest, err = img.Digest(); err != nil {
		t.Fatal(err)
	}
	if p.config, err = img.ConfigName(); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		p.layers = append(p.layers, d)
	}
	return p
}

// TestRetriesBoundRequests: with Retries 2, fetching one manifest or config
// makes at most 3 requests, whatever fails: the transport's retries of a
// 503 and the exporter's retries of a body broken midway share one budget
// (they used to multiply: 3×3 requests, 36 with the default 5 retries).
func TestRetriesBoundRequests(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	img := pushImage(t, reg.Host, "team/app:1.0", testimages.Layer("retries", 4<<10))
	manifests, config, layer := "/team/app/manifests/", "/team/app/blobs/"+img.config.String(), "/team/app/blobs/"+img.layers[0].String()
	opts := bundle.ExportOptions{Registry: bundle.RegistryOptions{Retries: 2, RetryBase: time.Millisecond}}
	unavailable := func(t *testing.T, err error) {
		t.Helper()
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "UNAVAILABLE: injected fault") {
			t.Errorf("got %v, want the registry's 503 UNAVAILABLE", err)
		}
	}
	broken := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "reading manifest from "+reg.Host) {
			t.Errorf("got %v, want the manifest body cut short (unexpected EOF) reading from %s", err, reg.Host)
		}
	}
	tests := []struct {
		name   string
		faults []*registrytest.Fault
		want   int64 // requests the faults answered
		check  func(*testing.T, error)
	}{
		{"manifest always 503", []*registrytest.Fault{{Method: http.MethodGet, Path: manifests, Status: http.StatusServiceUnavailable, Times: 1000}}, 3, unavailable},
		{"config always 503", []*registrytest.Fault{{Method: http.MethodGet, Path: config, Status: http.StatusServiceUnavailable, Times: 1000}}, 3, unavailable},
		{"layer always 503", []*registrytest.Fault{{Method: http.MethodGet, Path: layer, Status: http.StatusServiceUnavailable, Times: 1000}}, 3, unavailable},
		{"layer body always cut", []*registrytest.Fault{{Method: http.MethodGet, Path: layer, Drop: true, Times: 1000}}, 3, func(t *testing.T, err error) {
			t.Helper()
			if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "fetch blob "+img.layers[0].String()) {
				t.Errorf("got %v, want the layer body cut short (unexpected EOF) naming the blob", err)
			}
		}},
		{"manifest body always cut", []*registrytest.Fault{{Method: http.MethodGet, Path: manifests, Drop: true, Times: 1000}}, 3, broken},
		{"manifest body cut once, then 503", []*registrytest.Fault{
			{Method: http.MethodGet, Path: manifests, Drop: true, Times: 1},
			{Method: http.MethodGet, Path: manifests, Status: http.StatusServiceUnavailable, Times: 1000},
		}, 3, unavailable},
		// Controls: within the retries, the export succeeds.
		{"manifest 503 twice", []*registrytest.Fault{{Method: http.MethodGet, Path: manifests, Status: http.StatusServiceUnavailable, Times: 2}}, 2, nil},
		{"manifest body cut once, then 503 once", []*registrytest.Fault{
			{Method: http.MethodGet, Path: manifests, Drop: true, Times: 1},
			{Method: http.MethodGet, Path: manifests, Status: http.StatusServiceUnavailable, Times: 1},
		}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the subtests share the registry's faults.
			reg.InjectFaults(tc.faults...)
			defer reg.InjectFaults()
			var out bytes.Buffer
			_, err := bundle.Export(context.Background(), []string{img.ref}, &out, opts)
			var hits int64
			for _, f := range tc.faults {
				hits += f.Hits()
			}
			if hits != tc.want {
				t.Errorf("the faults answered %d requests, want %d", hits, tc.want)
			}
			if tc.check == nil {
				if err != nil {
					t.Fatalf("export within the retries: %v", err)
				}
				return
			}
			var re *bundle.ResolveError
			var be *bundle.BlobError
			switch {
			case strings.HasPrefix(tc.name, "layer"):
				// Layers are fetched after every reference is resolved.
				if !errors.As(err, &be) || be.Op != "fetch" {
					t.Errorf("got %v, want a BlobError of the fetch", err)
				}
			case !errors.As(err, &re) || !strings.Contains(err.Error(), "resolving "+img.ref+": "):
				t.Errorf("got %v, want a ResolveError naming %s", err, img.ref)
			}
			tc.check(t, err)
		})
	}
}
