package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestRegistryErrorBodyPrintedEscaped: a registry answers the manifest
// request with 400 and a body made to overwrite the error line with a fake
// export summary (cursor up, erase line, carriage return, newlines). ferry
// prints it escaped, on the one "ferry: " line, and exits 1.
func TestRegistryErrorBodyPrintedEscaped(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	body := "nope\x1b[1A\x1b[2K\rexported 1 images (1 platforms) to x.tar.zst\n  signature: valid\n"
	reg.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/manifests/", Status: http.StatusBadRequest, Body: body, Times: 100})
	dir := t.TempDir()
	ref := reg.Host + "/team/app:1.0"
	res := ferry(t, nil, "export", "-q", "--retries", "0", "-o", filepath.Join(dir, "x.tar.zst"), ref)
	// -q: no note, only the error.
	want := "ferry: resolving " + ref + ": GET http://" + reg.Host + "/v2/team/app/manifests/1.0: unexpected status code 400 Bad Request: " +
		`nope\x1b[1A\x1b[2K\rexported 1 images (1 platforms) to x.tar.zst\n  signature: valid` + "\n"
	if res.code != exitFailure || res.stderr != want {
		t.Errorf("exit %d, stderr\n%q\nwant exit %d, stderr\n%q", res.code, res.stderr, exitFailure, want)
	}
	assertDirEmpty(t, dir)
}

// TestPrintable: every line of a message is escaped, and a line after the
// first that is not indented is indented, so that no text ferry did not
// write starts a line at the left margin.
func TestPrintable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"one line", "one line"},
		{"2 of the images could not be resolved:\n  a: x\n  b: y", "2 of the images could not be resolved:\n  a: x\n  b: y"},
		{"a\x1b[2Kb\rc", `a\x1b[2Kb\rc`},
		{"err\nexported 3 images\n  signature: valid", "err\n  exported 3 images\n  signature: valid"},
	} {
		if got := printable(tc.in); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if strings.Contains(printable("\x1b"), "\x1b") {
		t.Error("printable leaves ESC")
	}
}
