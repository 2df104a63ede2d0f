package mirrorconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// The tests read every file back with a real parser for its format
// (BurntSushi/toml, go.yaml.in/yaml/v3 with unknown fields refused,
// encoding/json) into structs that mirror each consumer's schema, and
// check that following the entries from a source reference arrives at the
// repository the import wrote.

const (
	dNginx = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	dRedis = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	dNode  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	dApp   = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
	dOld   = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
)

// fixture is what bundle.Destination.Map gives for four images from three
// source registries, one of them with a port and pinned by digest.
func fixture(registry, prefix string, keepSource bool) []Image {
	dest := func(host, path, rest string) string {
		parts := []string{registry}
		if prefix != "" {
			parts = append(parts, prefix)
		}
		if keepSource {
			parts = append(parts, strings.ReplaceAll(host, ":", "_"))
		}
		return strings.Join(append(parts, path), "/") + rest
	}
	return []Image{
		{"docker.io/library/nginx:1.27", dest("docker.io", "library/nginx", ":1.27"), dNginx},
		{"docker.io/bitnami/redis:7.4", dest("docker.io", "bitnami/redis", ":7.4"), dRedis},
		{"quay.io/prometheus/node-exporter:v1.8.2", dest("quay.io", "prometheus/node-exporter", ":v1.8.2"), dNode},
		{"registry.example.com:5000/team/app@" + dApp, dest("registry.example.com:5000", "team/app", "@"+dApp), dApp},
	}
}

func files(t *testing.T, images []Image, opts Options) map[string][]byte {
	t.Helper()
	c, err := New(images, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, f := range c.Files() {
		if _, dup := m[f.Path]; dup {
			t.Fatalf("file %s twice", f.Path)
		}
		m[f.Path] = f.Data
	}
	return m
}

// sourcePath is library/nginx for docker.io/library/nginx:1.27.
func splitSource(t *testing.T, src string) (host, path string) {
	t.Helper()
	name := src
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	host, path, _ = strings.Cut(name, "/")
	return host, path
}

func destRepo(d string) string {
	if i := strings.Index(d, "@"); i >= 0 {
		d = d[:i]
	}
	if i := strings.LastIndex(d, ":"); i > strings.LastIndex(d, "/") {
		d = d[:i]
	}
	return d
}

type hostsTOMLFile struct {
	Server string `toml:"server"`
	Host   map[string]struct {
		Capabilities []string `toml:"capabilities"`
		OverridePath bool     `toml:"override_path"`
		SkipVerify   bool     `toml:"skip_verify"`
	} `toml:"host"`
}

// checkContainerd follows containerd's resolution: with override_path the
// host URL's path is the API root, and the repository path follows it;
// without, /v2/ and the repository path follow the host.
func checkContainerd(t *testing.T, fs map[string][]byte, images []Image, insecure bool) {
	t.Helper()
	for _, img := range images {
		host, path := splitSource(t, img.Source)
		data, ok := fs["certs.d/"+host+"/hosts.toml"]
		if !ok {
			t.Fatalf("no certs.d/%s/hosts.toml", host)
		}
		var h hostsTOMLFile
		md, err := toml.Decode(string(data), &h)
		if err != nil {
			t.Fatalf("certs.d/%s/hosts.toml: %v\n%s", host, err, data)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Errorf("certs.d/%s/hosts.toml: unexpected keys %v", host, u)
		}
		wantServer := "https://" + host
		if host == "docker.io" {
			wantServer = "https://registry-1.docker.io"
		}
		if h.Server != wantServer {
			t.Errorf("%s: server = %q, want %q", host, h.Server, wantServer)
		}
		if len(h.Host) != 1 {
			t.Fatalf("%s: %d hosts, want 1", host, len(h.Host))
		}
		for hostURL, hc := range h.Host {
			if strings.Join(hc.Capabilities, ",") != "pull,resolve" {
				t.Errorf("%s: capabilities %v", host, hc.Capabilities)
			}
			if hc.SkipVerify != insecure {
				t.Errorf("%s: skip_verify = %v, want %v", host, hc.SkipVerify, insecure)
			}
			u, err := url.Parse(hostURL)
			if err != nil || u.Scheme != "https" {
				t.Fatalf("%s: host %q: %v", host, hostURL, err)
			}
			root := u.Path
			if !hc.OverridePath {
				if root != "" {
					t.Errorf("%s: host %q has a path but no override_path", host, hostURL)
				}
				root = "/v2"
			}
			got := u.Host + root + "/" + path
			want := strings.Replace(destRepo(img.Destination), "/", "/v2/", 1)
			if got != want {
				t.Errorf("containerd pulls %s from %s, want %s", img.Source, got, want)
			}
		}
	}
}

type registriesConfFile struct {
	Registry []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Mirror   []struct {
			Location       string `toml:"location"`
			PullFromMirror string `toml:"pull-from-mirror"`
			Insecure       bool   `toml:"insecure"`
		} `toml:"mirror"`
	} `toml:"registry"`
}

