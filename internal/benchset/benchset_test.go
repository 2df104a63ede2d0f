package benchset_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryproject/ferry/internal/benchset"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// roots are the Go installation's sources and tools: present wherever the
// tests run, text and binaries both.
func roots(t *testing.T) []string {
	t.Helper()
	goroot := build.Default.GOROOT
	if _, err := os.Stat(filepath.Join(goroot, "src")); goroot == "" || err != nil {
		t.Skip("no Go installation to take files from")
	}
	return []string{filepath.Join(goroot, "src"), filepath.Join(goroot, "pkg", "tool")}
}

// generate pushes a set into a new registry.
func generate(t *testing.T, spec benchset.Spec) (*registrytest.Registry, *benchset.Set) {
	t.Helper()
	reg := registrytest.New(t, registrytest.Options{})
	set, err := benchset.Generate(context.Background(), spec, reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	return reg, set
}

// survey is what a registry holds for a set.
type survey struct {
	digests    map[string]string // image reference -> manifest digest
	mediaTypes map[types.MediaType]int
	blobs      map[string]int64 // digest -> size the registry serves
	layerUses  map[string]map[string]bool
	layers     map[string][]string // image reference (or reference and architecture) -> layer digests
	manifests  map[string]bool     // repo@digest of every manifest and index
	images     []v1.Image
}

func read(t *testing.T, reg *registrytest.Registry, set *benchset.Set) *survey {
	t.Helper()
	s := &survey{
		digests: map[string]string{}, mediaTypes: map[types.MediaType]int{}, blobs: map[string]int64{},
		layerUses: map[string]map[string]bool{}, manifests: map[string]bool{}, layers: map[string][]string{},
	}
	addImage := func(repo name.Repository, img v1.Image, from string) {
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		s.manifests[repo.String()+"@"+d.String()] = true
		s.mediaTypes[m.MediaType]++
		s.images = append(s.images, img)
		for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			s.blobs[desc.Digest.String()] = headBlob(t, reg, repo.RepositoryStr(), desc.Digest.String())
			if desc.Size != s.blobs[desc.Digest.String()] {
				t.Errorf("%s: blob %s is %d bytes in the manifest, %d in the registry", from, desc.Digest, desc.Size, s.blobs[desc.Digest.String()])
			}
		}
		for _, l := range m.Layers {
			s.layers[from] = append(s.layers[from], l.Digest.String())
			if s.layerUses[l.Digest.String()] == nil {
				s.layerUses[l.Digest.String()] = map[string]bool{}
			}
			s.layerUses[l.Digest.String()][from] = true
		}
	}
	for _, img := range set.Images {
		ref, err := name.ParseReference(reg.Host+"/"+img, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(ref)
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
		s.digests[img] = desc.Digest.String()
		if !desc.MediaType.IsIndex() {
			i, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			addImage(ref.Context(), i, img)
			continue
		}
		s.mediaTypes[desc.MediaType]++
		s.manifests[ref.Context().String()+"@"+desc.Digest.String()] = true
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, child := range im.Manifests {
			i, err := idx.Image(child.Digest)
			if err != nil {
				t.Fatal(err)
			}
			addImage(ref.Context(), i, img+" "+child.Platform.Architecture)
		}
	}
	return s
}

func headBlob(t *testing.T, reg *registrytest.Registry, repo, digest string) int64 {
	t.Helper()
	resp, err := http.Head(fmt.Sprintf("%s/v2/%s/blobs/%s", reg.URL(), repo, digest))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD blob %s in %s: %s", digest, repo, resp.Status)
	}
	return resp.ContentLength
}

