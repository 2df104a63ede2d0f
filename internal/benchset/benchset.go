package benchset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Spec describes a set.
type Spec struct {
	// Seed fixes every choice: the same seed and the same files on the
	// machine give byte-identical blobs and manifests.
	Seed int64
	// Size is the wanted total of the unique compressed blobs (layers and
	// configs), for example 150<<20 or 1500<<20. Sets of 512 MiB and more
	// have more applications and versions. Ignored when Tiny > 0.
	Size int64
	// Tiny, when positive, asks for that many tiny images instead: one
	// layer of a few KiB (1 to 4 KiB aimed at, real files vary), a config
	// and a manifest each, every other one also on one of four shared base
	// layers of about 3 KiB. Image i depends only on i and Seed, so the
	// first n images of a set are the set of n.
	Tiny int
	// Roots are the directories files are taken from; nil means
	// DefaultRoots.
	Roots []string
	// Jobs is how many layers are built and pushed at once; 0 means
	// runtime.NumCPU().
	Jobs int
	// Log, when set, receives progress lines.
	Log func(format string, args ...any)

	streamAll bool // stream every layer, small ones too (tests)
}

// Set is what was generated.
type Set struct {
	// Images are the references, relative to the registry host
	// ("repo/path:tag"), in a stable order. Several may name the same
	// manifest (a latest tag, a mirror repository).
	Images      []string
	UniqueBlobs int   // distinct blobs (layers and configs)
	UniqueBytes int64 // their total size
	RawBytes    int64 // total size of the unique layers uncompressed (tar streams)
	Manifests   int   // manifests and indexes, counted once per repository holding them
	Repos       int
}

