package scan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
)

// Resolver answers the digest of the manifest a registry holds for a
// reference: for its digest when it has one (an error if the registry does
// not hold it), else for its tag.
type Resolver interface {
	Digest(ctx context.Context, ref bundle.Reference) (digest.Digest, error)
}

// RegistryResolver resolves with ferry's registry client, with a HEAD
// request for the manifest (Docker Hub does not count those against its
// pull rate limit) and the Accept header of export, so the digest is the
// one export would fetch. A registry that sends no Docker-Content-Digest
// header is asked with GET, and the digest computed from what it serves.
type RegistryResolver struct {
	Client *registry.Client
}

var _ Resolver = RegistryResolver{}

// Digest implements Resolver.
func (r RegistryResolver) Digest(ctx context.Context, ref bundle.Reference) (digest.Digest, error) {
	repo, err := r.Client.ParseRepository(ref.Name())
	if err != nil {
		return "", fmt.Errorf("%w: %v", bundle.ErrInvalidReference, err)
	}
	d, err := r.Client.HeadManifest(ctx, repo, ref.Identifier())
	if errors.Is(err, registry.ErrNotFound) {
		return "", fmt.Errorf("image not found in %s (check the name and tag): %w", ref.Domain, err)
	}
	return d, err
}

// DefaultPinJobs is how many references Pin resolves at once when jobs is 0.
const DefaultPinJobs = 8

// Pin returns refs with every tag resolved to the digest its registry
// holds now (name:tag@sha256:…), sorted and each once: a lock list whose
// export gives the same digests whenever it runs. A reference that already
// has a digest is kept as it is, once the registry has confirmed that it
// holds that digest. jobs references are resolved at once (0 means
// DefaultPinJobs). Every failure is listed in a *bundle.ResolveError.
func Pin(ctx context.Context, refs []bundle.Reference, res Resolver, jobs int) ([]bundle.Reference, error) {
	if jobs <= 0 {
		jobs = DefaultPinJobs
	}
	out := make([]bundle.Reference, len(refs))
	var mu sync.Mutex
	var failures []*bundle.RefError
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, ref := range refs {
		g.Go(func() error {
			d, err := res.Digest(gctx, ref)
			if err == nil && ref.Digest != "" && d != ref.Digest {
				err = fmt.Errorf("%w: the registry answers %s for it", registry.ErrDigestMismatch, d)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				mu.Lock()
				failures = append(failures, &bundle.RefError{Ref: ref.String(), Err: err})
				mu.Unlock()
				return nil
			}
			ref.Digest = d
			out[i] = ref
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		sort.Slice(failures, func(i, j int) bool { return failures[i].Ref < failures[j].Ref })
		return nil, &bundle.ResolveError{Failures: failures}
	}
	images := make([]Image, len(out))
	for i, r := range out {
		images[i] = Image{Ref: r}
	}
	return Refs(images), nil
}

// Drifted names the references of refs that carry both a tag and a digest
// whose tag the registry now resolves to another digest (name:1.0 pinned to
// what is now 1.1, by hand or long ago): the lock list keeps the digest,
// and the import sets the tag to it, which may not be what was meant.
// References it cannot resolve are left to Pin's own errors.
func Drifted(ctx context.Context, refs []bundle.Reference, res Resolver, jobs int) []string {
	if jobs <= 0 {
		jobs = DefaultPinJobs
	}
	out := make([]string, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, ref := range refs {
		if ref.Tag == "" || ref.Digest == "" {
			continue
		}
		g.Go(func() error {
			byTag := ref
			byTag.Digest = ""
			if d, err := res.Digest(gctx, byTag); err == nil && d != ref.Digest {
				out[i] = fmt.Sprintf("%s: the tag %s now points at %s at the registry; the lock list keeps %s, and an import sets the tag to it (pin %s again to follow the tag)",
					ref, ref.Tag, d, ref.Digest, byTag)
			}
			return nil
		})
	}
	_ = g.Wait()
	var warnings []string
	for _, w := range out {
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	sort.Strings(warnings)
	return warnings
}
