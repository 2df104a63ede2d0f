package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/mirrorconfig"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// TestImportMirrorConfigOut: the directory holds one hosts.toml for the
// source registry and the other files, and mapping.json says what the
// --mapping-out file says. The formats themselves are checked entry by
// entry in internal/mirrorconfig.
func TestImportMirrorConfigOut(t *testing.T) {
	t.Parallel()
	src, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{})
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	for _, tc := range []struct {
		name       string
		keepSource bool
		insecure   bool
	}{
		{name: "prefix"},
		{name: "keep source registry", keepSource: true},
		{name: "insecure registry", insecure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := dst.Host + "/" + strings.ReplaceAll(tc.name, " ", "-")
			out := t.TempDir()
			dir, mapping := filepath.Join(out, "cluster"), filepath.Join(out, "mapping.txt")
			args := []string{"import", "--insecure-skip-verify", "-q", "--to", to, "--mapping-out", mapping, "--mirror-config-out", dir, path}
			if tc.keepSource {
				args = append(args, "--keep-source-registry")
			}
			if tc.insecure {
				args = append(args, "--insecure-registry", dst.Host)
			}
			ferry(t, nil, args...).expect(t, exitOK)

			var got []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					got = append(got, filepath.ToSlash(rel))
				}
				return err
			})
			want := []string{"certs.d/" + src.Host + "/hosts.toml", "imagedigestmirrorset.yaml", "imagetagmirrorset.yaml", "kustomize-images.yaml", "mapping.json", "registries.conf", "registries.yaml"}
			if !slices.Equal(got, want) {
				t.Fatalf("files %v, want %v", got, want)
			}

			var h struct {
				Server string
				Host   map[string]map[string]any
			}
			if _, err := toml.DecodeFile(filepath.Join(dir, "certs.d", src.Host, "hosts.toml"), &h); err != nil {
				t.Fatal(err)
			}
			root := to
			if tc.keepSource {
				root += "/" + strings.ReplaceAll(src.Host, ":", "_")
			}
			host, ns, _ := strings.Cut(root, "/")
			// The registry speaks plain HTTP (the import reached it so):
			// the nodes are told http://.
			hc, ok := h.Host["http://"+host+"/v2/"+ns]
			if h.Server != "https://"+src.Host || !ok || hc["override_path"] != true || (hc["skip_verify"] == true) != tc.insecure {
				t.Errorf("hosts.toml: %+v", h)
			}

			var m mirrorconfig.Mapping
			b, _ := os.ReadFile(filepath.Join(dir, "mapping.json"))
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			lines, _ := os.ReadFile(mapping)
			var fromJSON []string
			for _, e := range m.Images {
				fromJSON = append(fromJSON, e.Source+"="+e.Destination)
				if e.Digest != sample.Digests[e.Source] {
					t.Errorf("mapping.json: %s has digest %s, want %s", e.Source, e.Digest, sample.Digests[e.Source])
				}
			}
			slices.Sort(fromJSON)
			fromText := strings.Split(strings.TrimSpace(string(lines)), "\n")
			slices.Sort(fromText)
			if !slices.Equal(fromJSON, fromText) || len(fromJSON) != len(sample.Refs) {
				t.Errorf("mapping.json says\n%s\n--mapping-out says\n%s", strings.Join(fromJSON, "\n"), strings.Join(fromText, "\n"))
			}
		})
	}
}

// TestImportMirrorConfigOutRefused: a --mirror-config-out that could not be
// written is refused before anything is pushed, with exit 2.
func TestImportMirrorConfigOutRefused(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dst := registrytest.New(t, registrytest.Options{})
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (victim string)
		to    string
		want  string // %s is the directory
	}{
		{"a file", func(t *testing.T, dir string) string {
			os.WriteFile(dir, []byte("x"), 0o644)
			return ""
		}, "", "--mirror-config-out: mirror configuration directory: %s exists and is not a directory: remove it, or choose another name"},
		{"not empty", func(t *testing.T, dir string) string {
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "kubeconfig"), nil, 0o600)
			return ""
		}, "", "--mirror-config-out: mirror configuration directory: %s holds %s/kubeconfig, which ferry did not write; ferry replaces only an empty directory or one it wrote before: choose a new or empty directory"},
		{"a symbolic link", func(t *testing.T, dir string) string {
			return planted(t, dir, false)
		}, "", "--mirror-config-out: mirror configuration directory: %s is a symbolic link; ferry does not write through links: remove it, or choose another name"},
		{"an OCI layout destination", func(t *testing.T, dir string) string { return "" }, "oci:" + t.TempDir(),
			"--mirror-config-out needs a registry to describe: --to oci:DIR is not one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cluster")
			victim := tc.setup(t, dir)
			to := tc.to
			if to == "" {
				to = dst.Host + "/refused"
			}
			res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", to, "--mirror-config-out", dir, path)
			res.expect(t, exitUsage)
			if want := "ferry: " + strings.ReplaceAll(tc.want, "%s", dir) + " (see 'ferry --help')"; res.errMessage() != want {
				t.Errorf("message %q, want %q", res.errMessage(), want)
			}
			if victim != "" {
				assertUntouched(t, victim, false)
			}
			assertNoTags(t, dst.Host, dst.Host+"/refused", sample, basicAuth{})
		})
	}
}

// TestImportMirrorConfigSharedPathWarning: images of two source registries
// imported under one prefix share the mirror's paths; ferry says so, and
// not with --keep-source-registry.
func TestImportMirrorConfigSharedPathWarning(t *testing.T) {
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
	refs := []string{sample1.Refs[0], sample2.Refs[1]}
	if _, err := bundle.ExportFile(ctx, refs, path, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.New(t, registrytest.Options{})
	hosts := []string{src1.Host, src2.Host}
	slices.Sort(hosts)
	warning := "ferry: WARNING: --mirror-config-out: " + hosts[0] + " and " + hosts[1] + " share the path " + dst.Host + "/shared in the mirror: a pull of REGISTRY/PATH:TAG from one of them gets whatever image of PATH:TAG the mirror holds, from whichever registry it came (digest pulls are not affected); import with --keep-source-registry to keep them apart\n"

	res := ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--to", dst.Host+"/shared", "--mirror-config-out", filepath.Join(t.TempDir(), "cfg"), path)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, warning) {
		t.Errorf("stderr lacks the warning %q:\n%s", warning, res.stderr)
	}
	res = ferry(t, nil, "import", "--insecure-skip-verify", "-q", "--keep-source-registry", "--to", dst.Host+"/apart", "--mirror-config-out", filepath.Join(t.TempDir(), "cfg"), path)
	res.expect(t, exitOK)
	if strings.Contains(res.stderr, "--mirror-config-out") {
		t.Errorf("a warning with --keep-source-registry:\n%s", res.stderr)
	}
}
