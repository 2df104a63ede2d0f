package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestNoGoroutineOrFDLeak runs an export, an import and a failing import
// (tampered layer) in process, with ferry's default transport, then stops
// the registries (which closes the idle keep-alive connections from the
// server side) and checks that the goroutines and file descriptors return
// to what they were before.
func TestNoGoroutineOrFDLeak(t *testing.T) {
	// Not parallel: it counts the goroutines and descriptors of the process.
	runtime.GC()
	fds0, gr0 := openFDs(t), runtime.NumGoroutine()

	func() {
		src, err := registrytest.Start(registrytest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := registrytest.Start(registrytest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		ctx := context.Background()
		sample, err := testimages.Push(ctx, src.Host, 4<<10)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "b.tar.zst")
		if _, err := bundle.ExportFile(ctx, sample.Refs, path, bundle.ExportOptions{Registry: fastRetries}); err != nil {
			t.Fatalf("export: %v", err)
		}
		if _, err := bundle.ImportFile(ctx, path, dst.Host+"/ok", bundle.ImportOptions{Registry: fastRetries}); err != nil {
			t.Fatalf("import: %v", err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ents, eoa := archivetest.Split(t, data)
		layer := "blobs/" + strings.Replace(sample.SharedLayer, ":", "/", 1)
		bad := filepath.Join(dir, "bad.tar.zst")
		if err := os.WriteFile(bad, archivetest.Framed(t, archivetest.Flipped(t, ents, layer), eoa), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = bundle.ImportFile(ctx, bad, dst.Host+"/bad", bundle.ImportOptions{Registry: fastRetries})
		if !errors.Is(err, bundle.ErrDigestMismatch) {
			t.Fatalf("import of a tampered bundle: %v, want a digest mismatch", err)
		}
		// The same from a stream.
		f, err := os.Open(bad)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if r, err := bundle.NewReader(f); err == nil {
			_, err = bundle.Import(ctx, r, dst.Host+"/bad2", bundle.ImportOptions{Registry: fastRetries})
			r.Close()
			if !errors.Is(err, bundle.ErrDigestMismatch) {
				t.Fatalf("stream import of a tampered bundle: %v, want a digest mismatch", err)
			}
		} else {
			t.Fatal(err)
		}
	}()

	var fds, gr int
	deadline := time.Now().Add(2 * time.Second)
	for {
		runtime.GC()
		fds, gr = openFDs(t), runtime.NumGoroutine()
		if (fds <= fds0+2 && gr <= gr0+3) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fds > fds0+2 {
		ents, _ := os.ReadDir("/proc/self/fd")
		var names []string
		for _, e := range ents {
			l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
			names = append(names, e.Name()+"->"+l)
		}
		t.Errorf("open file descriptors: %d before, %d after:\n%s", fds0, fds, strings.Join(names, "\n"))
	}
	if gr > gr0+3 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after:\n%s", gr0, gr, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("fds %d -> %d, goroutines %d -> %d", fds0, fds, gr0, gr)
}

// failingWriter fails with ENOSPC once more than room bytes were written,
// as a file on a full disk does.
type failingWriter struct {
	room, n int64
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.room {
		k := max(0, w.room-w.n)
		w.n += k
		return int(k), &os.PathError{Op: "write", Path: "/full/images.tar.zst", Err: syscall.ENOSPC}
	}
	w.n += int64(len(p))
	return len(p), nil
}

// TestExportDiskFull: a full disk cannot be provoked in a test, so Export
// writes to a writer that fails with ENOSPC after n bytes, at several points
// of the archive (metadata, manifests, blobs, end of archive and seek
// table). The error wraps ENOSPC, says what failed, and no spool file is
// left. ExportFile's clean-up on failure is checked with a source that
// fails half-way, after part of the bundle was written.
func TestExportDiskFull(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var full bytes.Buffer
	if _, err := bundle.Export(ctx, f.sample.Refs, &full, bundle.ExportOptions{Created: created}); err != nil {
		t.Fatal(err)
	}
	total := int64(full.Len())
	for _, room := range []int64{0, 100, 2000, total / 2, total - 200, total - 1} {
		t.Run(fmt.Sprint(room), func(t *testing.T) {
			spool := t.TempDir()
			w := &failingWriter{room: room}
			_, err := bundle.Export(ctx, f.sample.Refs, w, bundle.ExportOptions{Created: created, TempDir: spool})
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("after %d of %d bytes: got %v, want an error wrapping ENOSPC", room, total, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "no space left on device") || !strings.Contains(msg, "write") {
				t.Errorf("error %q does not say what failed", msg)
			}
			t.Logf("after %d of %d bytes: %v", room, total, err)
			if ents, _ := os.ReadDir(spool); len(ents) > 0 {
				t.Errorf("%d files left in the spool directory (first %s)", len(ents), ents[0].Name())
			}
		})
	}

	t.Run("ExportFile leaves nothing", func(t *testing.T) {
		// Blob GETs fail after the manifests were written to the
		// temporary file.
		f.src.InjectFaults(&registrytest.Fault{Method: "GET", Path: "/blobs/", Status: 500, Times: 1 << 20})
		defer f.src.InjectFaults()
		dir := t.TempDir()
		_, err := bundle.ExportFile(ctx, f.sample.Refs, filepath.Join(dir, "images.tar.zst"),
			bundle.ExportOptions{Registry: bundle.RegistryOptions{Retries: 1, RetryBase: time.Millisecond}})
		if err == nil {
			t.Fatal("export succeeded through failing blob downloads")
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			t.Errorf("%s left in the output directory after a failed export", e.Name())
		}
	})
}
