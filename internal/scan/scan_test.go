package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
)

const fixtures = "../../testdata/scan"

// found lists images as "FILE:LINE: document N: PATH REF", with the
// fixture directory cut from FILE.
func found(images []Image, dir string) []string {
	out := make([]string, len(images))
	for i, img := range images {
		out[i] = strings.TrimPrefix(img.Where.String(), dir+"/") + " " + img.Ref.String()
	}
	return out
}

func refStrings(refs []bundle.Reference) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEveryKind scans one fixture per source of manifests and checks every
// image found, with where it was found: each workload kind at its own
// path, init and ephemeral containers, CronJob's jobTemplate, List and
// *List objects (nested too), YAML anchors, aliases and merge keys, compose
// services (merged from an extension field, a built service without an
// image), tab-indented JSON, documents that are not workloads skipped.
func TestEveryKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"helm/shop.yaml", []string{ // helm template: comments, an empty document, anchors
			"helm/shop.yaml:63: document 5: spec.template.spec.initContainers[0].image registry.example.com/shop/migrate:2.4.1",
			"helm/shop.yaml:69: document 5: spec.template.spec.containers[0].image docker.io/envoyproxy/envoy:v1.31.2",
			"helm/shop.yaml:74: document 5: spec.template.spec.containers[1].image registry.example.com/shop/web:2.4.1",
			"helm/shop.yaml:107: document 6: spec.template.spec.containers[0].image docker.io/bitnami/redis:7.2.5-debian-12-r2",
			"helm/shop.yaml:69: document 6: spec.template.spec.containers[1].image docker.io/envoyproxy/envoy:v1.31.2", // <<: *proxy
			"helm/shop.yaml:111: document 6: spec.template.spec.containers[2].image docker.io/bitnami/redis-exporter:1.62.0-debian-12-r2",
			"helm/shop.yaml:123: document 7: spec.containers[0].image docker.io/library/busybox:latest",
		}},
		{"kustomize/build.yaml", []string{
			"kustomize/build.yaml:17: document 2: template.spec.containers[0].image registry.example.com/team/worker:3.1",
			"kustomize/build.yaml:33: document 3: spec.template.spec.containers[0].image registry.example.com/team/legacy:0.9",
			"kustomize/build.yaml:51: document 4: spec.template.spec.containers[0].image quay.io/prometheus/node-exporter:v1.8.2",
			"kustomize/build.yaml:70: document 5: spec.template.spec.containers[0].image registry.example.com/team/app:1.0@sha256:41fd04e97ae65f82e23e3b9b6778a1a72762fcb6033255720a53b43335ad87ba",
			"kustomize/build.yaml:72: document 5: spec.template.spec.containers[1].image registry.example.com/team/sidecar@sha256:6c8b4535ccc87f19061c4646189e33d78f01c8b63dc4e3cb2f630b1796ee93b6",
			"kustomize/build.yaml:89: document 6: spec.jobTemplate.spec.template.spec.initContainers[0].image docker.io/library/alpine:3.20",
			"kustomize/build.yaml:86: document 6: spec.jobTemplate.spec.template.spec.containers[0].image registry.example.com/team/report:2026.11",
			"kustomize/build.yaml:103: document 7: spec.template.spec.containers[0].image registry.example.com/team/report:2026.11",
			"kustomize/build.yaml:114: document 8: spec.containers[0].image registry.example.com:5000/team/app:1.0",
			"kustomize/build.yaml:117: document 8: spec.ephemeralContainers[0].image docker.io/nicolaka/netshoot:v0.13",
		}},
		{"compose/docker-compose.yml", []string{
			"compose/docker-compose.yml:4: document 1: services.web.image registry.example.com/shop/web:2.4.1",
			"compose/docker-compose.yml:4: document 1: services.worker.image registry.example.com/shop/web:2.4.1",
			"compose/docker-compose.yml:16: document 1: services.db.image docker.io/library/postgres:16.4",
			"compose/docker-compose.yml:20: document 1: services.cache.image docker.io/library/redis:latest",
		}},
		{"list/kubectl-get.json", []string{ // indented with tabs
			"list/kubectl-get.json:13: document 1: items[0].spec.template.spec.containers[0].image docker.io/grafana/grafana:11.3.0",
		}},
		{"list/pods.yaml", []string{
			"list/pods.yaml:14: document 1: items[0].spec.containers[0].image registry.k8s.io/coredns/coredns:v1.11.1",
			"list/pods.yaml:25: document 1: items[1].items[0].spec.containers[0].image registry.k8s.io/pause:3.9",
		}},
		{"other/rollout.yaml", []string{ // a custom resource with a pod template; one without is skipped
			"other/rollout.yaml:11: document 1: spec.template.spec.containers[0].image ghcr.io/argoproj/rollouts-demo:blue",
		}},
		{"other/values.yaml", nil}, // not a Kubernetes object
		{"other/empty.yaml", nil},
		{"other/README.md", nil}, // read when named: a mapping, but no object
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(fixtures, "manifests")
			images, err := Paths([]string{filepath.Join(dir, tc.file)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, tc.file, found(images, dir), tc.want)
		})
	}
}

