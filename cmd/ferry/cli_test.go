package main

// In-process tests of the ferry CLI against real registries (distribution v3
// on 127.0.0.1, see internal/registrytest). Every failing case checks the exit
// code, the key words of the message on stderr, and that nothing was left
// half-written: no file in the output directory, no tag at the destination.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/klauspost/compress/zstd"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// layerSize keeps the sample images small: the whole set is a few hundred KiB.
const layerSize = 8 << 10

// shared is the source registry with the sample set, and one bundle of it,
// made once for the whole package.
var shared struct {
	once   sync.Once
	err    error
	reg    *registrytest.Registry
	sample *testimages.Sample
	bundle []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.reg != nil {
		shared.reg.Close()
	}
	os.Exit(code)
}

func setupShared() error {
	reg, err := registrytest.Start(registrytest.Options{})
	if err != nil {
		return err
	}
	shared.reg = reg
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if shared.sample, err = testimages.Push(ctx, reg.Host, layerSize); err != nil {
		return fmt.Errorf("pushing the sample images: %w", err)
	}
	dir, err := os.MkdirTemp("", "ferry-cli-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "images.tar.zst")
	if _, err := bundle.ExportFile(ctx, shared.sample.Refs, path, bundle.ExportOptions{Created: time.Unix(1700000000, 0)}); err != nil {
		return fmt.Errorf("exporting the sample bundle: %w", err)
	}
	shared.bundle, err = os.ReadFile(path)
	return err
}

// source returns the shared source registry and its sample images.
func source(t *testing.T) (*registrytest.Registry, *testimages.Sample) {
	t.Helper()
	shared.once.Do(func() { shared.err = setupShared() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.reg, shared.sample
}

// sampleBundle returns a copy of the bundle of every sample image.
func sampleBundle(t *testing.T) []byte {
	t.Helper()
	source(t)
	return bytes.Clone(shared.bundle)
}

// result is what one run of the CLI produced.
type result struct {
	code           int
	stdout, stderr string
}

// ferry runs the CLI in process with args (without the program name).
func ferry(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return ferryCtx(ctx, stdin, args...)
}

// runMu serialises runs of the CLI: urfave/cli v2 mutates its package-level
// HelpFlag (BoolFlag.Apply stores the default value) on every run, so two
// runs at once are a data race. The registries and checks stay parallel.
var runMu sync.Mutex

func ferryCtx(ctx context.Context, stdin io.Reader, args ...string) result {
	runMu.Lock()
	defer runMu.Unlock()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	code := run(ctx, append([]string{"ferry"}, args...), stdin, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// expect checks the exit code and that the error message holds every word
// (case insensitive). For every failure it also checks that the message is
// one line (several failures: one indented line each), names no empty
// digest, and does not blame the network for a verification failure.
func (r result) expect(t *testing.T, code int, words ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	if code == exitOK {
		return
	}
	msg := r.errMessage()
	t.Logf("exit %d: %s", r.code, msg)
	if msg == "" {
		t.Errorf("no 'ferry: ' error line on stderr:\n%s", r.stderr)
		return
	}
	lower := strings.ToLower(msg)
	for _, w := range words {
		if !strings.Contains(lower, strings.ToLower(w)) {
			t.Errorf("error message does not mention %q:\n%s", w, msg)
		}
	}
	for i, line := range strings.Split(msg, "\n") {
		if i > 0 && !strings.HasPrefix(line, "  ") {
			t.Errorf("error message is not one line (line %d is not an indented list item):\n%s", i+1, msg)
			break
		}
	}
	if strings.Contains(msg, "blob :") || strings.Contains(msg, "%!") {
		t.Errorf("error message names an empty blob digest or has a formatting error:\n%s", msg)
	}
	if strings.Count(lower, "failed to") > 1 {
		t.Errorf("error message stacks 'failed to':\n%s", msg)
	}
	if code == exitVerify {
		r.refute(t, "unreachable")
	}
}

// refute checks that the error message holds none of words.
func (r result) refute(t *testing.T, words ...string) {
	t.Helper()
	msg := r.errMessage()
	for _, w := range words {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			t.Errorf("error message says %q, which is misleading here:\n%s", w, msg)
		}
	}
}

// errMessage is the error as printed: from the "ferry: " line to the end of
// stderr (several failures continue on indented lines).
func (r result) errMessage() string {
	i := strings.LastIndex(r.stderr, "ferry: ")
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(r.stderr[i:])
}

// assertDirEmpty checks that a failed export left nothing behind: no bundle,
// no ".partial" file, no spool file.
func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s holds %s after a failed run", dir, e.Name())
	}
}

// writeFile writes b to a new file in a fresh temporary directory.
func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// destRef is where import --to TO puts the source reference ref
// (host/path:tag), as docs/user-guide.md specifies: the source host is
// dropped, or with --keep-source-registry kept as a path element with a
// port's ':' turned into '_'.
func destRef(t *testing.T, ref, to string, keepSource bool) string {
	t.Helper()
	host, rest, ok := strings.Cut(ref, "/")
	if !ok {
		t.Fatalf("reference %q has no host", ref)
	}
	if keepSource {
		return to + "/" + strings.ReplaceAll(host, ":", "_") + "/" + rest
	}
	return to + "/" + rest
}

// basicAuth is a user and password for a registry; empty for anonymous.
type basicAuth struct{ user, pass string }

func (a basicAuth) remote() []remote.Option {
	if a.user == "" {
		return nil
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: a.user, Password: a.pass})}
}

