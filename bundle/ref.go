package bundle

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Reference is a normalised image reference: docker.io/library/nginx:1.27,
// registry.local:5000/team/app@sha256:..., or both tag and digest.
type Reference struct {
	Domain string // docker.io, registry.local:5000
	Path   string // library/nginx
	Tag    string // may be empty when Digest is set
	Digest digest.Digest
}

// ParseReference parses and normalises an image reference the way docker
// does: "nginx" is docker.io/library/nginx:latest.
func ParseReference(s string) (Reference, error) {
	s = strings.TrimSpace(s)
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
	}
	var r Reference
	r.Domain, r.Path = reference.Domain(named), reference.Path(named)
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
		if err := validateDigest(r.Digest); err != nil {
			return Reference{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Name is domain/path.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised form.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Identifier is what to ask the registry for: the digest when pinned,
// otherwise the tag.
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
