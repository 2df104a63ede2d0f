package bundle

import (
	"context"
	"slices"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// transferAll is the one scheduler of blob transfers, for export (stored
// layers fetched into their place) and import (blobs pushed to the
// destination): largest first, so a run does not end waiting on one big
// blob that started late; Jobs blobs over memSpoolLimit at once, and
// metaJobs small ones beside them, whose time is round trips rather than
// bandwidth (Jobs 1: one at a time in all). The first failure stops the
// scheduling of the rest and is returned.
func transferAll(ctx context.Context, jobs int, blobs []ocispec.Descriptor, transfer func(ctx context.Context, desc ocispec.Descriptor) error) error {
	blobs = slices.Clone(blobs)
	sort.SliceStable(blobs, func(i, j int) bool { return blobs[i].Size > blobs[j].Size })
	split := sort.Search(len(blobs), func(i int) bool { return blobs[i].Size <= memSpoolLimit })
	type part struct {
		blobs []ocispec.Descriptor
		limit int
	}
	parts := []part{{blobs[:split], jobs}, {blobs[split:], metaJobs(jobs)}}
	if jobs == 1 {
		parts = []part{{blobs, 1}}
	}
	eg, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		eg.Go(func() error {
			g, ctx := errgroup.WithContext(ctx)
			g.SetLimit(p.limit)
			for _, desc := range p.blobs {
				if ctx.Err() != nil {
					break // a blob failed: start no more
				}
				g.Go(func() error {
					if ctx.Err() != nil {
						return nil // failed while this one waited for a slot
					}
					return transfer(ctx, desc)
				})
			}
			return g.Wait()
		})
	}
	return eg.Wait()
}
