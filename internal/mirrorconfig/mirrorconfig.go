package mirrorconfig

import (
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Image is one imported image, as bundle.ImportedImage reports it.
type Image struct {
	Source      string        // normalised source reference: docker.io/library/nginx:1.27[@sha256:…]
	Destination string        // destination repository:tag, or repository@digest
	Digest      digest.Digest // what the destination holds
}

// Options describe the mirror.
type Options struct {
	// Registry is the mirror's host[:port], as given to --to.
	Registry string
	// Insecure says the mirror is reached over plain HTTP or with a
	// certificate that is not verified (--insecure-registry names it).
	Insecure bool
	// PlainHTTP says the mirror speaks plain HTTP (the import reached it
	// so): the files name it with http://, not https://, and
	// registries.conf marks it insecure, which is how containers/image
	// allows HTTP.
	PlainHTTP bool
}

// Mirror is where the images of one source registry are in the mirror.
type Mirror struct {
	// Source is the source registry host as image references name it:
	// docker.io, quay.io, registry.example.com:5000.
	Source string
	// Namespace is the path below the mirror's host that stands for the
	// source registry's root: "" (no prefix), "mirror", or with
	// --keep-source-registry "mirror/docker.io". A source repository
	// library/nginx is NAMESPACE/library/nginx in the mirror.
	Namespace string
}

// Mapped is one image with its names parsed.
type Mapped struct {
	Source      string // as Image.Source
	Destination string // repository[:tag]@digest
	Digest      digest.Digest
	SourceRepo  string // docker.io/library/nginx
	SourcePath  string // library/nginx
	DestRepo    string // reg.local:5000/mirror/library/nginx
}

// Config is the mirror configuration of one import.
type Config struct {
	Registry  string
	Insecure  bool
	PlainHTTP bool
	Mirrors   []Mirror // sorted by Source
	Images    []Mapped // sorted by Source
}

// New works out, for each source registry of images, the path below
// opts.Registry that holds its repositories, from where the import put
// each image. Every image of one source registry must be below the same
// path, as ferry's destination mapping guarantees.
func New(images []Image, opts Options) (*Config, error) {
	if opts.Registry == "" {
		return nil, fmt.Errorf("%w: no mirror registry given", ErrImages)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%w: no images were imported", ErrImages)
	}
	c := &Config{Registry: opts.Registry, Insecure: opts.Insecure, PlainHTTP: opts.PlainHTTP}
	namespaces := map[string]string{} // source host -> namespace
	first := map[string]string{}      // source host -> the image that set it
	for _, img := range images {
		m, ns, err := mapImage(img, opts.Registry)
		if err != nil {
			return nil, err
		}
		host := reference.Domain(mustParse(m.SourceRepo))
		if prev, ok := namespaces[host]; ok && prev != ns {
			return nil, fmt.Errorf("%w: images of %s are under two paths of %s: %q (%s) and %q (%s); one mirror entry cannot serve both",
				ErrImages, host, opts.Registry, prev, first[host], ns, img.Source)
		}
		if _, ok := namespaces[host]; !ok {
			namespaces[host], first[host] = ns, img.Source
			c.Mirrors = append(c.Mirrors, Mirror{Source: host, Namespace: ns})
		}
		c.Images = append(c.Images, m)
	}
	slices.SortFunc(c.Mirrors, func(a, b Mirror) int { return strings.Compare(a.Source, b.Source) })
	slices.SortStableFunc(c.Images, func(a, b Mapped) int { return strings.Compare(a.Source, b.Source) })
	return c, nil
}

func mustParse(s string) reference.Named {
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		panic(err) // s was parsed before
	}
	return n
}

// mapImage parses one image and returns the namespace its source registry
// has in the mirror.
func mapImage(img Image, registry string) (Mapped, string, error) {
	src, err := reference.ParseNormalizedNamed(img.Source)
	if err != nil {
		return Mapped{}, "", fmt.Errorf("%w: source %q: %v", ErrImages, img.Source, err)
	}
	if err := img.Digest.Validate(); err != nil {
		return Mapped{}, "", fmt.Errorf("%w: digest of %s: %v", ErrImages, img.Source, err)
	}
	repo := img.Destination
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	path := reference.Path(src)
	below, ok := strings.CutPrefix(repo, registry+"/")
	ns, okPath := "", below == path
	if !okPath {
		ns, okPath = strings.CutSuffix(below, "/"+path)
	}
	if !ok || !okPath {
		return Mapped{}, "", fmt.Errorf("%w: %s was imported as %s, which is not %s/[PATH/]%s", ErrImages, img.Source, img.Destination, registry, path)
	}
	dest := img.Destination
	if i := strings.LastIndex(dest, "@"); i >= 0 {
		dest = dest[:i]
	}
	return Mapped{
		Source:      img.Source,
		Destination: dest + "@" + img.Digest.String(),
		Digest:      img.Digest,
		SourceRepo:  src.Name(),
		SourcePath:  path,
		DestRepo:    repo,
	}, ns, nil
}

// mirrorRoot is REGISTRY[/NAMESPACE]: where a source registry's root is.
func (c *Config) mirrorRoot(m Mirror) string {
	if m.Namespace == "" {
		return c.Registry
	}
	return c.Registry + "/" + m.Namespace
}

// scheme is how the nodes reach the mirror.
func (c *Config) scheme() string {
	if c.PlainHTTP {
		return "http://"
	}
	return "https://"
}

// upstream is the URL containerd pulls a source registry from.
func upstream(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + host
}

// Warnings are what the operator should know about the configuration:
// source registries that share one path in the mirror (an import without
// --keep-source-registry), where a tag pull of one registry's image can get
// another registry's image of the same path.
func (c *Config) Warnings() []string {
	shared := map[string][]string{} // mirror root -> source registries
	var roots []string
	for _, m := range c.Mirrors {
		root := c.mirrorRoot(m)
		if len(shared[root]) == 0 {
			roots = append(roots, root)
		}
		shared[root] = append(shared[root], m.Source)
	}
	var w []string
	for _, root := range roots {
		if s := shared[root]; len(s) > 1 {
			w = append(w, fmt.Sprintf("%s share the path %s in the mirror: a pull of REGISTRY/PATH:TAG from one of them gets whatever image of PATH:TAG the mirror holds, from whichever registry it came (digest pulls are not affected); import with --keep-source-registry to keep them apart",
				strings.Join(s, " and "), root))
		}
	}
	return w
}
