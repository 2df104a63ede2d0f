package bundle

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/internal/registry"
)

// An OCI image layout directory (image-spec image-layout.md) as a source of
// Export and a destination of Import: oci:DIR.

// annotationContainerdName is where buildkit and containerd keep the full
// name of an image in a layout whose ref.name is only a tag.
const annotationContainerdName = "io.containerd.image.name"

func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, BlobsDir, string(d.Algorithm()), d.Encoded())
}

// openRegular opens a file of a layout for reading, refusing anything but a
// regular file (a FIFO or a device would block or never end).
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.Open(path)
}

// readLayoutIndex reads DIR/index.json of a source layout, capped at
// MaxManifestBytes.
func readLayoutIndex(dir string) (*ocispec.Index, error) {
	f, err := openRegular(filepath.Join(dir, IndexFile))
	if err != nil {
		return nil, fmt.Errorf("reading the OCI layout %s: %w", dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the OCI layout %s: %w", dir, err)
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %s/index.json is larger than %d bytes", ErrTooLarge, dir, MaxManifestBytes)
	}
	return parseLayoutIndex(dir, b)
}

// parseLayoutIndex parses index.json of the layout at dir (a source or a
// target) and checks its descriptors.
func parseLayoutIndex(dir string, b []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("the OCI layout %s: index.json is not valid JSON: %v", dir, err)
	}
	for _, d := range idx.Manifests {
		if err := validateDescriptor(d); err != nil {
			return nil, fmt.Errorf("the OCI layout %s: index.json: %w", dir, err)
		}
	}
	return &idx, nil
}

// ---- upstream ----

// layoutSource reads an OCI image layout directory.
type layoutSource struct{ dir string }

var _ upstream = layoutSource{}

func (s layoutSource) String() string { return LayoutScheme + s.dir }

func (s layoutSource) manifest(_ context.Context, ref string, limit int64) (*registry.Manifest, error) {
	d := digest.Digest(ref)
	if err := validateDigest(d); err != nil {
		return nil, fmt.Errorf("%w: a manifest in an OCI layout is found by digest, not %q", ErrInvalidReference, ref)
	}
	f, err := openRegular(blobFile(s.dir, d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: manifest %s is not in %s", registry.ErrNotFound, d, s)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: manifest %s is larger than %d bytes", ErrTooLarge, d, limit)
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return nil, fmt.Errorf("%w: manifest %s in %s hashes to %s", ErrDigestMismatch, d, s, got)
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &m)
	return &registry.Manifest{Bytes: b, MediaType: m.MediaType, Digest: d}, nil
}

