package bundle

// The copy engine: the one loop that moves blobs for export (a registry or
// an OCI layout into the bundle archive) and for import (the bundle archive
// into a registry or an OCI layout). Sources and targets only read, check,
// put and commit; the engine owns the job limits, the order (largest first,
// or the target's order), the one retry helper, progress events, the
// counts and the BlobError that names the images of a failed blob.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/registry"
)

// source is where the engine reads blobs.
type source interface {
	// fetch opens blob desc, verified as it is read: content that does not
	// match desc fails a Read.
	fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
	// failed says how a failure to read desc is reported (the BlobError
	// operation and cause) and whether reading again may help: it may over
	// a network, not from a local file.
	failed(desc ocispec.Descriptor, err error) (op string, cause error, again bool)
}

// sequentialSource is a source read once, in its own order (a bundle on
// standard input): the engine copies its blobs as they come.
type sequentialSource interface {
	source
	// next returns the next blob, an opener that may be called again (it
	// spools what it reads) and done, which releases the spool, after
	// reading what is left of the blob (so it is verified whole) when
	// finish is true; after a failure the stream is not read further.
	// io.EOF after the last blob.
	next() (desc ocispec.Descriptor, open opener, done func(finish bool) error, err error)
}

// opener opens the content of a blob, verified as it is read; it may be
// called again to send the blob again.
type opener func() (io.ReadCloser, error)

// fetcher opens a blob for the engine, with the context of one attempt.
type fetcher func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)

// blobOutcome is how a target came to hold a blob.
type blobOutcome int

const (
	blobUploaded blobOutcome = iota // sent (or written) in full
	blobMounted                     // from another repository of the target
	blobPresent                     // the repository had it
)

// blobTarget is where the engine puts blobs.
type blobTarget interface {
	// pushBlob makes blob desc present in repo. from, when not empty, is a
	// repository of the same target known to hold it (a mount source).
	pushBlob(ctx context.Context, repo, from string, desc ocispec.Descriptor, open opener) (blobOutcome, error)
	// display names repo and ref for messages and results.
	display(repo, ref string) string
}

// checker is a target that can tell, changing nothing, whether a
// repository holds a blob.
type checker interface {
	holds(ctx context.Context, repo string, desc ocispec.Descriptor) (bool, error)
}

// orderedTarget is a target that takes some blobs in a fixed order: the
// bundle archive written to a stream.
type orderedTarget interface {
	blobTarget
	// inOrder splits blobs into those put in any order and those that must
	// be appended in the order returned. pushBlob prepares one of the
	// latter (in parallel with others); flush appends it, once every blob
	// before it is appended.
	inOrder(blobs []ocispec.Descriptor) (anyOrder, ordered []ocispec.Descriptor)
	flush(desc ocispec.Descriptor) error
}

// copier is one run of the engine.
type copier struct {
	verb     string // "export" or "import", for what the operator re-runs
	jobs     int
	client   *registry.Client // the retry budget and backoff
	progress ProgressFunc
	users    func(digest.Digest) []string // images that use a blob, for errors
	// repos returns the repositories of the target that need a blob; the
	// first gets it, the others mount it from there.
	repos func(digest.Digest) []string
	total int64
	large chan struct{} // one per blob over memSpoolLimit in flight: Jobs
	// outcome, when set, learns how each repository came to hold each
	// blob (import counts them per image); called from several
	// goroutines.
	outcome func(repo string, desc ocispec.Descriptor, how blobOutcome)

	uploaded, mounted, present, bytesUp atomic.Int64
}

func newCopier(verb string, jobs int, client *registry.Client, progress ProgressFunc, users func(digest.Digest) []string) *copier {
	return &copier{
		verb: verb, jobs: jobs, client: client, progress: progress, users: users,
		repos: func(digest.Digest) []string { return []string{""} },
		large: make(chan struct{}, jobs),
	}
}

