package bundle_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// TestImportChecksDigestsAfterPush: after the push, import resolves every
// destination reference again. A tag that holds another digest was moved
// by another push during the import: ErrConflict, naming the tag and both
// digests. An image pushed by digest that resolves to another digest is
// the registry not keeping what it was sent: ErrDestination. Neither is a
// bundle problem (not ErrDigestMismatch, so not exit 3); the result still
// lists every image.
func TestImportChecksDigestsAfterPush(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	dst := registrytest.New(t, registrytest.Options{})
	tagged := pushImage(t, src.Host, "team/app:1.0", testimages.Layer("check-tagged", 2<<10))
	byDigest := pushImage(t, src.Host, "team/tool:1.0", testimages.Layer("check-digest", 2<<10))
	refs := []string{tagged.ref, src.Host + "/team/tool@" + byDigest.manifest.String()}
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), refs, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	wrong := digest.FromString("another manifest")
	tests := []struct {
		name, path, dest, want string
		sentinel               error
		message                string
	}{
		{"tag", "/m/team/app/manifests/1.0", dst.Host + "/m/team/app:1.0", tagged.manifest.String(), bundle.ErrConflict,
			"destination conflict: after the push: " + dst.Host + "/m/team/app:1.0 now holds " + wrong.String() + ", not " + tagged.manifest.String() +
				": another push moved the tag during this import; re-run the import to set it again, or find what else writes to these repositories"},
		{"digest", "/m/team/tool/manifests/" + byDigest.manifest.String(), dst.Host + "/m/team/tool@" + byDigest.manifest.String(), byDigest.manifest.String(), bundle.ErrDestination,
			"destination does not hold what was pushed: after the push: " + dst.Host + "/m/team/tool@" + byDigest.manifest.String() + " resolves to " + wrong.String() +
				"; the registry does not return the manifests it was sent: check it before using these images"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the subtests share the registry's faults.
			fault := &registrytest.Fault{Method: http.MethodHead, Path: tc.path, Digest: wrong.String(), Times: 1000}
			dst.InjectFaults(fault)
			defer dst.InjectFaults()
			res, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{})
			if !errors.Is(err, tc.sentinel) || err.Error() != tc.message {
				t.Fatalf("got %v\nwant %v: %s", err, tc.sentinel, tc.message)
			}
			if errors.Is(err, bundle.ErrDigestMismatch) {
				t.Errorf("a destination problem reported as a bundle's digest mismatch: %v", err)
			}
			if fault.Hits() != 1 {
				t.Errorf("the destination reference was resolved %d times after the push, want 1", fault.Hits())
			}
			if res == nil || len(res.Images) != 2 {
				t.Fatalf("result %+v, want both images listed", res)
			}
			for _, img := range res.Images {
				if img.Destination == tc.dest && (img.DestinationDigest != wrong || img.Digest.String() != tc.want) {
					t.Errorf("%s: DestinationDigest %s, Digest %s; want %s and %s", img.Destination, img.DestinationDigest, img.Digest, wrong, tc.want)
				}
			}
		})
	}
	// Control: the same import, with a registry that answers the truth.
	if _, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", bundle.ImportOptions{}); err != nil {
		t.Fatalf("import without the fault: %v", err)
	}
}