func (s layoutSource) blob(_ context.Context, d digest.Digest) (io.ReadCloser, error) {
	f, err := openRegular(blobFile(s.dir, d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s is not in %s", registry.ErrNotFound, d, s)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// layoutImage is an image of a layout, with the reference it gets in a bundle.
type layoutImage struct {
	ref  Reference
	desc ocispec.Descriptor
}

// layoutImages lists the images of the layout at dir that have a name, or
// the one whose ref.name (or full name) is tag. A bundle names every image
// with a full reference, so an image whose ref.name is only a tag needs its
// full name in io.containerd.image.name (buildkit and containerd write it).
func layoutImages(dir, tag string) ([]layoutImage, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("OCI layout %s is not a directory", dir)
	}
	idx, err := readLayoutIndex(dir)
	if err != nil {
		return nil, err
	}
	var out []layoutImage
	var unnamed []string
	named := map[string]digest.Digest{}
	for _, d := range idx.Manifests {
		refName := d.Annotations[AnnotationRefName]
		full := d.Annotations[annotationContainerdName]
		if full == "" && strings.ContainsAny(refName, "/") {
			full = refName
		}
		if tag != "" && refName != tag && full != tag {
			continue
		}
		if refName == "" && full == "" {
			continue // not tagged
		}
		if full == "" {
			unnamed = append(unnamed, refName)
			continue
		}
		r, err := ParseReference(full)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: image %s: %w", dir, d.Digest, err)
		}
		if r.Digest != "" && r.Digest != d.Digest {
			return nil, fmt.Errorf("%w: OCI layout %s: %s names %s but its descriptor is %s", ErrDescriptorConflict, dir, full, r.Digest, d.Digest)
		}
		r.Digest = ""
		if r.Tag == "" {
			r.Tag = "latest"
		}
		d.Annotations = nil
		if prev, ok := named[r.String()]; ok {
			if prev != d.Digest {
				return nil, fmt.Errorf("%w: OCI layout %s names %s twice: %s and %s", ErrConflict, dir, r, prev, d.Digest)
			}
			continue
		}
		named[r.String()] = d.Digest
		out = append(out, layoutImage{ref: r, desc: d})
	}
	if len(unnamed) > 0 {
		return nil, fmt.Errorf("%w: OCI layout %s: the image(s) tagged %s have no repository name; a bundle names every image in full: set %s (or %s) to a full name such as registry.example/team/app:1.0",
			ErrInvalidReference, dir, strings.Join(unnamed, ", "), annotationContainerdName, AnnotationRefName)
	}
	if len(out) == 0 {
		if tag != "" {
			return nil, fmt.Errorf("image not found: OCI layout %s has no image tagged %s", dir, tag)
		}
		return nil, fmt.Errorf("image not found: OCI layout %s has no tagged image", dir)
	}
	return out, nil
}

// parseLayoutRef splits oci:DIR[:REF] at the first colon after the scheme,
// as skopeo does: REF is a tag or a full image name as the layout lists it,
// and DIR cannot hold a colon.
func parseLayoutRef(s string) (dir, ref string, ok bool) {
	rest, ok := strings.CutPrefix(s, LayoutScheme)
	if !ok {
		return "", "", false
	}
	dir, ref, _ = strings.Cut(rest, ":")
	return dir, ref, true
}

// ---- target ----

// layoutTarget writes an OCI image layout directory: each blob and manifest
// to a temporary file in its blobs/ directory, renamed to its digest only
// once verified; index.json last, merged with what the directory already
// lists (an image of the same name is replaced). Every file is opened
// through an os.Root, so a symbolic link cannot lead a write outside the
// directory.
type layoutTarget struct {
	dir  string
	root *os.Root

	mu    sync.Mutex
	named map[string]ocispec.Descriptor // ref name -> root
	order []string
	index map[string]digest.Digest // after commit: what index.json lists
}

var _ target = (*layoutTarget)(nil)

func newLayoutTarget(dir string) (*layoutTarget, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the OCI layout %s: %w", dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	case !st.IsDir():
		return nil, fmt.Errorf("OCI layout %s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	t := &layoutTarget{dir: dir, root: root, named: map[string]ocispec.Descriptor{}}
	if b, err := t.readFile(LayoutFile); err == nil {
		if err := checkLayout(b); err != nil {
			root.Close()
			return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		root.Close()
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	// Refuse a directory whose index.json cannot be merged, before any work.
	if _, err := t.readIndex(); err != nil {
		root.Close()
		return nil, err
	}
	return t, nil
}

// Close releases the directory.
func (t *layoutTarget) Close() error { return t.root.Close() }

// readFile reads a small regular file of the layout (at most
// MaxManifestBytes).
func (t *layoutTarget) readFile(name string) ([]byte, error) {
	st, err := t.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Join(t.dir, name))
	}
	if st.Size() > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, filepath.Join(t.dir, name), MaxManifestBytes)
	}
	return t.root.ReadFile(name)
}

// readIndex reads index.json of the layout, or an empty index when there is
// none yet.
func (t *layoutTarget) readIndex() (*ocispec.Index, error) {
	b, err := t.readFile(IndexFile)
	if errors.Is(err, os.ErrNotExist) {
		return &ocispec.Index{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageIndex}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the OCI layout %s: %w", t.dir, err)
	}
	return parseLayoutIndex(t.dir, b)
}

func (t *layoutTarget) repository(name string) (string, error) { return name, nil }

func (t *layoutTarget) display(repo, ref string) string {
	switch {
	case ref == "":
		return LayoutScheme + t.dir
	case validateDigest(digest.Digest(ref)) == nil:
		return LayoutScheme + t.dir + ":" + repo + "@" + ref
	}
	return LayoutScheme + t.dir + ":" + repo + ":" + ref
}

func blobName(d digest.Digest) string {
	return path.Join(BlobsDir, string(d.Algorithm()), d.Encoded())
}

