package main

// Tests of what ferry prints besides its work: --json documents (parsed
// back into internal/report, the schema's one source, and checked field by
// field), -q, --log-format, the progress lines and inspect's width.

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/testimages"
)

// decode parses the one JSON document of a run: exactly one, nothing else
// on standard output.
func decode[T any](t *testing.T, res result) T {
	t.Helper()
	var doc T
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("standard output is not one document: %v\n%s", err, res.stdout)
	}
	if dec.More() {
		t.Fatalf("standard output holds more than one document:\n%s", res.stdout)
	}
	return doc
}

// checkHeader checks the header of a document.
func checkHeader(t *testing.T, h report.Header, command string, ok bool) {
	t.Helper()
	if h.SchemaVersion != report.SchemaVersion || h.Command != command || h.OK != ok || (h.Error == nil) != ok {
		t.Errorf("header %+v (error %+v), want schema %d, command %s, ok %v", h, h.Error, report.SchemaVersion, command, ok)
	}
}

// imageBlobs returns the configs and layers of ref (through every child of
// an index), with their sizes, read from the registry.
func imageBlobs(t *testing.T, ref string) map[string]int64 {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	if m.Config != nil {
		out[m.Config.Digest.String()] = m.Config.Size
	}
	for _, l := range m.Layers {
		out[l.Digest.String()] = l.Size
	}
	for _, c := range m.Manifests {
		for d, s := range imageBlobs(t, r.Context().Name()+"@"+c.Digest.String()) {
			out[d] = s
		}
	}
	return out
}

func repoOf(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Name()
}

