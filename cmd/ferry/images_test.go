package main

// Tests of ferry images scan and export --from-manifests: exact output on
// the fixtures of testdata/scan, exact error messages, and the round trip
// scan --pin → export -f → the same digests as the source registry.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/report"
)

const scanFixtures = "../../testdata/scan"

// TestImagesScan: the exact list of the fixture tree, from a directory,
// from files, and from standard input (helm template | ferry images scan -).
func TestImagesScan(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(scanFixtures, "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	res := ferry(t, nil, "images", "scan", filepath.Join(scanFixtures, "manifests"))
	res.expect(t, exitOK)
	if res.stdout != string(want) || res.stderr != "" {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", res.stdout, want, res.stderr)
	}

	helm, err := os.ReadFile(filepath.Join(scanFixtures, "manifests/helm/shop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res = ferry(t, strings.NewReader(string(helm)), "images", "scan", "-", filepath.Join(scanFixtures, "manifests/compose/docker-compose.yml"))
	res.expect(t, exitOK)
	wantHelm := `docker.io/bitnami/redis-exporter:1.62.0-debian-12-r2
docker.io/bitnami/redis:7.2.5-debian-12-r2
docker.io/envoyproxy/envoy:v1.31.2
docker.io/library/busybox:latest
docker.io/library/postgres:16.4
docker.io/library/redis:latest
registry.example.com/shop/migrate:2.4.1
registry.example.com/shop/web:2.4.1
`
	if res.stdout != wantHelm {
		t.Errorf("helm template output on standard input and a compose file:\n%s\nwant:\n%s", res.stdout, wantHelm)
	}

	// Nothing found is not an error, but is said.
	res = ferry(t, nil, "images", "scan", filepath.Join(scanFixtures, "manifests/other/values.yaml"))
	res.expect(t, exitOK)
	if res.stdout != "" || res.stderr != "ferry: note: no image references found\n" {
		t.Errorf("stdout %q, stderr %q", res.stdout, res.stderr)
	}
}

// TestImagesScanErrors: exit code 1, every problem in one message, nothing
// on standard output (a partial list must not pass for a complete one).
func TestImagesScanErrors(t *testing.T) {
	dir := filepath.Join(scanFixtures, "errors")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad references", []string{"bad-ref.yaml"}, `ferry: 3 problems in the manifests:
  DIR/bad-ref.yaml:16: document 3: spec.template.spec.initContainers[0].image: invalid image reference: the value is empty
  DIR/bad-ref.yaml:21: document 3: spec.template.spec.containers[1].image: invalid image reference "registry.example.com/Team/app:1.0": invalid reference format: repository name (Team/app) must be lowercase
  DIR/bad-ref.yaml:30: document 4: spec.containers[0].image: invalid image reference "{{ .Values.image }}": invalid reference format: repository name (library/{{ .Values.image }}) must be lowercase (an unrendered template: scan the output of 'helm template')`},
		{"not YAML", []string{"notes.txt"}, `ferry: DIR/notes.txt: not YAML: plain text, no mapping or list`},
		{"Helm chart template", []string{"template.yaml"}, `ferry: DIR/template.yaml: not YAML: line 8: did not find expected key; it holds {{ }}: a Helm chart template? scan the output of 'helm template' instead`},
		{"missing file", []string{"missing.yaml"}, `ferry: DIR/missing.yaml: no such file or directory`},
		{"a good file beside a bad one", []string{"../manifests/list/pods.yaml", "compose.yaml"}, `ferry: DIR/compose.yaml:3: document 1: services.app.image: invalid image reference "${REGISTRY}/app:${TAG:-latest}": invalid reference format (variables are not expanded: scan the output of 'docker compose config')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"images", "scan"}
			for _, a := range tc.args {
				args = append(args, filepath.Join(dir, a))
			}
			res := ferry(t, nil, args...)
			res.expect(t, exitFailure)
			want := strings.ReplaceAll(tc.want, "DIR/", dir+"/")
			if strings.TrimSpace(res.stderr) != want || res.stdout != "" {
				t.Errorf("stderr:\n%s\nwant:\n%s\nstdout:\n%s", res.stderr, want, res.stdout)
			}
		})
	}
}

