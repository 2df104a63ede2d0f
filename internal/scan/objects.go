package scan

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/ferryproject/ferry/bundle"
)

// podSpecAt says where each workload kind keeps its pod spec. A kind not
// listed here (a custom resource such as OpenShift's DeploymentConfig, an
// Argo Rollout or a Knative Service) is read at spec.template.spec when it
// holds containers there, the place Kubernetes' own pod templates use.
var podSpecAt = map[string]string{
	"Pod":                   "spec",
	"PodTemplate":           "template.spec",
	"Deployment":            "spec.template.spec",
	"StatefulSet":           "spec.template.spec",
	"DaemonSet":             "spec.template.spec",
	"ReplicaSet":            "spec.template.spec",
	"ReplicationController": "spec.template.spec",
	"Job":                   "spec.template.spec",
	"CronJob":               "spec.jobTemplate.spec.template.spec",
}

const defaultPodSpecAt = "spec.template.spec"

// maxReference bounds the length of an image reference: a name of at most
// 255 characters, a tag of 128, a digest of 135 (sha512), with room to
// spare.
const maxReference = 1024

// containerLists are the fields of a pod spec that list containers.
var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// scanner collects the images and problems of one file.
type scanner struct {
	file     string
	doc      int
	images   []Image
	problems []*Problem
	// indexes and found memoise the lookups of keys in mappings (see
	// get): a mapping merged or aliased many times over is read once.
	indexes map[*yaml.Node]*mapIndex
	found   map[foundKey]*yaml.Node
	// visited are the objects and lists scanned: one that an alias
	// names again is not scanned again (a list of containers
	// aliased into thousands of pods would otherwise be a YAML bomb).
	visited map[*yaml.Node]bool
	// structured: a document was a mapping or a list; scalar: one was
	// text (a file of text alone is not a manifest).
	structured, scalar bool
}

// nextDocument forgets what the memos hold of the last document: aliases
// do not cross documents, and its nodes can then be freed.
func (s *scanner) nextDocument() {
	s.indexes, s.found, s.visited = nil, nil, nil
}

// again reports whether n was scanned before, and marks it scanned.
func (s *scanner) again(n *yaml.Node) bool {
	if s.visited == nil {
		s.visited = map[*yaml.Node]bool{}
	}
	if s.visited[n] {
		return true
	}
	s.visited[n] = true
	return false
}

// document scans the top-level node of one document; anything but a
// Kubernetes object or a compose file is skipped.
func (s *scanner) document(root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		return
	}
	if s.isObject(root) {
		s.object(root, "")
		return
	}
	if services := deref(s.get(root, "services")); services != nil && services.Kind == yaml.MappingNode {
		s.compose(services)
	}
}

// isObject reports whether n is a Kubernetes object: a mapping with
// apiVersion and kind.
func (s *scanner) isObject(n *yaml.Node) bool {
	return scalar(s.get(n, "kind")) != "" && scalar(s.get(n, "apiVersion")) != ""
}

func (s *scanner) object(n *yaml.Node, path string) {
	if s.again(n) {
		return
	}
	kind := scalar(s.get(n, "kind"))
	if items := deref(s.get(n, "items")); strings.HasSuffix(kind, "List") && items != nil && items.Kind == yaml.SequenceNode {
		if s.again(items) {
			return
		}
		for i, item := range items.Content {
			if item = deref(item); item != nil && item.Kind == yaml.MappingNode && s.isObject(item) {
				s.object(item, join(path, fmt.Sprintf("items[%d]", i)))
			}
		}
		return
	}
	at, known := podSpecAt[kind]
	if !known {
		at = defaultPodSpecAt
	}
	spec := s.walk(n, at)
	if spec == nil || spec.Kind != yaml.MappingNode {
		return
	}
	if !known {
		if c := deref(s.get(spec, "containers")); c == nil || c.Kind != yaml.SequenceNode {
			return
		}
	}
	s.podSpec(spec, join(path, at))
}

func (s *scanner) podSpec(spec *yaml.Node, path string) {
	for _, field := range containerLists {
		list := deref(s.get(spec, field))
		if list == nil || list.Kind != yaml.SequenceNode || s.again(list) {
			continue
		}
		for i, c := range list.Content {
			if img := s.get(c, "image"); img != nil {
				s.value(img, fmt.Sprintf("%s.%s[%d].image", path, field, i))
			}
		}
	}
}

// compose scans services.*.image of a compose file, services merged from
// an anchor included. A service without an image (one that is built)
// names none.
func (s *scanner) compose(services *yaml.Node) {
	for _, e := range entries(services) {
		if img := s.get(e.value, "image"); img != nil {
			s.value(img, "services."+e.key+".image")
		}
	}
}

