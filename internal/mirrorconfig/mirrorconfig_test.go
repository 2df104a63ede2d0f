package mirrorconfig

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestEveryFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		registry   string
		prefix     string
		keepSource bool
		insecure   bool
	}{
		{name: "prefix", registry: "reg.local:5000", prefix: "mirror"},
		{name: "deep prefix", registry: "reg.local:5000", prefix: "team/mirror"},
		{name: "no prefix", registry: "reg.local"},
		{name: "keep source registry", registry: "reg.local:5000", prefix: "mirror", keepSource: true},
		{name: "keep source registry without prefix", registry: "reg.local", keepSource: true},
		{name: "insecure", registry: "127.0.0.1:5000", prefix: "mirror", insecure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			images := fixture(tc.registry, tc.prefix, tc.keepSource)
			fs := files(t, images, Options{Registry: tc.registry, Insecure: tc.insecure})
			if len(fs) != 3+6 {
				t.Errorf("%d files, want 3 hosts.toml and 6 others", len(fs))
			}
			checkContainerd(t, fs, images, tc.insecure)
			checkRegistriesConf(t, fs[FileRegistriesConf], images, tc.insecure)
			checkMirrorSets(t, fs, images)
			checkRKE2(t, fs[FileRKE2], images, tc.registry, tc.insecure)
			checkMapping(t, fs[FileMapping], images)
			k := kustomizeEntries(t, fs[FileKustomize])
			wantK := map[string][2]string{}
			for _, img := range images {
				repo := destRepo(img.Destination)
				host, path := splitSource(t, img.Source)
				names := []string{host + "/" + path}
				switch {
				case host == "docker.io" && strings.HasPrefix(path, "library/"):
					short := strings.TrimPrefix(path, "library/")
					names = append(names, short, path, "docker.io/"+short)
				case host == "docker.io":
					names = append(names, path)
				}
				for _, n := range names {
					wantK[n] = [2]string{repo, img.Digest.String()}
				}
			}
			if len(k) != len(wantK) {
				t.Errorf("kustomize: %d entries, want %d: %v", len(k), len(wantK), k)
			}
			for n, w := range wantK {
				if k[n] != w {
					t.Errorf("kustomize: %s -> %v, want %v", n, k[n], w)
				}
			}
		})
	}
}

// TestHostsTOMLText pins the containerd file the issue asks for, byte for
// byte: server for docker.io, the mirror's API root and override_path.
func TestHostsTOMLText(t *testing.T) {
	t.Parallel()
	fs := files(t, fixture("reg.local:5000", "mirror", false), Options{Registry: "reg.local:5000"})
	want := `# Written by ferry import: pull docker.io images from the mirror reg.local:5000/mirror.
# Install as /etc/containerd/certs.d/docker.io/hosts.toml (containerd's registry config_path).
server = "https://registry-1.docker.io"

[host."https://reg.local:5000/v2/mirror"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	if got := string(fs["certs.d/docker.io/hosts.toml"]); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestKustomizeTwoDigests: two tags of one repository with different
// digests cannot both be pinned by one images entry; newName alone keeps
// each tag.
func TestKustomizeTwoDigests(t *testing.T) {
	t.Parallel()
	images := []Image{
		{"quay.io/org/app:1.0", "reg.local/m/org/app:1.0", dApp},
		{"quay.io/org/app:0.9", "reg.local/m/org/app:0.9", dOld},
		{"quay.io/org/app:stable", "reg.local/m/org/app:stable", dApp},
		{"quay.io/org/other:1", "reg.local/m/org/other:1", dNode},
		{"quay.io/org/other:one", "reg.local/m/org/other:one", dNode},
	}
	k := kustomizeEntries(t, files(t, images, Options{Registry: "reg.local"})[FileKustomize])
	want := map[string][2]string{
		"quay.io/org/app":   {"reg.local/m/org/app", ""},
		"quay.io/org/other": {"reg.local/m/org/other", dNode},
	}
	if len(k) != len(want) || k["quay.io/org/app"] != want["quay.io/org/app"] || k["quay.io/org/other"] != want["quay.io/org/other"] {
		t.Errorf("got %v, want %v", k, want)
	}
}

// TestDeterministic: the same images in another order give the same bytes.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	images := fixture("reg.local:5000", "mirror", true)
	a := files(t, images, Options{Registry: "reg.local:5000"})
	rev := append([]Image(nil), images...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b := files(t, rev, Options{Registry: "reg.local:5000"})
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs with the images in another order", name)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		registry string
		images   []Image
		want     string
	}{
		{"no registry", "", fixture("r.local", "", false), "mirror configuration: no mirror registry given"},
		{"no images", "r.local", nil, "mirror configuration: no images were imported"},
		{"bad source", "r.local", []Image{{"Not A Name", "r.local/x:1", dApp}}, `mirror configuration: source "Not A Name": invalid reference format: repository name (library/Not A Name) must be lowercase`},
		{"bad digest", "r.local", []Image{{"quay.io/a/b:1", "r.local/a/b:1", "sha256:12"}}, "mirror configuration: digest of quay.io/a/b:1: invalid checksum digest length"},
		{"other registry", "r.local", []Image{{"quay.io/a/b:1", "elsewhere.local/a/b:1", dApp}}, "mirror configuration: quay.io/a/b:1 was imported as elsewhere.local/a/b:1, which is not r.local/[PATH/]a/b"},
		{"other path", "r.local", []Image{{"quay.io/a/b:1", "r.local/m/a/c:1", dApp}}, "mirror configuration: quay.io/a/b:1 was imported as r.local/m/a/c:1, which is not r.local/[PATH/]a/b"},
		{"path suffix without a slash", "r.local", []Image{{"quay.io/a/b:1", "r.local/ma/b:1", dApp}}, "mirror configuration: quay.io/a/b:1 was imported as r.local/ma/b:1, which is not r.local/[PATH/]a/b"},
		{"two namespaces", "r.local", []Image{
			{"quay.io/a/b:1", "r.local/m1/a/b:1", dApp},
			{"quay.io/a/c:1", "r.local/m2/a/c:1", dApp},
		}, `mirror configuration: images of quay.io are under two paths of r.local: "m1" (quay.io/a/b:1) and "m2" (quay.io/a/c:1); one mirror entry cannot serve both`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.images, Options{Registry: tc.registry})
			if !errors.Is(err, ErrImages) || err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		prefix     string
		keepSource bool
		want       []string
	}{
		{"shared prefix", "mirror", false, []string{"docker.io and quay.io and registry.example.com:5000 share the path reg.local:5000/mirror in the mirror: a pull of REGISTRY/PATH:TAG from one of them gets whatever image of PATH:TAG the mirror holds, from whichever registry it came (digest pulls are not affected); import with --keep-source-registry to keep them apart"}},
		{"shared root", "", false, []string{"docker.io and quay.io and registry.example.com:5000 share the path reg.local:5000 in the mirror: a pull of REGISTRY/PATH:TAG from one of them gets whatever image of PATH:TAG the mirror holds, from whichever registry it came (digest pulls are not affected); import with --keep-source-registry to keep them apart"}},
		{"keep source registry", "mirror", true, nil},
	} {
		c, err := New(fixture("reg.local:5000", tc.prefix, tc.keepSource), Options{Registry: "reg.local:5000"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Warnings(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	one, err := New(fixture("reg.local:5000", "mirror", false)[:2], Options{Registry: "reg.local:5000"})
	if err != nil || one.Warnings() != nil {
		t.Errorf("one source registry: %v %v", one.Warnings(), err)
	}
}