func TestSizedSet(t *testing.T) {
	t.Parallel()
	spec := benchset.Spec{Seed: 7, Size: 8 << 20, Roots: roots(t), Jobs: 1, Log: t.Logf}
	if raceEnabled {
		spec.Size = 1 << 20
	}
	regA, set := generate(t, spec)
	// Layers finish in another order with more jobs, and go up streamed
	// rather than in one PUT: nothing may change.
	spec.Jobs = 3
	regB, again := generate(t, benchset.StreamAll(spec))
	if !reflect.DeepEqual(set, again) {
		t.Errorf("two generations differ:\n%+v\n%+v", set, again)
	}
	a, b := read(t, regA, set), read(t, regB, again)
	for _, img := range set.Images {
		if a.digests[img] != b.digests[img] {
			t.Errorf("%s: %s in one registry, %s in the other", img, a.digests[img], b.digests[img])
		}
	}

	plan, err := benchset.Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plan.Images, set.Images) || plan.UniqueBlobs != set.UniqueBlobs || plan.Manifests != set.Manifests || plan.Repos != set.Repos {
		t.Errorf("plan %+v does not match the set %+v", plan, set)
	}

	var total int64
	for _, size := range a.blobs {
		total += size
	}
	if len(a.blobs) != set.UniqueBlobs || total != set.UniqueBytes {
		t.Errorf("registry holds %d blobs of %d bytes; the set says %d of %d", len(a.blobs), total, set.UniqueBlobs, set.UniqueBytes)
	}
	if len(a.manifests) != set.Manifests {
		t.Errorf("registry holds %d manifests; the set says %d", len(a.manifests), set.Manifests)
	}
	if lo, hi := spec.Size*8/10, spec.Size*12/10; set.UniqueBytes < lo || set.UniqueBytes > hi {
		t.Errorf("set of %d bytes, want %d +-20%%", set.UniqueBytes, spec.Size)
	}
	if set.RawBytes < set.UniqueBytes*3/2 {
		t.Errorf("layers of %d bytes compress to %d: not the machine's files", set.RawBytes, set.UniqueBytes)
	}
	if len(set.Images) < 20 || set.Repos < 10 {
		t.Errorf("%d images in %d repositories, want a registry's worth", len(set.Images), set.Repos)
	}

	for _, mt := range []types.MediaType{types.DockerManifestSchema2, types.DockerManifestList, types.OCIManifestSchema1, types.OCIImageIndex} {
		if a.mediaTypes[mt] == 0 {
			t.Errorf("no %s in the set", mt)
		}
	}
	if n := a.mediaTypes[types.DockerManifestList] + a.mediaTypes[types.OCIImageIndex]; n < 4 {
		t.Errorf("%d multi-platform indexes, want several", n)
	}
	var shared, wide int
	for _, uses := range a.layerUses {
		if len(uses) > 1 {
			shared++
		}
		if len(uses) >= len(set.Images)/3 {
			wide++
		}
	}
	if shared < 10 || wide == 0 {
		t.Errorf("%d layers shared, %d by a third of the images; want base layers shared widely", shared, wide)
	}
	// Versions of an application share all but their top layers.
	v1, v2 := a.layers["team/api:1.0.0"], a.layers["team/api:1.1.0"]
	if len(v1) < 4 || len(v1) != len(v2) || !slices.Equal(v1[:len(v1)-2], v2[:len(v2)-2]) || v1[len(v1)-1] == v2[len(v2)-1] {
		t.Errorf("team/api versions: %v and %v", v1, v2)
	}
	mirrored := 0
	for _, img := range set.Images {
		if strings.HasPrefix(img, "mirror/") && a.digests[img] == a.digests[strings.TrimPrefix(img, "mirror/")] {
			mirrored++
		}
	}
	if mirrored == 0 {
		t.Error("no image is in two repositories")
	}

	// Every blob is what its descriptor says, down to the diff IDs.
	for _, i := range []int{0, len(a.images) / 2, len(a.images) - 1} {
		if err := check(a.images[i]); err != nil {
			t.Errorf("image %d: %v", i, err)
		}
	}
}

func TestTinySet(t *testing.T) {
	t.Parallel()
	r := roots(t)
	reg, set := generate(t, benchset.Spec{Seed: 3, Tiny: 20, Roots: r})
	small, fewer := generate(t, benchset.Spec{Seed: 3, Tiny: 7, Roots: r})
	if len(set.Images) != 20 || set.Manifests != 20 || set.Repos != 5 {
		t.Errorf("got %d images, %d manifests in %d repositories; want 20, 20, 5", len(set.Images), set.Manifests, set.Repos)
	}
	if set.UniqueBlobs != 20+20+4 {
		t.Errorf("%d blobs, want 44 (20 layers, 20 configs, 4 bases)", set.UniqueBlobs)
	}
	s, f := read(t, reg, set), read(t, small, fewer)
	// A smaller set is the start of a larger one.
	for i, img := range fewer.Images {
		if img != set.Images[i] || f.digests[img] != s.digests[img] {
			t.Errorf("image %d: %s %s in the set of 7, %s %s in the set of 20", i, img, f.digests[img], set.Images[i], s.digests[set.Images[i]])
		}
	}
	var total int64
	for _, size := range s.blobs {
		total += size
	}
	if total != set.UniqueBytes {
		t.Errorf("registry holds %d bytes; the set says %d", total, set.UniqueBytes)
	}
	for _, img := range s.images {
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		own, err := layers[len(layers)-1].Size()
		if err != nil {
			t.Fatal(err)
		}
		if own < 512 || own > 8<<10 {
			t.Errorf("a tiny layer of %d bytes", own)
		}
	}
	shared := 0
	for _, uses := range s.layerUses {
		if len(uses) > 1 {
			shared++
		}
	}
	if shared != 4 {
		t.Errorf("%d shared layers, want the 4 bases", shared)
	}
	if err := check(s.images[0]); err != nil {
		t.Error(err)
	}
}

