package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/internal/registry"
)

// isCosignTag reports whether tag is one of cosign's sha256-<hex>.sig,
// .att or .sbom tags.
func isCosignTag(tag string) bool {
	hex, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return false
	}
	for _, suffix := range cosignSuffixes {
		if h, ok := strings.CutSuffix(hex, suffix); ok {
			return validateDigest(digest.Digest("sha256:"+h)) == nil
		}
	}
	return false
}

// isFallbackTag reports whether tag is the fallback tag sha256-<hex> that
// lists the referrers of a manifest where a registry has no Referrers API.
func isFallbackTag(tag string) bool {
	hex, ok := strings.CutPrefix(tag, "sha256-")
	return ok && validateDigest(digest.Digest("sha256:"+hex)) == nil
}

// isListTag reports whether tag holds a list that tools add to rather than
// replace: a cosign tag (signatures) or a fallback tag (referrers).
func isListTag(tag string) bool { return isCosignTag(tag) || isFallbackTag(tag) }

// cosignManifest is what a cosign tag holds: an image manifest whose
// layers are the signatures (attestations, SBOMs), one each.
type cosignManifest struct {
	ocispec.Manifest
	raw map[string]json.RawMessage
}

func parseCosignManifest(b []byte) (*cosignManifest, bool) {
	var m cosignManifest
	if json.Unmarshal(b, &m.Manifest) != nil || json.Unmarshal(b, &m.raw) != nil {
		return nil, false
	}
	switch m.MediaType {
	case ocispec.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
		return &m, m.SchemaVersion == 2
	}
	return nil, false
}

// pushCosignTag sets a cosign tag (or a fallback tag: see mergeIndex) at
// a registry without dropping what is there: the tag holds a list of signatures (cosign sign adds a layer to
// it), and the destination may have its own, made by cosign sign with the
// air-gapped side's key. The layers of the bundle's manifest m missing
// from the one the tag holds are appended to it; the tag then holds every
// signature of both. A tag that holds nothing, or no cosign manifest, is
// set to m. It returns the digest the tag holds afterwards.
func (im *importer) pushCosignTag(ctx context.Context, rt *registryTarget, t imageTarget, m *Manifest) (digest.Digest, error) {
	repo, ok := rt.repos[t.repo]
	if !ok {
		return "", fmt.Errorf("unknown repository %s", t.repo)
	}
	cur, err := rt.client.GetManifest(ctx, repo, t.src.Tag, MaxManifestBytes)
	if errors.Is(err, registry.ErrNotFound) {
		return m.Descriptor.Digest, rt.pushManifest(ctx, t.repo, t.src.Tag, m)
	}
	if err != nil {
		return "", fmt.Errorf("reading what %s holds, to add the bundle's signatures to it: %w", rt.display(t.repo, t.src.Tag), err)
	}
	if cur.Digest == m.Descriptor.Digest {
		return cur.Digest, nil
	}
	// The bundle's own manifest is at the destination by digest too.
	if err := rt.pushManifest(ctx, t.repo, "", m); err != nil {
		return "", err
	}
	if isFallbackTag(t.src.Tag) {
		// A list of referrers (exported as an image, by a list of every
		// tag): the entries the destination's lacks are added to it, as
		// import adds its referrers (mergeReferrersTag). A tag that holds
		// no OCI image index, or a bundle entry that is none, is set to m.
		var idx ocispec.Index
		subject := digest.Digest("sha256:" + strings.TrimPrefix(t.src.Tag, "sha256-"))
		if json.Unmarshal(m.Bytes, &idx) == nil && idx.MediaType == ocispec.MediaTypeImageIndex {
			d, _, err := rt.mergeReferrersTag(ctx, repo, subject, idx.Manifests)
			if !errors.Is(err, ErrConflict) {
				return d, err
			}
		}
		return m.Descriptor.Digest, rt.pushManifest(ctx, t.repo, t.src.Tag, m)
	}
	have, ok := parseCosignManifest(cur.Bytes)
	add, ok2 := parseCosignManifest(m.Bytes)
	if !ok || !ok2 {
		return m.Descriptor.Digest, rt.pushManifest(ctx, t.repo, t.src.Tag, m)
	}
	layers := have.Layers
	seen := map[digest.Digest]bool{}
	for _, l := range layers {
		seen[l.Digest] = true
	}
	for _, l := range add.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			layers = append(layers, l)
		}
	}
	if len(layers) == len(have.Layers) {
		return cur.Digest, nil // every signature of the bundle is there
	}
	lb, err := json.Marshal(layers)
	if err != nil {
		return "", err
	}
	have.raw["layers"] = lb
	// The config lists the layers (rootfs.diff_ids; a signature layer is
	// not compressed, so its diff ID is its digest), as cosign writes it.
	if cfg, err := im.cosignConfig(ctx, rt, t.repo, have.Config, layers); err != nil {
		return "", err
	} else if cfg != nil {
		cb, err := json.Marshal(cfg)
		if err != nil {
			return "", err
		}
		have.raw["config"] = cb
	}
	b, err := json.Marshal(have.raw)
	if err != nil {
		return "", err
	}
	if len(b) > MaxManifestBytes {
		return "", fmt.Errorf("%w: %s with the bundle's signatures added would be %d bytes, more than the %d a manifest may have", ErrTooLarge, rt.display(t.repo, t.src.Tag), len(b), MaxManifestBytes)
	}
	merged := &Manifest{Descriptor: ocispec.Descriptor{MediaType: have.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, Bytes: b}
	return merged.Descriptor.Digest, rt.pushManifest(ctx, t.repo, t.src.Tag, merged)
}

// maxCosignConfig caps the config of a cosign manifest read to merge it.
const maxCosignConfig = 1 << 20

// cosignConfig is the config of a cosign manifest whose layers became
// layers: the config it had with rootfs.diff_ids set to their digests,
// pushed to repo; nil (the config is kept) when it is not a JSON object.
func (im *importer) cosignConfig(ctx context.Context, rt *registryTarget, repo string, desc ocispec.Descriptor, layers []ocispec.Descriptor) (*ocispec.Descriptor, error) {
	if desc.Size > maxCosignConfig || desc.Size < 0 {
		return nil, nil
	}
	rc, err := rt.client.GetBlob(ctx, rt.repos[repo], desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading the config %s of a cosign manifest: %w", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(NewVerifyReader(rc, desc))
	if err != nil {
		return nil, fmt.Errorf("reading the config %s of a cosign manifest: %w", desc.Digest, err)
	}
	var cfg map[string]json.RawMessage
	if json.Unmarshal(b, &cfg) != nil || cfg == nil {
		return nil, nil
	}
	ids := make([]digest.Digest, len(layers))
	for i, l := range layers {
		ids[i] = l.Digest
	}
	rootfs, err := json.Marshal(map[string]any{"type": "layers", "diff_ids": ids})
	if err != nil {
		return nil, err
	}
	cfg["rootfs"] = rootfs
	nb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	nd := ocispec.Descriptor{MediaType: desc.MediaType, Digest: digest.FromBytes(nb), Size: int64(len(nb))}
	if err := rt.client.PushBlob(ctx, rt.repos[repo], nd.Digest, nd.Size, bytes.NewReader(nb)); err != nil {
		return nil, fmt.Errorf("pushing the config of a cosign manifest: %w", err)
	}
	return &nd, nil
}
