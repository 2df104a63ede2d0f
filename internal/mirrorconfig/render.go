package mirrorconfig

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// The files of a mirror configuration directory, besides
// certs.d/HOST/hosts.toml per source registry.
const (
	FileRegistriesConf = "registries.conf"
	FileIDMS           = "imagedigestmirrorset.yaml"
	FileITMS           = "imagetagmirrorset.yaml"
	FileRKE2           = "registries.yaml"
	FileKustomize      = "kustomize-images.yaml"
	FileMapping        = "mapping.json"
	DirContainerd      = "certs.d"
	FileHostsTOML      = "hosts.toml"
)

// File is one file of the configuration, Path relative to the directory,
// with slashes.
type File struct {
	Path string
	Data []byte
}

// q quotes s as a JSON string, which is also a TOML basic string and a YAML
// double-quoted scalar (JSON's escapes \" \\ \/ \b \f \n \r \t \uXXXX are
// all valid in both).
func q(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// Files renders every file, in a fixed order: the same images and options
// always give the same bytes.
func (c *Config) Files() []File {
	var files []File
	for _, m := range c.Mirrors {
		// A reference's domain has no '/' and no "..", so it is one
		// path element.
		files = append(files, File{path.Join(DirContainerd, m.Source, FileHostsTOML), c.hostsTOML(m)})
	}
	return append(files,
		File{FileRegistriesConf, c.registriesConf()},
		File{FileIDMS, c.mirrorSets("ImageDigestMirrorSet", "imageDigestMirrors")},
		File{FileITMS, c.mirrorSets("ImageTagMirrorSet", "imageTagMirrors")},
		File{FileRKE2, c.registriesYAML()},
		File{FileKustomize, c.kustomizeImages()},
		File{FileMapping, c.mappingJSON()},
	)
}

// hostsTOML is containerd's certs.d/HOST/hosts.toml (containerd
// docs/hosts.md): the mirror first, the source registry as the fallback.
// With a path below the mirror's host, the host URL is the API root
// (https://MIRROR/v2/PATH) and override_path says so.
func (c *Config) hostsTOML(m Mirror) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by ferry import: pull %s images from the mirror %s.\n", m.Source, c.mirrorRoot(m))
	fmt.Fprintf(&b, "# Install as /etc/containerd/certs.d/%s/hosts.toml (containerd's registry config_path).\n", m.Source)
	fmt.Fprintf(&b, "server = %s\n\n", q(upstream(m.Source)))
	url := c.scheme() + c.Registry
	if m.Namespace != "" {
		url += "/v2/" + m.Namespace
	}
	fmt.Fprintf(&b, "[host.%s]\n", q(url))
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if m.Namespace != "" {
		b.WriteString("  override_path = true\n")
	}
	if c.Insecure {
		b.WriteString("  skip_verify = true\n")
	}
	return []byte(b.String())
}

// registriesConf is a registries.conf (version 2) drop-in for CRI-O,
// podman, buildah and skopeo: one [[registry]] per source registry with the
// mirror as its [[registry.mirror]]. pull-from-mirror = "all": tags are
// pulled from the mirror too, since the source is out of reach; the
// mirror's tags are the ones the signed bundle set.
func (c *Config) registriesConf() []byte {
	var b strings.Builder
	b.WriteString("# Written by ferry import: pull these registries' images from the mirror.\n")
	b.WriteString("# Install as /etc/containers/registries.conf.d/50-ferry.conf (registries.conf version 2).\n")
	for _, m := range c.Mirrors {
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %s\nlocation = %s\n\n", q(m.Source), q(m.Source))
		fmt.Fprintf(&b, "[[registry.mirror]]\nlocation = %s\npull-from-mirror = \"all\"\n", q(c.mirrorRoot(m)))
		if c.Insecure || c.PlainHTTP {
			b.WriteString("insecure = true\n")
		}
	}
	return []byte(b.String())
}

// mirrorSets is one OpenShift ImageDigestMirrorSet or ImageTagMirrorSet
// (config.openshift.io/v1) per source registry, named after it, so that
// applying the file of a later import with other registries adds to these
// objects rather than replacing them.
func (c *Config) mirrorSets(kind, field string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by ferry import: oc apply -f this file (%s, config.openshift.io/v1).\n", kind)
	for i, m := range c.Mirrors {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: config.openshift.io/v1\nkind: %s\nmetadata:\n  name: %s\n", kind, q(objectName(m.Source)))
		fmt.Fprintf(&b, "spec:\n  %s:\n    - source: %s\n      mirrors:\n        - %s\n", field, q(m.Source), q(c.mirrorRoot(m)))
	}
	return []byte(b.String())
}

