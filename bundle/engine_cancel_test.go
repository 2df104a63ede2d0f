package bundle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestTransferAllEndedContext: when the caller's context ends while every
// transfer in progress succeeds (a local source and target do not look at
// it), transferAll says so rather than returning nil with blobs left out;
// with no transfer in progress at all, too.
func TestTransferAllEndedContext(t *testing.T) {
	for _, jobs := range []int{1, 4} {
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int32 // with jobs 4, transfers can start before the cancel is seen
		err := transferAll(ctx, jobs, blobsOfSizes(300, 200, 100), func(context.Context, ocispec.Descriptor) error {
			n.Add(1)
			cancel() // the first transfer completes; the interrupt comes meanwhile
			return nil
		})
		if !errors.Is(err, context.Canceled) || err.Error() != "context canceled" {
			t.Errorf("jobs %d: %d of 3 transferred and got %v, want context.Canceled", jobs, n.Load(), err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		err = transferAll(ctx, jobs, blobsOfSizes(300, 200, 100), func(context.Context, ocispec.Descriptor) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("jobs %d, context ended before: got %v, want context.Canceled", jobs, err)
		}
	}
	// A failure still comes first, not the cancellation it causes.
	boom := errors.New("boom")
	err := transferAll(context.Background(), 1, blobsOfSizes(300, 200), func(context.Context, ocispec.Descriptor) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want the failure", err)
	}
}
