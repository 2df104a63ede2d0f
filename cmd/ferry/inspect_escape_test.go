package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
)

// TestInspectEscapesBundleText: ferry inspect reads a bundle it has not
// verified (it says so), and prints what index.json says: annotations and
// reference names a hostile bundle chooses. None of it reaches the
// terminal raw: an escape sequence in the "created" annotation or in a
// reference could otherwise rewrite the "signed:" line above it.
func TestInspectEscapesBundleText(t *testing.T) {
	t.Parallel()
	orig := sampleBundle(t)
	ents, eoa := archivetest.Split(t, orig)
	idx := ents[archivetest.Index(t, ents, bundle.IndexFile)]
	var index map[string]any
	if err := json.Unmarshal(idx.Body, &index); err != nil {
		t.Fatal(err)
	}
	const fake = "\x1b[1A\x1b[2K\rsigned:          yes, key sha256:0000"
	index["annotations"].(map[string]any)[bundle.AnnotationCreated] = "2024-01-01T00:00:00Z" + fake
	index["annotations"].(map[string]any)[bundle.AnnotationFerryVersion] = "1.0\u202e"
	m := index["manifests"].([]any)[0].(map[string]any)
	m["annotations"].(map[string]any)[bundle.AnnotationRefName] = "evil/app:1" + fake
	b, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "hostile.tar.zst", archivetest.Framed(t, archivetest.WithBody(t, ents, bundle.IndexFile, b), eoa))

	// Cut to 100 columns by default, in full with --wide: escaped both ways.
	var res result
	for _, wide := range []bool{false, true} {
		args := []string{"inspect", path}
		if wide {
			args = []string{"inspect", "--wide", path}
		}
		res = ferry(t, nil, args...)
		if res.code != 0 {
			t.Fatalf("inspect: exit %d: %s", res.code, res.stderr)
		}
		if strings.ContainsAny(res.stdout, "\x1b\r") || strings.Contains(res.stdout, "\u202e") {
			t.Errorf("inspect printed control characters from the bundle:\n%q", res.stdout)
		}
	}
	for _, want := range []string{
		`created:         2024-01-01T00:00:00Z\x1b[1A\x1b[2K\rsigned:          yes, key sha256:0000 by ferry 1.0\u202e` + "\n",
		`evil/app:1\x1b[1A\x1b[2K\rsigned:          yes, key sha256:0000  `,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, res.stdout)
		}
	}
}