// objectName is a Kubernetes object name (a DNS subdomain) for a source
// registry: ferry-docker.io, ferry-registry.example.com-5000.
func objectName(host string) string {
	name := []byte("ferry-" + strings.ToLower(host))
	for i, ch := range name {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-') {
			name[i] = '-'
		}
	}
	return string(name)
}

// registriesYAML is RKE2's and k3s's registries.yaml: per source registry
// the mirror's endpoint, and a rewrite that puts the path below the mirror
// in front of every repository.
func (c *Config) registriesYAML() []byte {
	var b strings.Builder
	b.WriteString("# Written by ferry import: install as /etc/rancher/rke2/registries.yaml (RKE2)\n")
	b.WriteString("# or /etc/rancher/k3s/registries.yaml (k3s) on every node, then restart the service.\n")
	b.WriteString("mirrors:\n")
	for _, m := range c.Mirrors {
		fmt.Fprintf(&b, "  %s:\n    endpoint:\n      - %s\n", q(m.Source), q(c.scheme()+c.Registry))
		if m.Namespace != "" {
			fmt.Fprintf(&b, "    rewrite:\n      %s: %s\n", q("^(.*)$"), q(m.Namespace+"/$1"))
		}
	}
	if c.Insecure {
		fmt.Fprintf(&b, "configs:\n  %s:\n    tls:\n      insecure_skip_verify: true\n", q(c.Registry))
	}
	return []byte(b.String())
}

// kustomizeImages is the images: list of a kustomization.yaml that renames
// every imported repository to the mirror's. kustomize matches names as the
// manifests spell them, so a Docker Hub repository gets an entry for each
// spelling (nginx, library/nginx, docker.io/nginx, docker.io/library/nginx).
// The digest is pinned when the import holds one digest for the repository;
// with several (two tags), newName alone, so that each tag stays.
func (c *Config) kustomizeImages() []byte {
	type entry struct{ newName, digest string }
	repos := map[string]*entry{}
	var order []string
	for _, img := range c.Images {
		e, ok := repos[img.SourceRepo]
		if !ok {
			repos[img.SourceRepo] = &entry{img.DestRepo, img.Digest.String()}
			order = append(order, img.SourceRepo)
			continue
		}
		if e.digest != img.Digest.String() {
			e.digest = ""
		}
	}
	slices.Sort(order)
	var b strings.Builder
	b.WriteString("# Written by ferry import: the images list of a kustomization.yaml.\n")
	b.WriteString("images:\n")
	for _, repo := range order {
		e := repos[repo]
		for _, name := range spellings(repo) {
			fmt.Fprintf(&b, "  - name: %s\n    newName: %s\n", q(name), q(e.newName))
			if e.digest != "" {
				fmt.Fprintf(&b, "    digest: %s\n", q(e.digest))
			}
		}
	}
	return []byte(b.String())
}

// spellings are the names a manifest may use for the normalised repository
// name repo.
func spellings(repo string) []string {
	p, ok := strings.CutPrefix(repo, "docker.io/")
	if !ok {
		return []string{repo}
	}
	if short, ok := strings.CutPrefix(p, "library/"); ok {
		return []string{short, p, "docker.io/" + short, repo}
	}
	return []string{p, repo}
}

// MappingEntry is one image in mapping.json: the line source=destination of
// --mapping-out, with the digest on its own as well.
type MappingEntry struct {
	Source      string `json:"source"`
	Destination string `json:"destination"` // repository[:tag]@digest
	Digest      string `json:"digest"`
}

// Mapping is mapping.json.
type Mapping struct {
	Version int            `json:"version"` // 1
	Images  []MappingEntry `json:"images"`
}

func (c *Config) mappingJSON() []byte {
	m := Mapping{Version: 1, Images: []MappingEntry{}}
	for _, img := range c.Images {
		m.Images = append(m.Images, MappingEntry{img.Source, img.Destination, img.Digest.String()})
	}
	b, _ := json.MarshalIndent(m, "", "  ") // plain strings always marshal
	return append(b, '\n')
}
