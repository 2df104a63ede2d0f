package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/registry"
)

// ImportOptions configure Import. The zero value pushes with 8 parallel
// uploads and drops the source registry host from repository names.
type ImportOptions struct {
	// Jobs is the number of blobs uploaded at once (default 8). A
	// sequential reader uploads one at a time.
	Jobs int
	// KeepSourceRegistry keeps the source host as the first path element
	// under the prefix: docker.io/library/nginx:1.27 becomes
	// PREFIX/docker.io/library/nginx:1.27 (a port separator ':' becomes '_').
	KeepSourceRegistry bool
	Registry           RegistryOptions
	Progress           ProgressFunc
	// TempDir holds blobs of a sequential read that must be uploaded to
	// more than one repository when the registry refuses mounts.
	TempDir string
}

// ImportedImage is one image pushed by Import.
type ImportedImage struct {
	Source      string
	Destination string // repository:tag, or repository@digest
	Digest      digest.Digest
	// DestinationDigest is what the destination resolved the reference to
	// after the push; equal to Digest on success.
	DestinationDigest digest.Digest
}

// ImportResult reports what Import did.
type ImportResult struct {
	Images        []ImportedImage
	BlobsUploaded int
	BlobsMounted  int
	BlobsSkipped  int // already present at the destination
	BytesUploaded int64
	Manifests     int
	Duration      time.Duration
}

// Destination is the registry and path prefix images are pushed to.
type Destination struct {
	Registry string // host[:port]
	Prefix   string // optional path prefix, no leading or trailing slash
}

// ParseDestination parses REGISTRY[/PREFIX].
func ParseDestination(s string) (Destination, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://"), "/")
	host, prefix, _ := strings.Cut(s, "/")
	if host == "" {
		return Destination{}, fmt.Errorf("%w: destination %q: want REGISTRY[/PREFIX], e.g. registry.local:5000/mirror", ErrInvalidReference, s)
	}
	test := host + "/x"
	if prefix != "" {
		test = host + "/" + prefix + "/x"
	}
	if _, err := name.NewRepository(test, name.StrictValidation); err != nil {
		return Destination{}, fmt.Errorf("%w: destination %q: %v", ErrInvalidReference, s, err)
	}
	return Destination{Registry: host, Prefix: prefix}, nil
}

// Map returns the destination repository (host/prefix/path) for a source
// reference.
func (d Destination) Map(src Reference, keepSourceRegistry bool) string {
	parts := []string{d.Registry}
	if d.Prefix != "" {
		parts = append(parts, d.Prefix)
	}
	if keepSourceRegistry {
		// A port is not allowed in a repository path: host:5000 becomes host_5000.
		parts = append(parts, strings.ToLower(strings.ReplaceAll(src.Domain, ":", "_")))
	}
	return strings.Join(append(parts, src.Path), "/")
}

// target is one image to push.
type target struct {
	src    Reference
	repo   name.Repository
	root   ocispec.Descriptor
	tagged bool
}