// TestJSONExportImport: the documents of export and import, field by
// field; the per-image counts of an import follow the documented rule (a
// blob is uploaded to the first repository that needs it, in the order of
// the images, and mounted into the others; a blob shared by images of one
// repository counts in each), and on a re-run every blob is present.
func TestJSONExportImport(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	out := filepath.Join(t.TempDir(), "images.tar.zst")

	res := ferry(t, nil, append([]string{"export", "--json", "-o", out}, sample.Refs...)...)
	res.expect(t, exitOK)
	exp := decode[report.Export](t, res)
	checkHeader(t, exp.Header, "export", true)
	if exp.Output != out || exp.SignedBy != "" || exp.DryRun || exp.LeftOutBlobs != 0 {
		t.Errorf("export document: output %q, signedBy %q, dryRun %v, leftOut %d", exp.Output, exp.SignedBy, exp.DryRun, exp.LeftOutBlobs)
	}
	// The hosts contacted: here the one source registry, on loopback.
	srcHost, _, _ := strings.Cut(strings.SplitN(sample.Refs[0], "/", 2)[0], ":")
	if eg := exp.Egress; eg == nil || eg.Report != "" || len(eg.Hosts) != 1 || eg.Hosts[0].Host != srcHost || !slices.Equal(eg.Hosts[0].Roles, []string{"registry"}) ||
		eg.Hosts[0].Requests < int64(len(sample.Refs)) || eg.Hosts[0].BytesReceived < exp.UniqueBytes || !slices.Equal(eg.Allowlist, []string{srcHost}) {
		t.Errorf("export document: egress %+v, want the source registry %s with its requests and bytes", eg, srcHost)
	}
	if strings.Contains(res.stderr, "egress") {
		t.Errorf("--json alone printed the egress summary:\n%s", res.stderr)
	}
	// A dry run prints the same document, marked, with no bundle.
	dry := ferry(t, nil, append([]string{"export", "--json", "--dry-run"}, sample.Refs...)...)
	dry.expect(t, exitOK)
	dexp := decode[report.Export](t, dry)
	checkHeader(t, dexp.Header, "export", true)
	if !dexp.DryRun || dexp.Output != "" || len(dexp.Images) != len(exp.Images) || dexp.UniqueBytes != exp.UniqueBytes || dexp.Blobs != exp.Blobs || dexp.Egress == nil || len(dexp.Egress.Hosts) != 1 {
		t.Errorf("dry-run document %+v, export said %+v", dexp, exp)
	}
	for i, img := range dexp.Images {
		if e := exp.Images[i]; img.Ref != e.Ref || img.Digest != e.Digest || img.MediaType != e.MediaType || img.Size != e.Size || !slices.Equal(img.Platforms, e.Platforms) {
			t.Errorf("dry-run image %+v, export said %+v", img, e)
		}
	}
	if strings.Contains(res.stderr, "exported ") {
		t.Errorf("--json also printed the summary:\n%s", res.stderr)
	}
	var refs []string
	platforms := 0
	for _, img := range exp.Images {
		refs = append(refs, img.Ref)
		platforms += len(img.Platforms)
		if img.Digest != sample.Digests[img.Ref] || img.Size <= 0 || img.MediaType == "" || img.UpstreamDigest != "" {
			t.Errorf("export image %+v, want digest %s", img, sample.Digests[img.Ref])
		}
		wantPl := []string{"linux/amd64"}
		switch {
		case strings.Contains(img.Ref, "/multi/tool:"):
			wantPl = []string{"linux/amd64", "linux/arm64"}
		case strings.Contains(img.Ref, "/team/chart:"): // an artifact
			wantPl = nil
		}
		if !slices.Equal(img.Platforms, wantPl) {
			t.Errorf("%s: platforms %v, want %v", img.Ref, img.Platforms, wantPl)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(refs)), slices.Sorted(slices.Values(sample.Refs))) {
		t.Errorf("export images %v, want %v", refs, sample.Refs)
	}
	insp := decode[report.Inspect](t, ferry(t, nil, "inspect", "--json", out))
	checkHeader(t, insp.Header, "inspect", true)
	if insp.FormatVersion != "1" || insp.Signed || insp.SignedBy != "" || !insp.SeekTable || insp.Delta != nil || len(insp.Images) != len(exp.Images) {
		t.Errorf("inspect document %+v", insp)
	}
	for i, img := range insp.Images {
		if e := exp.Images[i]; img.Ref != e.Ref || img.Digest != e.Digest || img.MediaType != e.MediaType || img.Size != e.Size || !slices.Equal(img.Platforms, e.Platforms) {
			t.Errorf("inspect image %+v, export said %+v", img, e)
		}
	}
	if exp.Platforms != platforms || exp.Blobs != insp.Blobs || exp.UniqueBytes != insp.UniqueBytes || exp.ArchiveBytes != insp.ArchiveBytes ||
		exp.ReferencedBytes <= exp.UniqueBytes || exp.DurationSeconds <= 0 {
		t.Errorf("export totals %+v, inspect says %d blobs, %d bytes, archive %d", exp, insp.Blobs, insp.UniqueBytes, insp.ArchiveBytes)
	}

	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	res = ferry(t, nil, "import", "--insecure-skip-verify", "--json", "--to", to, out)
	res.expect(t, exitOK)
	imp := decode[report.Import](t, res)
	checkHeader(t, imp.Header, "import", true)
	if imp.Bundle != out || imp.Destination != to || imp.Receipt != to+"/ferry-receipts:latest" || imp.Manifests == 0 || imp.DurationSeconds <= 0 {
		t.Errorf("import document: %+v", imp)
	}
	if !slices.ContainsFunc(imp.Warnings, func(w string) bool { return strings.Contains(w, "rollback protection is off") }) {
		t.Errorf("import warnings %q lack the unsigned import's", imp.Warnings)
	}
	if len(imp.Images) != len(sample.Refs) {
		t.Fatalf("import lists %d images, want %d", len(imp.Images), len(sample.Refs))
	}

	// The model of the documented rule.
	blobs := map[string]map[string]int64{} // by source
	firstRepo := map[string]string{}       // blob: the repository it is uploaded to
	repos := map[string][]string{}         // blob: every repository that needs it
	var want report.Import
	for _, img := range imp.Images {
		blobs[img.Source] = imageBlobs(t, img.Source)
		repo := repoOf(t, img.Destination)
		for d := range blobs[img.Source] {
			if _, ok := firstRepo[d]; !ok {
				firstRepo[d] = repo
			}
			if !slices.Contains(repos[d], repo) {
				repos[d] = append(repos[d], repo)
			}
		}
	}
	sizes := map[string]int64{}
	for _, bs := range blobs {
		for d, s := range bs {
			sizes[d] = s
		}
	}
	for d, rs := range repos {
		want.BlobsUploaded++
		want.BytesUploaded += sizes[d]
		want.BlobsMounted += len(rs) - 1
	}
	sharedInRepo, mountedSomewhere := false, false
	for _, img := range imp.Images {
		repo := repoOf(t, img.Destination)
		wi := report.ImportImage{Source: img.Source, Destination: destRef(t, img.Source, to, false), Digest: sample.Digests[img.Source],
			DestinationDigest: sample.Digests[img.Source], Confirmed: true}
		for d, s := range blobs[img.Source] {
			if firstRepo[d] == repo {
				wi.BlobsUploaded++
				wi.BytesUploaded += s
			} else {
				wi.BlobsMounted++
				mountedSomewhere = true
			}
		}
		if img != wi {
			t.Errorf("import image\n%+v\nwant\n%+v", img, wi)
		}
		if strings.HasSuffix(img.Source, "/team/app:1.1") && wi.BlobsUploaded > 0 && blobs[img.Source][sample.SharedLayer] > 0 {
			sharedInRepo = true // the shared layer counts in both team/app images
		}
	}
	if !sharedInRepo || !mountedSomewhere {
		t.Errorf("the sample no longer has blobs shared within and across repositories: the rule is not tested")
	}
	if imp.BlobsUploaded != want.BlobsUploaded || imp.BlobsMounted != want.BlobsMounted || imp.BlobsPresent != 0 || imp.BytesUploaded != want.BytesUploaded {
		t.Errorf("import totals: %d uploaded (%d bytes), %d mounted, %d present; want %d (%d bytes), %d, 0",
			imp.BlobsUploaded, imp.BytesUploaded, imp.BlobsMounted, imp.BlobsPresent, want.BlobsUploaded, want.BytesUploaded, want.BlobsMounted)
	}
	// The receipt is uploaded too: the empty config, the JSON of this
	// import's record and that of the merged receipt.
	if int64(imp.BlobsUploaded)+3 != dst.BlobUploads.Load() {
		t.Errorf("import says %d blobs uploaded, the registry completed %d uploads (3 of them the receipt's)", imp.BlobsUploaded, dst.BlobUploads.Load())
	}

	// Again: every blob is already there.
	res = ferry(t, nil, "import", "--insecure-skip-verify", "--json", "--to", to, out)
	res.expect(t, exitOK)
	again := decode[report.Import](t, res)
	checkHeader(t, again.Header, "import", true)
	present := 0
	for _, img := range again.Images {
		if img.BlobsUploaded != 0 || img.BlobsMounted != 0 || img.BytesUploaded != 0 || img.BlobsPresent != len(blobs[img.Source]) || !img.Confirmed {
			t.Errorf("re-run: %+v, want all %d blobs present", img, len(blobs[img.Source]))
		}
	}
	for _, rs := range repos {
		present += len(rs)
	}
	if again.BlobsUploaded != 0 || again.BlobsMounted != 0 || again.BytesUploaded != 0 || again.BlobsPresent != present {
		t.Errorf("re-run totals: %d uploaded, %d mounted, %d present, want 0, 0, %d", again.BlobsUploaded, again.BlobsMounted, again.BlobsPresent, present)
	}
}

