package main

// Tests from a review of the operator's workflow (issue 13): scan, pin,
// export with --json and --egress-report, import with --mirror-config-out.

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/testimages"
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

// TestLogFormatJSONMirrorConfigWarning: with --log-format json the warning
// of --mirror-config-out is a JSON record like every other line on
// standard error, not a line of text among them; with --json it is among
// the document's warnings.
func TestLogFormatJSONMirrorConfigWarning(t *testing.T) {
	t.Parallel()
	src1, sample1 := source(t)
	src2 := registrytest.New(t, registrytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sample2, err := testimages.Push(ctx, src2.Host, layerSize)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "two.tar.zst")
	if _, err := bundle.ExportFile(ctx, []string{sample1.Refs[0], sample2.Refs[1]}, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	hosts := []string{src1.Host, src2.Host}
	slices.Sort(hosts)
	res := ferry(t, nil, "import", "--log-format", "json", "--insecure-skip-verify", "-q", "--to", dst.Host+"/shared", "--mirror-config-out", filepath.Join(t.TempDir(), "cfg"), path)
	res.expect(t, exitOK)
	want := "--mirror-config-out: " + hosts[0] + " and " + hosts[1] + " share the path " + dst.Host + "/shared in the mirror: a pull of REGISTRY/PATH:TAG from one of them gets whatever image of PATH:TAG the mirror holds, from whichever registry it came (digest pulls are not affected); import with --keep-source-registry to keep them apart"
	if recs := jsonLines(t, res.stderr); !slices.ContainsFunc(recs, func(r map[string]any) bool { return r["level"] == "WARN" && r["msg"] == want }) {
		t.Errorf("no warning record %q:\n%s", want, res.stderr)
	}
	// The --json document lists it among its warnings, as docs/json.md
	// says: "what was also printed as warnings".
	res = ferry(t, nil, "import", "--json", "--insecure-skip-verify", "-q", "--to", dst.Host+"/shared", "--mirror-config-out", filepath.Join(t.TempDir(), "cfg"), path)
	res.expect(t, exitOK)
	if doc := decode[report.Import](t, res); !slices.Contains(doc.Warnings, want) {
		t.Errorf("the document's warnings %q lack %q", doc.Warnings, want)
	}
}

// TestLogFormatJSONEgressSummary: with --log-format json the egress
// summary of --egress-report and --dry-run is JSON records on standard
// error, one a line, like the export's own summary.
func TestLogFormatJSONEgressSummary(t *testing.T) {
	t.Parallel()
	_, sample := newSplit(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "egress.json")
	for _, args := range [][]string{
		{"export", "--log-format", "json", "--retries", "0", "--egress-report", report, "-o", filepath.Join(dir, "images.tar.zst"), sample.Refs[0]},
		{"export", "--log-format", "json", "--retries", "0", "--dry-run", sample.Refs[0]},
	} {
		res := ferry(t, nil, args...)
		res.expect(t, exitOK)
		recs := jsonLines(t, res.stderr)
		if !slices.ContainsFunc(recs, func(r map[string]any) bool { return strings.HasPrefix(r["msg"].(string), "egress: 3 hosts contacted") }) {
			t.Errorf("%q: no record of the egress summary:\n%s", args, res.stderr)
		}
	}
}

// TestJSONEgressReportLateFailure: an export whose egress report cannot be
// written at the end (its name taken by a directory during the run) prints
// one --json document, the failure, not a document that says ok followed
// by one that says failed.
func TestJSONEgressReportLateFailure(t *testing.T) {
	t.Parallel()
	split, sample := newSplit(t)
	dir := t.TempDir()
	late := filepath.Join(dir, "late.json")
	before := split.Requests.Load()
	done := make(chan error, 1)
	go func() {
		for split.Requests.Load() == before {
			time.Sleep(5 * time.Millisecond)
		}
		done <- os.Mkdir(late, 0o755)
	}()
	split.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/manifests/", Delay: 300 * time.Millisecond, Times: 1})
	res := ferry(t, nil, "export", "--json", "--retries", "0", "--egress-report", late, "-o", filepath.Join(dir, "images.tar.zst"), sample.Refs[0])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res.expect(t, exitFailure)
	want := "ferry: egress report not written: " + late + " exists and is a directory; ferry writes this file by replacing a regular file only: remove it, or choose another name"
	if res.errMessage() != want {
		t.Errorf("error\n got %s\nwant %s", res.errMessage(), want)
	}
	doc := decode[report.Export](t, res)
	checkHeader(t, doc.Header, "export", false)
}

// TestSignedURLNotInOutput: a blob download redirected to a CDN that
// cannot be reached fails the export and the dry run with an error that
// names the CDN as the host to allow (not the registry, which answered),
// and neither the error line, the --json document nor the log holds the
// signed query of the redirect (its values are redacted).
func TestSignedURLNotInOutput(t *testing.T) {
	t.Parallel()
	split, _ := newSplit(t)
	cdn := "127.0.0.2:" + closedPort(t, "127.0.0.2")
	split.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/blobs/sha256:", Redirect: registrytest.StorageQuery, RedirectTo: "http://" + cdn, Times: 1 << 40})
	dir := t.TempDir()
	ref := split.Host + "/team/app:1.0"
	want := "registry unreachable: " + split.Host + " sent ferry to " + cdn + ", which cannot be reached (a firewall must allow it too: see export --egress-report): "
	for _, args := range [][]string{
		{"export", "--json", "--retries", "0", "-o", filepath.Join(dir, "images.tar.zst"), ref},
		{"export", "--json", "--retries", "0", "--dry-run", ref},
		{"export", "--retries", "0", "--dry-run", ref},
		{"export", "--log-format", "json", "--retries", "0", "-o", filepath.Join(dir, "images.tar.zst"), ref},
	} {
		res := ferry(t, nil, args...)
		if res.code != exitFailure || !strings.Contains(res.stderr, want) {
			t.Errorf("%q: exit %d, want %d and an error that says %q:\n%s", args, res.code, exitFailure, want, res.stderr)
		}
		for _, s := range []string{"S3CR3T", "AKIAFERRYTEST"} {
			if strings.Contains(res.stdout+res.stderr, s) {
				t.Errorf("%q: the output holds %q:\nstdout:\n%s\nstderr:\n%s", args, s, res.stdout, res.stderr)
			}
		}
	}
}

// TestOutputsNameOneFile: two output flags that name one file are refused
// before anything runs: the egress report or the signature written over
// the bundle (exit 0, and the bundle lost on the way to the air gap), or
// the receipt over the mapping.
func TestOutputsNameOneFile(t *testing.T) {
	_, sample := source(t)
	unsetenv(t, "COSIGN_PASSWORD")
	t.Setenv("FERRY_PASSWORD", "same file")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	ferry(t, nil, "keygen", "--output-prefix", prefix).expect(t, exitOK)
	out := filepath.Join(dir, "b.tar.zst")
	bundlePath := writeFile(t, "images.tar.zst", sampleBundle(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "-q", "-o", out, "--egress-report", out, sample.Refs[0]},
			"ferry: -o and --egress-report both name " + out + ": one would replace the other; give them different names (see 'ferry --help')"},
		{[]string{"export", "-q", "--key", prefix + ".key", "-o", out, "--signature-out", dir + "/./b.tar.zst", sample.Refs[0]},
			"ferry: -o and --signature-out both name " + dir + "/./b.tar.zst" + ": one would replace the other; give them different names (see 'ferry --help')"},
		{[]string{"import", "-q", "--insecure-skip-verify", "--to", "127.0.0.1:1/m", "--mapping-out", filepath.Join(dir, "m.txt"), "--receipt-out", filepath.Join(dir, "m.txt"), bundlePath},
			"ferry: --mapping-out and --receipt-out both name " + filepath.Join(dir, "m.txt") + ": one would replace the other; give them different names (see 'ferry --help')"},
	} {
		res := ferry(t, nil, tc.args...)
		res.expect(t, exitUsage)
		if res.errMessage() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, res.errMessage(), tc.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%q: the export ran: %s exists (%v)", tc.args, out, err)
		}
	}
}

