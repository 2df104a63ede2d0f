package bundle

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types ferry knows by name. Any other media type is carried as is:
// a descriptor listed under "manifests" (or "subject") is treated as a
// manifest, one under "config", "layers" or "blobs" as an opaque blob.
const (
	MediaTypeDockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// maxGraphDepth bounds how deep indexes may nest (index → index → ...).
const maxGraphDepth = 8

// IsIndex reports whether mediaType is an image index or manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// manifestLinks is the generic shape of every manifest and index: the
// fields that point at other content.
type manifestLinks struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Blobs         []ocispec.Descriptor `json:"blobs"` // artifact manifest (image-spec 1.1-rc)
	Subject       *ocispec.Descriptor  `json:"subject"`
	FSLayers      json.RawMessage      `json:"fsLayers"` // Docker schema 1
}

// child is a descriptor found in a manifest; manifest says whether it names
// another manifest (to be parsed) or an opaque blob.
type child struct {
	desc     ocispec.Descriptor
	manifest bool
	config   bool
}

func isSchema1(mediaType string) bool {
	return mediaType == mediaTypeDockerSchema1 || mediaType == mediaTypeDockerSchema1Signed
}

// errSchema1 is the error for Docker schema 1 manifests.
func errSchema1() error {
	return fmt.Errorf("%w: Docker schema 1 manifest (deprecated and not content-addressable); re-push the image with a current docker, podman or skopeo to convert it", ErrUnsupported)
}

// parseManifest returns the children of a manifest or index. mediaType is
// the one given by the parent descriptor or the registry; the document's own
// mediaType field is used when it is empty.
func parseManifest(b []byte, mediaType string) (mt string, children []child, err error) {
	if isSchema1(mediaType) {
		return "", nil, errSchema1()
	}
	var m manifestLinks
	if err := json.Unmarshal(b, &m); err != nil {
		return "", nil, fmt.Errorf("%w: manifest is not valid JSON: %v", ErrCorrupt, err)
	}
	if m.SchemaVersion == 1 || len(m.FSLayers) > 0 || isSchema1(m.MediaType) {
		return "", nil, errSchema1()
	}
	mt = mediaType
	if mt == "" {
		mt = m.MediaType
	}
	if m.MediaType != "" && mediaType != "" && m.MediaType != mediaType {
		return "", nil, fmt.Errorf("%w: manifest says media type %q but its descriptor says %q", ErrCorrupt, m.MediaType, mediaType)
	}
	add := func(d ocispec.Descriptor, manifest, config bool) error {
		if err := validateDescriptor(d); err != nil {
			return err
		}
		children = append(children, child{desc: d, manifest: manifest, config: config})
		return nil
	}
	for _, d := range m.Manifests {
		if err := add(d, true, false); err != nil {
			return "", nil, err
		}
	}
	if m.Subject != nil {
		if err := add(*m.Subject, true, false); err != nil {
			return "", nil, err
		}
	}
	if m.Config != nil {
		if err := add(*m.Config, false, true); err != nil {
			return "", nil, err
		}
	}
	for _, list := range [][]ocispec.Descriptor{m.Layers, m.Blobs} {
		for _, d := range list {
			if err := add(d, false, false); err != nil {
				return "", nil, err
			}
		}
	}
	return mt, children, nil
}

func validateDescriptor(d ocispec.Descriptor) error {
	if err := validateDigest(d.Digest); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: descriptor %s has negative size", ErrCorrupt, d.Digest)
	}
	return nil
}

// Limits on the manifest graph, so the work of reading a bundle (or of
// exporting a reference) stays bounded whatever its manifests claim.
const (
	// maxManifests bounds how many distinct manifests a bundle may hold
	// (all of them sit in memory).
	maxManifests = 1 << 20
	// maxEdges bounds the descriptors listed by all manifests together,
	// counting a descriptor listed twice twice.
	maxEdges = 1 << 21
	// maxClosureWork bounds the blobs reached from all images together,
	// counting a blob shared by N images N times.
	maxClosureWork = 1 << 24
)

// ErrDescriptorConflict: two descriptors of one digest disagree on its size
// or media type, or a reference pinned to a digest names another one. In a
// bundle it is also ErrCorrupt.
var ErrDescriptorConflict = errors.New("descriptors disagree")