// ImportFile imports the bundle at path ("-" for standard input).
func ImportFile(ctx context.Context, path, to string, opts ImportOptions) (*ImportResult, error) {
	var r *Reader
	var err error
	if path == "-" {
		r, err = NewReader(os.Stdin)
	} else {
		r, err = Open(path)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return Import(ctx, r, to, opts)
}

// Import pushes the content of r to the registry to (REGISTRY[/PREFIX]).
// Blobs go first, then manifests children first, then tags; manifest bytes
// are pushed unchanged so every digest is preserved. After the push every
// destination reference is resolved again and compared.
func Import(ctx context.Context, r *Reader, to string, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	opts.Jobs = defaultJobs(opts.Jobs)
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	dest, err := ParseDestination(to)
	if err != nil {
		return nil, err
	}
	im := &importer{r: r, opts: opts, client: opts.Registry.client(), res: &ImportResult{}}
	if err := im.plan(dest); err != nil {
		return nil, err
	}
	if err := im.pushBlobs(ctx); err != nil {
		n := im.uploaded.Load() + im.mounted.Load()
		return im.res, &noteError{err: err, note: fmt.Sprintf("; no manifest or tag was pushed (%d blob(s) already pushed are content-addressed and harmless)", n)}
	}
	if err := im.pushManifests(ctx); err != nil {
		return nil, err
	}
	if err := im.check(ctx); err != nil {
		return im.res, err
	}
	im.res.Duration = time.Since(start)
	return im.res, nil
}

type importer struct {
	r      *Reader
	opts   ImportOptions
	client *registry.Client
	res    *ImportResult

	targets []target
	// repos that need each blob, in a stable order
	blobRepos map[digest.Digest][]name.Repository
	// manifests each repository needs, children first
	repoManifests map[string][]*Manifest
	repoBlobs     map[string]map[digest.Digest]bool
	repoByName    map[string]name.Repository

	uploaded, mounted, skipped atomic.Int64
	bytesUp                    atomic.Int64
}

func (im *importer) plan(dest Destination) error {
	im.blobRepos = map[digest.Digest][]name.Repository{}
	im.repoManifests = map[string][]*Manifest{}
	im.repoBlobs = map[string]map[digest.Digest]bool{}
	im.repoByName = map[string]name.Repository{}
	tags := map[string]target{}
	var conflicts []string
	for i, d := range im.r.Index().Manifests {
		refName := d.Annotations[AnnotationRefName]
		if refName == "" {
			return fmt.Errorf("%w: index.json entry %d (%s) has no %s annotation", ErrCorrupt, i, d.Digest, AnnotationRefName)
		}
		src, err := ParseReference(refName)
		if err != nil {
			return fmt.Errorf("%w: index.json entry %d: %v", ErrCorrupt, i, err)
		}
		repoName := dest.Map(src, im.opts.KeepSourceRegistry)
		repo, err := im.client.ParseRepository(repoName)
		if err != nil {
			return fmt.Errorf("destination repository %q for %s: %w", repoName, src, err)
		}
		t := target{src: src, repo: repo, root: d, tagged: src.Tag != ""}
		if t.tagged {
			key := repo.Name() + ":" + src.Tag
			if prev, ok := tags[key]; ok && prev.root.Digest != d.Digest {
				conflicts = append(conflicts, fmt.Sprintf("%s (%s) and %s (%s) both map to %s", prev.src, prev.root.Digest, src, d.Digest, key))
			}
			tags[key] = t
		}
		im.targets = append(im.targets, t)
		im.repoByName[repo.Name()] = repo
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("%w: %s; use --keep-source-registry or import them separately with different prefixes", ErrConflict, strings.Join(conflicts, "; "))
	}
	// Closure of each repository.
	for _, t := range im.targets {
		im.addClosure(t.repo, t.root.Digest)
	}
	return nil
}

func (im *importer) addClosure(repo name.Repository, root digest.Digest) {
	key := repo.Name()
	have := im.repoBlobs[key]
	if have == nil {
		have = map[digest.Digest]bool{}
		im.repoBlobs[key] = have
	}
	im.r.g.closure(root, func(d digest.Digest, m *Manifest) bool {
		if have[d] {
			return true
		}
		have[d] = true
		if m != nil {
			im.repoManifests[key] = append(im.repoManifests[key], m) // children first
		} else {
			im.blobRepos[d] = append(im.blobRepos[d], repo)
		}
		return true
	})
}

func (im *importer) pushBlobs(ctx context.Context) error {
	var total int64
	for _, b := range im.r.Blobs() {
		total += b.Size
	}
	if im.r.RandomAccess() {
		// Largest first, so the run does not end waiting on one big layer
		// that started late.
		blobs := slices.Clone(im.r.Blobs())
		sort.SliceStable(blobs, func(i, j int) bool { return blobs[i].Size > blobs[j].Size })
		eg, ctx := errgroup.WithContext(ctx)
		eg.SetLimit(im.opts.Jobs)
		for _, desc := range blobs {
			eg.Go(func() error {
				opened := false
				open := func() (io.ReadCloser, error) {
					opened = true
					return im.r.OpenBlob(desc)
				}
				if err := im.pushBlob(ctx, desc, open, nil, total); err != nil || opened {
					return err
				}
				// The destination had it everywhere: still check the bundle's
				// copy, so a file imports only if every blob of it verifies,
				// whatever the destination holds.
				return im.verifyBlob(desc, open)
			})
		}
		err := eg.Wait()
		im.tally()
		return err
	}
	defer im.tally()
	for {
		desc, rd, err := im.r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if desc.Digest == "" {
				return fmt.Errorf("reading the bundle: %w", err)
			}
			return im.blobErr("read", desc.Digest, err)
		}
		if err := im.pushBlob(ctx, desc, nil, rd, total); err != nil {
			return err
		}
	}
}