// TestLogFormatJSONUnknownFlag: a command line the CLI library refuses
// (an unknown flag) still prints its error as a JSON record when it asks
// for --log-format json, as --json still gets its document.
func TestLogFormatJSONUnknownFlag(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"export", "--log-format", "json", "--bogus", "-o", "x.tar.zst", "nginx"},
		{"import", "--log-format=json", "--json", "--bogus", "x.tar.zst"},
	} {
		res := ferry(t, nil, args...)
		if res.code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, res.code, exitUsage)
		}
		recs := jsonLines(t, res.stderr)
		if len(recs) != 1 || recs[0]["level"] != "ERROR" || recs[0]["msg"] != "flag provided but not defined: -bogus (see 'ferry --help')" || recs[0]["exitCode"] != float64(exitUsage) {
			t.Errorf("%q: records %v", args, recs)
		}
	}
}

// fullWriter fails every write, as standard output on a full disk does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestListOnFullDisk: images scan (ferry images scan --pin ... >
// images.lock), export --dry-run and inspect fail when their list cannot be
// written to standard output, instead of exit 0 with a lock list cut
// short or empty.
func TestListOnFullDisk(t *testing.T) {
	_, sample := source(t)
	manifest := writeFile(t, "pod.yaml", []byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: "+sample.Refs[0]+"\n"))
	bundlePath := writeFile(t, "images.tar.zst", sampleBundle(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"images", "scan", manifest}, "ferry: writing the image list to standard output: no space left on device"},
		{[]string{"export", "--dry-run", sample.Refs[0]}, "ferry: writing the list to standard output: no space left on device"},
		{[]string{"inspect", bundlePath}, "ferry: writing to standard output: no space left on device"},
	} {
		runMu.Lock()
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"ferry"}, tc.args...), strings.NewReader(""), fullWriter{}, &stderr)
		runMu.Unlock()
		res := result{code: code, stderr: stderr.String()}
		res.expect(t, exitFailure)
		if res.errMessage() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, res.errMessage(), tc.want)
		}
	}
}

