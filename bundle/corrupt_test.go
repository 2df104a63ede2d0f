package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// corruptImage pushes an image whose blobs take each path of the exporter:
// a gzip layer large enough to be stored as is, a plain tar layer that is
// compressed, and the config, read while resolving.
func corruptImage(t *testing.T, host string) pushed {
	t.Helper()
	gz := testimages.LayerBytes("stored", 400<<10)
	if len(gz) < 64<<10 {
		t.Fatalf("the gzip layer is %d bytes, too small to be stored rather than compressed", len(gz))
	}
	plain := bytes.Repeat([]byte("plain tar layer content "), 8<<10)
	return pushImage(t, host, "team/corrupt:1.0",
		static.NewLayer(gz, types.OCILayer),
		static.NewLayer(plain, types.OCIUncompressedLayer))
}

// TestExportRefusesCorruptedBlob: a registry that serves a blob with one
// byte flipped makes the export fail with ErrDigestMismatch naming the
// blob, after the retries, writing to a file or a stream, and leaves no
// bundle behind; a blob corrupted once is fetched again and the export
// succeeds.
func TestExportRefusesCorruptedBlob(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	img := corruptImage(t, reg.Host)
	repo := reg.Host + "/team/corrupt"
	opts := bundle.ExportOptions{Registry: bundle.RegistryOptions{Retries: 1, RetryBase: time.Millisecond}}
	type blob struct {
		kind   string
		digest string
		words  func(d string) []string // the message must hold them all
		isBlob bool                    // a *bundle.BlobError for the blob
	}
	blobWords := func(d string) []string {
		return []string{"fetch blob " + d + " (used by " + img.ref + "): from " + repo + " (re-run the export to try again): digest mismatch: content of blob " + d + " hashes to sha256:",
			"; gave up after 1 retries (--retries raises the limit)"}
	}
	blobs := []blob{
		{"stored gzip layer", img.layers[0].String(), blobWords, true},
		{"compressed tar layer", img.layers[1].String(), blobWords, true},
		{"config", img.config.String(), func(d string) []string {
			return []string{"resolving " + img.ref + ": reading config " + d + ": digest mismatch: content of blob " + d + " hashes to sha256:"}
		}, false},
	}
	for _, b := range blobs {
		for _, output := range []string{"file", "stream"} {
			t.Run(b.kind+"/"+output, func(t *testing.T) {
				// Not parallel: the subtests share the registry's faults.
				export := func() error {
					if output == "stream" {
						_, err := bundle.Export(context.Background(), []string{img.ref}, &bytes.Buffer{}, opts)
						return err
					}
					dir := t.TempDir()
					_, err := bundle.ExportFile(context.Background(), []string{img.ref}, filepath.Join(dir, "b.tar.zst"), opts)
					if left, _ := os.ReadDir(dir); err != nil && len(left) > 0 {
						t.Errorf("a failed export left %s in the output directory", left[0].Name())
					}
					return err
				}
				always := &registrytest.Fault{Method: http.MethodGet, Path: "/blobs/" + b.digest, Corrupt: true, Times: 1000}
				reg.InjectFaults(always)
				err := export()
				reg.InjectFaults()
				if !errors.Is(err, bundle.ErrDigestMismatch) {
					t.Fatalf("got %v, want ErrDigestMismatch", err)
				}
				t.Log(err)
				for _, w := range b.words(b.digest) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the message does not say %q:\n%v", w, err)
					}
				}
				var be *bundle.BlobError
				if b.isBlob && (!errors.As(err, &be) || be.Op != "fetch" || be.Digest.String() != b.digest) {
					t.Errorf("got %v, want a BlobError for fetching %s", err, b.digest)
				}
				if always.Hits() != 2 {
					t.Errorf("the corrupted blob was served %d times, want 2 (once and once more for the one retry)", always.Hits())
				}
				// Corrupted once: the retry fetches it intact.
				once := &registrytest.Fault{Method: http.MethodGet, Path: "/blobs/" + b.digest, Corrupt: true, Times: 1}
				reg.InjectFaults(once)
				err = export()
				reg.InjectFaults()
				if err != nil || once.Hits() != 1 {
					t.Errorf("a blob corrupted once (%d times): %v, want the export to fetch it again and succeed", once.Hits(), err)
				}
			})
		}
	}
}