// WriteList writes the images as a ferry list file, one reference per
// line, each prefixed with host.
func (s *Set) WriteList(w io.Writer, host string) error {
	var b strings.Builder
	for _, ref := range s.Images {
		b.WriteString(host + "/" + ref + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// configBytes is the estimated size of one image config, for planning.
const configBytes = 1500

// Plan returns the set spec describes without reading a file or pushing
// anything: the images, repositories and manifest and blob counts are
// exact; UniqueBytes is the target (Size, or the tiny layers' targets)
// that Generate meets to within a few percent, and RawBytes is zero.
func Plan(spec Spec) (*Set, error) {
	r, err := spec.recipe()
	if err != nil {
		return nil, err
	}
	s := r.summary()
	if spec.Tiny > 0 {
		for _, l := range r.layers {
			s.UniqueBytes += l.target
		}
		s.UniqueBytes += int64(s.UniqueBlobs-len(r.layers)) * configBytes
	} else {
		s.UniqueBytes = spec.Size
	}
	return s, nil
}

func (spec *Spec) recipe() (*recipe, error) {
	switch {
	case spec.Jobs < 0:
		return nil, fmt.Errorf("benchset: jobs must not be negative, got %d", spec.Jobs)
	case spec.Tiny > 0:
		return tinyRecipe(spec.Tiny, spec.Seed), nil
	case spec.Size < 1<<20:
		return nil, fmt.Errorf("benchset: size must be at least 1 MiB, got %d bytes", spec.Size)
	}
	r := sizedRecipe(spec.Size >= 512<<20)
	// Spread the size over the layers by weight, once the small layers and
	// the configs are counted.
	rest := spec.Size - int64(r.configs())*configBytes
	var sum float64
	for _, l := range r.layers {
		if l.target > 0 {
			rest -= l.target
		} else {
			sum += l.weight
		}
	}
	for _, l := range r.layers {
		if l.target == 0 {
			l.target = max(1<<10, int64(float64(rest)*l.weight/sum))
		}
	}
	return r, nil
}

// configs counts the distinct image configs.
func (r *recipe) configs() int {
	n := 0
	for _, im := range r.images {
		n += len(im.platforms)
	}
	return n
}

// summary counts what the recipe pushes.
func (r *recipe) summary() *Set {
	s := &Set{UniqueBlobs: len(r.layers) + r.configs()}
	repos := map[string]bool{}
	for _, im := range r.images {
		perRepo := len(im.platforms)
		if len(im.platforms) > 1 {
			perRepo++
		}
		for _, repo := range append([]string{im.repo}, im.mirrors...) {
			for _, tag := range im.tags {
				s.Images = append(s.Images, repo+":"+tag)
			}
			repos[repo] = true
			s.Manifests += perRepo
		}
	}
	s.Repos = len(repos)
	return s
}

// Generate builds the set spec describes and pushes it to the registry at
// host ("127.0.0.1:5000"; plain HTTP, no authentication).
func Generate(ctx context.Context, spec Spec, host string) (*Set, error) {
	start := time.Now()
	r, err := spec.recipe()
	if err != nil {
		return nil, err
	}
	logf := spec.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	jobs := spec.Jobs
	if jobs == 0 {
		jobs = runtime.NumCPU()
	}
	roots := spec.Roots
	if roots == nil {
		roots = DefaultRoots
	}

	c := newClient(host, 4*jobs)
	defer c.close()
	if err := c.ping(ctx); err != nil {
		return nil, fmt.Errorf("reaching the registry at %s: %w", host, err)
	}

	files, err := walk(ctx, roots, jobs)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("benchset: no readable files under %s", strings.Join(roots, ", "))
	}
	p := newPool(files, spec.Seed)
	logf("benchset: %d files, %d MiB under %s (%.1f s)", len(files), p.raw>>20, strings.Join(roots, " "), time.Since(start).Seconds())
	if spec.Tiny > 0 {
		p.ratio = [numClasses]float64{classText: 3, classBinary: 2.5, classPacked: 1}
		assignTiny(r, p, spec.Seed)
	} else {
		if err := p.calibrate(ctx, spec.Size, spec.Seed, jobs); err != nil {
			return nil, err
		}
		passes := assign(r, p, spec.Seed)
		logf("benchset: gzip ratio text %.2f, binary %.2f, packed %.2f; %d layers planned", p.ratio[classText], p.ratio[classBinary], p.ratio[classPacked], len(r.layers))
		if passes > 0 {
			logf("benchset: the set is larger than the files under the roots: they are used up to %d times each", passes+1)
		}
	}

	g := &generator{r: r, p: p, c: c, seed: spec.Seed, jobs: jobs, logf: logf, streamAll: spec.streamAll}
	if err := g.pushLayers(ctx); err != nil {
		return nil, err
	}
	logf("benchset: layers pushed (%.1f s)", time.Since(start).Seconds())
	g.buildManifests()
	if err := g.pushRest(ctx); err != nil {
		return nil, err
	}

	s := r.summary()
	seen := map[string]bool{}
	for _, l := range r.layers {
		if !seen[l.digest] {
			seen[l.digest] = true
			s.UniqueBytes += l.size
			s.RawBytes += l.tarLen
		}
	}
	for _, im := range r.images {
		for _, pl := range im.platforms {
			if !seen[pl.configDigest] {
				seen[pl.configDigest] = true
				s.UniqueBytes += int64(len(pl.config))
			}
		}
	}
	if len(seen) != s.UniqueBlobs {
		// Two layers built the same bytes: the stamps should prevent it.
		return nil, fmt.Errorf("benchset: %d distinct blobs where %d were planned", len(seen), s.UniqueBlobs)
	}
	logf("benchset: %d images, %d repositories, %d manifests, %d blobs, %.1f MiB (%.1f MiB uncompressed) in %.1f s",
		len(s.Images), s.Repos, s.Manifests, s.UniqueBlobs, float64(s.UniqueBytes)/(1<<20), float64(s.RawBytes)/(1<<20), time.Since(start).Seconds())
	return s, nil
}

// assign gives every layer of a sized set its files. It returns how many
// times the pool ran out.
func assign(r *recipe, p *pool, seed int64) int {
	a := &allocator{p: p}
	for _, l := range r.layers {
		if l.from != nil {
			l.derive(p, a, seed)
		} else {
			l.setFiles(p, a.take(l.target))
		}
	}
	return a.passes
}

// assignTiny gives every layer of a tiny set a few small neighbouring files
// (as a COPY of a small directory), chosen from the layer's name and the
// seed, so that an image does not depend on how many others there are.
func assignTiny(r *recipe, p *pool, seed int64) {
	var small []int
	for i, f := range p.files {
		if f.size <= 4<<10 {
			small = append(small, i)
		}
	}
	if len(small) == 0 {
		for i := range p.files {
			small = append(small, i)
		}
	}
	for _, l := range r.layers {
		rng := rand.New(rand.NewPCG(uint64(seed), strHash("files:"+l.name)))
		var files []int
		for k, est := rng.IntN(len(small)), int64(512); est < l.target && len(files) < 16; k = (k + 1) % len(small) {
			files = append(files, small[k])
			est += p.estimate(small[k])
		}
		l.setFiles(p, files)
	}
}

type generator struct {
	r    *recipe
	p    *pool
	c    *client
	seed int64
	jobs int
	logf func(string, ...any)

	streamAll bool

	home map[*layer]string // the repository a layer is uploaded to
	cpu  chan struct{}     // a token per layer being built
}

// memLayer: layers estimated below this are built in memory and uploaded
// in one PUT; larger ones are streamed.
const memLayer = 2 << 20

func (g *generator) pushLayers(ctx context.Context) error {
	g.home = map[*layer]string{}
	for _, im := range g.r.images {
		for _, pl := range im.platforms {
			for _, l := range pl.layers {
				if _, ok := g.home[l]; !ok {
					g.home[l] = im.repo
				}
			}
		}
	}
	// Largest first, so that the last layers to finish are small.
	order := slices.Clone(g.r.layers)
	slices.SortStableFunc(order, func(a, b *layer) int { return int(b.est>>10) - int(a.est>>10) })
	var total int64
	for _, l := range order {
		total += l.est
	}
	var mu sync.Mutex
	var done, bytes int64
	var count int
	// Builds take a CPU (g.cpu); uploads of small layers are mostly waiting
	// on the registry, so more of them are in flight.
	g.cpu = make(chan struct{}, g.jobs)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(g.requests())
	for _, l := range order {
		eg.Go(func() error {
			b, err := g.pushLayer(ctx, l, g.home[l])
			if err != nil {
				return fmt.Errorf("pushing layer %s to %s: %w", l.name, g.home[l], err)
			}
			l.built = b
			mu.Lock()
			defer mu.Unlock()
			count++
			bytes += l.size
			if done += l.est; done*10/max(total, 1) != (done-l.est)*10/max(total, 1) || count == len(order) {
				g.logf("benchset: %d/%d layers, %d MiB", count, len(order), bytes>>20)
			}
			return nil
		})
	}
	return eg.Wait()
}

// requests is how many requests are in flight at once.
func (g *generator) requests() int { return max(8, 4*g.jobs) }

// pushLayer builds l and uploads it to repo.
func (g *generator) pushLayer(ctx context.Context, l *layer, repo string) (built, error) {
	if l.est < memLayer && !g.streamAll {
		var buf bytes.Buffer
		b, err := g.build(ctx, l, &buf)
		if err != nil {
			return b, err
		}
		return b, g.c.putBlob(ctx, repo, b.digest, buf.Bytes())
	}
	var b built
	err := g.c.streamBlob(ctx, repo, func(w io.Writer) (string, error) {
		var err error
		b, err = g.build(ctx, l, w)
		return b.digest, err
	})
	return b, err
}

// build writes l to w once a CPU is free.
func (g *generator) build(ctx context.Context, l *layer, w io.Writer) (built, error) {
	select {
	case g.cpu <- struct{}{}:
	case <-ctx.Done():
		return built{}, ctx.Err()
	}
	defer func() { <-g.cpu }()
	return l.write(ctx, w, g.p, g.seed)
}

// Media types of the two families.
type mediaTypes struct{ manifest, index, config, layer types.MediaType }

var (
	dockerTypes = mediaTypes{types.DockerManifestSchema2, types.DockerManifestList, types.DockerConfigJSON, types.DockerLayer}
	ociTypes    = mediaTypes{types.OCIManifestSchema1, types.OCIImageIndex, types.OCIConfigJSON, types.OCILayer}
)

func (im *image) types() mediaTypes {
	if im.oci {
		return ociTypes
	}
	return dockerTypes
}

// buildManifests makes every config, manifest and index, once the layers'
// digests are known.
func (g *generator) buildManifests() {
	for n, im := range g.r.images {
		mt := im.types()
		created := epoch.Add(time.Duration(n) * time.Hour)
		for _, pl := range im.platforms {
			cfg := v1.ConfigFile{
				Architecture: pl.arch, Variant: pl.variant, OS: "linux",
				Created: v1.Time{Time: created},
				Config: v1.Config{
					Env:        append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, im.env...),
					Cmd:        im.cmd,
					WorkingDir: im.workdir,
					Labels: map[string]string{
						"org.opencontainers.image.title":   im.repo,
						"org.opencontainers.image.version": im.tags[0],
					},
				},
				RootFS: v1.RootFS{Type: "layers"},
			}
			m := v1.Manifest{SchemaVersion: 2, MediaType: mt.manifest}
			for k, l := range pl.layers {
				cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, mustHash(l.diffID))
				cfg.History = append(cfg.History, v1.History{Created: v1.Time{Time: created.Add(time.Duration(k-len(pl.layers)) * time.Minute)}, CreatedBy: l.createdBy})
				m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt.layer, Size: l.size, Digest: mustHash(l.digest)})
			}
			if len(im.cmd) > 0 {
				cfg.History = append(cfg.History, v1.History{Created: v1.Time{Time: created}, CreatedBy: fmt.Sprintf("CMD %q", im.cmd), EmptyLayer: true})
			}
			pl.config = mustJSON(cfg)
			pl.configDigest = digestOf(pl.config)
			pl.configMediaType = string(mt.config)
			m.Config = v1.Descriptor{MediaType: mt.config, Size: int64(len(pl.config)), Digest: mustHash(pl.configDigest)}
			pl.manifest = mustJSON(m)
			pl.manifestDigest = digestOf(pl.manifest)
			pl.manifestMedia = string(mt.manifest)
		}
	}
}