// copyBlobs copies blobs from src to dst. The first failure stops the
// scheduling of the rest and is returned.
func (c *copier) copyBlobs(ctx context.Context, src source, dst blobTarget, blobs []ocispec.Descriptor) error {
	for _, b := range blobs {
		c.total += b.Size
	}
	c.progress.emit(Event{Kind: EventPlanned, Total: c.total, Blobs: len(blobs)})
	if s, ok := src.(sequentialSource); ok {
		for {
			// Neither a stream nor an OCI layout target looks at the
			// context: an interrupted copy stops here.
			if err := ctx.Err(); err != nil {
				return err
			}
			desc, open, done, err := s.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			// done reads what the target did not, so every blob is
			// verified whole whatever the target holds.
			_, err = c.copyBlob(ctx, src, dst, desc, func(context.Context, ocispec.Descriptor) (io.ReadCloser, error) { return open() })
			if derr := done(err == nil); err == nil && derr != nil {
				err = c.readFailed(src, desc, derr)
			}
			if err != nil {
				return err
			}
		}
	}
	copyOne := func(ctx context.Context, desc ocispec.Descriptor) error {
		opened, err := c.copyBlob(ctx, src, dst, desc, src.fetch)
		if err != nil || opened {
			return err
		}
		// The target had it everywhere: still read it from the source, so
		// a copy succeeds only if every blob of its source verifies,
		// whatever the target holds.
		rc, err := src.fetch(ctx, desc)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			return c.readFailed(src, desc, err)
		}
		return nil
	}
	o, ok := dst.(orderedTarget)
	if !ok {
		return transferAll(ctx, c.jobs, blobs, copyOne)
	}
	anyOrder, ordered := o.inOrder(blobs)
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return transferAll(ctx, c.jobs, anyOrder, copyOne) })
	eg.Go(func() error { return transferInOrder(ctx, c.jobs, ordered, copyOne, o.flush) })
	return eg.Wait()
}

// copyBlob makes desc present in every repository of dst that needs it:
// the first gets it from src, the others mount it from there, all at once.
// It reports whether it opened the source.
func (c *copier) copyBlob(ctx context.Context, src source, dst blobTarget, desc ocispec.Descriptor, open fetcher) (opened bool, err error) {
	if desc.Size > memSpoolLimit {
		select {
		case c.large <- struct{}{}:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		defer func() { <-c.large }()
	}
	var started sync.Once
	var was atomic.Bool
	// Bytes of the blob reported so far, by every attempt and repository:
	// a blob read again (after a broken attempt, or for another
	// repository) reports only what goes past it.
	reported := new(atomic.Int64)
	start := func() {
		was.Store(true)
		started.Do(func() { c.emit(EventBlobStart, desc) })
	}
	repos := c.repos(desc.Digest)
	if len(repos) == 0 {
		return false, nil
	}
	// While the first repository gets the blob, ask the others whether
	// they hold it already (a re-run): those are reported present, not
	// mounted. Asked before any mount, the answer cannot be the mount's
	// own doing; asked at the same time as the upload, it costs no time.
	held := make([]bool, len(repos))
	var checked chan struct{}
	if ch, ok := dst.(checker); ok && len(repos) > 1 {
		checked = make(chan struct{})
		go func() {
			defer close(checked)
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(metaJobs(c.jobs))
			for i, repo := range repos[1:] {
				g.Go(func() error {
					held[i+1], _ = ch.holds(gctx, repo, desc) // on failure, mount as usual
					return nil
				})
			}
			g.Wait()
		}()
		defer func() { <-checked }()
	}
	if err := c.put(ctx, src, dst, repos[0], "", desc, open, start, reported); err != nil {
		return was.Load(), err
	}
	if checked != nil {
		<-checked
	}
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(c.jobs))
	for i, repo := range repos[1:] {
		if held[i+1] {
			c.present.Add(1)
			c.record(repo, desc, blobPresent)
			c.emit(EventBlobSkipped, desc)
			continue
		}
		eg.Go(func() error { return c.put(gctx, src, dst, repo, repos[0], desc, open, start, reported) })
	}
	err = eg.Wait()
	return was.Load(), err
}