// TestJSONVerify: the verify document on success and on failure.
func TestJSONVerify(t *testing.T) {
	t.Parallel()
	b, key, other := signedSample(t)
	path := writeFile(t, "signed.tar.zst", b)
	pub := writePublicKey(t, key)
	res := ferry(t, nil, "verify", "--json", "--key", pub, path)
	res.expect(t, exitOK)
	doc := decode[report.Verify](t, res)
	checkHeader(t, doc.Header, "verify", true)
	if doc.Result != "ok" || doc.KeyFingerprint != bundle.Fingerprint(key.Public()) || doc.Images != 6 || doc.Blobs == 0 || doc.Bytes == 0 {
		t.Errorf("verify document %+v", doc)
	}

	res = ferry(t, nil, "verify", "--json", "--key", writePublicKey(t, other), path)
	res.expect(t, exitVerify)
	doc = decode[report.Verify](t, res)
	checkHeader(t, doc.Header, "verify", false)
	if doc.Result != "failed" || doc.Error.ExitCode != exitVerify || "ferry: "+doc.Error.Message != res.errMessage() {
		t.Errorf("failed verify document %+v, error %+v; stderr %q", doc, doc.Error, res.errMessage())
	}
}

// TestJSONFailures: a failed run with --json still prints one document,
// with the message, the exit code and what failed.
func TestJSONFailures(t *testing.T) {
	t.Parallel()
	reg, sample := source(t)
	dir := t.TempDir()

	t.Run("export of an unknown image", func(t *testing.T) {
		missing := reg.Host + "/no/such:1"
		res := ferry(t, nil, "export", "--json", "-o", filepath.Join(dir, "x.tar.zst"), sample.Refs[0], missing)
		res.expect(t, exitFailure, missing)
		doc := decode[report.Export](t, res)
		checkHeader(t, doc.Header, "export", false)
		if e := doc.Error; e.ExitCode != exitFailure || "ferry: "+e.Message != res.errMessage() || !slices.Equal(e.Images, []string{missing}) || e.Blob != "" {
			t.Errorf("error %+v, stderr %q", e, res.errMessage())
		}
		if doc.Output != filepath.Join(dir, "x.tar.zst") || doc.Images == nil || len(doc.Images) != 0 {
			t.Errorf("failed export document %+v", doc)
		}
	})

	t.Run("import refused by the registry", func(t *testing.T) {
		dst := registrytest.New(t, registrytest.Options{})
		dst.InjectFaults(&registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusForbidden, Times: 1000})
		path := writeFile(t, "images.tar.zst", sampleBundle(t))
		res := ferry(t, nil, "import", "--insecure-skip-verify", "--json", "--to", dst.Host+"/m", path)
		res.expect(t, exitFailure, "access denied")
		doc := decode[report.Import](t, res)
		checkHeader(t, doc.Header, "import", false)
		e := doc.Error
		if e.ExitCode != exitFailure || e.Op != "push" || !strings.HasPrefix(e.Blob, "sha256:") || len(e.Images) == 0 || !strings.Contains(e.Message, e.Blob) {
			t.Errorf("error %+v", e)
		}
		for _, img := range e.Images {
			if !slices.Contains(sample.Refs, img) {
				t.Errorf("error names %s, not a sample image", img)
			}
		}
		if doc.Bundle != path || doc.Destination != dst.Host+"/m" || doc.BlobsUploaded != 0 || doc.Images == nil || len(doc.Images) != 0 {
			t.Errorf("failed import document %+v", doc)
		}
	})

	t.Run("usage error", func(t *testing.T) {
		res := ferry(t, nil, "import", "--json", "--log-format", "xml", "--to", "r.example/m", "x.tar.zst")
		res.expect(t, exitUsage)
		doc := decode[report.Failed](t, res)
		checkHeader(t, doc.Header, "import", false)
		if doc.Error.ExitCode != exitUsage || doc.Error.Message != `unknown log format: --log-format "xml": want text or json` {
			t.Errorf("error %+v", doc.Error)
		}
	})

	t.Run("flag the CLI refuses", func(t *testing.T) {
		res := ferry(t, nil, "inspect", "--json", "--no-such-flag", "x.tar.zst")
		res.expect(t, exitUsage, "no-such-flag")
		doc := decode[report.Failed](t, res)
		checkHeader(t, doc.Header, "inspect", false)
		if doc.Error.ExitCode != exitUsage || !strings.Contains(doc.Error.Message, "no-such-flag") {
			t.Errorf("error %+v", doc.Error)
		}
	})

	t.Run("json and the bundle on standard output", func(t *testing.T) {
		res := ferry(t, nil, "export", "--json", "-o", "-", sample.Refs[0])
		res.exactly(t, exitUsage, "ferry: --json prints its document on standard output, where -o - writes the bundle; write the bundle to a file (see 'ferry --help')")
		doc := decode[report.Export](t, res)
		checkHeader(t, doc.Header, "export", false)
	})
}

