package bundle

// Delta bundles (docs/format.md, section 5.6): a bundle whose signed
// index.json names one or more bases (earlier bundles, or receipts of what
// a destination holds) and leaves out of the archive the configs and
// layers those bases hold. Manifests always stay in the archive: a reader
// needs the whole graph to check and push it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ferryproject/ferry/internal/human"
)

// Kinds of base a delta bundle names.
const (
	// BaseBundle: an earlier bundle, named by the digest of its index.json.
	BaseBundle = "bundle"
	// BaseReceipt: a receipt of what a destination holds (Receipt), named
	// by the digest of the receipt file.
	BaseReceipt = "receipt"
)

// Base is what a delta bundle may leave out: the blobs an earlier bundle
// or a receipt says the destination holds. ReadBase makes one.
type Base struct {
	Kind string
	// Digest names the base in the delta's index.json: the digest of the
	// bundle's index.json, or of the receipt file.
	Digest digest.Digest
	// Name is the base file's name, for messages only.
	Name  string
	blobs map[digest.Digest]bool
	// sizes are the sizes a base bundle's seek table gives its blobs
	// (none for a receipt, or for the blobs a base delta left out).
	sizes map[digest.Digest]int64
}

// Holds reports whether the base holds blob d.
func (b *Base) Holds(d digest.Digest) bool { return b.blobs[d] }

// holdsDesc reports whether the base holds the blob desc describes: its
// digest, and its size where the base knows it. A descriptor whose size
// the base contradicts (a manifest from a lying registry) is not left
// out, so the export fetches the blob and checks it.
func (b *Base) holdsDesc(desc ocispec.Descriptor) bool {
	if !b.blobs[desc.Digest] {
		return false
	}
	size, ok := b.sizes[desc.Digest]
	return !ok || size == desc.Size
}

// Blobs is the number of blobs the base holds.
func (b *Base) Blobs() int { return len(b.blobs) }

// String names the base for messages: kind, digest and file name.
func (b *Base) String() string { return baseString(b.Kind, b.Digest, b.Name) }

func baseString(kind string, d digest.Digest, name string) string {
	s := kind + " " + d.String()
	if name != "" {
		s += " (" + truncate(name, 200) + ")"
	}
	return s
}

