package scan

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
)

// TestSmallNodesMemory: a file well under MaxFileBytes made of many tiny
// YAML documents must not take a hundred times its size in memory (at
// 64 MiB that was 6 GB or more, enough to kill the operator's machine):
// documents are decoded and scanned one at a time. Measured here on
// 4 MiB of empty documents: the live heap after the scan stays small.
// (One document of millions of tiny nodes still takes some hundred bytes
// a node: the YAML library has no node budget; MaxFileBytes bounds it.)
func TestSmallNodesMemory(t *testing.T) {
	const size = 4 << 20
	in := strings.Repeat("---\n", size/4-16) + "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx\n"
	done, peakc := make(chan struct{}), make(chan uint64)
	go func() {
		var ms runtime.MemStats
		peak := uint64(0)
		for {
			select {
			case <-done:
				peakc <- peak
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	images, err := Read("many.yaml", strings.NewReader(in))
	close(done)
	peak := <-peakc
	if err != nil || len(images) != 1 {
		t.Fatalf("%v, %d images", err, len(images))
	}
	if grew := int64(peak) - int64(before.HeapInuse); grew > 32*size {
		t.Errorf("the scan of %d bytes of documents grew the heap by %d MiB", size, grew>>20)
	}
}

// TestNotUTF8: a manifest saved in another encoding (a Latin-1 comment) is
// refused with the line of the first byte that is not UTF-8 and what to
// do, not only the YAML library's "invalid trailing UTF-8 octet".
func TestNotUTF8(t *testing.T) {
	t.Parallel()
	in := "apiVersion: v1\nkind: Pod\n# caf\xe9\nspec:\n  containers:\n  - image: nginx\n"
	_, err := Read("latin1.yaml", strings.NewReader(in))
	want := "latin1.yaml: not YAML: invalid trailing UTF-8 octet; line 3 is not UTF-8: convert the file to UTF-8 (iconv -f LATIN1 -t UTF-8, for one)"
	if !errors.Is(err, ErrNotYAML) || err == nil || err.Error() != want {
		t.Errorf("error\n %v\nwant\n %s", err, want)
	}
}

// TestWideMergeTime: many containers that each merge one wide mapping
// (<<: *big, 20,000 keys, no image among them) are read in linear time:
// each lookup of a key in a merged mapping must not walk all its keys
// again. Under 1 MiB of YAML took minutes.
func TestWideMergeTime(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("big: &big\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "  k%d: v\n", i)
	}
	b.WriteString("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n")
	for i := 0; i < 50000; i++ {
		b.WriteString("  - <<: *big\n")
	}
	b.WriteString("  - {<<: *big, image: nginx}\n")
	done := make(chan error, 1)
	var images []Image
	go func() {
		var err error
		images, err = Read("wide.yaml", strings.NewReader(b.String()))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || len(images) != 1 || images[0].Ref.String() != "docker.io/library/nginx:latest" {
			t.Errorf("images %v, error %v", images, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the scan of 50,000 containers merging one mapping of 20,000 keys did not end within 20s")
	}
}

// TestAliasFanOut: a list of containers defined once and aliased into
// thousands of pods (a YAML bomb for a reader that expands aliases) is
// scanned once: 200 KiB of YAML naming 3,000 images made 9 million
// findings, 46 s and 5.6 GB.
func TestAliasFanOut(t *testing.T) {
	t.Parallel()
	const n = 3000
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nx: &l\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - image: img%d\n", i)
	}
	b.WriteString("items:\n")
	for i := 0; i < n; i++ {
		b.WriteString("- {apiVersion: v1, kind: Pod, spec: {containers: *l, initContainers: *l}}\n")
	}
	done := make(chan error, 1)
	var images []Image
	go func() {
		var err error
		images, err = Read("fan.yaml", strings.NewReader(b.String()))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || len(images) != n || len(Refs(images)) != n {
			t.Errorf("%d images (%d distinct), error %v; want %d", len(images), len(Refs(images)), err, n)
		}
		if err == nil && len(images) > 0 && images[0].Where.String() != "fan.yaml:4: document 1: items[0].spec.initContainers[0].image" {
			t.Errorf("the first image is at %s", images[0].Where)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the scan of 3,000 pods sharing one list of 3,000 containers did not end within 20s")
	}
}

// TestManyProblems: a file that repeats one mistake in thousands of
// containers gets an error that lists the first MaxListedProblems and
// counts the rest, not one line each (10 MB of YAML made 135 MB of
// error text, on the terminal and in the --json document).
func TestManyProblems(t *testing.T) {
	t.Parallel()
	in := "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n" + strings.Repeat("  - image: A\n", 5000)
	_, err := Read("bad.yaml", strings.NewReader(in))
	var se *Error
	if !errors.As(err, &se) || len(se.Problems) != 5000 {
		t.Fatalf("error %T, want a *scan.Error with 5000 problems", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 1+MaxListedProblems+1 {
		t.Fatalf("%d lines, want the count, %d problems and the rest counted", len(lines), MaxListedProblems)
	}
	if want := "5000 problems in the manifests:"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if want := `  bad.yaml:5: document 1: spec.containers[0].image: invalid image reference "A": invalid reference format: repository name (library/A) must be lowercase`; lines[1] != want {
		t.Errorf("second line %q, want %q", lines[1], want)
	}
	if want := "  … and 4900 more problems"; lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
}

// TestLongValue: an image value of megabytes is refused without being
// echoed whole into the error.
func TestLongValue(t *testing.T) {
	t.Parallel()
	in := "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: " + strings.Repeat("a", 5<<20) + "\n"
	_, err := Read("long.yaml", strings.NewReader(in))
	want := "long.yaml:5: document 1: spec.containers[0].image: invalid image reference: a value of 5242880 bytes, longer than any image reference"
	if !errors.Is(err, bundle.ErrInvalidReference) || err.Error() != want {
		t.Errorf("error (%d bytes) %.300v, want %s", len(fmt.Sprint(err)), err, want)
	}
}
