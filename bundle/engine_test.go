package bundle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func blobsOfSizes(sizes ...int64) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, len(sizes))
	for i, s := range sizes {
		out[i] = ocispec.Descriptor{Digest: digest.FromBytes([]byte{byte(i), byte(i >> 8)}), Size: s}
	}
	return out
}

// transferAll: largest first, Jobs large and 4×Jobs small at once, one at a
// time with Jobs 1, and no new transfer after a failure.
func TestTransferAll(t *testing.T) {
	big, small := int64(memSpoolLimit+1), int64(100)
	// Jobs 1: one at a time, largest first.
	var order []int64
	err := transferAll(context.Background(), 1, blobsOfSizes(small, big, 5*big, small+1), func(_ context.Context, d ocispec.Descriptor) error {
		order = append(order, d.Size)
		return nil
	})
	if err != nil || len(order) != 4 || order[0] != 5*big || order[1] != big || order[2] != small+1 || order[3] != small {
		t.Errorf("jobs 1: order %v, %v; want largest first", order, err)
	}

	// Jobs 2: at most 2 large and 8 small in flight; both kinds at once.
	var sizes []int64
	for range 6 {
		sizes = append(sizes, big)
	}
	for range 40 {
		sizes = append(sizes, small)
	}
	var mu sync.Mutex
	inLarge, inSmall, maxLarge, maxSmall := 0, 0, 0, 0
	err = transferAll(context.Background(), 2, blobsOfSizes(sizes...), func(_ context.Context, d ocispec.Descriptor) error {
		mu.Lock()
		if d.Size > memSpoolLimit {
			inLarge++
			maxLarge = max(maxLarge, inLarge)
		} else {
			inSmall++
			maxSmall = max(maxSmall, inSmall)
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // let others start; no assertion on time
		mu.Lock()
		if d.Size > memSpoolLimit {
			inLarge--
		} else {
			inSmall--
		}
		mu.Unlock()
		return nil
	})
	if err != nil || maxLarge > 2 || maxSmall > 8 || maxLarge == 0 || maxSmall == 0 {
		t.Errorf("jobs 2: at most %d large and %d small at once (%v); want 1-2 and 1-8", maxLarge, maxSmall, err)
	}

	// A failure stops the scheduling of the rest.
	boom := errors.New("boom")
	var started atomic.Int64
	err = transferAll(context.Background(), 1, blobsOfSizes(big, big, big, big), func(context.Context, ocispec.Descriptor) error {
		started.Add(1)
		return boom
	})
	if !errors.Is(err, boom) || started.Load() != 1 {
		t.Errorf("after a failure %d transfers started (%v), want 1", started.Load(), err)
	}
}

// transferInOrder: commits in the order given, whatever order transfers
// finish in; at most 2×Jobs+metaJobs transferred and not yet committed;
// nothing committed after a failure, and no transfer started after it.
func TestTransferInOrder(t *testing.T) {
	const jobs = 2
	sizes := make([]int64, 60)
	for i := range sizes {
		sizes[i] = int64(1000 + i)
	}
	blobs := blobsOfSizes(sizes...)
	window := 2*jobs + metaJobs(jobs)
	var mu sync.Mutex
	var committed []int64
	ahead, maxAhead := 0, 0
	// The first blob finishes only once a whole window has started: the
	// others finish first and wait for it.
	full := make(chan struct{})
	var fill sync.Once
	deadlock := time.After(time.Minute) // a guard, not a measurement
	err := transferInOrder(context.Background(), jobs, blobs, func(_ context.Context, d ocispec.Descriptor) error {
		mu.Lock()
		ahead++
		maxAhead = max(maxAhead, ahead)
		if ahead == window {
			fill.Do(func() { close(full) })
		}
		mu.Unlock()
		if d.Size == 1000 {
			select {
			case <-full:
			case <-deadlock:
				return errors.New("the window never filled")
			}
		}
		return nil
	}, func(d ocispec.Descriptor) error {
		mu.Lock()
		defer mu.Unlock()
		committed = append(committed, d.Size)
		ahead--
		return nil
	})
	if err != nil || len(committed) != len(sizes) {
		t.Fatalf("committed %d of %d: %v", len(committed), len(sizes), err)
	}
	for i, s := range committed {
		if s != sizes[i] {
			t.Fatalf("commit %d is blob %d, want %d: out of order", i, s, sizes[i])
		}
	}
	if maxAhead > window {
		t.Errorf("%d blobs transferred ahead of their commit, want at most %d", maxAhead, window)
	}

	// A failure: nothing after it is committed, no transfer starts after
	// it, and it is returned.
	boom := errors.New("boom")
	var started atomic.Int64
	committed = nil
	err = transferInOrder(context.Background(), 1, blobs, func(_ context.Context, d ocispec.Descriptor) error {
		started.Add(1)
		if d.Size == 1003 {
			return boom
		}
		return nil
	}, func(d ocispec.Descriptor) error {
		committed = append(committed, d.Size)
		return nil
	})
	if !errors.Is(err, boom) || len(committed) != 3 || started.Load() > int64(3+1+2+metaJobs(1)) {
		t.Errorf("after a failure at blob 3: %v, committed %v, %d started; want boom, 3 committed, at most a window started", err, committed, started.Load())
	}
}