func (im *importer) verifyBlob(desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	rc, err := open()
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err != nil {
		return im.blobErr("verify", desc.Digest, err)
	}
	return nil
}

func (im *importer) tally() {
	im.res.BlobsUploaded = int(im.uploaded.Load())
	im.res.BlobsMounted = int(im.mounted.Load())
	im.res.BlobsSkipped = int(im.skipped.Load())
	im.res.BytesUploaded = im.bytesUp.Load()
}

func (im *importer) blobErr(op string, d digest.Digest, err error) error {
	var be *BlobError
	if errors.As(err, &be) {
		return err
	}
	return &BlobError{Op: op, Digest: d, Images: im.r.Users(d), Err: err}
}

// pushBlob makes desc present in every repository that needs it. open
// re-reads the blob (random access); stream is the single pass of a
// sequential reader.
func (im *importer) pushBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error), stream io.Reader, total int64) error {
	repos := im.blobRepos[desc.Digest]
	var spool *os.File
	defer func() {
		if spool != nil {
			spool.Close()
			os.Remove(spool.Name())
		}
	}()
	var from *name.Repository
	for _, repo := range repos {
		// One request checks whether repo has the blob, mounts it from a
		// repository that does, or opens the upload session.
		src := repo
		if from != nil && from.Registry.RegistryStr() == repo.Registry.RegistryStr() {
			src = *from
		}
		mounted, loc, err := im.client.StartUpload(ctx, repo, src, desc.Digest)
		if err != nil {
			return im.blobErr("push", desc.Digest, fmt.Errorf("starting the upload to %s: %w", repo.Name(), err))
		}
		if !mounted && !im.client.Mounts(repo) {
			// Until the registry has shown it honours mount requests, its
			// 202 does not mean the blob is missing (some registries ignore
			// mount): ask, so a re-run does not upload everything again.
			exists, err := im.client.BlobExists(ctx, repo, desc.Digest)
			if err != nil {
				im.client.CancelUpload(ctx, repo, loc)
				return im.blobErr("push", desc.Digest, fmt.Errorf("checking %s: %w", repo.Name(), err))
			}
			if exists {
				im.client.CancelUpload(ctx, repo, loc)
				mounted, src = true, repo
			}
		}
		if mounted {
			// A mount from another repository may also find the blob
			// already there; it counts as mounted.
			if src.Name() == repo.Name() {
				im.skipped.Add(1)
			} else {
				im.mounted.Add(1)
			}
			im.opts.Progress.emit(Event{Kind: EventBlobSkipped, Digest: desc.Digest.String(), Size: desc.Size, Total: total})
			if from == nil {
				r := repo
				from = &r
			}
			continue
		}
		var body, streamed io.Reader
		switch {
		case open != nil:
			rc, err := open()
			if err != nil {
				return im.blobErr("read", desc.Digest, err)
			}
			defer rc.Close()
			body = rc
		case spool != nil:
			body = NewVerifyReader(io.NewSectionReader(spool, 0, desc.Size), desc)
		default:
			// Keep a copy of the blob while it streams, so a broken upload can
			// be sent again and other repositories can get it when the
			// registry refuses to mount it. One blob at a time: the disk
			// budget is the largest blob of the bundle, in TempDir.
			f, err := os.CreateTemp(im.opts.TempDir, ".ferry-import-*")
			if err != nil {
				return fmt.Errorf("creating a temporary file in %s: %w", im.opts.TempDir, err)
			}
			spool = f
			body = io.TeeReader(stream, f)
			streamed = body
			stream = nil
		}
		im.opts.Progress.emit(Event{Kind: EventBlobStart, Digest: desc.Digest.String(), Size: desc.Size, Total: total})
		pr := &progressReader{r: body, emit: im.opts.Progress, digest: desc.Digest.String()}
		err = im.client.PutUpload(ctx, repo, loc, desc.Digest, desc.Size, pr)
		// A broken upload is re-read and sent again when the content can be
		// read again (random access, or a spooled copy).
		retries, base := im.client.RetryPolicy()
		for attempt := 0; err != nil && attempt < retries && registry.IsTemporary(err); attempt++ {
			if streamed != nil {
				// Finish reading (and verifying) the blob into the spool.
				if _, derr := io.Copy(io.Discard, streamed); derr != nil {
					return im.blobErr("verify", desc.Digest, derr)
				}
				streamed = nil
			}
			if serr := registry.Sleep(ctx, registry.Backoff(base, attempt)); serr != nil {
				return serr
			}
			var again io.Reader
			if open != nil {
				rc, oerr := open()
				if oerr != nil {
					return im.blobErr("read", desc.Digest, oerr)
				}
				defer rc.Close()
				again = rc
			} else {
				again = NewVerifyReader(io.NewSectionReader(spool, 0, desc.Size), desc)
			}
			err = im.client.PushBlob(ctx, repo, desc.Digest, desc.Size, &progressReader{r: again, emit: im.opts.Progress, digest: desc.Digest.String()})
			if err != nil && attempt == retries-1 && registry.IsTemporary(err) {
				err = fmt.Errorf("giving up after %d retries (re-run the import to continue; --retries raises the limit): %w", retries, err)
			}
		}
		if err != nil {
			op := "push"
			if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated) {
				op = "verify"
			}
			return im.blobErr(op, desc.Digest, fmt.Errorf("to %s: %w", repo.Name(), err))
		}
		im.uploaded.Add(1)
		im.bytesUp.Add(desc.Size)
		im.opts.Progress.emit(Event{Kind: EventBlobDone, Digest: desc.Digest.String(), Size: desc.Size, Total: total})
		r := repo
		from = &r
	}
	return nil
}

