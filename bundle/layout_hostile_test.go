package bundle_test

// OCI layout directories as import targets, attacked as a hostile
// co-tenant of the directory would (found by a security review of the
// first version of the layout target; each test failed on it).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
func TestLayoutTargetRewritesDamagedBlob(t *testing.T) {
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
	if err != nil {
		t.Fatal(err)
	}
	content, rerr := os.ReadFile(blob)
	if rerr != nil {
		t.Fatal(rerr)
	}
	// The damaged file is written again, the others are checked and kept.
	if sum := sha256.Sum256(content); hex.EncodeToString(sum[:]) != filepath.Base(blob) || res.BlobsUploaded != 1 {
		t.Errorf("import into oci:%s wrote %d blobs and left %s with other content; want that one written again",
			dir, res.BlobsUploaded, filepath.Base(blob))
	}
}

// A blob path that is a symbolic link to a file outside the layout of the
// right size is also taken as present (os.Stat follows it).
func TestLayoutTargetReplacesBlobSymlink(t *testing.T) {
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
	if _, err := bundle.ImportFile(ctx, path, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// The link is replaced by the verified blob; the file it pointed at is
	// left alone.
	if fi, err := os.Lstat(blob); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s after the import: %v, %v; want the verified blob in its place", filepath.Base(blob), fi, err)
	}
	if b, err := os.ReadFile(outside); err != nil || len(b) != int(st.Size()) || bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
		t.Errorf("the file outside the layout was changed: %v", err)
	}
}

// blobs/ (or blobs/sha256/) of the target being a symbolic link makes the
// import write outside DIR: MkdirAll, CreateTemp and Rename follow it.
func TestLayoutTargetStaysInside(t *testing.T) {
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
		t.Errorf("import into oci:%s wrote %d files under %s, outside the layout, through the symbolic link %s/blobs",
			dir, len(written), elsewhere, dir)
	}
	if err == nil || !strings.Contains(err.Error(), "path escapes from parent") {
		t.Errorf("import through a symbolic link out of the layout: got %v, want it refused", err)
	}
}