// index is the image's index, for an image of several platforms.
func (im *image) index() []byte {
	mt := im.types()
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: mt.index}
	for _, pl := range im.platforms {
		idx.Manifests = append(idx.Manifests, v1.Descriptor{
			MediaType: mt.manifest, Size: int64(len(pl.manifest)), Digest: mustHash(pl.manifestDigest),
			Platform: &v1.Platform{OS: "linux", Architecture: pl.arch, Variant: pl.variant},
		})
	}
	return mustJSON(idx)
}

// pushRest pushes the configs, mounts every blob into the other
// repositories that need it, then pushes manifests and indexes.
func (g *generator) pushRest(ctx context.Context) error {
	type blob struct {
		digest string
		data   []byte   // a config; nil for a layer, already in its home
		home   string   // repository it is uploaded to
		repos  []string // every repository that needs it
	}
	var blobs []*blob
	byDigest := map[string]*blob{}
	need := func(digest string, data []byte, home, repo string) {
		b := byDigest[digest]
		if b == nil {
			b = &blob{digest: digest, data: data, home: home}
			byDigest[digest] = b
			blobs = append(blobs, b)
		}
		if !slices.Contains(b.repos, repo) {
			b.repos = append(b.repos, repo)
		}
	}
	for _, im := range g.r.images {
		for _, repo := range append([]string{im.repo}, im.mirrors...) {
			for _, pl := range im.platforms {
				for _, l := range pl.layers {
					need(l.digest, nil, g.home[l], repo)
				}
				need(pl.configDigest, pl.config, im.repo, repo)
			}
		}
	}

	conc := g.requests()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(conc)
	for _, b := range blobs {
		if b.data != nil {
			eg.Go(func() error {
				if err := g.c.putBlob(ectx, b.home, b.digest, b.data); err != nil {
					return fmt.Errorf("pushing config %s to %s: %w", b.digest, b.home, err)
				}
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	layers := map[string]*layer{}
	for _, l := range g.r.layers {
		layers[l.digest] = l
	}
	var mounts int
	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(conc)
	for _, b := range blobs {
		for _, repo := range b.repos {
			if repo == b.home {
				continue
			}
			mounts++
			eg.Go(func() error {
				ok, err := g.c.mount(ectx, repo, b.home, b.digest)
				if err == nil && !ok {
					// The registry would not mount: upload it again.
					if b.data != nil {
						err = g.c.putBlob(ectx, repo, b.digest, b.data)
					} else {
						err = g.pushLayerTo(ectx, layers[b.digest], repo)
					}
				}
				if err != nil {
					return fmt.Errorf("mounting %s from %s into %s: %w", b.digest, b.home, repo, err)
				}
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	g.logf("benchset: configs pushed, %d blobs mounted across repositories", mounts)

	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(conc)
	for _, im := range g.r.images {
		var idx []byte
		if len(im.platforms) > 1 {
			idx = im.index()
		}
		for _, repo := range append([]string{im.repo}, im.mirrors...) {
			eg.Go(func() error {
				if idx != nil {
					for _, pl := range im.platforms {
						if err := g.c.putManifest(ectx, repo, pl.manifestDigest, pl.manifestMedia, pl.manifest); err != nil {
							return fmt.Errorf("pushing the %s manifest of %s:%s: %w", pl.arch, repo, im.tags[0], err)
						}
					}
				}
				body, media := idx, string(im.types().index)
				if idx == nil {
					body, media = im.platforms[0].manifest, im.platforms[0].manifestMedia
				}
				for _, tag := range im.tags {
					if err := g.c.putManifest(ectx, repo, tag, media, body); err != nil {
						return fmt.Errorf("pushing %s:%s: %w", repo, tag, err)
					}
				}
				return nil
			})
		}
	}
	return eg.Wait()
}

// pushLayerTo builds a layer again and uploads it to repo, when a registry
// refuses to mount it; the build is deterministic, so the digest is the
// same unless a file changed meanwhile.
func (g *generator) pushLayerTo(ctx context.Context, l *layer, repo string) error {
	b, err := g.pushLayer(ctx, l, repo)
	if err != nil {
		return err
	}
	if b.digest != l.digest {
		return fmt.Errorf("layer %s rebuilt as %s: a file changed on the machine", l.digest, b.digest)
	}
	return nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mustHash(s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		panic(err)
	}
	return h
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
