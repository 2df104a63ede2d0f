package bundle

import (
	"encoding/json"
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

// graph is the content of a bundle: every manifest (in memory) and every
// other blob (descriptor only), with the images that use each.
type graph struct {
	manifests     map[digest.Digest]*Manifest
	manifestOrder []digest.Digest // parents before children
	blobs         map[digest.Digest]*blobInfo
	configOrder   []digest.Digest
	layerOrder    []digest.Digest
	users         map[digest.Digest][]string
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
	}
}

func (g *graph) addUser(d digest.Digest, ref string) {
	u := g.users[d]
	for _, x := range u {
		if x == ref {
			return
		}
	}
	g.users[d] = append(u, ref)
}

// Users returns the references of the images that use d.
func (g *graph) Users(d digest.Digest) []string { return g.users[d] }

// orderedBlobs returns non-manifest blobs in archive order: configs, then
// the layers that are compressed in the bundle, then the stored layers
// (see storedBlob), each in order of first reference. Stored frames have a
// length known in advance, so an exporter writing to a file can place them
// at their final offsets in parallel.
func (g *graph) orderedBlobs() []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(g.configOrder)+len(g.layerOrder))
	for _, d := range g.configOrder {
		out = append(out, g.blobs[d].desc)
	}
	var stored []ocispec.Descriptor
	for _, d := range g.layerOrder {
		if desc := g.blobs[d].desc; storedBlob(desc) {
			stored = append(stored, desc)
		} else {
			out = append(out, desc)
		}
	}
	return append(out, stored...)
}

// walker adds manifests to a graph breadth first. fetch returns the bytes
// of a manifest, already verified against desc.
type walker struct {
	g     *graph
	fetch func(desc ocispec.Descriptor) ([]byte, error)
}

type queued struct {
	desc  ocispec.Descriptor
	ref   string
	depth int
}

// walk adds the graph below the root descriptors of index.json (or of the
// resolved references) and returns an error naming the failing reference.
func (w *walker) walk(roots []ocispec.Descriptor, refs []string) error {
	queue := make([]queued, 0, len(roots))
	for i, d := range roots {
		queue = append(queue, queued{desc: d, ref: refs[i]})
	}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		w.g.addUser(q.desc.Digest, q.ref)
		if q.depth > maxGraphDepth {
			return &RefError{Ref: q.ref, Err: fmt.Errorf("%w: manifests nested deeper than %d levels", ErrCorrupt, maxGraphDepth)}
		}
		if m, ok := w.g.manifests[q.desc.Digest]; ok {
			// Already walked: only record the user on the subtree.
			for _, c := range m.kids {
				if c.manifest {
					queue = append(queue, queued{desc: c.desc, ref: q.ref, depth: q.depth + 1})
				} else {
					w.g.addUser(c.desc.Digest, q.ref)
				}
			}
			continue
		}
		b, err := w.fetch(q.desc)
		if err != nil {
			return &RefError{Ref: q.ref, Err: &BlobError{Op: "reading manifest", Digest: q.desc.Digest, Err: err}}
		}
		mt, children, err := parseManifest(b, q.desc.MediaType)
		if err != nil {
			return &RefError{Ref: q.ref, Err: fmt.Errorf("manifest %s: %w", q.desc.Digest, err)}
		}
		desc := q.desc
		desc.MediaType = mt
		m := &Manifest{Descriptor: desc, Bytes: b, kids: children}
		w.g.manifests[desc.Digest] = m
		w.g.manifestOrder = append(w.g.manifestOrder, desc.Digest)
		for _, c := range children {
			m.Children = append(m.Children, c.desc)
			if c.manifest {
				queue = append(queue, queued{desc: c.desc, ref: q.ref, depth: q.depth + 1})
				continue
			}
			w.g.addUser(c.desc.Digest, q.ref)
			if _, ok := w.g.blobs[c.desc.Digest]; ok {
				continue
			}
			w.g.blobs[c.desc.Digest] = &blobInfo{desc: c.desc, config: c.config}
			if c.config {
				w.g.configOrder = append(w.g.configOrder, c.desc.Digest)
			} else {
				w.g.layerOrder = append(w.g.layerOrder, c.desc.Digest)
			}
		}
	}
	// A digest cannot be both a manifest and a plain blob in one bundle.
	for d := range w.g.blobs {
		if _, ok := w.g.manifests[d]; ok {
			return fmt.Errorf("%w: %s is referenced both as a manifest and as a blob", ErrCorrupt, d)
		}
	}
	return nil
}