// TestImagesScanUsage: usage errors are exit code 2.
func TestImagesScanUsage(t *testing.T) {
	f := filepath.Join(scanFixtures, "manifests/list/pods.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"images", "scan"}, "ferry: no manifests to scan: give files, directories, or - for standard input (see 'ferry --help')"},
		{[]string{"images", "scan", "-", "-"}, "ferry: - given twice: standard input can be read only once (see 'ferry --help')"},
		{[]string{"images", "scan", "--pin", "-u", "op", "--password-stdin", "-"}, "ferry: - and --password-stdin both read standard input; put the manifests in a file (see 'ferry --help')"},
		{[]string{"export", "--from-manifests", "-", "-u", "op", "--password-stdin", "-o", "x"}, "ferry: --from-manifests - and --password-stdin both read standard input; put the manifests in a file (see 'ferry --help')"},
		{[]string{"images", "scan", f, "-u", "op"}, "ferry: --username is for --pin, which asks registries; scanning alone reads files only (see 'ferry --help')"},
		{[]string{"images", "scan", f, "--pin", "--registry", "example.com"}, "ferry: --registry says which registry --username logs in to; give it with --username USER --password-stdin (see 'ferry --help')"},
		{[]string{"images", "scan", f, "--registry", "example.com"}, "ferry: --registry is for --pin, which asks registries; scanning alone reads files only (see 'ferry --help')"},
		{[]string{"images", "scan", f, "--pin", "-j", "0"}, "ferry: --jobs must be at least 1, got 0 (see 'ferry --help')"},
		{[]string{"images", "scan", f, "--no-such-flag"}, "ferry: flag provided but not defined: -no-such-flag (see 'ferry --help')"},
		{[]string{"images", "bogus"}, "ferry: unknown command 'images bogus'; the images commands are: scan (see 'ferry --help')"},
		{[]string{"images"}, "ferry: no images command given: ferry images scan PATH... (see 'ferry --help')"},
		{[]string{"export", "-f", "-", "--from-manifests", "-", "-o", "x"}, "ferry: --from-manifests - and --images-file - both read standard input; put one of them in a file (see 'ferry --help')"},
	} {
		res := ferry(t, nil, tc.args...)
		res.expect(t, exitUsage)
		if got := res.errMessage(); got != tc.want {
			t.Errorf("%v:\n%s\nwant:\n%s", tc.args, got, tc.want)
		}
	}
	// A flag after the paths is the subcommand's (ferry images scan PATH --pin).
	res := ferry(t, nil, "images", "scan", "--help")
	if res.code != exitOK || !strings.Contains(res.stdout, "--pin") {
		t.Errorf("ferry images scan --help: exit %d, stdout:\n%s", res.code, res.stdout)
	}
}

