package bundle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/registry"
)

// registryTarget puts content into an OCI distribution registry.
type registryTarget struct {
	client *registry.Client
	repos  map[string]name.Repository // filled by repository, before any push
}

var _ target = (*registryTarget)(nil)

func (t *registryTarget) repository(s string) (string, error) {
	repo, err := t.client.ParseRepository(s)
	if err != nil {
		return "", err
	}
	t.repos[repo.Name()] = repo
	return repo.Name(), nil
}

func (t *registryTarget) display(repo, ref string) string {
	switch {
	case ref == "":
		return repo
	case validateDigest(digest.Digest(ref)) == nil:
		return repo + "@" + ref
	}
	return repo + ":" + ref
}

// pushBlob checks, mounts or uploads with one request (a mount request
// from the repository itself, or from one that has the blob), then sends
// the content. The engine tries again when the upload breaks.
func (t *registryTarget) pushBlob(ctx context.Context, repoName, fromName string, desc ocispec.Descriptor, open opener) (blobOutcome, error) {
	repo := t.repos[repoName]
	src := repo
	if from, ok := t.repos[fromName]; ok && from.Registry.RegistryStr() == repo.Registry.RegistryStr() {
		src = from
	}
	// Until the registry has shown it honours mount requests, its 202 does
	// not mean the blob is missing (some registries ignore mount): ask too,
	// at the same time, so a re-run does not upload everything again.
	type answer struct {
		exists bool
		err    error
	}
	var asked chan answer
	if !t.client.Mounts(repo) && src.Name() == repo.Name() {
		asked = make(chan answer, 1)
		go func() {
			exists, err := t.client.BlobExists(ctx, repo, desc.Digest)
			asked <- answer{exists, err}
		}()
	}
	mounted, loc, err := t.client.StartUpload(ctx, repo, src, desc.Digest)
	if err != nil {
		return 0, fmt.Errorf("starting the upload: %w", err)
	}
	switch {
	case mounted && src.Name() == repo.Name():
		return blobPresent, nil
	case mounted:
		return blobMounted, nil
	case asked != nil:
		a := <-asked
		if a.err != nil {
			t.client.CancelUpload(ctx, repo, loc)
			return 0, fmt.Errorf("checking for the blob: %w", a.err)
		}
		if a.exists {
			t.client.CancelUpload(ctx, repo, loc)
			return blobPresent, nil
		}
	}
	rc, err := open()
	if err != nil {
		t.client.CancelUpload(ctx, repo, loc)
		return 0, err
	}
	defer rc.Close()
	if err := t.client.PutUpload(ctx, repo, loc, desc.Digest, desc.Size, rc); err != nil {
		return 0, err
	}
	return blobUploaded, nil
}

// holds asks whether repo has blob desc (the engine asks the other
// repositories of a blob while the first gets it).
func (t *registryTarget) holds(ctx context.Context, repo string, desc ocispec.Descriptor) (bool, error) {
	return t.client.BlobExists(ctx, t.repos[repo], desc.Digest)
}

func (t *registryTarget) pushManifest(ctx context.Context, repo, tag string, m *Manifest) error {
	ref := tag
	if ref == "" {
		ref = m.Descriptor.Digest.String()
	}
	return t.client.PutManifest(ctx, t.repos[repo], ref, m.Descriptor.MediaType, m.Bytes)
}

func (t *registryTarget) commit(context.Context) error { return nil }

// preflight checks, before anything is pushed, that every repository of
// the import can be written: a missing --ca-file, a wrong password or a
// read-only account fails in the first second, saying what to do.
func (t *registryTarget) preflight(ctx context.Context, jobs int) error {
	// Every repository is checked; the failure reported is that of the
	// first repository by name, so the message does not depend on timing.
	names := slices.Sorted(maps.Keys(t.repos))
	errs := make([]error, len(names))
	var eg errgroup.Group
	eg.SetLimit(metaJobs(jobs))
	for i, n := range names {
		repo := t.repos[n]
		eg.Go(func() error {
			err := t.client.CheckPush(ctx, repo)
			var hint string
			switch {
			case err == nil:
				return nil
			case errors.Is(err, registry.ErrUnauthorized):
				hint = fmt.Sprintf("; check the credentials for %s (ferry login %s, or -u with --password-stdin)", repo.RegistryStr(), repo.RegistryStr())
			case errors.Is(err, registry.ErrDenied):
				hint = "; these credentials may not push there: ask for push access, or choose another --to prefix"
			}
			errs[i] = &noteError{err: fmt.Errorf("checking that %s accepts pushes, before pushing anything: %w", n, err), note: hint}
			return nil
		})
	}
	eg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *registryTarget) resolve(ctx context.Context, repo, ref string) (digest.Digest, error) {
	return t.client.HeadManifest(ctx, t.repos[repo], ref)
}