func (t *layoutTarget) pushBlob(_ context.Context, _, from string, desc ocispec.Descriptor, open opener) (blobOutcome, error) {
	if from != "" {
		return blobMounted, nil // one blob store for every repository
	}
	name := blobName(desc.Digest)
	if t.holds(name, desc) {
		return blobPresent, nil
	}
	rc, err := open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return blobUploaded, t.write(name, rc)
}

// holds reports whether the layout has blob desc at name: a regular file
// (not a link) of the right size whose content hashes to the digest. Any
// other file there is replaced.
func (t *layoutTarget) holds(name string, desc ocispec.Descriptor) bool {
	st, err := t.root.Lstat(name)
	if err != nil || !st.Mode().IsRegular() || st.Size() != desc.Size {
		return false
	}
	f, err := t.root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, NewVerifyReader(f, desc))
	return err == nil
}

// write stores r (verified as it is read) at name through a temporary file
// in the same directory, renamed once complete.
func (t *layoutTarget) write(name string, r io.Reader) error {
	dir := path.Dir(name)
	if err := t.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := path.Join(dir, ".ferry-"+hex.EncodeToString(rnd[:]))
	f, err := t.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = t.root.Rename(tmp, name)
	}
	if err != nil {
		t.root.Remove(tmp)
	}
	return err
}

func (t *layoutTarget) pushManifest(ctx context.Context, repo, tag string, m *Manifest) error {
	open := func() (io.ReadCloser, error) {
		return io.NopCloser(NewVerifyReader(bytes.NewReader(m.Bytes), m.Descriptor)), nil
	}
	if _, err := t.pushBlob(ctx, repo, "", m.Descriptor, open); err != nil {
		return err
	}
	if tag != "" {
		t.name(repo+":"+tag, m.Descriptor)
	}
	return nil
}

// nameRoot lists an image imported by digest in index.json.
func (t *layoutTarget) nameRoot(repo string, desc ocispec.Descriptor) {
	t.name(repo+"@"+desc.Digest.String(), desc)
}

func (t *layoutTarget) name(ref string, desc ocispec.Descriptor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.named[ref]; !ok {
		t.order = append(t.order, ref)
	}
	desc.Annotations = map[string]string{AnnotationRefName: ref, annotationContainerdName: ref}
	t.named[ref] = desc
}

// commit writes oci-layout if missing and index.json: the images of this
// import, after those already listed under other names.
func (t *layoutTarget) commit(context.Context) error {
	idx, err := t.readIndex()
	if err != nil {
		return err
	}
	var kept []ocispec.Descriptor
	for _, d := range idx.Manifests {
		if _, replaced := t.named[d.Annotations[AnnotationRefName]]; !replaced {
			kept = append(kept, d)
		}
	}
	for _, ref := range t.order {
		kept = append(kept, t.named[ref])
	}
	idx.Manifests = kept
	if idx.SchemaVersion == 0 {
		idx.Versioned = specsVersioned()
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if _, err := t.root.Lstat(LayoutFile); errors.Is(err, os.ErrNotExist) {
		if err := t.write(LayoutFile, strings.NewReader(layoutContent)); err != nil {
			return fmt.Errorf("writing %s/%s: %w", t.dir, LayoutFile, err)
		}
	}
	if err := t.write(IndexFile, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing %s/%s: %w", t.dir, IndexFile, err)
	}
	t.index = map[string]digest.Digest{}
	for _, d := range kept {
		t.index[d.Annotations[AnnotationRefName]] = d.Digest
	}
	return nil
}

// resolve reads back what commit wrote: the digest index.json lists for a
// tag, or a manifest present by digest.
func (t *layoutTarget) resolve(_ context.Context, repo, ref string) (digest.Digest, error) {
	if d := digest.Digest(ref); validateDigest(d) == nil {
		if _, err := t.root.Lstat(blobName(d)); err != nil {
			return "", err
		}
		return d, nil
	}
	d, ok := t.index[repo+":"+ref]
	if !ok {
		return "", fmt.Errorf("%w: %s is not in %s/index.json", registry.ErrNotFound, repo+":"+ref, t.dir)
	}
	return d, nil
}
