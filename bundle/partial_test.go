//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bundle_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferryproject/ferry/bundle"
)

// TestExportFileRemovesStalePartials: an export removes the leftovers of
// an earlier export of the same output that was killed (our partial files,
// unlocked), and keeps everything else: the locked partial file of an
// export still running, other outputs' partial files, names that only look
// alike, a symbolic link with the partial name and its target, and (as
// root) a partial file of another user.
func TestExportFileRemovesStalePartials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "images.tar.zst")
	plant := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{0}, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{".images.tar.zst.partial-1234567", ".images.tar.zst.partial-42"}
	for _, n := range stale {
		plant(n)
	}
	kept := []string{
		".other.tar.zst.partial-1234567",  // another output
		".images.tar.zst.partial-12ab",    // not a name ferry makes
		"images.tar.zst.partial-1234567",  // no leading dot
		".images.tar.zst.partial-",        // no number
		".images.tar.zst.partial-7777777", // locked: an export still running
		".images.tar.zst.partial-555",     // a symbolic link
		"victim",                          // its target
	}
	for _, n := range kept[:4] {
		plant(n)
	}
	running := plant(kept[4])
	lf, err := os.Open(running)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	victim := plant("victim")
	if err := os.Symlink(victim, filepath.Join(dir, kept[5])); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		foreign := plant(".images.tar.zst.partial-999")
		if err := os.Chown(foreign, 54321, 54321); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, ".images.tar.zst.partial-999")
	}

	if _, err := bundle.ExportFile(context.Background(), f.sample.Refs[:1], out, bundle.ExportOptions{Created: created}); err != nil {
		t.Fatal(err)
	}
	want := append([]string{"images.tar.zst"}, kept...)
	sort.Strings(want)
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != len(want) {
		t.Fatalf("the output directory holds\n%q\nwant\n%q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("the output directory holds\n%q\nwant\n%q", got, want)
		}
	}
	if b, _ := os.ReadFile(victim); len(b) != 1<<20 {
		t.Errorf("the target of the link was changed: %d bytes", len(b))
	}
}

// TestExportFileLocksItsPartial: while an export writes its partial file,
// the file is locked, so a concurrent export of the same output (which
// would remove an unlocked one) keeps it.
func TestExportFileLocksItsPartial(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "images.tar.zst")
	var checked atomic.Bool
	progress := func(e bundle.Event) {
		if e.Kind != bundle.EventBlobDone || !checked.CompareAndSwap(false, true) {
			return
		}
		ms, _ := filepath.Glob(filepath.Join(dir, ".images.tar.zst.partial-*"))
		if len(ms) != 1 {
			t.Errorf("partial files during the export: %q, want one", ms)
			return
		}
		pf, err := os.Open(ms[0])
		if err != nil {
			t.Error(err)
			return
		}
		defer pf.Close()
		if err := unix.Flock(int(pf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
			t.Errorf("locking the partial file of a running export: %v, want %v", err, unix.EWOULDBLOCK)
		}
	}
	if _, err := bundle.ExportFile(context.Background(), f.sample.Refs[:1], out, bundle.ExportOptions{Created: created, Jobs: 1, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if !checked.Load() {
		t.Fatal("no blob was exported: nothing was tested")
	}
}