func checkRegistriesConf(t *testing.T, data []byte, images []Image, insecure bool) {
	t.Helper()
	var rc registriesConfFile
	md, err := toml.Decode(string(data), &rc)
	if err != nil {
		t.Fatalf("registries.conf: %v\n%s", err, data)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("registries.conf: unexpected keys %v", u)
	}
	for _, img := range images {
		host, path := splitSource(t, img.Source)
		found := 0
		for _, r := range rc.Registry {
			if r.Prefix != host {
				continue
			}
			found++
			if r.Location != host || len(r.Mirror) != 1 {
				t.Fatalf("registries.conf: entry for %s: %+v", host, r)
			}
			m := r.Mirror[0]
			if got, want := m.Location+"/"+path, destRepo(img.Destination); got != want {
				t.Errorf("registries.conf: %s is pulled from %s, want %s", img.Source, got, want)
			}
			if m.PullFromMirror != "all" || m.Insecure != insecure {
				t.Errorf("registries.conf: mirror of %s: %+v", host, m)
			}
		}
		if found != 1 {
			t.Errorf("registries.conf: %d entries for %s, want 1", found, host)
		}
	}
}

// imageMirrorSet mirrors the ImageDigestMirrorSet and ImageTagMirrorSet
// schema (config.openshift.io/v1, openshift/api config/v1
// types_image_digest_mirror_set.go and types_image_tag_mirror_set.go). The
// openshift/api module pulls in k8s.io/apimachinery: too much for a test.
type imageMirrorSet struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		ImageDigestMirrors []imageMirror `yaml:"imageDigestMirrors"`
		ImageTagMirrors    []imageMirror `yaml:"imageTagMirrors"`
	} `yaml:"spec"`
}

type imageMirror struct {
	Source             string   `yaml:"source"`
	Mirrors            []string `yaml:"mirrors"`
	MirrorSourcePolicy string   `yaml:"mirrorSourcePolicy"`
}

// The CRD's validation patterns for source and mirrors, and a DNS
// subdomain for metadata.name.
var (
	crdImageScope = regexp.MustCompile(`^\*(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))+$|^((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?)(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$`)
	dnsSubdomain  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func decodeYAMLDocs[T any](t *testing.T, name string, data []byte) []T {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var docs []T
	for {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, data)
		}
		docs = append(docs, v)
	}
}

func checkMirrorSets(t *testing.T, fs map[string][]byte, images []Image) {
	t.Helper()
	for _, tc := range []struct{ file, kind string }{{FileIDMS, "ImageDigestMirrorSet"}, {FileITMS, "ImageTagMirrorSet"}} {
		sets := decodeYAMLDocs[imageMirrorSet](t, tc.file, fs[tc.file])
		bySource := map[string]imageMirror{}
		names := map[string]bool{}
		for _, s := range sets {
			if s.APIVersion != "config.openshift.io/v1" || s.Kind != tc.kind {
				t.Errorf("%s: apiVersion %q kind %q", tc.file, s.APIVersion, s.Kind)
			}
			if !dnsSubdomain.MatchString(s.Metadata.Name) || names[s.Metadata.Name] {
				t.Errorf("%s: metadata.name %q is not a DNS subdomain or is used twice", tc.file, s.Metadata.Name)
			}
			names[s.Metadata.Name] = true
			entries := s.Spec.ImageDigestMirrors
			other := s.Spec.ImageTagMirrors
			if tc.kind == "ImageTagMirrorSet" {
				entries, other = other, entries
			}
			if len(other) != 0 || len(entries) != 1 {
				t.Fatalf("%s: %s: %d entries in its own field, %d in the other kind's", tc.file, s.Metadata.Name, len(entries), len(other))
			}
			e := entries[0]
			if !crdImageScope.MatchString(e.Source) || len(e.Mirrors) != 1 || !crdImageScope.MatchString(e.Mirrors[0]) || e.MirrorSourcePolicy != "" {
				t.Errorf("%s: entry %+v does not pass the CRD's validation", tc.file, e)
			}
			bySource[e.Source] = e
		}
		for _, img := range images {
			host, path := splitSource(t, img.Source)
			e, ok := bySource[host]
			if !ok {
				t.Fatalf("%s: no entry for %s", tc.file, host)
			}
			if got, want := e.Mirrors[0]+"/"+path, destRepo(img.Destination); got != want {
				t.Errorf("%s: %s is pulled from %s, want %s", tc.file, img.Source, got, want)
			}
		}
	}
}

