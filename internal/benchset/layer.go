package benchset

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// epoch is the modification time of every file in the layers: the set does
// not depend on when it is generated.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// layer is one layer blob of the set.
type layer struct {
	name      string  // unique in the set; seeds the build stamp
	weight    float64 // share of the set's size (sized sets)
	target    int64   // compressed bytes wanted; set from weight when zero
	arm       bool    // paths of an arm64 build
	prefix    string  // replaces "usr/" in the files' paths ("" keeps real paths)
	createdBy string  // history line in the image config
	from      *layer  // earlier version: same files but a few
	changes   int     // files that differ from the earlier version

	entries []entry // filled by the allocator, sorted by name
	est     int64   // estimated compressed size

	built // the result of the build
}

// built is what building a layer gives.
type built struct {
	digest string
	size   int64  // compressed
	diffID string // digest of the tar stream
	tarLen int64
}

// entry is one file of a layer.
type entry struct {
	name string // path in the layer
	src  int    // pool file index, or -1 for the build stamp
}

// setFiles fills entries from pool files and adds the build stamp.
func (l *layer) setFiles(p *pool, files []int) {
	l.entries = l.entries[:0]
	for _, i := range files {
		l.entries = append(l.entries, entry{name: l.pathOf(p.files[i].path), src: i})
	}
	l.finish(p)
}

// pathOf maps a machine path to its path in the layer.
func (l *layer) pathOf(p string) string {
	name := strings.TrimLeft(strings.ReplaceAll(p, "\\", "/"), "/")
	if i := strings.IndexByte(name, ':'); i >= 0 { // a Windows volume
		name = strings.TrimLeft(name[i+1:], "/")
	}
	if l.prefix != "" {
		name = l.prefix + strings.TrimPrefix(name, "usr/")
	}
	if l.arm {
		name = strings.ReplaceAll(name, "x86_64-linux-gnu", "aarch64-linux-gnu")
	}
	return name
}

// finish adds the build stamp, sorts and de-duplicates the entries (two
// roots may give the same layer path) and sums the estimate.
func (l *layer) finish(p *pool) {
	l.entries = append(l.entries, entry{name: "var/lib/buildinfo/" + strings.ReplaceAll(l.name, "/", "-"), src: -1})
	slices.SortStableFunc(l.entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	l.entries = slices.CompactFunc(l.entries, func(a, b entry) bool { return a.name == b.name })
	l.est = 512 // the stamp, directories, gzip and tar trailers
	for _, e := range l.entries {
		if e.src >= 0 {
			l.est += p.estimate(e.src)
		}
	}
}

// derive makes l a new version of l.from: the same paths, with the content
// of l.changes of them taken from other files.
func (l *layer) derive(p *pool, a *allocator, seed int64) {
	l.entries = l.entries[:0]
	var idx []int
	for _, e := range l.from.entries {
		if e.src >= 0 {
			l.entries = append(l.entries, e)
			idx = append(idx, len(l.entries)-1)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), strHash(l.name)))
	for n := 0; n < l.changes && len(idx) > 0; n++ {
		k := rng.IntN(len(idx))
		e := &l.entries[idx[k]]
		e.src = a.takeOne(p.estimate(e.src))
		idx = slices.Delete(idx, k, k+1)
	}
	l.finish(p)
}

// stamp is the small generated file that makes every layer unique.
func (l *layer) stamp(seed int64) []byte {
	rng := rand.New(rand.NewPCG(uint64(seed), strHash(l.name)))
	var b strings.Builder
	fmt.Fprintf(&b, "layer=%s\nbuild=%016x\n", l.name, rng.Uint64())
	for range 4 + rng.IntN(12) {
		fmt.Fprintf(&b, "%016x%016x\n", rng.Uint64(), rng.Uint64())
	}
	return []byte(b.String())
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// write writes the layer as a gzip tar stream to w. A file that went
// missing since the walk is left out; one that shrank is padded with zeros,
// so the tar stays well formed.
func (l *layer) write(ctx context.Context, w io.Writer, p *pool, seed int64) (built, error) {
	blobHash, rawHash := sha256.New(), sha256.New()
	var blobLen, rawLen countWriter
	// Deflate writes a few hundred bytes at a time: hand w and the hash
	// big pieces instead (through a pipe, each write is a goroutine switch).
	out := bufio.NewWriterSize(io.MultiWriter(w, blobHash, &blobLen), 256<<10)
	zw, err := gzip.NewWriterLevel(out, gzip.DefaultCompression)
	if err != nil {
		return built{}, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, rawHash, &rawLen))
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	dirs := map[string]bool{}
	mkdirs := func(name string) error {
		var missing []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			missing = append(missing, d)
			dirs[d] = true
		}
		for _, d := range slices.Backward(missing) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range l.entries {
		if err := ctx.Err(); err != nil {
			return built{}, err
		}
		if e.src < 0 {
			b := l.stamp(seed)
			if err := mkdirs(e.name); err != nil {
				return built{}, err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: int64(len(b)), Mode: 0o644, ModTime: epoch}); err != nil {
				return built{}, err
			}
			if _, err := tw.Write(b); err != nil {
				return built{}, err
			}
			continue
		}
		pf := p.files[e.src]
		f, err := os.Open(pf.path)
		if err != nil {
			continue
		}
		err = mkdirs(e.name)
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: pf.size, Mode: int64(pf.mode), ModTime: epoch})
		}
		if err == nil {
			_, err = io.CopyBuffer(tw, io.LimitReader(io.MultiReader(f, zeros{}), pf.size), *bufp)
		}
		f.Close()
		if err != nil {
			return built{}, fmt.Errorf("adding %s: %w", pf.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return built{}, err
	}
	if err := zw.Close(); err != nil {
		return built{}, err
	}
	if err := out.Flush(); err != nil {
		return built{}, err
	}
	return built{
		digest: "sha256:" + hex.EncodeToString(blobHash.Sum(nil)),
		size:   blobLen.n,
		diffID: "sha256:" + hex.EncodeToString(rawHash.Sum(nil)),
		tarLen: rawLen.n,
	}, nil
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

func strHash(s string) uint64 {
	var h uint64 = 14695981039346656037 // FNV-1a
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