// TestScanPinExport is the operator's loop: manifests naming tags of the
// source registry, scan --pin to a lock list, export -f of that list, and
// export --from-manifests of the manifests themselves: both bundles hold
// exactly the digests the source registry has.
func TestScanPinExport(t *testing.T) {
	_, sample := source(t)
	dir := t.TempDir()
	manifests := filepath.Join(dir, "deploy")
	if err := os.Mkdir(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{} // short name -> sample ref
	for _, r := range sample.Refs {
		_, path, _ := strings.Cut(r, "/")
		refs[path] = r
	}
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: ` + refs["library/alpine:3.20"] + `
      containers:
      - name: app
        image: ` + refs["team/app:1.0"] + `
      - name: web
        image: ` + refs["team/web:2.0"] + `
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tool
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: tool
            image: ` + refs["multi/tool:1.0"] + `
`
	compose := "services:\n  app:\n    image: " + refs["team/app:1.1"] + "\n"
	if err := os.WriteFile(filepath.Join(manifests, "app.yaml"), []byte(deploy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	used := []string{refs["library/alpine:3.20"], refs["multi/tool:1.0"], refs["team/app:1.0"], refs["team/app:1.1"], refs["team/web:2.0"]}
	sort.Strings(used)

	res := ferry(t, nil, "images", "scan", manifests)
	res.expect(t, exitOK)
	if want := strings.Join(used, "\n") + "\n"; res.stdout != want {
		t.Fatalf("scan:\n%s\nwant:\n%s", res.stdout, want)
	}

	res = ferry(t, nil, "images", "scan", manifests, "--pin")
	res.expect(t, exitOK)
	var pinned []string
	for _, r := range used {
		pinned = append(pinned, r+"@"+sample.Digests[r])
	}
	if want := strings.Join(pinned, "\n") + "\n"; res.stdout != want {
		t.Fatalf("scan --pin:\n%s\nwant:\n%s", res.stdout, want)
	}
	lock := filepath.Join(dir, "images.lock")
	if err := os.WriteFile(lock, []byte(res.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	// The lock list pins itself again unchanged.
	yaml := "apiVersion: v1\nkind: List\nitems:\n"
	for _, p := range pinned {
		yaml += "- apiVersion: v1\n  kind: Pod\n  spec:\n    containers:\n    - image: " + p + "\n"
	}
	res = ferry(t, strings.NewReader(yaml), "images", "scan", "--pin", "-")
	res.expect(t, exitOK)
	if want := strings.Join(pinned, "\n") + "\n"; res.stdout != want {
		t.Errorf("scan --pin of pinned references:\n%s\nwant:\n%s", res.stdout, want)
	}
	if res.stderr != "" {
		t.Errorf("scan --pin of pinned references warned:\n%s", res.stderr)
	}
	// A line whose tag points elsewhere now (here: 1.0 pinned to 1.1's
	// digest) is kept, with a warning.
	app10, app11 := refs["team/app:1.0"], refs["team/app:1.1"]
	stale := app10 + "@" + sample.Digests[app11]
	res = ferry(t, strings.NewReader("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: "+stale+"\n"), "images", "scan", "--pin", "-")
	res.expect(t, exitOK)
	if res.stdout != stale+"\n" {
		t.Errorf("scan --pin of a stale line printed %q, want it kept", res.stdout)
	}
	if want := "ferry: WARNING: " + stale + ": the tag 1.0 now points at " + sample.Digests[app10] + " at the registry; the lock list keeps " + sample.Digests[app11] + ", and an import sets the tag to it (pin " + app10 + " again to follow the tag)\n"; res.stderr != want {
		t.Errorf("stderr %q\nwant %q", res.stderr, want)
	}

	digests := func(bundle string) map[string]string {
		t.Helper()
		res := ferry(t, nil, "inspect", "--json", bundle)
		res.expect(t, exitOK)
		var rep report.Inspect
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, img := range rep.Images {
			name, _, _ := strings.Cut(img.Ref, "@")
			out[name] = img.Digest
		}
		return out
	}
	fromLock := filepath.Join(dir, "lock.tar.zst")
	ferry(t, nil, "export", "-q", "-f", lock, "-o", fromLock).expect(t, exitOK)
	fromManifests := filepath.Join(dir, "manifests.tar.zst")
	ferry(t, nil, "export", "-q", "--from-manifests", manifests, "-o", fromManifests).expect(t, exitOK)
	for name, got := range map[string]map[string]string{"export -f LOCK": digests(fromLock), "export --from-manifests": digests(fromManifests)} {
		if len(got) != len(used) {
			t.Errorf("%s: %d images, want %d: %v", name, len(got), len(used), got)
		}
		for _, r := range used {
			if got[r] != sample.Digests[r] {
				t.Errorf("%s: %s is %s in the bundle, %s in the source registry", name, r, got[r], sample.Digests[r])
			}
		}
	}

	// --from-manifests merges with arguments and list files; a bad
	// manifest fails the export before anything is fetched.
	out := filepath.Join(dir, "merged.tar.zst")
	ferry(t, strings.NewReader(compose), "export", "-q", "--from-manifests", "-", "-f", lock, refs["team/chart:0.1"], "-o", out).expect(t, exitOK)
	if got := digests(out); len(got) != len(used)+1 {
		t.Errorf("merged export: %d images, want %d", len(got), len(used)+1)
	}
	bad := filepath.Join(scanFixtures, "errors/compose.yaml")
	res = ferry(t, nil, "export", "-q", "--from-manifests", bad, "-o", filepath.Join(dir, "bad.tar.zst"))
	res.expect(t, exitFailure)
	if want := "ferry: --from-manifests: " + bad + `:3: document 1: services.app.image: invalid image reference "${REGISTRY}/app:${TAG:-latest}": invalid reference format (variables are not expanded: scan the output of 'docker compose config')`; res.errMessage() != want {
		t.Errorf("export --from-manifests of a bad file:\n%s\nwant:\n%s", res.errMessage(), want)
	}
	res = ferry(t, nil, "export", "-q", "--from-manifests", filepath.Join(scanFixtures, "manifests/other/values.yaml"), "-o", filepath.Join(dir, "none.tar.zst"))
	res.expect(t, exitFailure)
	if want := "ferry: --from-manifests: no image references found in " + filepath.Join(scanFixtures, "manifests/other/values.yaml"); res.errMessage() != want {
		t.Errorf("export --from-manifests without images:\n%s\nwant:\n%s", res.errMessage(), want)
	}
}

// TestScanPinFailures: a tag the registry does not have fails the scan
// with exit code 1 and prints no list.
func TestScanPinFailures(t *testing.T) {
	reg, _ := source(t)
	missing := reg.Host + "/team/app:9.9"
	res := ferry(t, strings.NewReader("services:\n  a:\n    image: "+missing+"\n"), "images", "scan", "--pin", "--retries", "0", "-")
	res.expect(t, exitFailure, "resolving "+missing+": image not found in "+reg.Host+" (check the name and tag): not found: HEAD ")
	if res.stdout != "" {
		t.Errorf("stdout after a failed pin:\n%s", res.stdout)
	}
}

// TestScanPinCredentials: --pin reaches a registry that requires a
// password with export's -u/--password-stdin, and fails without it.
func TestScanPinCredentials(t *testing.T) {
	_, sample := source(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	auth := registrytest.New(t, registrytest.Options{Username: "op", Password: "s3cret"})
	dir := t.TempDir()
	b := filepath.Join(dir, "sample.tar.zst")
	if err := os.WriteFile(b, sampleBundle(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ferry(t, strings.NewReader("s3cret\n"), "import", "-q", "--insecure-skip-verify", "-u", "op", "--password-stdin", "--to", auth.Host+"/m", b).expect(t, exitOK)
	var src string
	for _, r := range sample.Refs {
		if strings.HasSuffix(r, "/team/app:1.0") {
			src = r
		}
	}
	ref := auth.Host + "/m/team/app:1.0"
	manifest := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: app\n    image: "+ref+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ferry(t, nil, "images", "scan", "--pin", manifest).expect(t, exitFailure, "resolving "+ref+": ", "authentication refused")
	res := ferry(t, strings.NewReader("s3cret\n"), "images", "scan", "--pin", "-u", "op", "--password-stdin", manifest)
	res.expect(t, exitOK)
	if want := ref + "@" + sample.Digests[src] + "\n"; res.stdout != want {
		t.Errorf("scan --pin with credentials:\n%s\nwant:\n%s", res.stdout, want)
	}
}

// TestInterspersedSubcommand: the flags after the arguments of a
// subcommand are moved to it, and an argument named like another
// subcommand stays an argument.
func TestInterspersedSubcommand(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{{Name: "x", Subcommands: []*cli.Command{
		{Name: "a", Flags: []cli.Flag{&cli.BoolFlag{Name: "f"}, &cli.StringFlag{Name: "v"}}},
		{Name: "b"},
	}}}}
	got := strings.Join(interspersed(app, []string{"ferry", "x", "a", "b", "--f", "c", "--v", "1"}), " ")
	if want := "ferry x a --f --v 1 -- b c"; got != want {
		t.Errorf("interspersed: %q, want %q", got, want)
	}
}
