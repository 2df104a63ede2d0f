package bundle

import (
	"context"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// ExportPlan is what Export would write, found by PlanExport without
// downloading a layer.
type ExportPlan struct {
	// Images are the exported references in index.json order, each with
	// its digest, platforms and the total of the distinct blobs it uses.
	Images []Image
	// Blobs and UniqueBytes are what the bundle would carry, deduplicated:
	// every manifest, config and layer once (delta bases left out).
	Blobs       int
	UniqueBytes int64
	// LeftOut and LeftOutBytes count the configs and layers a delta would
	// leave out because a base holds them.
	LeftOut      int
	LeftOutBytes int64
	// ReferencedBytes is the total over every image of the blobs it uses.
	ReferencedBytes int64
	Platforms       int
	// Rewritten lists references whose index the platform filter rewrites.
	Rewritten []RewrittenIndex
	// Probes are the blob downloads PlanExport started, one per repository,
	// to reach the hosts a registry redirects downloads to (see PlanExport).
	Probes []BlobProbe
}

// BlobProbe is a blob download PlanExport started and ended after its first
// byte. Err says why it failed: the export would fail there too.
type BlobProbe struct {
	Repository string
	Digest     digest.Digest
	Err        error
}

// PlanExport resolves refs as Export does (every manifest, the configs of
// single-platform images for their platform, the platform filter, delta
// bases) and reports what the bundle would hold, without writing anything.
// Layers are not downloaded, but for each repository of a registry one
// blob's download is started and ended after its first byte (a Range
// request): registries that redirect downloads to storage or a CDN on
// another host are followed there, so RegistryOptions.Egress sees every
// host the export would contact. A failed probe is in Probes, not in the
// error.
func PlanExport(ctx context.Context, refs []string, opts ExportOptions) (*ExportPlan, error) {
	e, err := newExporter(opts)
	if err != nil {
		return nil, err
	}
	_, _, g, index, _, err := e.prepare(ctx, refs)
	if err != nil {
		return nil, err
	}
	sum := &ExportSummary{}
	images := e.count(sum, g, index)
	p := &ExportPlan{
		Images: images, Blobs: sum.Blobs, UniqueBytes: sum.UniqueBytes, LeftOut: sum.LeftOut, LeftOutBytes: sum.LeftOutBytes,
		ReferencedBytes: sum.ReferencedBytes, Platforms: sum.Platforms,
	}
	for _, img := range index.Manifests {
		if o := img.Annotations[AnnotationOriginalDigest]; o != "" {
			p.Rewritten = append(p.Rewritten, RewrittenIndex{Ref: img.Annotations[AnnotationRefName], Original: digest.Digest(o), Rewritten: img.Digest})
		}
	}
	p.Probes = e.probe(ctx, g)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// probe starts the download of one blob per registry repository: a layer
// when it has one, the smallest digest first, so the choice is stable.
func (e *exporter) probe(ctx context.Context, g *graph) []BlobProbe {
	pick := map[string]BlobProbe{}
	var order []string
	for d, src := range e.blobSrc {
		if _, ok := src.(registrySource); !ok || e.leftOut[d] || g.blobs[d] == nil {
			continue
		}
		_, config := e.configs[d]
		key := src.String()
		cur, ok := pick[key]
		if !ok {
			order = append(order, key)
		}
		_, curConfig := e.configs[cur.Digest]
		if !ok || (curConfig && !config) || (curConfig == config && d < cur.Digest) {
			pick[key] = BlobProbe{Repository: key, Digest: d}
		}
	}
	slices.Sort(order)
	probes := make([]BlobProbe, len(order))
	var eg errgroup.Group
	eg.SetLimit(metaJobs(e.opts.Jobs))
	for i, key := range order {
		eg.Go(func() error {
			p := pick[key]
			src := e.blobSrc[p.Digest].(registrySource)
			if err := e.client.ProbeBlob(ctx, src.repo, p.Digest); err != nil {
				p.Err = fmt.Errorf("starting the download of blob %s from %s: %w", p.Digest, key, err)
			}
			probes[i] = p
			return nil
		})
	}
	_ = eg.Wait()
	return probes
}

// newExporter checks opts and makes the state of one export.
func newExporter(opts ExportOptions) (*exporter, error) {
	opts.Jobs = defaultJobs(opts.Jobs)
	e := &exporter{
		opts:      opts,
		client:    opts.Registry.client(),
		manifests: map[digest.Digest]fetched{},
		blobSrc:   map[digest.Digest]upstream{},
		configs:   map[digest.Digest][]byte{},
	}
	for _, p := range opts.Platforms {
		pl, err := ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		e.platforms = append(e.platforms, pl)
	}
	return e, nil
}

// prepare resolves refs, finds their referrers, checks publisher
// signatures when asked, and builds index.json and the content graph: all
// of an export but the blobs. It returns the images and the index entries
// of their referrers.
func (e *exporter) prepare(ctx context.Context, refs []string) ([]*image, []ocispec.Descriptor, *graph, ocispec.Index, []byte, error) {
	if len(refs) == 0 {
		return nil, nil, nil, ocispec.Index{}, nil, fmt.Errorf("no image references given")
	}
	images, err := e.resolveAll(ctx, refs)
	if err != nil {
		return nil, nil, nil, ocispec.Index{}, nil, err
	}
	var referrers []ocispec.Descriptor
	var found map[digest.Digest][]ocispec.Descriptor
	if !e.opts.NoReferrers {
		if found, err = e.findReferrers(ctx, images); err != nil {
			return nil, nil, nil, ocispec.Index{}, nil, err
		}
		referrers = e.referrerEntries(images, found)
	}
	if e.opts.RequireSignature != nil {
		if err := e.checkSignatures(ctx, images, found); err != nil {
			return nil, nil, nil, ocispec.Index{}, nil, err
		}
	}
	g, index, indexBytes, err := e.buildIndex(images, referrers)
	return images, referrers, g, index, indexBytes, err
}

// count fills the statistics of sum from the graph and returns the images
// with their sizes.
func (e *exporter) count(sum *ExportSummary, g *graph, index ocispec.Index) []Image {
	for _, m := range g.manifests {
		sum.Blobs++
		sum.UniqueBytes += m.Descriptor.Size
	}
	for d, b := range g.blobs {
		if e.leftOut[d] {
			sum.LeftOut++
			sum.LeftOutBytes += b.desc.Size
			continue
		}
		sum.Blobs++
		sum.UniqueBytes += b.desc.Size
	}
	images := (&Reader{g: g, index: index}).Images()
	for _, img := range images {
		sum.ReferencedBytes += img.Size
		for _, ref := range img.Referrers {
			sum.ReferencedBytes += ref.Size
		}
		sum.Platforms += len(img.Platforms)
	}
	return images
}