// TestQuiet: -q prints nothing on success, only the error on failure.
func TestQuiet(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	b, key, _ := signedSample(t)
	path := writeFile(t, "signed.tar.zst", b)
	dst := registrytest.New(t, registrytest.Options{})
	out := filepath.Join(t.TempDir(), "x.tar.zst")

	for _, args := range [][]string{
		append([]string{"export", "-q", "-o", out}, sample.Refs...), // would note the missing --key
		{"import", "-q", "--key", writePublicKey(t, key), "--to", dst.Host + "/m", path},
	} {
		res := ferry(t, nil, args...)
		res.expect(t, exitOK)
		if res.stdout != "" || res.stderr != "" {
			t.Errorf("%s -q printed\nstdout:\n%s\nstderr:\n%s", args[0], res.stdout, res.stderr)
		}
	}
	res := ferry(t, nil, "import", "-q", "--key", writePublicKey(t, key), "--to", deadHost(t)+"/m", "--retries", "0", path)
	if res.code != exitFailure || res.stdout != "" || !strings.HasPrefix(res.stderr, "ferry: ") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("failed import -q: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestLogFormatJSON: with --log-format json every line on standard error
// is a JSON record: the warning, and the error with its exit code.
func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	dst := registrytest.New(t, registrytest.Options{})
	res := ferry(t, nil, "import", "--log-format", "json", "--insecure-skip-verify", "--to", dst.Host+"/m", path)
	res.expect(t, exitOK)
	recs := jsonLines(t, res.stderr)
	if !slices.ContainsFunc(recs, func(r map[string]any) bool {
		return r["level"] == "WARN" && strings.HasPrefix(r["msg"].(string), "--insecure-skip-verify: the bundle's signature is NOT checked")
	}) {
		t.Errorf("no warning record for --insecure-skip-verify:\n%s", res.stderr)
	}

	res = ferry(t, nil, "import", "--log-format", "json", "--insecure-skip-verify", "--retries", "0", "--to", deadHost(t)+"/m", path)
	recs = jsonLines(t, res.stderr)
	last := recs[len(recs)-1]
	if res.code != exitFailure || last["level"] != "ERROR" || last["exitCode"] != float64(exitFailure) || !strings.Contains(last["msg"].(string), "connect") {
		t.Errorf("exit %d, last record %v", res.code, last)
	}
}

// jsonLines parses every line of s as one JSON object.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
		if _, ok := m["time"]; !ok {
			t.Errorf("record %v has no time", m)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatalf("no records")
	}
	return out
}

