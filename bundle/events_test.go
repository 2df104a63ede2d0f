package bundle_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferryproject/ferry/bundle"
)

// recorder keeps the events of one run, in order.
type recorder struct {
	mu     sync.Mutex
	events []bundle.Event
}

func (r *recorder) add(e bundle.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// checkPlanned checks that one EventPlanned comes before every blob event,
// and that its totals are those of the blobs then started or skipped.
func checkPlanned(t *testing.T, what string, events []bundle.Event) {
	t.Helper()
	planned := -1
	var total int64
	blobs := map[string]int64{}
	for i, e := range events {
		switch e.Kind {
		case bundle.EventPlanned:
			if planned >= 0 {
				t.Errorf("%s: a second EventPlanned at %d", what, i)
			}
			planned, total = i, e.Total
			if e.Blobs <= 0 || e.Total <= 0 {
				t.Errorf("%s: EventPlanned %+v", what, e)
			}
		case bundle.EventBlobStart, bundle.EventBlobDone, bundle.EventBlobSkipped, bundle.EventBlobBytes:
			if planned < 0 {
				t.Fatalf("%s: %v before EventPlanned", what, e.Kind)
			}
			if e.Kind == bundle.EventBlobStart || e.Kind == bundle.EventBlobSkipped {
				blobs[e.Digest] = e.Size
			}
			if e.Kind == bundle.EventBlobStart && (e.Ref == "" || e.Total != total) {
				t.Errorf("%s: EventBlobStart %+v: want the image that uses it and the total %d", what, e, total)
			}
		}
	}
	var sum int64
	for _, s := range blobs {
		sum += s
	}
	if planned < 0 || sum != total || len(blobs) != events[planned].Blobs {
		t.Errorf("%s: planned %d blobs of %d bytes, then %d blobs of %d bytes", what, events[max(planned, 0)].Blobs, total, len(blobs), sum)
	}
}

// TestProgressEvents: export says which reference it starts resolving
// before it is resolved, and both export and import (from a file and from a
// stream) announce the blobs and bytes they will transfer before the first.
func TestProgressEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var rec recorder
	path, _ := f.export(t, bundle.ExportOptions{Progress: rec.add})
	resolving := map[string]int{}
	for i, e := range rec.events {
		switch e.Kind {
		case bundle.EventResolving:
			resolving[e.Ref] = i
		case bundle.EventResolved:
			if at, ok := resolving[e.Ref]; !ok || at > i {
				t.Errorf("%s resolved without EventResolving before", e.Ref)
			}
		}
	}
	if len(resolving) != len(f.sample.Refs) {
		t.Errorf("EventResolving for %d references, want %d", len(resolving), len(f.sample.Refs))
	}
	checkPlanned(t, "export", rec.events)

	for _, stream := range []bool{false, true} {
		var rec recorder
		var r *bundle.Reader
		var err error
		if stream {
			b, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			r, err = bundle.NewReader(strings.NewReader(string(b)))
		} else {
			r, err = bundle.Open(path)
		}
		if err != nil {
			t.Fatal(err)
		}
		prefix := "/file"
		if stream {
			prefix = "/stream"
		}
		_, err = bundle.Import(context.Background(), r, f.dst.Host+prefix, bundle.ImportOptions{Progress: rec.add})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkPlanned(t, "import"+prefix, rec.events)
		if !slices.ContainsFunc(rec.events, func(e bundle.Event) bool { return e.Kind == bundle.EventBlobStart }) {
			t.Errorf("import%s started no blob", prefix)
		}
	}
}