// put makes desc present in repo with the one retry helper: --retries N
// means at most N+1 requests, whether the source or the target failed.
func (c *copier) put(ctx context.Context, src source, dst blobTarget, repo, from string, desc ocispec.Descriptor, open fetcher, start func(), reported *atomic.Int64) error {
	// readErr is what the source failed with in the last attempt: only
	// this attempt's reads, not those of the other repositories.
	var mu sync.Mutex
	var readErr error
	failed := func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		if readErr == nil {
			readErr = err
		}
		return err
	}
	how, err := withRetries(ctx, c.client, func(ctx context.Context) (blobOutcome, bool, error) {
		mu.Lock()
		readErr = nil
		mu.Unlock()
		// Opened with this attempt's context, which carries the retry
		// budget the transport's own retries draw on.
		counted := func() (io.ReadCloser, error) {
			rc, err := open(ctx, desc)
			if err != nil {
				return nil, failed(err)
			}
			start()
			return &sourceReader{rc: rc, failed: failed, progress: c.progress, digest: desc.Digest.String(), reported: reported}, nil
		}
		how, err := dst.pushBlob(ctx, repo, from, desc, counted)
		if err == nil || ctx.Err() != nil {
			return how, false, err
		}
		mu.Lock()
		rerr := readErr
		mu.Unlock()
		if rerr != nil {
			_, _, again := src.failed(desc, rerr)
			return how, again, &sourceError{rerr}
		}
		return how, registry.IsTemporary(err), err
	})
	var se *sourceError
	var we *writeError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &se):
		op, cause, again := src.failed(desc, se.err)
		err := c.blobErr(op, desc.Digest, cause)
		if again {
			// Worth another try, but the retries ran out.
			retries, _ := c.client.RetryPolicy()
			err = &noteError{err: err, note: fmt.Sprintf("; gave up after %d retries (--retries raises the limit)", retries)}
		}
		return err
	case errors.As(err, &we):
		return fmt.Errorf("writing blob %s to the bundle: %w", desc.Digest, we.err)
	default:
		op := "push"
		if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated) {
			op = "verify"
		}
		if registry.IsTemporary(err) {
			retries, _ := c.client.RetryPolicy()
			err = fmt.Errorf("giving up after %d retries (re-run the %s to continue; --retries raises the limit): %w", retries, c.verb, err)
		}
		return c.blobErr(op, desc.Digest, fmt.Errorf("to %s: %w", dst.display(repo, ""), err))
	}
	c.record(repo, desc, how)
	switch how {
	case blobUploaded:
		c.uploaded.Add(1)
		c.bytesUp.Add(desc.Size)
		c.emit(EventBlobDone, desc)
	case blobMounted:
		c.mounted.Add(1)
		c.emit(EventBlobSkipped, desc)
	case blobPresent:
		c.present.Add(1)
		c.emit(EventBlobSkipped, desc)
	}
	return nil
}

// readFailed reports a failure to read desc from src.
func (c *copier) readFailed(src source, desc ocispec.Descriptor, err error) error {
	op, cause, _ := src.failed(desc, err)
	return c.blobErr(op, desc.Digest, cause)
}

func (c *copier) blobErr(op string, d digest.Digest, err error) error {
	var be *BlobError
	if errors.As(err, &be) {
		return err
	}
	return &BlobError{Op: op, Digest: d, Images: c.users(d), Err: err}
}

func (c *copier) emit(kind EventKind, desc ocispec.Descriptor) {
	if c.progress == nil {
		return
	}
	e := Event{Kind: kind, Digest: desc.Digest.String(), Size: desc.Size, Total: c.total}
	if kind == EventBlobStart {
		if users := c.users(desc.Digest); len(users) > 0 {
			e.Ref = users[0]
			if len(users) > 1 {
				e.Ref += fmt.Sprintf(" +%d", len(users)-1)
			}
		}
	}
	c.progress(e)
}