func (im *importer) pushManifests(ctx context.Context) error {
	// A tagged root that nothing else in its repository refers to is pushed
	// once, by its tag, at the end; every other manifest by digest first.
	byTag := map[string]map[digest.Digest]bool{}
	for _, t := range im.targets {
		if t.tagged {
			if byTag[t.repo.Name()] == nil {
				byTag[t.repo.Name()] = map[digest.Digest]bool{}
			}
			byTag[t.repo.Name()][t.root.Digest] = true
		}
	}
	// Push level by level, image manifests first, then the indexes above
	// them, so a registry that checks an index's children finds them; all
	// repositories and all manifests of a level at once.
	type push struct {
		repo name.Repository
		m    *Manifest
	}
	var levels [][]push
	tagOnly := map[string]bool{} // repo@digest pushed only by tag
	for _, n := range slices.Sorted(maps.Keys(im.repoManifests)) {
		repo := im.repoByName[n]
		height := map[digest.Digest]int{}
		child := map[digest.Digest]bool{}
		for _, m := range im.repoManifests[n] { // children first
			h := 0
			for _, c := range m.kids {
				if c.manifest {
					child[c.desc.Digest] = true
					h = max(h, height[c.desc.Digest]+1)
				}
			}
			height[m.Descriptor.Digest] = h
		}
		for _, m := range im.repoManifests[n] {
			if byTag[n][m.Descriptor.Digest] && !child[m.Descriptor.Digest] {
				tagOnly[n+"@"+m.Descriptor.Digest.String()] = true
				continue
			}
			h := height[m.Descriptor.Digest]
			for len(levels) <= h {
				levels = append(levels, nil)
			}
			levels[h] = append(levels[h], push{repo, m})
		}
	}
	var mu sync.Mutex
	for _, level := range levels {
		eg, gctx := errgroup.WithContext(ctx)
		eg.SetLimit(2 * im.opts.Jobs)
		for _, p := range level {
			eg.Go(func() error {
				if err := im.client.PutManifest(gctx, p.repo, p.m.Descriptor.Digest.String(), p.m.Descriptor.MediaType, p.m.Bytes); err != nil {
					return fmt.Errorf("pushing manifest %s to %s (used by %s): %w", p.m.Descriptor.Digest, p.repo.Name(), joinLimited(im.r.Users(p.m.Descriptor.Digest), 3), err)
				}
				mu.Lock()
				im.res.Manifests++
				mu.Unlock()
				return nil
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
	}
	// Tags last, once everything they point at is in place.
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(2 * im.opts.Jobs)
	for _, t := range im.targets {
		if !t.tagged {
			continue
		}
		eg.Go(func() error {
			m, _ := im.r.Manifest(t.root.Digest)
			if err := im.client.PutManifest(gctx, t.repo, t.src.Tag, m.Descriptor.MediaType, m.Bytes); err != nil {
				return fmt.Errorf("tagging %s:%s (from %s): %w", t.repo.Name(), t.src.Tag, t.src, err)
			}
			mu.Lock()
			if key := t.repo.Name() + "@" + t.root.Digest.String(); tagOnly[key] {
				delete(tagOnly, key) // count each manifest once, however many tags
				im.res.Manifests++
			}
			mu.Unlock()
			im.opts.Progress.emit(Event{Kind: EventManifest, Ref: t.repo.Name() + ":" + t.src.Tag, Digest: t.root.Digest.String()})
			return nil
		})
	}
	return eg.Wait()
}

// check resolves every destination reference again and compares digests.
func (im *importer) check(ctx context.Context) error {
	images := make([]ImportedImage, len(im.targets))
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(im.opts.Jobs)
	for i, t := range im.targets {
		eg.Go(func() error {
			ref, dst := t.root.Digest.String(), t.repo.Name()+"@"+t.root.Digest.String()
			if t.tagged {
				ref, dst = t.src.Tag, t.repo.Name()+":"+t.src.Tag
			}
			got, err := im.client.HeadManifest(gctx, t.repo, ref)
			if err != nil {
				return fmt.Errorf("checking %s after the push: %w", dst, err)
			}
			images[i] = ImportedImage{Source: t.src.String(), Destination: dst, Digest: t.root.Digest, DestinationDigest: got}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	var bad []string
	for _, img := range images {
		if img.DestinationDigest != img.Digest {
			bad = append(bad, fmt.Sprintf("%s resolves to %s, want %s", img.Destination, img.DestinationDigest, img.Digest))
		}
	}
	im.res.Images = append(im.res.Images, images...)
	if len(bad) > 0 {
		return fmt.Errorf("%w: after the push: %s", ErrDigestMismatch, strings.Join(bad, "; "))
	}
	return nil
}

// noteError adds a sentence to an error, keeping it on one line.
type noteError struct {
	err  error
	note string
}

func (e *noteError) Error() string { return strings.TrimSpace(e.err.Error()) + e.note }
func (e *noteError) Unwrap() error { return e.err }