// TestBadLogFormat: a --log-format other than text or json is a usage
// error that says which values it takes.
func TestBadLogFormat(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{
		{"export", "-o", "x.tar.zst", "a.example/b:1"},
		{"import", "--to", "r.example/m", "x.tar.zst"},
		{"inspect", "x.tar.zst"},
		{"verify", "--key", "k.pub", "x.tar.zst"},
	} {
		args := append([]string{cmd[0], "--log-format", "yaml"}, cmd[1:]...)
		res := ferry(t, nil, args...)
		res.exactly(t, exitUsage, `ferry: unknown log format: --log-format "yaml": want text or json (see 'ferry --help')`)
	}
	// The error itself, as the CLI library returns it.
	runMu.Lock()
	var stdout, stderr bytes.Buffer
	err := newApp(&env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}).RunContext(context.Background(), []string{"ferry", "inspect", "--log-format", "yaml", "x"})
	runMu.Unlock()
	var u usageError
	if !errors.Is(err, errBadLogFormat) || !errors.As(err, &u) {
		t.Errorf("error %v: want a usage error wrapping errBadLogFormat", err)
	}
}

// TestInspectWidth: inspect fits 100 columns by default, whatever the
// names and platforms; --wide prints them, and full digests.
func TestInspectWidth(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	long := reg.Host + "/" + strings.Repeat("very-long-team-name/", 5) + "service-with-a-long-name:2026.11.29-build.1234"
	var imgs = map[string]v1.Image{}
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x", "windows/amd64"} {
		img, err := testimages.Image(p, false, testimages.Layer("w-"+p, 512))
		if err != nil {
			t.Fatal(err)
		}
		imgs[p] = img
	}
	idx, err := testimages.Index(imgs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(long)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	b, key, _ := signedSample(t) // a signed bundle: the fingerprint line
	_ = key
	out := filepath.Join(t.TempDir(), "wide.tar.zst")
	ferry(t, nil, "export", "-q", "-o", out, long).expect(t, exitOK)

	for _, path := range []string{out, writeFile(t, "signed.tar.zst", b)} {
		res := ferry(t, nil, "inspect", path)
		res.expect(t, exitOK)
		for _, l := range strings.Split(res.stdout, "\n") {
			if n := utf8.RuneCountInString(l); n > inspectWidth {
				t.Errorf("line of %d columns:\n%s", n, l)
			}
		}
		if path == out && (strings.Contains(res.stdout, d.String()) || !strings.Contains(res.stdout, shortDigest(d.String())+" ") || !strings.Contains(res.stdout, "linux/amd64,")) {
			t.Errorf("inspect does not show the short digest %s and the first platforms:\n%s", shortDigest(d.String()), res.stdout)
		}
	}
	res := ferry(t, nil, "inspect", "--wide", out)
	res.expect(t, exitOK)
	for _, want := range []string{long, d.String(), "linux/amd64,linux/arm/v7,linux/arm64,linux/ppc64le,linux/s390x,windows/amd64", "application/vnd.oci.image.index.v1+json"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("inspect --wide lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestNarrowHelpers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ got, want string }{
		{shortDigest("sha256:0123456789abcdef0123"), "sha256:0123456789ab"},
		{shortDigest("not-a-digest"), "not-a-digest"},
		{elide("abcdef", 4), "abc…"},
		{elide("abc", 4), "abc"},
		{elideMiddle("registry.example/team/app:1.0", 15), "registr…app:1.0"},
		{elidePlatforms([]string{"linux/amd64", "linux/arm64", "linux/s390x"}, 20), "linux/amd64,+2"},
		{elidePlatforms([]string{"linux/amd64", "linux/arm64"}, 30), "linux/amd64,linux/arm64"},
		{elidePlatforms([]string{"a-very-long-platform/name", "b"}, 12), "a-very-l…,+1"},
		{elidePlatforms(nil, 10), "-"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestProgressLines: the plain lines (standard error not a terminal) say
// what is resolved, then blobs and bytes done of the totals the engine
// announces, the rate and the time left; the terminal lines add a bar and
// the largest blobs in flight, and never exceed the width.
func TestProgressLines(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	p := &progress{w: &buf, verb: "export", tty: true, now: func() time.Time { return clock }, flight: map[string]*flight{}, done: map[string]bool{}, width: 100}
	p.start = clock
	ev := p.event
	if got, want := p.plainLine(p.snapshot()), "export: preparing"; got != want {
		t.Errorf("before anything: %q, want %q", got, want)
	}
	ev(bundle.Event{Kind: bundle.EventResolving, Ref: "reg.example/team/app:1.0"})
	ev(bundle.Event{Kind: bundle.EventResolving, Ref: "reg.example/team/web:2.0"})
	ev(bundle.Event{Kind: bundle.EventManifest, Ref: "reg.example/team/web:2.0"})
	if got, want := p.plainLine(p.snapshot()), "export: resolving images (0 resolved, 1 manifests read): reg.example/team/app:1.0 +1"; got != want {
		t.Errorf("resolving: %q, want %q", got, want)
	}
	ev(bundle.Event{Kind: bundle.EventResolved, Ref: "reg.example/team/app:1.0"})
	if got, want := p.plainLine(p.snapshot()), "export: resolving images (1 resolved, 1 manifests read): reg.example/team/web:2.0"; got != want {
		t.Errorf("resolving: %q, want %q", got, want)
	}
	ev(bundle.Event{Kind: bundle.EventResolved, Ref: "reg.example/team/web:2.0"})
	ev(bundle.Event{Kind: bundle.EventPlanned, Total: 100 << 20, Blobs: 4})
	big, small := "sha256:"+strings.Repeat("ab", 32), "sha256:"+strings.Repeat("cd", 32)
	ev(bundle.Event{Kind: bundle.EventBlobStart, Digest: big, Size: 80 << 20, Total: 100 << 20, Ref: "reg.example/team/app:1.0 +1"})
	ev(bundle.Event{Kind: bundle.EventBlobStart, Digest: small, Size: 4 << 10, Total: 100 << 20, Ref: "reg.example/team/web:2.0"})
	ev(bundle.Event{Kind: bundle.EventBlobBytes, Digest: big, Bytes: 40 << 20})
	ev(bundle.Event{Kind: bundle.EventBlobBytes, Digest: small, Bytes: 4 << 10})
	ev(bundle.Event{Kind: bundle.EventBlobDone, Digest: small, Size: 4 << 10, Total: 100 << 20})
	ev(bundle.Event{Kind: bundle.EventBlobSkipped, Digest: "sha256:ef", Size: 1 << 20, Total: 100 << 20})
	ev(bundle.Event{Kind: bundle.EventBlobSkipped, Digest: small, Size: 4 << 10, Total: 100 << 20}) // mounted into a second repository: counted once
	clock = clock.Add(4 * time.Second)
	want := fmt.Sprintf("export: 2 of 4 blobs (1 skipped), %s of %s (40%%), %s/s, ETA 6s, 1 manifests",
		human.Bytes(40<<20+4<<10), human.Bytes(100<<20), human.Bytes((40<<20+4<<10)/4))
	if got := p.plainLine(p.snapshot()); got != want {
		t.Errorf("transfer:\n%q\nwant\n%q", got, want)
	}
	lines := p.ttyLines(p.snapshot())
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "export  40% [") || !strings.Contains(lines[0], "ETA 6s  2/4 blobs") ||
		lines[1] != "  sha256:abababababab  40.0 MiB / 80.0 MiB  reg.example/team/app:1.0 +1" {
		t.Errorf("terminal lines:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n >= p.width {
			t.Errorf("terminal line of %d columns on %d: %q", n, p.width, l)
		}
	}
	// Drawn twice: the second drawing first moves back over the first.
	p.draw()
	p.draw()
	drawn := strings.Join(lines, "\x1b[K\n") + "\x1b[K\n"
	if got, want := buf.String(), drawn+"\x1b[2A\r\x1b[J"+drawn; got != want {
		t.Errorf("drawn\n%q\nwant\n%q", got, want)
	}
	buf.Reset()
	p.Done()
	if got := buf.String(); got != "\x1b[2A\r\x1b[J" {
		t.Errorf("Done left %q, want the lines erased", got)
	}
}

// TestProgressPlainRun: a real export and import print plain progress
// lines with the totals known up front. Not parallel: it shortens the
// interval of the package's progress lines.
func TestProgressPlainRun(t *testing.T) {
	_, sample := source(t)
	saved := plainInterval
	plainInterval = time.Millisecond
	defer func() { plainInterval = saved }()
	out := filepath.Join(t.TempDir(), "x.tar.zst")
	line := regexp.MustCompile(`^(export|import): (\d+) of (\d+) blobs \(\d+ skipped\), [0-9.]+ [KMG]?i?B of ([0-9.]+ [KMG]?i?B) \(\d+%\), `)
	for _, args := range [][]string{
		append([]string{"export", "-o", out}, sample.Refs...),
		{"import", "--insecure-skip-verify", "--to", registrytest.New(t, registrytest.Options{}).Host + "/m", out},
	} {
		res := ferry(t, nil, args...)
		res.expect(t, exitOK)
		totals := map[string]bool{}
		for _, l := range strings.Split(res.stderr, "\n") {
			if m := line.FindStringSubmatch(l); m != nil {
				totals[m[3]+" blobs, "+m[4]] = true
				if m[1] != args[0] {
					t.Errorf("%s printed %q", args[0], l)
				}
			}
		}
		if len(totals) != 1 {
			t.Errorf("%s: progress lines with totals %v, want one total throughout:\n%s", args[0], totals, res.stderr)
		}
	}
	// With --log-format json, the same lines are records with the counts.
	res := ferry(t, nil, append([]string{"export", "--log-format", "json", "-o", out}, sample.Refs...)...)
	res.expect(t, exitOK)
	progress := 0
	for _, r := range jsonLines(t, res.stderr) {
		if r["phase"] != "transfer" {
			continue
		}
		progress++
		if r["level"] != "INFO" || r["totalBytes"].(float64) <= 0 || r["blobs"].(float64) <= 0 || !line.MatchString(r["msg"].(string)) {
			t.Errorf("progress record %v", r)
		}
	}
	if progress == 0 {
		t.Errorf("no progress record:\n%s", res.stderr)
	}
}

// writePublicKey writes the public key of k to a file and returns its path.
func writePublicKey(t *testing.T, k interface{ Public() crypto.PublicKey }) string {
	t.Helper()
	return writeFile(t, "key.pub", pubPEM(t, k.Public()))
}

// BenchmarkProgressEvent: the cost of one event on the transfer path (a
// MiB of a blob reported, blobs starting and ending) with the terminal
// display on and drawing all the time: the transfer never waits for it.
func BenchmarkProgressEvent(b *testing.B) {
	var buf bytes.Buffer
	p := &progress{w: &buf, verb: "import", tty: true, now: time.Now, flight: map[string]*flight{}, done: map[string]bool{}, width: 100}
	p.start = p.now()
	p.event(bundle.Event{Kind: bundle.EventPlanned, Total: 1 << 40, Blobs: 1 << 20})
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				p.draw()
				buf.Reset()
			}
		}
	}()
	defer close(stop)
	digests := make([]string, 64)
	for i := range digests {
		digests[i] = fmt.Sprintf("sha256:%064d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			d := digests[i%64]
			if i%64 == 0 {
				p.event(bundle.Event{Kind: bundle.EventBlobStart, Digest: d, Size: 64 << 20, Ref: "reg.example/app:1"})
			}
			p.event(bundle.Event{Kind: bundle.EventBlobBytes, Digest: d, Bytes: 1 << 20})
			i++
		}
	})
}