func (c *copier) record(repo string, desc ocispec.Descriptor, how blobOutcome) {
	if c.outcome != nil {
		c.outcome(repo, desc, how)
	}
}

// sourceError marks a failure to read the source, as opposed to a failure
// of the target.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// writeError marks a failure of the bundle output (disk full, read-only),
// which reading the source again does not help.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// sourceReader reads a blob from its source, recording a failure as the
// source's and reporting progress in steps of at least 1 MiB: the bytes
// past what any reader of the blob reported (reported), so the bytes of a
// blob add up to its size however often it is read.
type sourceReader struct {
	rc       io.ReadCloser
	failed   func(error) error
	progress ProgressFunc
	digest   string
	reported *atomic.Int64
	off      int64
	pending  int64
}

func (s *sourceReader) Read(b []byte) (int, error) {
	n, err := s.rc.Read(b)
	if err != nil && err != io.EOF {
		err = s.failed(err)
	}
	s.off += int64(n)
	for {
		r := s.reported.Load()
		if s.off <= r {
			break
		}
		if s.reported.CompareAndSwap(r, s.off) {
			s.pending += s.off - r
			break
		}
	}
	if s.progress != nil && (s.pending >= 1<<20 || (err != nil && s.pending > 0)) {
		s.progress(Event{Kind: EventBlobBytes, Digest: s.digest, Bytes: s.pending})
		s.pending = 0
	}
	return n, err
}

func (s *sourceReader) Close() error { return s.rc.Close() }

// transferAll schedules transfers in any order: largest first, so a run
// does not end waiting on one big blob that started late; Jobs blobs over
// memSpoolLimit at once, and metaJobs small ones beside them, whose time
// is round trips rather than bandwidth (Jobs 1: one at a time in all). The
// first failure stops the scheduling of the rest and is returned; so does
// the end of ctx, also when every transfer in progress succeeds (a local
// source and target never look at it): transfers left out are not done.
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
	parent := ctx
	eg, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		eg.Go(func() error {
			g, ctx := errgroup.WithContext(ctx)
			g.SetLimit(p.limit)
			var stopped error
			for _, desc := range p.blobs {
				if stopped = ctx.Err(); stopped != nil {
					break // a blob failed or the copy ended: start no more
				}
				g.Go(func() error {
					if err := ctx.Err(); err != nil {
						return err // ended while this one waited for a slot
					}
					return transfer(ctx, desc)
				})
			}
			// The first error is what ended ctx: a failed transfer, or the
			// caller's context.
			if err := g.Wait(); err != nil {
				return err
			}
			return stopped
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	// Ended while the last transfers ran (all of them, with enough jobs):
	// the caller asked to stop, and is told so whatever finished.
	return parent.Err()
}

// transferInOrder schedules transfers whose results are committed in the
// order given: Jobs+metaJobs transfers at once, each committed as soon as
// it and every one before it are done; at most 2×Jobs+metaJobs done and
// waiting, which bounds the memory and temporary disk they hold. The first
// failure stops the rest and is returned.
func transferInOrder(ctx context.Context, jobs int, blobs []ocispec.Descriptor, transfer func(ctx context.Context, desc ocispec.Descriptor) error, commit func(desc ocispec.Descriptor) error) error {
	ctx, cancel := context.WithCancel(ctx)
	small := metaJobs(jobs)
	window := make(chan struct{}, 2*jobs+small)
	errs := make([]error, len(blobs))
	done := make([]chan struct{}, len(blobs))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	defer func() {
		cancel() // stop the dispatch, which may wait for the window
		wg.Wait()
	}()
	next := make(chan int)
	for range jobs + small {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = transfer(ctx, blobs[i])
				close(done[i])
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range blobs {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i, desc := range blobs {
		select {
		case <-done[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if errs[i] != nil {
			return errs[i]
		}
		if err := commit(desc); err != nil {
			return err
		}
		<-window
	}
	return nil
}
