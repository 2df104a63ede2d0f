package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// TestImportVerifiesBlobsTheDestinationHolds: a blob the destination
// already has is still read from the bundle and verified, from a file
// (read through the seek table) and from a stream, and a damaged copy is
// refused naming the blob and its image.
func TestImportVerifiesBlobsTheDestinationHolds(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	img := pushImage(t, src.Host, "team/app:1.0", testimages.Layer("held", 64<<10))
	var good bytes.Buffer
	if _, err := bundle.Export(context.Background(), []string{img.ref}, &good, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	r, err := bundle.NewReader(bytes.NewReader(good.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Import(context.Background(), r, dst.Host+"/m", bundle.ImportOptions{}); err != nil {
		t.Fatalf("first import: %v", err)
	}
	layer := img.layers[0]
	entries, eoa := archivetest.Split(t, good.Bytes())
	bad := archivetest.Flipped(t, entries, "blobs/sha256/"+layer.Hex)
	for _, tc := range []struct {
		name string
		data []byte
		open func(path string) (*bundle.Reader, error)
	}{
		{"file", archivetest.Framed(t, bad, eoa), func(p string) (*bundle.Reader, error) { return bundle.Open(p) }},
		{"stream", archivetest.Stream(t, bad), func(p string) (*bundle.Reader, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { f.Close() })
			return bundle.NewReader(f)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.tar.zst")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := tc.open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.RandomAccess() != (tc.name == "file") {
				t.Fatalf("random access %v for the %s", r.RandomAccess(), tc.name)
			}
			res, err := bundle.Import(context.Background(), r, dst.Host+"/m", bundle.ImportOptions{})
			want := "verify blob " + layer.String() + " (used by " + img.ref + "): digest mismatch: content of blob " + layer.String() + " hashes to sha256:"
			if !errors.Is(err, bundle.ErrDigestMismatch) || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("got %v, want ErrDigestMismatch starting %q", err, want)
			}
			if res.BlobsUploaded != 0 || res.BlobsSkipped == 0 {
				t.Errorf("uploaded %d, present %d: want nothing uploaded, the blobs found present", res.BlobsUploaded, res.BlobsSkipped)
			}
		})
	}
}

// TestExportSpoolFailureNamesTheBlob: a blob that cannot be spooled (the
// temporary directory is gone) fails the export as a failure of the
// bundle output, naming the blob, not as a failed download.
func TestExportSpoolFailureNamesTheBlob(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	img := pushImage(t, src.Host, "team/app:1.0", testimages.Layer("spool", 3<<20))
	missing := filepath.Join(t.TempDir(), "gone")
	var out bytes.Buffer
	_, err := bundle.Export(context.Background(), []string{img.ref}, &out, bundle.ExportOptions{TempDir: missing})
	want := "writing blob " + img.layers[0].String() + " to the bundle: creating a temporary file in " + missing + ": open " + missing + "/.ferry-spool-"
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want fs.ErrNotExist starting %q", err, want)
	}
	var be *bundle.BlobError
	if errors.As(err, &be) {
		t.Errorf("a failure of the output reported as %s blob", be.Op)
	}
}

// TestImportChecksPushAccessFirst: a wrong password, or an account that
// may only pull, fails the import before anything is pushed, naming the
// repository and saying what to do.
func TestImportChecksPushAccessFirst(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	img := pushImage(t, src.Host, "team/app:1.0", testimages.Layer("preflight", 8<<10))
	var b bytes.Buffer
	if _, err := bundle.Export(context.Background(), []string{img.ref}, &b, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		opts     registrytest.Options
		keys     staticKeychain
		sentinel error
		suffix   string
	}{
		{"wrong password", registrytest.Options{Username: "ferry", Password: "secret"}, staticKeychain{Username: "ferry", Password: "wrong"}, registry.ErrUnauthorized,
			"; check the credentials for HOST (ferry login HOST, or -u with --password-stdin)"},
		{"read-only", registrytest.Options{ReadOnly: true}, staticKeychain{}, registry.ErrDenied,
			"; these credentials may not push there: ask for push access, or choose another --to prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := registrytest.New(t, tc.opts)
			r, err := bundle.NewReader(bytes.NewReader(b.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = bundle.Import(context.Background(), r, dst.Host+"/m", bundle.ImportOptions{Registry: bundle.RegistryOptions{Keychain: tc.keys, Retries: -1}})
			// The first repository by name: the receipts' (see
			// docs/format.md), then team/app.
			prefix := "checking that " + dst.Host + "/m/ferry-receipts accepts pushes, before pushing anything: "
			suffix := strings.ReplaceAll(tc.suffix, "HOST", dst.Host)
			if !errors.Is(err, tc.sentinel) || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), suffix) {
				t.Fatalf("got %v\nwant %v, starting %q and ending %q", err, tc.sentinel, prefix, suffix)
			}
			if n := dst.BlobUploads.Load(); n != 0 {
				t.Errorf("%d blobs pushed before the refusal", n)
			}
		})
	}
}

// TestStreamImportCancelledLeavesNoSpool: an import from a stream that
// stalls in the middle of a blob, then is cancelled (Ctrl-C), returns
// without reading the stream further and leaves no spool file behind; so
// do a failed push and a completed import.
func TestStreamImportCancelledLeavesNoSpool(t *testing.T) {
	t.Parallel()
	src := registrytest.New(t, registrytest.Options{})
	img := pushImage(t, src.Host, "team/app:1.0", testimages.Layer("stall", 3<<20))
	var b bytes.Buffer
	if _, err := bundle.Export(context.Background(), []string{img.ref}, &b, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	spoolLeft := func(t *testing.T, dir string) {
		t.Helper()
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Errorf("%d files left in the temporary directory (first %s)", len(ents), ents[0].Name())
		}
	}

	t.Run("cancelled", func(t *testing.T) {
		dst := registrytest.New(t, registrytest.Options{})
		dir := t.TempDir()
		pr, pw := io.Pipe()
		defer pw.Close()
		go pw.Write(b.Bytes()[:b.Len()/2]) // then nothing more: the stream stalls
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r, err := bundle.NewReader(pr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := bundle.Import(ctx, r, dst.Host+"/m", bundle.ImportOptions{TempDir: dir, Progress: func(ev bundle.Event) {
				if ev.Kind == bundle.EventBlobStart && ev.Size > 1<<20 {
					cancel() // the large blob is on its way: Ctrl-C
				}
			}})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		case <-time.After(time.Minute): // a guard against a hang, not a measurement
			t.Fatal("the cancelled import still waits for the stalled stream")
		}
		spoolLeft(t, dir)
	})

	t.Run("push refused", func(t *testing.T) {
		dst := registrytest.New(t, registrytest.Options{})
		dst.InjectFaults(&registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusBadRequest, Times: 1000})
		dir := t.TempDir()
		r, err := bundle.NewReader(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.Import(context.Background(), r, dst.Host+"/m", bundle.ImportOptions{TempDir: dir}); err == nil {
			t.Fatal("import through refused uploads succeeded")
		}
		spoolLeft(t, dir)
	})

	t.Run("completed", func(t *testing.T) {
		dst := registrytest.New(t, registrytest.Options{})
		dir := t.TempDir()
		r, err := bundle.NewReader(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.Import(context.Background(), r, dst.Host+"/m", bundle.ImportOptions{TempDir: dir}); err != nil {
			t.Fatal(err)
		}
		spoolLeft(t, dir)
	})
}