// registriesYAMLFile mirrors k3s's registries.yaml (pkg/agent/templates and
// the Registry type of k3s-io/k3s, shared by RKE2).
type registriesYAMLFile struct {
	Mirrors map[string]struct {
		Endpoint []string          `yaml:"endpoint"`
		Rewrite  map[string]string `yaml:"rewrite"`
	} `yaml:"mirrors"`
	Configs map[string]struct {
		TLS struct {
			InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
		} `yaml:"tls"`
	} `yaml:"configs"`
}

// checkRKE2 applies the rewrite as k3s does (Go regexp, ReplaceAllString on
// the repository path) and joins the endpoint's host.
func checkRKE2(t *testing.T, data []byte, images []Image, registry string, insecure bool) {
	t.Helper()
	docs := decodeYAMLDocs[registriesYAMLFile](t, FileRKE2, data)
	if len(docs) != 1 {
		t.Fatalf("registries.yaml: %d documents", len(docs))
	}
	r := docs[0]
	for _, img := range images {
		host, path := splitSource(t, img.Source)
		m, ok := r.Mirrors[host]
		if !ok || len(m.Endpoint) != 1 {
			t.Fatalf("registries.yaml: mirror of %s: %+v", host, m)
		}
		u, err := url.Parse(m.Endpoint[0])
		if err != nil || u.Scheme != "https" || u.Path != "" {
			t.Fatalf("registries.yaml: endpoint %q", m.Endpoint[0])
		}
		rewritten := path
		for re, repl := range m.Rewrite {
			rewritten = regexp.MustCompile(re).ReplaceAllString(path, repl)
		}
		if got, want := u.Host+"/"+rewritten, destRepo(img.Destination); got != want {
			t.Errorf("registries.yaml: %s is pulled from %s, want %s", img.Source, got, want)
		}
	}
	c, ok := r.Configs[registry]
	if insecure != (ok && c.TLS.InsecureSkipVerify) || (!insecure && len(r.Configs) != 0) {
		t.Errorf("registries.yaml: configs %+v, insecure %v", r.Configs, insecure)
	}
}

type kustomizeFile struct {
	Images []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

func kustomizeEntries(t *testing.T, data []byte) map[string][2]string {
	t.Helper()
	docs := decodeYAMLDocs[kustomizeFile](t, FileKustomize, data)
	if len(docs) != 1 {
		t.Fatalf("kustomize: %d documents", len(docs))
	}
	m := map[string][2]string{}
	for _, e := range docs[0].Images {
		if _, dup := m[e.Name]; dup {
			t.Errorf("kustomize: %s twice", e.Name)
		}
		m[e.Name] = [2]string{e.NewName, e.Digest}
	}
	return m
}

func checkMapping(t *testing.T, data []byte, images []Image) {
	t.Helper()
	var m Mapping
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("mapping.json: %v", err)
	}
	if m.Version != 1 || len(m.Images) != len(images) {
		t.Fatalf("mapping.json: version %d, %d images", m.Version, len(m.Images))
	}
	want := map[string]MappingEntry{}
	for _, img := range images {
		d := img.Destination
		if i := strings.Index(d, "@"); i >= 0 {
			d = d[:i]
		}
		want[img.Source] = MappingEntry{img.Source, d + "@" + img.Digest.String(), img.Digest.String()}
	}
	for _, e := range m.Images {
		if want[e.Source] != e {
			t.Errorf("mapping.json: %+v, want %+v", e, want[e.Source])
		}
	}
}
