package bundle_test

// Security review (branch review): holes found in OCI layout directories as
// import targets and export sources. Each test fails on the code reviewed.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
)

// largestBlob returns the path of the largest blob file of a layout.
func largestBlob(t *testing.T, dir string) (string, os.FileInfo) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("blobs of %s: %v", dir, err)
	}
	var best string
	var bestSt os.FileInfo
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if bestSt == nil || st.Size() > bestSt.Size() {
			best, bestSt = f, st
		}
	}
	return best, bestSt
}

// A blob file of the right size but other content (a damaged disk, an
// interrupted copy by another tool, a hostile co-tenant of the directory)
// is taken as "already present" by the layout target: the import succeeds
// and index.json lists an image whose layer does not hash to its digest.
// A registry verifies what it stores; a layout target must check the file
// (or overwrite it) before listing an image that uses it.
func TestReviewLayoutTargetTrustsSizeOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	path, _ := f.export(t, bundle.ExportOptions{})
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	blob, st := largestBlob(t, dir)
	// Same size, other content.
	if err := os.WriteFile(blob, make([]byte, st.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{})
	content, rerr := os.ReadFile(blob)
	if rerr != nil {
		t.Fatal(rerr)
	}
	sum := sha256.Sum256(content)
	if hex.EncodeToString(sum[:]) != filepath.Base(blob) && err == nil {
		t.Errorf("import into oci:%s succeeded (%d blobs skipped as present), but %s still holds other content: index.json lists images whose blob is damaged",
			dir, res.BlobsSkipped, filepath.Base(blob))
	}
}

// A blob path that is a symbolic link to a file outside the layout of the
// right size is also taken as present (os.Stat follows it).
func TestReviewLayoutTargetFollowsBlobSymlink(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	path, _ := f.export(t, bundle.ExportOptions{})
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	blob, st := largestBlob(t, dir)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, make([]byte, st.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(blob)
	if err := os.Symlink(outside, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{}); err == nil {
		if fi, _ := os.Lstat(blob); fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("import into oci:%s succeeded with %s a symbolic link to %s (other content)", dir, filepath.Base(blob), outside)
		}
	}
}

// blobs/ (or blobs/sha256/) of the target being a symbolic link makes the
// import write outside DIR: MkdirAll, CreateTemp and Rename follow it.
func TestReviewLayoutTargetWritesThroughSymlinkedBlobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	path, _ := f.export(t, bundle.ExportOptions{})
	dir := filepath.Join(t.TempDir(), "layout")
	elsewhere := t.TempDir()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "blobs")); err != nil {
		t.Fatal(err)
	}
	_, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{})
	written, _ := filepath.Glob(filepath.Join(elsewhere, "sha256", "*"))
	if len(written) > 0 {
		t.Errorf("import into oci:%s (err %v) wrote %d files under %s, outside the layout, through the symbolic link %s/blobs",
			dir, err, len(written), elsewhere, dir)
	}
}

// A blob of an OCI layout source that is a FIFO (or a manifest, or
// index.json) blocks the export in open(2) for ever: the context is not
// seen, the stall timeout covers only HTTP. Expected: refuse anything but a
// regular file (open with O_NONBLOCK, or Lstat/Stat first and check
// Mode().IsRegular()).
func TestReviewLayoutSourceFIFOHangs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	path, _ := f.export(t, bundle.ExportOptions{})
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	blob, _ := largestBlob(t, dir)
	os.Remove(blob)
	if err := syscall.Mkfifo(blob, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := bundle.ExportFile(ctx, []string{"oci:" + dir}, filepath.Join(t.TempDir(), "out.tar.zst"), bundle.ExportOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("export of a layout whose blob is a FIFO succeeded")
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends.
		if w, err := os.OpenFile(blob, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Errorf("export of oci:%s with %s a FIFO still runs 7s after its context ended: open(2) blocks and ignores the context", dir, filepath.Base(blob))
		<-done
	}
}