// TestImportRefusedCorruptedUpload: when an upload is damaged on its way to
// the registry (one byte flipped before the registry stores it), the
// registry refuses it as not matching its digest and the import fails,
// naming the blob and the registry, with no manifest or tag pushed; it does
// not report success. Run again without the fault, it succeeds.
func TestImportRefusedCorruptedUpload(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	dst := registrytest.New(t, registrytest.Options{})
	img := corruptImage(t, src.Host)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	if _, err := bundle.ExportFile(context.Background(), []string{img.ref}, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	fault := &registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Corrupt: true, Times: 1000}
	dst.InjectFaults(fault)
	// One job: the largest blob, the plain tar layer, is pushed first.
	largest := img.layers[1].String()
	opts := bundle.ImportOptions{Jobs: 1, Registry: bundle.RegistryOptions{RetryBase: time.Millisecond}}
	_, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", opts)
	if !errors.Is(err, registry.ErrDigestRefused) {
		t.Fatalf("got %v, want ErrDigestRefused", err)
	}
	t.Log(err)
	for _, w := range []string{
		"push blob " + largest + " (used by " + img.ref + "): to " + dst.Host + "/m/team/corrupt: the registry refused the content as not matching its digest (" + dst.Host + " answered DIGEST_INVALID): it was damaged after ferry verified it",
		"run the command again",
		"no manifest or tag was pushed",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the message does not say %q:\n%v", w, err)
		}
	}
	if errors.Is(err, bundle.ErrDigestMismatch) {
		t.Errorf("the bundle is intact, yet the error wraps ErrDigestMismatch (exit code 3, a bad bundle): %v", err)
	}
	var be *bundle.BlobError
	if !errors.As(err, &be) || be.Op != "push" || be.Digest.String() != largest {
		t.Errorf("got %v, want a BlobError for pushing %s", err, largest)
	}
	if fault.Hits() != 1 {
		t.Errorf("%d uploads were corrupted, want 1 (the refusal is not retried)", fault.Hits())
	}
	ref, err := name.ParseReference(dst.Host + "/m/team/corrupt:1.0")
	if err != nil {
		t.Fatal(err)
	}
	var terr *transport.Error
	if _, err := remote.Head(ref); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("the tag is at the destination after a failed import: %v", err)
	}
	dst.InjectFaults()
	if _, err := bundle.ImportFile(context.Background(), path, dst.Host+"/m", opts); err != nil {
		t.Fatalf("re-run without the fault: %v", err)
	}
	if d, err := remote.Head(ref); err != nil || d.Digest != img.manifest {
		t.Errorf("after the re-run the destination has %v (%v), want %s", d, err, img.manifest)
	}
}

// A child manifest that a registry serves damaged fails the export as a
// digest mismatch (exit 3), said once, naming the manifest.
func TestExportCorruptedChildManifest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref := f.src.Host + "/multi/tool:1.0"
	f.src.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/multi/tool/manifests/sha256:", Corrupt: true, Times: 1000})
	_, err := bundle.Export(context.Background(), []string{ref}, io.Discard, bundle.ExportOptions{Registry: bundle.RegistryOptions{RetryBase: time.Millisecond}})
	if !errors.Is(err, bundle.ErrDigestMismatch) || strings.Count(err.Error(), "digest mismatch") != 1 || !strings.Contains(err.Error(), "resolving "+ref+": fetching manifest sha256:") {
		t.Errorf("got %v, want one digest mismatch naming the manifest", err)
	}
}