// getJSON fetches a registry API path into v.
func (a basicAuth) getJSON(t *testing.T, host, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// assertNoTags checks that no sample image was tagged under to, and that no
// repository of the registry at host under to's prefix has any tag at all.
func assertNoTags(t *testing.T, host, to string, sample *testimages.Sample, auth basicAuth) {
	t.Helper()
	for _, ref := range sample.Refs {
		dst := destRef(t, ref, to, false)
		r, err := name.ParseReference(dst)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(r, auth.remote()...)
		var terr *transport.Error
		switch {
		case err == nil:
			t.Errorf("%s exists at the destination (%s) after a failed import", dst, desc.Digest)
		case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		default:
			t.Errorf("HEAD %s: %v (want 404)", dst, err)
		}
	}
	var catalog struct{ Repositories []string }
	if code := auth.getJSON(t, host, "/v2/_catalog", &catalog); code != http.StatusOK {
		t.Fatalf("catalog of %s: status %d", host, code)
	}
	_, prefix, _ := strings.Cut(to, "/")
	for _, repo := range catalog.Repositories {
		if prefix != "" && !strings.HasPrefix(repo, prefix+"/") {
			continue // not ours: the registry may hold other images
		}
		var tags struct{ Tags []string }
		auth.getJSON(t, host, "/v2/"+repo+"/tags/list", &tags)
		if len(tags.Tags) > 0 {
			t.Errorf("repository %s has tags %v after a failed import", repo, tags.Tags)
		}
	}
}

// assertTagged checks that every sample image is at the destination under
// its tag with its source digest.
func assertTagged(t *testing.T, to string, keepSource bool, sample *testimages.Sample) {
	t.Helper()
	for _, ref := range sample.Refs {
		dst := destRef(t, ref, to, keepSource)
		r, err := name.ParseReference(dst)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(r)
		if err != nil {
			t.Errorf("HEAD %s: %v", dst, err)
			continue
		}
		if got, want := desc.Digest.String(), sample.Digests[ref]; got != want {
			t.Errorf("%s has digest %s, want %s", dst, got, want)
		}
	}
}

// deadHost returns a 127.0.0.1 address where nothing listens.
func deadHost(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	return host
}

// ---- happy paths ----

func TestExportInspectImport(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{})
	dir := t.TempDir()
	out := filepath.Join(dir, "images.tar.zst")

	res := ferry(t, nil, append([]string{"export", "-o", out}, sample.Refs...)...)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, fmt.Sprintf("exported %d images", len(sample.Refs))) {
		t.Errorf("export summary:\n%s", res.stderr)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "images.tar.zst" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("output directory holds %v, want only images.tar.zst", names)
	}

	t.Run("inspect", func(t *testing.T) {
		res := ferry(t, nil, "inspect", "--wide", out)
		res.expect(t, exitOK)
		for _, ref := range sample.Refs {
			if !strings.Contains(res.stdout, ref) || !strings.Contains(res.stdout, sample.Digests[ref]) {
				t.Errorf("inspect does not list %s %s:\n%s", ref, sample.Digests[ref], res.stdout)
			}
		}
		if !strings.Contains(res.stdout, "seek table:      yes") {
			t.Errorf("inspect does not report the seek table:\n%s", res.stdout)
		}
	})

	t.Run("inspect --json", func(t *testing.T) {
		res := ferry(t, nil, "inspect", "--json", out)
		res.expect(t, exitOK)
		var rep struct {
			FormatVersion string `json:"formatVersion"`
			SeekTable     bool   `json:"seekTable"`
			Images        []struct {
				Ref, Digest string
			} `json:"images"`
			Blobs        int   `json:"blobs"`
			ArchiveBytes int64 `json:"archiveBytes"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
			t.Fatalf("inspect --json: %v\n%s", err, res.stdout)
		}
		if len(rep.Images) != len(sample.Refs) {
			t.Errorf("inspect --json lists %d images, want %d", len(rep.Images), len(sample.Refs))
		}
		for _, img := range rep.Images {
			if want := sample.Digests[img.Ref]; img.Digest != want {
				t.Errorf("image %s: digest %s, want %s", img.Ref, img.Digest, want)
			}
		}
		if rep.FormatVersion != bundle.FormatVersion || !rep.SeekTable || rep.Blobs == 0 || rep.ArchiveBytes == 0 {
			t.Errorf("inspect --json: %+v", rep)
		}
	})

	to := dst.Host + "/mirror"
	mapping := filepath.Join(t.TempDir(), "mapping.txt")
	t.Run("import", func(t *testing.T) {
		res := ferry(t, nil, "import", "--insecure-skip-verify", "--to", to, "--mapping-out", mapping, out)
		res.expect(t, exitOK)
		assertTagged(t, to, false, sample)
		if dst.BlobUploads.Load() == 0 {
			t.Errorf("no blob uploaded")
		}
		for _, ref := range sample.Refs {
			if !strings.Contains(res.stdout, destRef(t, ref, to, false)) {
				t.Errorf("import table does not list %s:\n%s", destRef(t, ref, to, false), res.stdout)
			}
		}
		if strings.Contains(res.stdout, " NO\n") {
			t.Errorf("import reports a digest mismatch:\n%s", res.stdout)
		}
	})

	t.Run("mapping-out", func(t *testing.T) {
		b, err := os.ReadFile(mapping)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSpace(string(b)), "\n")
		var want []string
		for _, ref := range sample.Refs {
			want = append(want, ref+"="+destRef(t, ref, to, false)+"@"+sample.Digests[ref])
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("mapping file:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if _, err := os.Stat(mapping + ".partial"); err == nil {
			t.Errorf("%s.partial left behind", mapping)
		}
	})

	t.Run("second import uploads nothing", func(t *testing.T) {
		before := dst.BlobUploads.Load()
		res := ferry(t, nil, "import", "--insecure-skip-verify", "--to", to, out)
		res.expect(t, exitOK)
		if n := dst.BlobUploads.Load() - before; n != 0 {
			t.Errorf("second import uploaded %d blobs, want 0", n)
		}
		if !strings.Contains(res.stderr, "0 blobs uploaded") {
			t.Errorf("import summary:\n%s", res.stderr)
		}
		assertTagged(t, to, false, sample)
	})
}

func TestExportToStdoutImportFromStdin(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{})

	res := ferry(t, nil, append([]string{"export", "-o", "-"}, sample.Refs...)...)
	res.expect(t, exitOK)
	if len(res.stdout) < 4 || binary.LittleEndian.Uint32([]byte(res.stdout)) != 0xFD2FB528 {
		t.Fatalf("standard output does not start with a zstd frame (%d bytes)", len(res.stdout))
	}
	if !strings.Contains(res.stderr, "to standard output") {
		t.Errorf("export summary:\n%s", res.stderr)
	}
	archive := res.stdout

	insp := ferry(t, strings.NewReader(archive), "inspect", "--json", "-")
	insp.expect(t, exitOK)
	var rep struct{ Images []json.RawMessage }
	if err := json.Unmarshal([]byte(insp.stdout), &rep); err != nil || len(rep.Images) != len(sample.Refs) {
		t.Errorf("inspect - : %d images, %v\n%s", len(rep.Images), err, insp.stdout)
	}

	to := dst.Host + "/from-stdin"
	imp := ferry(t, strings.NewReader(archive), "import", "--insecure-skip-verify", "-q", "--to", to, "-")
	imp.expect(t, exitOK)
	assertTagged(t, to, false, sample)
}

func TestImportKeepSourceRegistry(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{})
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	to := dst.Host + "/mirror"
	mapping := filepath.Join(t.TempDir(), "mapping.txt")

	res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--keep-source-registry", "--to", to, "--mapping-out", mapping, path)
	res.expect(t, exitOK)
	assertTagged(t, to, true, sample)
	b, _ := os.ReadFile(mapping)
	for _, ref := range sample.Refs {
		line := ref + "=" + destRef(t, ref, to, true) + "@" + sample.Digests[ref]
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("mapping file lacks %q:\n%s", line, b)
		}
	}
}

func TestExportImagesFile(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	refs := sample.Refs[:3]
	list := fmt.Sprintf("# images for the cluster\n\n%s\n   \n  %s   # pinned by tag\n# %s\n\t%s\n%s\n",
		refs[0], refs[1], "commented.out/image:1", refs[2], refs[0])
	listFile := writeFile(t, "images.txt", []byte(list))
	dir := t.TempDir()
	out := filepath.Join(dir, "images.tar.zst")

	res := ferry(t, nil, "export", "-q", "-f", listFile, "-o", out)
	res.expect(t, exitOK)
	insp := ferry(t, nil, "inspect", "--json", out)
	insp.expect(t, exitOK)
	var rep struct{ Images []struct{ Ref string } }
	if err := json.Unmarshal([]byte(insp.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range rep.Images {
		got = append(got, img.Ref)
	}
	sort.Strings(got)
	want := append([]string(nil), refs...)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bundle holds %v, want %v", got, want)
	}

	t.Run("missing images file", func(t *testing.T) {
		dir := t.TempDir()
		res := ferry(t, nil, "export", "-f", filepath.Join(dir, "nope.txt"), "-o", filepath.Join(dir, "x.tar.zst"))
		res.expect(t, exitFailure, "images file", "nope.txt")
		assertDirEmpty(t, dir)
	})
}

// ---- usage errors ----

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "x.tar.zst")
	ref := "127.0.0.1:1/library/alpine:3.20"
	bundlePath := filepath.Join(dir, "in.tar.zst")
	tests := []struct {
		name  string
		args  []string
		words []string
	}{
		{"no arguments", nil, []string{"command"}},
		{"unknown command", []string{"frobnicate"}, []string{"unknown command", "frobnicate"}},
		{"unknown flag", []string{"export", "--bogus", "-o", out, ref}, []string{"bogus"}},
		{"export without references", []string{"export", "-o", out}, []string{"no images"}},
		{"export alone", []string{"export"}, []string{"no images"}},
		{"export without -o", []string{"export", ref}, []string{"output", "-o"}},
		{"export --jobs 0", []string{"export", "--jobs", "0", "-o", out, ref}, []string{"--jobs", "0"}},
		{"export -j -3", []string{"export", "-j", "-3", "-o", out, ref}, []string{"--jobs", "-3"}},
		{"export --jobs not a number", []string{"export", "--jobs", "many", "-o", out, ref}, []string{"jobs", "many"}},
		{"export bad --platform", []string{"export", "--platform", "linux", "-o", out, ref}, []string{"platform", "linux", "os/arch"}},
		{"export --platform with too many parts", []string{"export", "--platform", "linux/arm64/v8/x", "-o", out, ref}, []string{"platform", "linux/arm64/v8/x"}},
		{"import without --to", []string{"import", "--insecure-skip-verify", bundlePath}, []string{"destination", "--to"}},
		{"import without a file", []string{"import", "--insecure-skip-verify", "--to", "127.0.0.1:1"}, []string{"one bundle file"}},
		{"import with two files", []string{"import", "--insecure-skip-verify", "--to", "127.0.0.1:1", bundlePath, bundlePath}, []string{"one bundle file", "2"}},
		{"import --jobs 0", []string{"import", "--insecure-skip-verify", "--jobs", "0", "--to", "127.0.0.1:1", bundlePath}, []string{"--jobs", "0"}},
		{"import bad --to", []string{"import", "--insecure-skip-verify", "--to", "Not A Registry!", bundlePath}, []string{"destination"}},
		{"import --mapping-out in a missing directory", []string{"import", "--insecure-skip-verify", "--to", "127.0.0.1:1", "--mapping-out", filepath.Join(dir, "no", "map.txt"), bundlePath}, []string{"mapping-out", "does not exist"}},
		{"inspect without a file", []string{"inspect"}, []string{"one bundle file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := ferry(t, nil, tt.args...)
			res.expect(t, exitUsage, tt.words...)
			// Standard output may be a pipe to the bundle's consumer.
			if res.stdout != "" {
				t.Errorf("usage error printed to standard output:\n%s", res.stdout)
			}
		})
	}
	assertDirEmpty(t, dir)
}

// ---- export failures ----

func TestExportUnknownImages(t *testing.T) {
	t.Parallel()
	src, sample := source(t)
	tests := []struct {
		name  string
		refs  []string
		words []string
	}{
		{"unknown tag", []string{sample.Refs[0], src.Host + "/library/alpine:0.0-nope"}, []string{"alpine:0.0-nope", "not found"}},
		{"unknown repository", []string{src.Host + "/nobody/here:1", sample.Refs[1]}, []string{"nobody/here:1", "not found"}},
		{"unknown digest", []string{src.Host + "/library/alpine@sha256:" + strings.Repeat("0", 64)}, []string{"library/alpine@sha256:000000", "not found"}},
		{"several at once", []string{
			src.Host + "/library/alpine:0.0-nope", sample.Refs[0], src.Host + "/nobody/here:1", src.Host + "/team/app:9.9",
		}, []string{"3 of the images", "alpine:0.0-nope", "nobody/here:1", "team/app:9.9"}},
		{"invalid reference with unknown ones", []string{"Not//Valid::ref", src.Host + "/nobody/here:1"}, []string{"2 of the images", "Not//Valid::ref", "invalid", "nobody/here:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			res := ferry(t, nil, append([]string{"export", "-q", "-o", filepath.Join(dir, "images.tar.zst")}, tt.refs...)...)
			res.expect(t, exitFailure, tt.words...)
			assertDirEmpty(t, dir)
		})
	}
}

func TestExportOutputDirectory(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	refs := sample.Refs[:1]
	export := func(t *testing.T, out string) result {
		return ferry(t, nil, append([]string{"export", "-q", "-o", out}, refs...)...)
	}

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		missing := filepath.Join(dir, "not", "there")
		res := export(t, filepath.Join(missing, "images.tar.zst"))
		res.expect(t, exitFailure, missing, "does not exist")
		assertDirEmpty(t, dir)
	})
	t.Run("a regular file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		file := filepath.Join(dir, "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		res := export(t, filepath.Join(file, "images.tar.zst"))
		res.expect(t, exitFailure, file, "not a directory")
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("directory holds %d entries, want only the file", len(ents))
		}
	})
	t.Run("output is a directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		res := export(t, dir)
		res.expect(t, exitFailure, dir, "is a directory")
		assertDirEmpty(t, dir)
	})
	t.Run("not writable", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() == 0 {
			t.Skip("running as root: permission bits do not stop root from writing; the 'a regular file' case covers an unusable directory")
		}
		dir := t.TempDir()
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(ro, 0o700) })
		res := export(t, filepath.Join(ro, "images.tar.zst"))
		res.expect(t, exitFailure, ro, "permission")
		assertDirEmpty(t, ro)
	})
}

func TestExportInterrupted(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := ferryCtx(ctx, nil, append([]string{"export", "-q", "-o", filepath.Join(dir, "images.tar.zst")}, sample.Refs...)...)
	res.expect(t, exitInterrupted, "interrupted")
	assertDirEmpty(t, dir)
}

// ---- unreachable registry ----

func TestUnreachableRegistry(t *testing.T) {
	t.Parallel()
	dead := deadHost(t)

	t.Run("export", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		res := ferry(t, nil, "export", "-q", "-o", filepath.Join(dir, "images.tar.zst"), dead+"/library/alpine:3.20")
		res.expect(t, exitFailure, "unreachable", dead, "library/alpine:3.20")
		assertDirEmpty(t, dir)
	})
	t.Run("import", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, "images.tar.zst", sampleBundle(t))
		mapping := filepath.Join(t.TempDir(), "mapping.txt")
		res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", dead+"/mirror", "--mapping-out", mapping, path)
		res.expect(t, exitFailure, "unreachable", dead)
		assertDirEmpty(t, filepath.Dir(mapping))
	})
}

// ---- authentication refused ----

// dockerConfig points DOCKER_CONFIG at a new directory whose config.json
// holds user:pass for host (no file at all when user is empty).
func dockerConfig(t *testing.T, host, user, pass string) {
	t.Helper()
	dir := t.TempDir()
	if user != "" {
		cfg := map[string]any{"auths": map[string]any{host: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		}}}
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DOCKER_CONFIG", dir)
}

// Not parallel: t.Setenv.
func TestAuthenticationRefused(t *testing.T) {
	const user, pass = "ferry", "s3cret"
	// Push the sample into an anonymous registry, then serve the same
	// storage with authentication (testimages.Push pushes anonymously).
	dir := t.TempDir()
	seed, err := registrytest.Start(registrytest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sample, err := testimages.Push(context.Background(), seed.Host, layerSize)
	seed.Close()
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.New(t, registrytest.Options{Username: user, Password: pass, Dir: dir})
	for i, r := range sample.Refs {
		sample.Refs[i] = reg.Host + strings.TrimPrefix(r, seed.Host)
		sample.Digests[sample.Refs[i]] = sample.Digests[r]
	}
	ref := sample.Refs[0]

	t.Run("export with wrong password", func(t *testing.T) {
		dockerConfig(t, reg.Host, user, "wrong")
		dir := t.TempDir()
		res := ferry(t, nil, "export", "-q", "-o", filepath.Join(dir, "images.tar.zst"), ref)
		res.expect(t, exitFailure, "authentication refused", reg.Host, "docker login")
		assertDirEmpty(t, dir)
	})
	t.Run("export without credentials", func(t *testing.T) {
		dockerConfig(t, reg.Host, "", "")
		dir := t.TempDir()
		res := ferry(t, nil, "export", "-q", "-o", filepath.Join(dir, "images.tar.zst"), ref, sample.Refs[1])
		res.expect(t, exitFailure, "authentication refused", reg.Host, ref, sample.Refs[1])
		assertDirEmpty(t, dir)
	})
	t.Run("import with wrong password", func(t *testing.T) {
		dockerConfig(t, reg.Host, user, "wrong")
		path := writeFile(t, "images.tar.zst", sampleBundle(t))
		res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", reg.Host+"/mirror", path)
		res.expect(t, exitFailure, "authentication refused", reg.Host, "docker login")
		res.refute(t, "unreachable")
		_, src := source(t)
		assertNoTags(t, reg.Host, reg.Host+"/mirror", src, basicAuth{user, pass})
	})
	t.Run("control: right password", func(t *testing.T) {
		dockerConfig(t, reg.Host, user, pass)
		dir := t.TempDir()
		out := filepath.Join(dir, "images.tar.zst")
		ferry(t, nil, "export", "-q", "-o", out, ref).expect(t, exitOK)
		ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", reg.Host+"/copy", out).expect(t, exitOK)
	})
}

// ---- destination refusing pushes ----

func TestImportReadOnlyRegistry(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{ReadOnly: true})
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	mapping := filepath.Join(t.TempDir(), "mapping.txt")
	res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/mirror", "--mapping-out", mapping, path)
	// The message must say which registry refused and what: a push.
	res.expect(t, exitFailure, dst.Host, "accepts pushes, before pushing anything", "405", "ask for push access")
	res.refute(t, "unreachable", "authentication")
	assertNoTags(t, dst.Host, dst.Host+"/mirror", sample, basicAuth{})
	assertDirEmpty(t, filepath.Dir(mapping))
	if n := dst.BlobUploads.Load(); n != 0 {
		t.Errorf("read-only registry accepted %d blobs", n)
	}
}

// ---- not a ferry bundle ----

func TestNotABundle(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 64<<10)
	rng.Read(random)

	var plainTar bytes.Buffer
	tw := tar.NewWriter(&plainTar)
	for _, f := range []struct{ name, body string }{{"etc/hosts", "127.0.0.1 localhost\n"}, {"README", "hello\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plainTar.Bytes())
	zw.Close()

	enc, _ := zstd.NewWriter(nil)
	zstdTar := enc.EncodeAll(plainTar.Bytes(), nil)
	enc.Close()

	inputs := []struct {
		name  string
		data  []byte
		words []string
	}{
		{"random bytes", random, []string{"not a ferry bundle", "zstd"}},
		{"uncompressed tar", plainTar.Bytes(), []string{"not a ferry bundle", "zstd"}},
		{"empty file", nil, []string{"not a ferry bundle", "empty"}},
		{"gzip file", gz.Bytes(), []string{"not a ferry bundle", "gzip"}},
		{"zstd tar without an OCI layout", zstdTar, []string{"not a ferry bundle", "oci-layout"}},
	}
	for _, in := range inputs {
		for _, cmd := range []string{"import", "inspect"} {
			for _, viaStdin := range []bool{false, true} {
				name := cmd + "/" + in.name
				if viaStdin {
					name += "/stdin"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					path := writeFile(t, "images.tar.zst", in.data)
					arg, where := path, path
					var stdin io.Reader
					if viaStdin {
						arg, where, stdin = "-", "standard input", bytes.NewReader(in.data)
					}
					args := []string{cmd, arg}
					var dst *registrytest.Registry
					if cmd == "import" {
						dst = registrytest.New(t, registrytest.Options{})
						args = []string{cmd, "-q", "--insecure-skip-verify", "--to", dst.Host + "/mirror", arg}
					}
					res := ferry(t, stdin, args...)
					res.expect(t, exitFailure, append([]string{where}, in.words...)...)
					if dst != nil && dst.Requests.Load() != 0 {
						t.Errorf("import sent %d requests to the destination for a file that is not a bundle", dst.Requests.Load())
					}
				})
			}
		}
	}

	t.Run("import/directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		res := ferry(t, nil, "import", "--insecure-skip-verify", "--to", "127.0.0.1:1/mirror", dir)
		res.expect(t, exitFailure, dir, "directory")
	})
	t.Run("inspect/missing file", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "nope.tar.zst")
		res := ferry(t, nil, "inspect", p)
		res.expect(t, exitFailure, p, "no such file")
	})
}

// ---- truncated archives ----

func TestImportTruncated(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	b := sampleBundle(t)
	n := len(b)
	tbl, err := bundle.ReadSeekTable(bytes.NewReader(b), int64(n))
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.OpenReaderAt(bytes.NewReader(b), int64(n))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]bundle.SeekEntry{}
	for _, e := range tbl.Entries {
		entries[e.Name] = e
	}
	// Configs and layers follow every manifest, in archive order.
	blobs := r.Blobs()
	firstBlob := entries[bundle.BlobPath(blobs[0].Digest)]
	lastBlob := entries[bundle.BlobPath(blobs[len(blobs)-1].Digest)]
	sharedLayer, ok := entries["blobs/sha256/"+strings.TrimPrefix(sample.SharedLayer, "sha256:")]
	if !ok || firstBlob.Length == 0 || lastBlob.Length == 0 {
		t.Fatalf("seek table lacks the shared layer %s or the blobs", sample.SharedLayer)
	}
	cases := []struct {
		name  string
		data  []byte
		words []string
	}{
		{"first half", b[:n/2], []string{"truncated"}},
		{"middle third cut out", append(bytes.Clone(b[:n/3]), b[2*n/3:]...), []string{"archive"}},
		{"inside the last layer", b[:lastBlob.Offset+lastBlob.Length/2], []string{"truncated"}},
		{"inside the shared layer", b[:sharedLayer.Offset+sharedLayer.Length/2], []string{"truncated"}},
		{"at a frame boundary after the manifests", b[:firstBlob.Offset], []string{"missing", fmt.Sprintf("%d blob", len(blobs))}},
	}
	for _, c := range cases {
		for _, viaStdin := range []bool{false, true} {
			name := c.name
			if viaStdin {
				name += "/stdin"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dst := registrytest.New(t, registrytest.Options{})
				path := writeFile(t, "images.tar.zst", c.data)
				arg := path
				var stdin io.Reader
				if viaStdin {
					arg, stdin = "-", bytes.NewReader(c.data)
				}
				mapping := filepath.Join(t.TempDir(), "mapping.txt")
				res := ferry(t, stdin, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/mirror", "--mapping-out", mapping, arg)
				res.expect(t, exitVerify, c.words...)
				assertNoTags(t, dst.Host, dst.Host+"/mirror", sample, basicAuth{})
				assertDirEmpty(t, filepath.Dir(mapping))
			})
		}
	}
}

// ---- blob digest mismatch ----

// flipInTar flips one byte in the middle of the content of entry name in
// the uncompressed tar stream plain.
func flipInTar(t *testing.T, plain []byte, entry string) {
	t.Helper()
	br := bytes.NewReader(plain)
	tr := tar.NewReader(br)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %s not found in the tar stream: %v", entry, err)
		}
		if h.Name == entry {
			pos := len(plain) - br.Len()
			plain[pos+int(h.Size)/2] ^= 0x20
			return
		}
	}
}

func TestImportDigestMismatch(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	b := sampleBundle(t)
	tbl, err := bundle.ReadSeekTable(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var layer bundle.SeekEntry
	for _, e := range tbl.Entries {
		if e.Digest.String() == sample.SharedLayer {
			layer = e
		}
	}
	if layer.Name == "" {
		t.Fatalf("seek table has no entry for the shared layer %s", sample.SharedLayer)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()

	// One zstd stream without a seek table: read sequentially.
	plain, err := dec.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	flipInTar(t, plain, layer.Name)
	sequential := enc.EncodeAll(plain, nil)

	// The same with the layer's frame re-encoded and the seek table
	// rebuilt: read through the seek table.
	var ra bytes.Buffer
	var newTbl bundle.SeekTable
	for _, e := range tbl.Entries {
		frame := b[e.Offset : e.Offset+e.Length]
		if e.Name == layer.Name {
			p, err := dec.DecodeAll(frame, nil)
			if err != nil {
				t.Fatal(err)
			}
			flipInTar(t, p, layer.Name)
			frame = enc.EncodeAll(p, nil)
		}
		e.Offset, e.Length = int64(ra.Len()), int64(len(frame))
		ra.Write(frame)
		newTbl.Entries = append(newTbl.Entries, e)
	}
	last := tbl.Entries[len(tbl.Entries)-1]
	tableOff := int64(binary.LittleEndian.Uint64(b[len(b)-32+8:]))
	ra.Write(b[last.Offset+last.Length : tableOff]) // the end-of-archive frame
	ra.Write(archivetest.SeekFrame(t, &newTbl, int64(ra.Len())))
	if _, err := bundle.ReadSeekTable(bytes.NewReader(ra.Bytes()), int64(ra.Len())); err != nil {
		t.Fatalf("rebuilt seek table: %v", err)
	}

	cases := []struct {
		name     string
		data     []byte
		viaStdin bool
		words    []string
	}{
		{"single stream", sequential, false, []string{"digest mismatch"}},
		{"single stream on stdin", sequential, true, []string{"digest mismatch"}},
		{"frame re-encoded, seek table", ra.Bytes(), false, []string{"digest mismatch"}},
		{"frame re-encoded, seek table, on stdin", ra.Bytes(), true, []string{"digest mismatch"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dst := registrytest.New(t, registrytest.Options{})
			path := writeFile(t, "images.tar.zst", c.data)
			arg := path
			var stdin io.Reader
			if c.viaStdin {
				arg, stdin = "-", bytes.NewReader(c.data)
			}
			res := ferry(t, stdin, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/mirror", arg)
			res.expect(t, exitVerify, append([]string{sample.SharedLayer}, c.words...)...)
			assertNoTags(t, dst.Host, dst.Host+"/mirror", sample, basicAuth{})
			if ok, _ := blobExists(dst.Host+"/mirror/library/alpine", sample.SharedLayer); ok {
				t.Errorf("the corrupted layer %s was stored at the destination", sample.SharedLayer)
			}
		})
	}

	t.Run("compressed byte flipped in the layer frame", func(t *testing.T) {
		t.Parallel()
		bad := bytes.Clone(b)
		bad[layer.Offset+layer.Length/2] ^= 0xff
		dst := registrytest.New(t, registrytest.Options{})
		path := writeFile(t, "images.tar.zst", bad)
		res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/mirror", path)
		res.expect(t, exitVerify, sample.SharedLayer)
		assertNoTags(t, dst.Host, dst.Host+"/mirror", sample, basicAuth{})
	})
}

// blobExists reports whether the registry serves blob d in repo
// (host/path).
func blobExists(repo, d string) (bool, error) {
	host, path, _ := strings.Cut(repo, "/")
	resp, err := http.Head("http://" + host + "/v2/" + path + "/blobs/" + d)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// TestImportTableAfterPlatformFilter: the import table's digest column is
// the bundle's digest; after an export with --platform it is the rewritten
// index, and a further column gives the upstream digest ("same" for images
// the filter did not change).
func TestImportTableAfterPlatformFilter(t *testing.T) {
	t.Parallel()
	reg, sample := source(t)
	multi, single := reg.Host+"/multi/tool:1.0", reg.Host+"/library/alpine:3.20"
	out := filepath.Join(t.TempDir(), "images.tar.zst")
	ferry(t, nil, "export", "-q", "--platform", "linux/amd64", "-o", out, multi, single).expect(t, exitOK)
	dst := registrytest.New(t, registrytest.Options{})
	res := ferry(t, nil, "import", "--insecure-skip-verify", "--to", dst.Host+"/m", out)
	res.expect(t, exitOK)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("table of %d lines, want a header and 2 images:\n%s", len(lines), res.stdout)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "SOURCE DESTINATION BUNDLE DIGEST DESTINATION DIGEST OK UPSTREAM DIGEST (BEFORE --platform)" {
		t.Errorf("header %q", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 {
			t.Fatalf("row %q: want 6 columns", l)
		}
		switch f[0] {
		case multi:
			if f[2] == sample.Digests[multi] || f[2] != f[3] || f[5] != sample.Digests[multi] {
				t.Errorf("row %q: want the rewritten digest twice, then the upstream %s", l, sample.Digests[multi])
			}
		case single:
			if f[2] != sample.Digests[single] || f[5] != "same" {
				t.Errorf("row %q: want %s and upstream \"same\"", l, sample.Digests[single])
			}
		default:
			t.Errorf("unexpected row %q", l)
		}
	}
	// Without --platform: no upstream column.
	res = ferry(t, nil, "import", "--insecure-skip-verify", "--to", dst.Host+"/n", writeFile(t, "all.tar.zst", sampleBundle(t)))
	res.expect(t, exitOK)
	if h := strings.SplitN(res.stdout, "\n", 2)[0]; strings.Join(strings.Fields(h), " ") != "SOURCE DESTINATION BUNDLE DIGEST DESTINATION DIGEST OK" {
		t.Errorf("header without a platform filter %q", h)
	}
}
