package main

// Tests from a review of the operator's workflow (issue 13): scan, pin,
// export with --json and --egress-report, import with --mirror-config-out.

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryproject/ferry/internal/report"
)

// TestSignatureOutMissingDirectory: a --signature-out in a directory that
// does not exist is refused before the export (as --mapping-out is), not
// after the bundle was written; with --json, standard output holds one
// document, not one that says ok followed by one that says it failed.
func TestSignatureOutMissingDirectory(t *testing.T) {
	_, sample := source(t)
	unsetenv(t, "COSIGN_PASSWORD")
	t.Setenv("FERRY_PASSWORD", "sig out")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	ferry(t, nil, "keygen", "--output-prefix", prefix).expect(t, exitOK)
	missing := filepath.Join(dir, "missing")
	out := filepath.Join(dir, "b.tar.zst")
	res := ferry(t, nil, "export", "--json", "--key", prefix+".key", "--signature-out", filepath.Join(missing, "index.sig"), "-o", out, sample.Refs[0])
	res.expect(t, exitUsage)
	if got, want := res.errMessage(), "ferry: --signature-out: directory "+missing+" does not exist (see 'ferry --help')"; got != want {
		t.Errorf("error\n got %s\nwant %s", got, want)
	}
	doc := decode[report.Export](t, res)
	checkHeader(t, doc.Header, "export", false)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the export ran: %s exists (%v)", out, err)
	}
}