// graph is the content of a bundle: every manifest (in memory) and every
// other blob (descriptor only), with the images that use each. Each
// manifest is parsed and expanded once; the work is linear in the number
// of descriptors.
type graph struct {
	manifests     map[digest.Digest]*Manifest
	manifestOrder []digest.Digest // parents before children
	blobs         map[digest.Digest]*blobInfo
	configOrder   []digest.Digest
	layerOrder    []digest.Digest
	users         map[digest.Digest][]string
	// first descriptor seen for each digest, and where
	seen  map[digest.Digest]seenDesc
	edges int
}

type seenDesc struct {
	size      int64
	mediaType string
	where     string
}

type blobInfo struct {
	desc   ocispec.Descriptor
	config bool
}

// Manifest is a manifest or index held in memory.
type Manifest struct {
	Descriptor ocispec.Descriptor
	Bytes      []byte
	// Children are the descriptors this manifest references, manifests first.
	Children []ocispec.Descriptor
	kids     []child
}

func newGraph() *graph {
	return &graph{
		manifests: map[digest.Digest]*Manifest{},
		blobs:     map[digest.Digest]*blobInfo{},
		users:     map[digest.Digest][]string{},
		seen:      map[digest.Digest]seenDesc{},
	}
}

// Users returns the references of the images that use d.
func (g *graph) Users(d digest.Digest) []string { return g.users[d] }

// see records a descriptor met in where (index.json, or a manifest) and
// checks it agrees with every earlier descriptor of the same digest.
func (g *graph) see(d ocispec.Descriptor, where string) error {
	prev, ok := g.seen[d.Digest]
	if !ok {
		g.seen[d.Digest] = seenDesc{size: d.Size, mediaType: d.MediaType, where: where}
		return nil
	}
	if prev.size != d.Size || !sameMediaType(prev.mediaType, d.MediaType) {
		return fmt.Errorf("%w: %s is %d bytes of %s in %s, but %d bytes of %s in %s",
			ErrDescriptorConflict, d.Digest, prev.size, quoteType(prev.mediaType), prev.where, d.Size, quoteType(d.MediaType), where)
	}
	return nil
}

func quoteType(mt string) string {
	if mt == "" {
		return "no media type"
	}
	return fmt.Sprintf("%q", mt)
}

// equivalentTypes pairs the Docker media types with the OCI ones that name
// the same content: one layer or config may be listed by a Docker manifest
// and by an OCI manifest with the same digest.
var equivalentTypes = map[string]string{
	"application/vnd.docker.image.rootfs.diff.tar.gzip":         ocispec.MediaTypeImageLayerGzip,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // the OCI name of Docker's foreign layers
	"application/vnd.docker.container.image.v1+json":            ocispec.MediaTypeImageConfig,
}

func sameMediaType(a, b string) bool {
	if a == b {
		return true
	}
	if x, ok := equivalentTypes[a]; ok {
		a = x
	}
	if x, ok := equivalentTypes[b]; ok {
		b = x
	}
	return a == b
}

// orderedBlobs returns non-manifest blobs in archive order: first the
// layers that are stored in the bundle (see storedBlob), then configs, then
// the layers that are compressed, each in order of first reference. Stored
// frames have a length known in advance, so an exporter writing to a file
// reserves their place right after the manifests and fetches them straight
// into it, in parallel, while it compresses and appends the others after
// them.
func (g *graph) orderedBlobs() []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(g.configOrder)+len(g.layerOrder))
	var compressed []ocispec.Descriptor
	for _, d := range g.layerOrder {
		if desc := g.blobs[d].desc; storedBlob(desc) {
			out = append(out, desc)
		} else {
			compressed = append(compressed, desc)
		}
	}
	for _, d := range g.configOrder {
		out = append(out, g.blobs[d].desc)
	}
	return append(out, compressed...)
}

// closure calls visit for root and every digest below it, each once,
// children before parents, until visit returns false. It is the one walk of
// an image's content: users, image sizes and the import plan all use it.
func (g *graph) closure(root digest.Digest, visit func(d digest.Digest, m *Manifest) bool) {
	type step struct {
		d    digest.Digest
		m    *Manifest
		next int // next child to look at
	}
	done := map[digest.Digest]bool{root: true}
	stack := []step{{d: root, m: g.manifests[root]}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.m != nil && top.next < len(top.m.kids) {
			c := top.m.kids[top.next].desc.Digest
			top.next++
			if !done[c] {
				done[c] = true
				stack = append(stack, step{d: c, m: g.manifests[c]})
			}
			continue
		}
		d, m := top.d, top.m
		stack = stack[:len(stack)-1]
		if !visit(d, m) {
			return
		}
	}
}