// ReadBase reads the base of a delta bundle at path: a bundle or a
// receipt (JSON, the Receipt type). Of a bundle only the seek table and
// index.json are read, never a blob's content: its blobs are the blob
// entries the table lists, plus the blobs it left out itself when it is a
// delta (they were at the destination when it was imported). Neither the
// base's content nor its signature is checked: a delta that leaves out a
// blob the destination lacks is refused by its import before anything is
// pushed.
func ReadBase(path string) (*Base, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("base %s is a directory; give a bundle or a receipt file", path)
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	name := filepath.Base(path)
	var b *Base
	switch t := bytes.TrimLeft(head, " \t\r\n"); {
	case checkMagic(bytes.NewReader(head)) == nil:
		b, err = readBaseBundle(f, st.Size(), name)
	case len(t) > 0 && t[0] == '{':
		// Not seeking back: a receipt may come through a pipe
		// (--base <(ssh host cat receipt.json)).
		b, err = readBaseReceipt(io.MultiReader(bytes.NewReader(head), f), name)
	default:
		return nil, fmt.Errorf("base %s is neither a ferry bundle nor a receipt (JSON)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading base %s: %w", path, err)
	}
	return b, nil
}
func readBaseBundle(f *os.File, size int64, name string) (*Base, error) {
	t, _, err := readSeekTable(f, size)
	if errors.Is(err, errNoSeekTable) {
		return nil, fmt.Errorf("%w: it has no seek table, so its blobs cannot be listed without reading it whole (a copy that lost its end, or a bundle another tool wrote): use the bundle as ferry export wrote it, or a receipt", ErrNotBundle)
	}
	if err != nil {
		return nil, err
	}
	// index.json through the table, from its own frame (openEntry checks
	// the frame holds that entry); no other frame is read.
	r := &Reader{ra: f, size: size, table: t, seek: t.lookup()}
	e := r.seek[IndexFile]
	rc, err := r.openEntry(e)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	index, err := readSmall(rc, IndexFile, e.Size)
	if err != nil {
		return nil, err
	}
	d := digest.FromBytes(index)
	b := &Base{Kind: BaseBundle, Digest: d, Name: name, blobs: map[digest.Digest]bool{}, sizes: map[digest.Digest]int64{}}
	for _, e := range t.Entries {
		if blobNameRe.MatchString(e.Name) {
			b.blobs[nameDigest(e.Name)] = true
			b.sizes[nameDigest(e.Name)] = e.Size
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, fmt.Errorf("%w: index.json is not valid JSON: %v", ErrCorrupt, err)
	}
	if a, ok := idx.Annotations[AnnotationDeltaBases]; ok {
		bases, err := parseDeltaBases(a)
		if err != nil {
			return nil, err
		}
		for _, db := range bases {
			for _, d := range db.LeftOut {
				b.blobs[d] = true
			}
		}
	}
	return b, nil
}

func readBaseReceipt(f io.Reader, name string) (*Base, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxReceiptBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxReceiptBytes {
		return nil, fmt.Errorf("%w: the receipt is more than %d bytes", ErrTooLarge, maxReceiptBytes)
	}
	var rc Receipt
	if err := json.Unmarshal(data, &rc); err != nil {
		return nil, fmt.Errorf("not a receipt: %v", err)
	}
	if rc.Version != 1 {
		return nil, fmt.Errorf("%w: receipt version %d; this ferry reads version 1", ErrUnsupported, rc.Version)
	}
	b := &Base{Kind: BaseReceipt, Digest: digest.FromBytes(data), Name: name, blobs: map[digest.Digest]bool{}}
	for _, d := range rc.Blobs {
		if err := validateDigest(d); err != nil {
			return nil, fmt.Errorf("receipt blob: %w", err)
		}
		b.blobs[d] = true
	}
	return b, nil
}

// Delta describes a delta bundle: the bases its index.json names and the
// blobs it leaves out of the archive.
type Delta struct {
	Bases []DeltaBase
}

// DeltaBase is one base a delta names, as the AnnotationDeltaBases
// annotation of its index.json lists it.
type DeltaBase struct {
	// Kind is BaseBundle or BaseReceipt.
	Kind string `json:"kind"`
	// Digest of the base bundle's index.json, or of the receipt file.
	Digest digest.Digest `json:"digest"`
	// Name is the base's file name at export, for messages only.
	Name string `json:"name,omitempty"`
	// LeftOut are the configs and layers this base holds that the delta
	// leaves out (each digest under one base only), sorted.
	LeftOut []digest.Digest `json:"leftOut"`
}

func (b DeltaBase) String() string { return baseString(b.Kind, b.Digest, b.Name) }

// parseDeltaBases parses the AnnotationDeltaBases annotation: any fault is
// corruption, since ferry export never writes it.
func parseDeltaBases(s string) ([]DeltaBase, error) {
	bad := func(format string, a ...any) error {
		return inBundle(fmt.Errorf("%w: index.json annotation %s: %s", ErrCorrupt, AnnotationDeltaBases, fmt.Sprintf(format, a...)))
	}
	var bases []DeltaBase
	if err := json.Unmarshal([]byte(s), &bases); err != nil {
		return nil, bad("not a JSON array of bases: %v", err)
	}
	if len(bases) == 0 {
		return nil, bad("names no base")
	}
	names, outs := map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for i, b := range bases {
		if b.Kind != BaseBundle && b.Kind != BaseReceipt {
			return nil, bad("base %d has kind %q; want %q or %q", i, truncate(b.Kind, 40), BaseBundle, BaseReceipt)
		}
		if err := validateDigest(b.Digest); err != nil {
			return nil, bad("base %d: %v", i, err)
		}
		if names[b.Digest] {
			return nil, bad("base %s is named twice", b.Digest)
		}
		names[b.Digest] = true
		for _, d := range b.LeftOut {
			if err := validateDigest(d); err != nil {
				return nil, bad("base %d: left-out blob: %v", i, err)
			}
			if outs[d] {
				return nil, bad("blob %s is left out twice", d)
			}
			outs[d] = true
		}
	}
	return bases, nil
}

// setDelta reads the delta annotation of the index just parsed.
func (r *Reader) setDelta() error {
	a, ok := r.index.Annotations[AnnotationDeltaBases]
	if !ok {
		return nil
	}
	bases, err := parseDeltaBases(a)
	if err != nil {
		return err
	}
	r.delta = &Delta{Bases: bases}
	r.leftOut = map[digest.Digest]int{}
	for i, b := range bases {
		for _, d := range b.LeftOut {
			r.leftOut[d] = i
		}
	}
	return nil
}

// checkDelta checks, once the graph is read, that every blob a delta
// leaves out is a config or layer of its images.
func (r *Reader) checkDelta() error {
	for _, b := range r.delta.bases() {
		for _, d := range b.LeftOut {
			if _, ok := r.g.blobs[d]; !ok {
				return inBundle(fmt.Errorf("%w: index.json leaves out blob %s (base %s), which no manifest lists as a config or layer", ErrCorrupt, d, b.Digest))
			}
		}
	}
	return nil
}

func (d *Delta) bases() []DeltaBase {
	if d == nil {
		return nil
	}
	return d.Bases
}

// Delta returns what index.json says of a delta bundle: its bases and the
// blobs it leaves out; nil for a full bundle.
func (r *Reader) Delta() *Delta { return r.delta }

// LeftOut returns the descriptors of the configs and layers a delta
// bundle leaves out, in archive order; none for a full bundle.
func (r *Reader) LeftOut() []ocispec.Descriptor {
	if len(r.leftOut) == 0 {
		return nil
	}
	var out []ocispec.Descriptor
	for _, desc := range r.g.orderedBlobs() {
		if _, ok := r.leftOut[desc.Digest]; ok {
			out = append(out, desc)
		}
	}
	return out
}

// BaseOf returns the base a delta leaves blob d out for.
func (r *Reader) BaseOf(d digest.Digest) (DeltaBase, bool) {
	i, ok := r.leftOut[d]
	if !ok {
		return DeltaBase{}, false
	}
	return r.delta.Bases[i], true
}

// inArchive drops the blobs a delta leaves out.
func (r *Reader) inArchive(blobs []ocispec.Descriptor) []ocispec.Descriptor {
	if len(r.leftOut) == 0 {
		return blobs
	}
	return slices.DeleteFunc(blobs, func(d ocispec.Descriptor) bool {
		_, out := r.leftOut[d.Digest]
		return out
	})
}

// deltaIndex is, for an export with bases, the delta annotation of its
// index.json and the set of blobs left out: every config and layer of g
// that a base holds, under the first base (in the order given) that does.
func deltaIndex(g *graph, bases []*Base) (string, map[digest.Digest]bool, error) {
	named := map[digest.Digest]bool{}
	out := make([]DeltaBase, len(bases))
	for i, b := range bases {
		if named[b.Digest] {
			return "", nil, fmt.Errorf("base %s is given twice", b)
		}
		named[b.Digest] = true
		out[i] = DeltaBase{Kind: b.Kind, Digest: b.Digest, Name: b.Name, LeftOut: []digest.Digest{}}
	}
	left := map[digest.Digest]bool{}
	for _, desc := range g.orderedBlobs() {
		for i, b := range bases {
			if b.holdsDesc(desc) {
				out[i].LeftOut = append(out[i].LeftOut, desc.Digest)
				left[desc.Digest] = true
				break
			}
		}
	}
	for i := range out {
		sort.Slice(out[i].LeftOut, func(a, b int) bool { return out[i].LeftOut[a] < out[i].LeftOut[b] })
	}
	js, err := json.Marshal(out)
	if err != nil {
		return "", nil, err
	}
	return string(js), left, nil
}

// checkLeftOut makes sure, before anything is pushed, that every blob a
// delta leaves out is in each destination repository that needs it, or
// can be mounted there from another repository of this import; it fails
// naming every blob that is in none, the images that need it and its
// base. Only when all are found does it mount those that need it.
func (im *importer) checkLeftOut(ctx context.Context, to string) error {
	leftOut := im.r.LeftOut()
	if len(leftOut) == 0 {
		return nil
	}
	var all []string
	for _, t := range im.targets {
		if !slices.Contains(all, t.repo) {
			all = append(all, t.repo)
		}
	}
	type mount struct {
		desc       ocispec.Descriptor
		into, from string
	}
	var mu sync.Mutex
	var mounts []mount
	var missing []string
	present := 0
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(metaJobs(im.opts.Jobs))
	for _, desc := range leftOut {
		eg.Go(func() error {
			need := im.blobRepos[desc.Digest]
			var lack []string
			holder := ""
			for _, repo := range need {
				ok, err := im.destHolds(gctx, repo, desc)
				if err != nil {
					return fmt.Errorf("checking for blob %s (left out of this delta) in %s: %w", desc.Digest, im.dst.display(repo, ""), err)
				}
				if ok && holder == "" {
					holder = repo
				} else if !ok {
					lack = append(lack, repo)
				}
			}
			for _, repo := range all {
				if holder != "" || len(lack) == 0 {
					break
				}
				if slices.Contains(need, repo) {
					continue
				}
				ok, err := im.destHolds(gctx, repo, desc)
				if err != nil {
					return fmt.Errorf("checking for blob %s (left out of this delta) in %s: %w", desc.Digest, im.dst.display(repo, ""), err)
				}
				if ok {
					holder = repo
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(lack) > 0 && holder == "" {
				base, _ := im.r.BaseOf(desc.Digest)
				missing = append(missing, fmt.Sprintf("%s (%s) from base %s, needed by %s", desc.Digest, human.Bytes(desc.Size), base, joinLimited(im.r.Users(desc.Digest), 3)))
				return nil
			}
			present += len(need) - len(lack)
			for _, repo := range need {
				if !slices.Contains(lack, repo) {
					im.record(repo, desc.Digest, blobPresent)
				}
			}
			for _, repo := range lack {
				mounts = append(mounts, mount{desc, repo, holder})
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		names := make([]string, len(im.r.delta.Bases))
		for i, b := range im.r.delta.Bases {
			names[i] = b.String()
		}
		return fmt.Errorf("%w: %d blob(s) left out of this delta bundle are not at %s, and nothing was pushed; import its base (%s) there first, or export a full bundle (without --base):\n  %s",
			ErrBaseMissing, len(missing), to, strings.Join(names, ", "), strings.Join(missing, "\n  "))
	}
	im.res.BlobsSkipped += present
	for _, m := range mounts {
		how, err := im.dst.pushBlob(ctx, m.into, m.from, m.desc, func() (io.ReadCloser, error) { return nil, errNoMount })
		if err != nil {
			return fmt.Errorf("%w: blob %s left out of this delta is in %s, but mounting it into %s failed (nothing else was pushed): %w",
				ErrBaseMissing, m.desc.Digest, im.dst.display(m.from, ""), im.dst.display(m.into, ""), err)
		}
		if how == blobPresent {
			im.res.BlobsSkipped++
		} else {
			im.res.BlobsMounted++
			how = blobMounted
		}
		im.record(m.into, m.desc.Digest, how)
		im.opts.Progress.emit(Event{Kind: EventBlobSkipped, Digest: m.desc.Digest.String(), Size: m.desc.Size})
	}
	return nil
}

// errNoMount is the content of a blob left out of a delta: there is none
// to upload when the registry does not mount it.
var errNoMount = errors.New("the registry did not mount it, and the delta does not carry it")

// destHolds asks the destination whether repo holds blob desc.
func (im *importer) destHolds(ctx context.Context, repo string, desc ocispec.Descriptor) (bool, error) {
	switch t := im.dst.(type) {
	case checker:
		return t.holds(ctx, repo, desc)
	case *layoutTarget:
		return t.holds(blobName(desc.Digest), desc), nil
	}
	return false, fmt.Errorf("the destination cannot say which blobs it holds")
}

// CheckBases checks offline that a delta bundle is complete against bases:
// every blob it leaves out is held by the base it names for it. Every base
// given must be one the delta names. It fails with ErrBaseMissing, naming
// the blobs not found and their base.
func CheckBases(d *Delta, bases []*Base) error {
	if d == nil {
		return errors.New("the bundle is not a delta: it needs no base")
	}
	given := map[digest.Digest]*Base{}
	for _, b := range bases {
		if !slices.ContainsFunc(d.Bases, func(db DeltaBase) bool { return db.Digest == b.Digest }) {
			return fmt.Errorf("%w: %s is not a base of this delta, which names %s", ErrBaseMissing, b, deltaBaseNames(d))
		}
		given[b.Digest] = b
	}
	var problems []string
	for _, db := range d.Bases {
		b, ok := given[db.Digest]
		if !ok {
			if len(db.LeftOut) > 0 {
				problems = append(problems, fmt.Sprintf("base %s not given: its %d left-out blob(s) are not checked", db, len(db.LeftOut)))
			}
			continue
		}
		for _, dg := range db.LeftOut {
			if !b.Holds(dg) {
				problems = append(problems, fmt.Sprintf("%s, left out for base %s, is not in it", dg, db))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the delta is not complete against the bases given:\n  %s", ErrBaseMissing, strings.Join(problems, "\n  "))
	}
	return nil
}

func deltaBaseNames(d *Delta) string {
	names := make([]string, len(d.Bases))
	for i, b := range d.Bases {
		names[i] = b.String()
	}
	return strings.Join(names, ", ")
}