// TestMirrorConfigScheme: the mirror configuration names the mirror with
// the scheme the import reached it on: http:// for a registry that speaks
// plain HTTP (the nodes cannot pull from it over https://, and nothing
// said so), https:// for one that speaks TLS.
func TestMirrorConfigScheme(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	_, sample := source(t)
	srcHost := strings.SplitN(sample.Refs[0], "/", 2)[0]
	for _, tc := range []struct {
		name string
		opts registrytest.Options
		want string
	}{
		{"plain HTTP", registrytest.Options{}, "http://"},
		{"TLS", registrytest.Options{TLS: true}, "https://"},
	} {
		dst := registrytest.New(t, tc.opts)
		dir := filepath.Join(t.TempDir(), "cluster")
		ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--insecure-registry", dst.Host, "--to", dst.Host+"/m", "--mirror-config-out", dir, path).expect(t, exitOK)
		b, err := os.ReadFile(filepath.Join(dir, "certs.d", srcHost, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "[host.\"" + tc.want + dst.Host + "/v2/m\"]"; !strings.Contains(string(b), want) {
			t.Errorf("%s: hosts.toml lacks %s:\n%s", tc.name, want, b)
		}
		b, _ = os.ReadFile(filepath.Join(dir, "registries.yaml"))
		if want := "      - \"" + tc.want + dst.Host + "\"\n"; !strings.Contains(string(b), want) {
			t.Errorf("%s: registries.yaml lacks %q:\n%s", tc.name, want, b)
		}
	}
}

// TestJSONSpelledWithValue: --json=1 (or -json=t), which the CLI library
// reads as --json, also gets its document when the command line is
// refused.
func TestJSONSpelledWithValue(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--json=1", "-json=t", "--json=TRUE"} {
		res := ferry(t, nil, "verify", flag, "--bogus", "x.tar.zst")
		res.expect(t, exitUsage)
		doc := decode[report.Failed](t, res)
		checkHeader(t, doc.Header, "verify", false)
	}
}