// A registry that fails an upload fails Generate, with the layer named,
// and nothing hangs: the layer builder stops when its upload does.
func TestRegistryFailure(t *testing.T) {
	t.Parallel()
	r := []string{filepath.Join(roots(t)[0], "encoding")}
	for _, fault := range []*registrytest.Fault{
		{Method: http.MethodPatch, Path: "/blobs/uploads/", Status: http.StatusInternalServerError, Times: 1},
		{Method: http.MethodPut, Path: "/manifests/", Status: http.StatusBadRequest, Times: 1},
	} {
		reg := registrytest.New(t, registrytest.Options{})
		reg.InjectFaults(fault)
		spec := benchset.StreamAll(benchset.Spec{Seed: 1, Size: 1 << 20, Roots: r, Jobs: 2})
		_, err := benchset.Generate(context.Background(), spec, reg.Host)
		if err == nil || fault.Hits() != 1 {
			t.Errorf("%s %s: error %v after %d faults", fault.Method, fault.Path, err, fault.Hits())
			continue
		}
		if fault.Method == http.MethodPatch && !strings.Contains(err.Error(), "pushing layer") {
			t.Errorf("error does not name the layer: %v", err)
		}
	}
	if _, err := benchset.Generate(context.Background(), benchset.Spec{Size: 1 << 20, Roots: r}, "127.0.0.1:1"); err == nil {
		t.Error("no error from a registry that is not there")
	}
}

func TestSpecErrors(t *testing.T) {
	t.Parallel()
	for _, spec := range []benchset.Spec{{Size: 1000}, {Size: 8 << 20, Jobs: -1}} {
		if _, err := benchset.Plan(spec); err == nil {
			t.Errorf("Plan(%+v) accepted", spec)
		}
	}
}

func TestPlanLarge(t *testing.T) {
	t.Parallel()
	small, err := benchset.Plan(benchset.Spec{Size: 150 << 20})
	if err != nil {
		t.Fatal(err)
	}
	large, err := benchset.Plan(benchset.Spec{Size: 1500 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(small.Images) < 20 || len(small.Images) > 30 || len(large.Images) < 40 || len(large.Images) > 60 {
		t.Errorf("%d and %d images; want 20-30 and 40-60", len(small.Images), len(large.Images))
	}
}

// check reads every layer of img: a gzip tar stream whose digest and diff
// ID are those of the manifest and the config.
func check(img v1.Image) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return fmt.Errorf("%d layers, %d diff IDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range layers {
		want, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		blob := sha256.New()
		zr, err := gzip.NewReader(io.TeeReader(rc, blob))
		if err != nil {
			return fmt.Errorf("layer %s: %w", want, err)
		}
		raw := sha256.New()
		tr := tar.NewReader(io.TeeReader(zr, raw))
		files := 0
		for {
			_, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("layer %s: %w", want, err)
			}
			files++
		}
		// Read the tar's padding to the end of the stream.
		if _, err := io.Copy(io.Discard, zr); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
		if got := fmt.Sprintf("sha256:%x", blob.Sum(nil)); got != want.String() {
			return fmt.Errorf("layer %s has digest %s", want, got)
		}
		if got := fmt.Sprintf("sha256:%x", raw.Sum(nil)); got != cfg.RootFS.DiffIDs[i].String() {
			return fmt.Errorf("layer %s: diff ID %s, config says %s", want, got, cfg.RootFS.DiffIDs[i])
		}
		if files < 2 {
			return fmt.Errorf("layer %s holds %d files", want, files)
		}
	}
	return nil
}