// TestDirectory walks the fixture tree: the exact, sorted, deduplicated
// list that `ferry images scan` prints, in testdata/scan/expected.txt.
// README.md holds an image line but is not a *.yaml, *.yml or *.json file.
func TestDirectory(t *testing.T) {
	t.Parallel()
	images, err := Paths([]string{filepath.Join(fixtures, "manifests")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(fixtures, "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "scan of testdata/scan/manifests", refStrings(Refs(images)), strings.Split(strings.TrimSpace(string(want)), "\n"))
	for _, img := range images {
		if strings.HasSuffix(img.Where.File, "README.md") {
			t.Errorf("the walk read %s", img.Where)
		}
	}
}

// TestStdin reads helm template output from a pipe.
func TestStdin(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(fixtures, "manifests/helm/shop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	images, err := Paths([]string{Stdin}, f)
	if err != nil {
		t.Fatal(err)
	}
	got := found(images, "")
	if empty, err := Paths([]string{Stdin}, nil); len(empty) != 0 || err != nil {
		t.Errorf("no standard input: %v, %v", empty, err)
	}
	if len(got) != 7 || got[0] != "standard input:63: document 5: spec.template.spec.initContainers[0].image registry.example.com/shop/migrate:2.4.1" {
		t.Errorf("from standard input:\n%s", strings.Join(got, "\n"))
	}
}

// TestLinks: a symbolic link to a file is read, one to a directory is not
// walked (it could lead back up the tree); a link named on the command
// line is followed.
func TestLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abs, err := filepath.Abs(filepath.Join(fixtures, "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		filepath.Join(sub, "pods.yaml"):     filepath.Join(abs, "list/pods.yaml"),
		filepath.Join(sub, "loop.yaml"):     dir,
		filepath.Join(dir, "manifests.yml"): abs,
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	images, err := Paths([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "walk with links", refStrings(Refs(images)), []string{"registry.k8s.io/coredns/coredns:v1.11.1", "registry.k8s.io/pause:3.9"})
	images, err = Paths([]string{filepath.Join(dir, "manifests.yml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(Refs(images)); n != 21 {
		t.Errorf("a link to a directory named as the path: %d images, want 21", n)
	}
}

// TestProblems checks the exact message and the sentinel of each kind of
// problem, and that a scan reports all of them at once.
func TestProblems(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(fixtures, "errors")
	for _, tc := range []struct {
		name string
		path string
		is   error
		want string
	}{
		{"bad references", "bad-ref.yaml", bundle.ErrInvalidReference, `3 problems in the manifests:
  DIR/bad-ref.yaml:16: document 3: spec.template.spec.initContainers[0].image: invalid image reference: the value is empty
  DIR/bad-ref.yaml:21: document 3: spec.template.spec.containers[1].image: invalid image reference "registry.example.com/Team/app:1.0": invalid reference format: repository name (Team/app) must be lowercase
  DIR/bad-ref.yaml:30: document 4: spec.containers[0].image: invalid image reference "{{ .Values.image }}": invalid reference format: repository name (library/{{ .Values.image }}) must be lowercase (an unrendered template: scan the output of 'helm template')`},
		{"compose variables", "compose.yaml", bundle.ErrInvalidReference,
			`DIR/compose.yaml:3: document 1: services.app.image: invalid image reference "${REGISTRY}/app:${TAG:-latest}": invalid reference format (variables are not expanded: scan the output of 'docker compose config')`},
		{"plain text", "notes.txt", ErrNotYAML, `DIR/notes.txt: not YAML: plain text, no mapping or list`},
		{"YAML syntax", "tabs.yaml", ErrNotYAML, `DIR/tabs.yaml: not YAML: line 4: found character that cannot start any token`},
		{"Helm chart template", "template.yaml", ErrNotYAML, `DIR/template.yaml: not YAML: line 8: did not find expected key; it holds {{ }}: a Helm chart template? scan the output of 'helm template' instead`},
		{"missing file", "missing.yaml", fs.ErrNotExist, `DIR/missing.yaml: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			images, err := Paths([]string{filepath.Join(dir, tc.path)}, nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if want := strings.ReplaceAll(tc.want, "DIR", dir); err.Error() != want {
				t.Errorf("error:\n%s\nwant:\n%s", err, want)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Errorf("%T is not a *scan.Error", err)
			}
			if tc.path == "bad-ref.yaml" && len(images) != 1 {
				t.Errorf("the valid image beside the bad ones was not returned: %v", found(images, dir))
			}
		})
	}
}

// TestProblemsOfSeveralPaths: every problem of every path, in order, the
// images of the good paths kept.
func TestProblemsOfSeveralPaths(t *testing.T) {
	t.Parallel()
	images, err := Paths([]string{filepath.Join(fixtures, "errors"), filepath.Join(fixtures, "manifests/list"), "no-such-dir"}, nil)
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a *scan.Error", err)
	}
	var got []string
	for _, p := range se.Problems {
		got = append(got, strings.TrimPrefix(p.Location.String(), fixtures+"/"))
	}
	equal(t, "problems", got, []string{
		"errors/bad-ref.yaml:16: document 3: spec.template.spec.initContainers[0].image",
		"errors/bad-ref.yaml:21: document 3: spec.template.spec.containers[1].image",
		"errors/bad-ref.yaml:30: document 4: spec.containers[0].image",
		"errors/compose.yaml:3: document 1: services.app.image",
		"errors/tabs.yaml",
		"errors/template.yaml",
		"no-such-dir",
	})
	if !strings.HasPrefix(err.Error(), "7 problems in the manifests:\n  ") {
		t.Errorf("error does not start with the count:\n%s", err)
	}
	if n := len(Refs(images)); n != 4 {
		t.Errorf("%d images, want the 4 of list/ and errors/bad-ref.yaml", n)
	}
}

// TestValues covers each kind of value of an image field.
func TestValues(t *testing.T) {
	t.Parallel()
	pod := func(image string) string {
		return "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n    image: " + image + "\n"
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"normalised", pod("nginx"), "docker.io/library/nginx:latest"},
		{"spaces trimmed", pod(`" quay.io/a/b:1 "`), "quay.io/a/b:1"},
		{"null", pod("~"), `x:6: document 1: spec.containers[0].image: invalid image reference: the value is empty`},
		{"not a string", pod("[a, b]"), `x:6: document 1: spec.containers[0].image: invalid image reference: a list, not a string`},
		{"mapping", pod("{repository: nginx}"), `x:6: document 1: spec.containers[0].image: invalid image reference: a mapping, not a string`},
		{"unquoted template", pod("{{ .Values.image }}"), `x:6: document 1: spec.containers[0].image: invalid image reference: a mapping, not a string (an unrendered template: scan the output of 'helm template')`},
		{"digest algorithm", pod("nginx@md5:d41d8cd98f00b204e9800998ecf8427e"), `x:6: document 1: spec.containers[0].image: invalid image reference "nginx@md5:d41d8cd98f00b204e9800998ecf8427e": unsupported digest algorithm`},
		{"kind without apiVersion", "kind: Pod\nspec:\n  containers:\n  - image: nginx\n", ""},
		{"scalar beside an object", "just text\n---\n" + pod("nginx"), "docker.io/library/nginx:latest"},
		{"top-level list", "- " + strings.ReplaceAll(pod("nginx"), "\n", "\n  "), ""},
		{"merge of a list of mappings", "base: &b\n  image: busybox:1\nother: &o\n  name: x\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - <<: [*o, *b]\n", "docker.io/library/busybox:1"},
		{"List item without kind", "apiVersion: v1\nkind: List\nitems:\n- spec:\n    template:\n      spec:\n        containers:\n        - image: nginx\n", ""},
		{"other kind without containers", "apiVersion: example.com/v1\nkind: Foo\nspec:\n  template:\n    spec:\n      initContainers:\n      - image: nginx\n", ""},
		{"compose services merged", "x: &x\n  web:\n    image: nginx:1\n  db:\n    image: mysql:8\nservices:\n  <<: *x\n  db:\n    image: postgres:16\n", "docker.io/library/nginx:1,docker.io/library/postgres:16"},
		{"own key before merged", "base: &b\n  image: busybox:1\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - <<: *b\n    image: alpine:3\n", "docker.io/library/alpine:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			images, err := Read("x", strings.NewReader(tc.in))
			got := strings.Join(refStrings(Refs(images)), ",")
			if err != nil {
				got = err.Error()
				if !errors.Is(err, bundle.ErrInvalidReference) {
					t.Errorf("error %v is not ErrInvalidReference", err)
				}
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTooLarge: a file over MaxFileBytes is refused, not read whole.
func TestTooLarge(t *testing.T) {
	old := MaxFileBytes
	MaxFileBytes = 1 << 20
	defer func() { MaxFileBytes = old }()
	_, err := Read("big.yaml", strings.NewReader(strings.Repeat("# padding\n", 110<<10)))
	if !errors.Is(err, bundle.ErrTooLarge) || err.Error() != "big.yaml: content exceeds size limit: larger than 1 MiB, more than a manifest file should be" {
		t.Errorf("error %v", err)
	}
}

// TestMergeBomb: anchors that each merge the one before twice would make a
// naive lookup of a missing key visit 2^40 mappings; each is searched once.
func TestMergeBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("m0: &m0 {x: 1}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - <<: *m40\n    name: c\n")
	done := make(chan error, 1)
	go func() {
		_, err := Read("bomb.yaml", strings.NewReader(b.String()))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the scan of 41 merged anchors did not end within 10s")
	}
}