// walker adds manifests to a graph breadth first. fetch returns the bytes
// of a manifest, already verified against desc.
type walker struct {
	g     *graph
	fetch func(desc ocispec.Descriptor) ([]byte, error)
	// parsed holds manifests the caller has already parsed (the sequential
	// reader parses each as it arrives, to know which come next).
	parsed map[digest.Digest]parsedManifest
}

type parsedManifest struct {
	mediaType string
	children  []child
}

type queued struct {
	desc  ocispec.Descriptor
	ref   string
	depth int
}

// walk adds the graph below the root descriptors of index.json (or of the
// resolved references) and returns an error naming the failing reference.
// Every manifest is fetched, parsed and expanded once, however many
// descriptors list it; every descriptor of a digest must agree with the
// others on size and media type.
func (w *walker) walk(roots []ocispec.Descriptor, refs []string) error {
	g := w.g
	queue := make([]queued, 0, len(roots))
	queuedSet := map[digest.Digest]bool{}
	for i, d := range roots {
		if err := g.see(d, "index.json entry "+refs[i]); err != nil {
			return &RefError{Ref: refs[i], Err: err}
		}
		if !queuedSet[d.Digest] {
			queuedSet[d.Digest] = true
			queue = append(queue, queued{desc: d, ref: refs[i]})
		}
	}
	g.edges += len(roots)
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		if q.depth > maxGraphDepth {
			return &RefError{Ref: q.ref, Err: fmt.Errorf("%w: manifests nested deeper than %d levels", ErrCorrupt, maxGraphDepth)}
		}
		if len(g.manifests) >= maxManifests {
			return fmt.Errorf("%w: more than %d manifests", ErrTooLarge, maxManifests)
		}
		b, err := w.fetch(q.desc)
		if err != nil {
			return &RefError{Ref: q.ref, Err: &BlobError{Op: "reading manifest", Digest: q.desc.Digest, Err: err}}
		}
		p, ok := w.parsed[q.desc.Digest]
		if !ok {
			if p.mediaType, p.children, err = parseManifest(b, q.desc.MediaType); err != nil {
				return &RefError{Ref: q.ref, Err: fmt.Errorf("manifest %s: %w", q.desc.Digest, err)}
			}
		}
		mt, children := p.mediaType, p.children
		if g.edges += len(children); g.edges > maxEdges {
			return fmt.Errorf("%w: the manifests list more than %d descriptors in all", ErrTooLarge, maxEdges)
		}
		desc := q.desc
		desc.MediaType = mt
		m := &Manifest{Descriptor: desc, Bytes: b, kids: children}
		g.manifests[desc.Digest] = m
		g.manifestOrder = append(g.manifestOrder, desc.Digest)
		where := "manifest " + desc.Digest.String()
		for _, c := range children {
			m.Children = append(m.Children, c.desc)
			if err := g.see(c.desc, where); err != nil {
				return &RefError{Ref: q.ref, Err: err}
			}
			if c.manifest {
				if !queuedSet[c.desc.Digest] {
					queuedSet[c.desc.Digest] = true
					queue = append(queue, queued{desc: c.desc, ref: q.ref, depth: q.depth + 1})
				}
				continue
			}
			if _, ok := g.blobs[c.desc.Digest]; ok {
				continue
			}
			g.blobs[c.desc.Digest] = &blobInfo{desc: c.desc, config: c.config}
			if c.config {
				g.configOrder = append(g.configOrder, c.desc.Digest)
			} else {
				g.layerOrder = append(g.layerOrder, c.desc.Digest)
			}
		}
	}
	// A digest cannot be both a manifest and a plain blob in one bundle.
	for d := range g.blobs {
		if _, ok := g.manifests[d]; ok {
			return fmt.Errorf("%w: %s is referenced both as a manifest and as a blob", ErrCorrupt, d)
		}
	}
	// The images that use each digest, one closure walk per image.
	work := 0
	for i, d := range roots {
		var err error
		g.closure(d.Digest, func(x digest.Digest, _ *Manifest) bool {
			if work++; work > maxClosureWork {
				err = fmt.Errorf("%w: the images reach more than %d blobs in all (a blob shared by N images counts N times)", ErrTooLarge, maxClosureWork)
				return false
			}
			if u := g.users[x]; len(u) == 0 || u[len(u)-1] != refs[i] {
				g.users[x] = append(u, refs[i])
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}