// value records the image reference n, or a problem.
func (s *scanner) value(n *yaml.Node, path string) {
	n = deref(n)
	if n == nil {
		return
	}
	at := Location{File: s.file, Line: n.Line, Doc: s.doc, Path: path}
	var err error
	switch {
	case n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || strings.TrimSpace(n.Value) == ""):
		err = fmt.Errorf("%w: the value is empty", bundle.ErrInvalidReference)
	case n.Kind == yaml.ScalarNode && len(n.Value) > maxReference:
		// Not quoted into the error: it could be megabytes.
		err = fmt.Errorf("%w: a value of %d bytes, longer than any image reference", bundle.ErrInvalidReference, len(n.Value))
	case n.Kind == yaml.ScalarNode:
		var ref bundle.Reference
		if ref, err = bundle.ParseReference(n.Value); err == nil {
			s.images = append(s.images, Image{Ref: ref, Where: at})
			return
		}
		switch {
		case strings.Contains(n.Value, "{{"):
			err = fmt.Errorf("%w (an unrendered template: scan the output of 'helm template')", err)
		case strings.Contains(n.Value, "${"):
			err = fmt.Errorf("%w (variables are not expanded: scan the output of 'docker compose config')", err)
		}
	case n.Kind == yaml.MappingNode && len(n.Content) > 0 && deref(n.Content[0]) != nil && deref(n.Content[0]).Kind == yaml.MappingNode:
		// image: {{ .Values.image }} reads as a mapping in a mapping.
		err = fmt.Errorf("%w: a mapping, not a string (an unrendered template: scan the output of 'helm template')", bundle.ErrInvalidReference)
	case n.Kind == yaml.MappingNode:
		err = fmt.Errorf("%w: a mapping, not a string", bundle.ErrInvalidReference)
	default:
		err = fmt.Errorf("%w: a list, not a string", bundle.ErrInvalidReference)
	}
	s.problems = append(s.problems, &Problem{Location: at, Err: err})
}

// deref follows a document to its content and an alias to the node it
// names (which is never an alias itself).
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return nil
		}
		n = n.Content[0]
	}
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// get returns the value of key in the mapping n, nil if there is none:
// its own key first (the first of them), then those of the mappings it
// merges (<<: *anchor, <<: [*a, *b]), in order, each searched the same
// way, as YAML merges them. Every answer is kept: a mapping that many
// others merge (anchors that merge each other twice over, or one wide
// mapping merged into every container) is searched once per key, not
// once per use, which would cost 2^depth or keys × uses.
func (s *scanner) get(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	if s.found == nil {
		s.found, s.indexes = map[foundKey]*yaml.Node{}, map[*yaml.Node]*mapIndex{}
	}
	fk := foundKey{n, key}
	if v, ok := s.found[fk]; ok {
		return v
	}
	s.found[fk] = nil // a mapping that merges itself finds nothing there
	idx := s.index(n)
	v, ok := idx.own[key]
	if !ok {
		for _, m := range idx.merges {
			if v = s.get(m, key); v != nil {
				break
			}
		}
	}
	s.found[fk] = v
	return v
}

type foundKey struct {
	n   *yaml.Node
	key string
}

// mapIndex is a mapping's own scalar keys (the first of each) with their
// values, and the mappings it merges, in order.
type mapIndex struct {
	own    map[string]*yaml.Node
	merges []*yaml.Node
}

func (s *scanner) index(n *yaml.Node) *mapIndex {
	if idx, ok := s.indexes[n]; ok {
		return idx
	}
	idx := &mapIndex{own: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := deref(n.Content[i])
		switch {
		case k == nil || k.Kind != yaml.ScalarNode:
		case k.Tag == "!!merge":
			if m := deref(n.Content[i+1]); m != nil && m.Kind == yaml.SequenceNode {
				idx.merges = append(idx.merges, m.Content...)
			} else {
				idx.merges = append(idx.merges, m)
			}
		default:
			if _, dup := idx.own[k.Value]; !dup {
				idx.own[k.Value] = n.Content[i+1]
			}
		}
	}
	s.indexes[n] = idx
	return idx
}

type entry struct {
	key   string
	value *yaml.Node
}

// entries lists the scalar keys of the mapping n with their values, those
// of merged mappings (<<: *anchor, <<: [*a, *b]) after its own, each key
// once: the first wins, as YAML merges them. Each merged mapping is read
// once, however often it is merged: anchors that merge each other twice
// over would otherwise cost 2^depth.
func entries(n *yaml.Node) []entry {
	var out []entry
	have := map[string]bool{}
	seen := map[*yaml.Node]bool{}
	var add func(n *yaml.Node)
	add = func(n *yaml.Node) {
		n = deref(n)
		if n == nil || n.Kind != yaml.MappingNode || seen[n] {
			return
		}
		seen[n] = true
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			switch {
			case k == nil || k.Kind != yaml.ScalarNode:
			case k.Tag == "!!merge":
				merges = append(merges, n.Content[i+1])
			case !have[k.Value]:
				have[k.Value] = true
				out = append(out, entry{k.Value, n.Content[i+1]})
			}
		}
		for _, m := range merges {
			if m = deref(m); m != nil && m.Kind == yaml.SequenceNode {
				for _, item := range m.Content {
					add(item)
				}
			} else {
				add(m)
			}
		}
	}
	add(n)
	return out
}

// walk follows a dotted path of keys.
func (s *scanner) walk(n *yaml.Node, path string) *yaml.Node {
	for _, k := range strings.Split(path, ".") {
		if n = s.get(n, k); n == nil {
			return nil
		}
	}
	return deref(n)
}

// scalar is the text of a scalar node, "" for anything else.
func scalar(n *yaml.Node) string {
	if n = deref(n); n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func join(prefix, rest string) string {
	if prefix == "" {
		return rest
	}
	return prefix + "." + rest
}
