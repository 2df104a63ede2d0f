package benchset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
)

// maxFileSize is the largest machine file a layer takes.
const maxFileSize = 64 << 20

// DefaultRoots are the directories files are taken from when Spec.Roots is
// nil; those missing on the machine are skipped.
var DefaultRoots = []string{
	"/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/bin", "/usr/include",
	"/usr/share", "/usr/local/go", "/usr/local/lib",
}

// skipTrees are never walked, even below a root: their files are not files.
var skipTrees = []string{"/proc", "/sys", "/dev", "/run"}

// file is a regular file of the machine.
type file struct {
	path  string // absolute, as found
	size  int64
	mode  fs.FileMode // permission bits
	class int
}

// Classes of files by how well they compress, each with its own measured
// ratio.
const (
	classText   = iota // text, data, documentation
	classBinary        // executables, shared libraries, archives of objects
	classPacked        // already compressed
	numClasses
)

var packedExt = map[string]bool{
	".gz": true, ".tgz": true, ".xz": true, ".zst": true, ".bz2": true, ".lz": true, ".lzma": true, ".lz4": true,
	".br": true, ".zip": true, ".jar": true, ".whl": true, ".7z": true, ".deb": true, ".rpm": true, ".apk": true,
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true, ".woff": true, ".woff2": true,
	".mp3": true, ".ogg": true, ".mp4": true, ".squashfs": true, ".jmod": true,
}

func classify(path string, mode fs.FileMode) int {
	base := filepath.Base(path)
	ext := strings.ToLower(filepath.Ext(base))
	switch {
	case packedExt[ext]:
		return classPacked
	case ext == ".so" || strings.Contains(base, ".so.") || ext == ".a" || ext == ".o" || ext == ".node":
		return classBinary
	case ext == "" && mode&0o111 != 0:
		return classBinary
	}
	return classText
}

// pool is the machine's files in a seeded order, cut into groups of
// neighbouring files (a directory, or part of one) so that a layer takes
// whole directories as a package install does.
type pool struct {
	files     []file
	groups    [][]int // indices into files, groups in seeded order
	ratio     [numClasses]float64
	fileRatio map[int]float64 // measured ratio of a big file
	raw       int64           // bytes of all files
}

// bigFile: files this large are measured one by one. They are a few hundred
// of a hundred thousand, but most of the bytes, and a class's ratio says
// little about one of them (a JVM modules image, a Go binary, a data file).
const bigFile = 1 << 20

// walk lists the regular files under roots, sorted by path: no symbolic
// links, nothing larger than maxFileSize, nothing unreadable. The
// directories right below each root are walked in parallel.
func walk(ctx context.Context, roots []string, jobs int) ([]file, error) {
	var mu sync.Mutex
	var files []file
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 4)) // mostly waiting on the disk when the cache is cold
	for _, root := range roots {
		real, err := filepath.EvalSymlinks(root)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("resolving root %s: %w", root, err)
		}
		if real, err = filepath.Abs(real); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(real)
		if err != nil {
			return nil, fmt.Errorf("reading root %s: %w", root, err)
		}
		for _, e := range entries {
			g.Go(func() error {
				found, err := walkTree(ctx, filepath.Join(real, e.Name()))
				mu.Lock()
				files = append(files, found...)
				mu.Unlock()
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.path, b.path) })
	// Roots may overlap (one inside another): keep each file once.
	files = slices.CompactFunc(files, func(a, b file) bool { return a.path == b.path })
	return files, nil
}

func walkTree(ctx context.Context, top string) ([]file, error) {
	var files []file
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// An unreadable directory or a file gone while walking.
			if d != nil && d.IsDir() && path != top {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if slices.Contains(skipTrees, filepath.ToSlash(path)) {
				return fs.SkipDir
			}
			return ctx.Err()
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > maxFileSize || info.Mode().Perm()&0o444 == 0 {
			return nil
		}
		perm := info.Mode().Perm()
		files = append(files, file{path: path, size: info.Size(), mode: perm, class: classify(path, perm)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", top, err)
	}
	return files, nil
}

// newPool groups files and shuffles the groups with seed.
func newPool(files []file, seed int64) *pool {
	const maxGroupFiles, maxGroupBytes = 48, 8 << 20
	p := &pool{files: files}
	var cur []int
	var curBytes int64
	for i, f := range files {
		if len(cur) > 0 && (filepath.Dir(f.path) != filepath.Dir(files[cur[0]].path) || len(cur) == maxGroupFiles || curBytes+f.size > maxGroupBytes) {
			p.groups = append(p.groups, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, i)
		curBytes += f.size
		p.raw += f.size
	}
	if len(cur) > 0 {
		p.groups = append(p.groups, cur)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x706f6f6c)) // "pool"
	rng.Shuffle(len(p.groups), func(i, j int) { p.groups[i], p.groups[j] = p.groups[j], p.groups[i] })
	return p
}

// calibrate measures how much gzip shrinks the pool's files below bigFile,
// by class, so that a layer can be filled to a compressed size before it
// is compressed. It compresses windows of the class's bytes as a layer
// holds them: consecutive files of a directory, which look alike and
// compress better together than apart (deflate looks 32 KiB back), or a
// stretch of one file larger than a window. Window positions are drawn
// uniformly over the class's bytes, from the seed, so the ratios are fixed
// too. Small sets sample less: compressing the sample would take longer
// than building the set. Big files are measured one by one (estimate).
func (p *pool) calibrate(ctx context.Context, size int64, seed int64, jobs int) error {
	const window = 128 << 10
	sampleBytes := min(16<<20, max(size/4, 256<<10))
	var idx [numClasses][]int
	var ends [numClasses][]int64 // cumulative sizes, in path order
	for i, f := range p.files {
		if f.size == 0 || f.size >= bigFile {
			continue
		}
		c := f.class
		var prev int64
		if n := len(ends[c]); n > 0 {
			prev = ends[c][n-1]
		}
		idx[c] = append(idx[c], i)
		ends[c] = append(ends[c], prev+f.size)
	}
	defaults := [numClasses]float64{classText: 3.5, classBinary: 2.5, classPacked: 1.0}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for c := range numClasses {
		p.ratio[c] = defaults[c]
		if len(ends[c]) == 0 || ends[c][len(ends[c])-1] < 4*window {
			continue
		}
		total := ends[c][len(ends[c])-1]
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(0x63616c00+c))) // "cal"
		var windows [][]piece
		for n := int64(0); n < sampleBytes && n < total; n += window {
			pos := rng.Int64N(total)
			k, _ := slices.BinarySearch(ends[c], pos+1)
			if f := p.files[idx[c][k]]; f.size > window {
				start := ends[c][k] - f.size
				windows = append(windows, []piece{{idx[c][k], min(max(pos-start-window/2, 0), f.size-window), window}})
				continue
			}
			var w []piece
			for left := int64(window); left > 0 && k < len(idx[c]); k++ {
				n := min(p.files[idx[c][k]].size, left)
				w = append(w, piece{idx[c][k], 0, n})
				left -= n
			}
			windows = append(windows, w)
		}
		g.Go(func() error {
			r, err := p.compressRatio(ctx, windows)
			if r > 0 {
				p.ratio[c] = r
			}
			return err
		})
	}
	return g.Wait()
}

// piece is n bytes of a file, at off.
type piece struct {
	file   int
	off, n int64
}

// warmUp is the start of a sample window that is compressed but not
// counted: deflate's history, which a file in a layer has.
const warmUp = 32 << 10

// compressRatio compresses windows of consecutive pieces and returns
// uncompressed over compressed bytes, not counting each window's first
// warmUp bytes (0 when nothing could be read).
func (p *pool) compressRatio(ctx context.Context, windows [][]piece) (float64, error) {
	var out countWriter
	zw, _ := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
	var buf []byte
	var in, counted, packed int64
	for _, w := range windows {
		var fed, in0, out0 int64
		for _, pc := range w {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			f, err := os.Open(p.files[pc.file].path)
			if err != nil {
				continue
			}
			if int64(len(buf)) < pc.n {
				buf = make([]byte, pc.n)
			}
			got, _ := f.ReadAt(buf[:pc.n], pc.off)
			f.Close()
			b := buf[:got]
			if fed < warmUp {
				// Finish the warm-up, then start counting.
				k := min(int64(len(b)), warmUp-fed)
				if _, err := zw.Write(b[:k]); err != nil {
					return 0, err
				}
				fed, b = fed+k, b[k:]
				if fed == warmUp {
					if err := zw.Flush(); err != nil {
						return 0, err
					}
					in0, out0 = in, out.n
				}
			}
			if _, err := zw.Write(b); err != nil {
				return 0, err
			}
			fed, in = fed+int64(len(b)), in+int64(len(b))
		}
		if fed > warmUp {
			if err := zw.Flush(); err != nil {
				return 0, err
			}
			counted += in - in0
			packed += out.n - out0
		}
	}
	if err := zw.Close(); err != nil || counted == 0 || packed == 0 {
		return 0, err
	}
	return float64(counted) / float64(packed), nil
}

// estimate is the compressed size a file adds to a layer: its content
// shrunk by its class's ratio, and its tar header. A big file is measured
// the first time, from four chunks spread over it. Only the allocator calls
// it, on one goroutine.
func (p *pool) estimate(i int) int64 {
	f := p.files[i]
	r := p.ratio[f.class]
	if f.size >= bigFile {
		if p.fileRatio == nil {
			p.fileRatio = map[int]float64{}
		}
		fr, ok := p.fileRatio[i]
		if !ok {
			const spread, chunk = 4, 64<<10 + warmUp
			var windows [][]piece
			for k := range int64(spread) {
				// The middle of each of spread slices of the file.
				windows = append(windows, []piece{{i, (2*k+1)*f.size/(2*spread) - chunk/2, chunk}})
			}
			fr, _ = p.compressRatio(context.Background(), windows)
			p.fileRatio[i] = fr
		}
		if fr > 0 {
			r = fr
		}
	}
	return int64(float64(f.size)/r) + 64
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }

// allocator hands out the pool's files to layers in order, each file once
// until the pool runs out, then again from the start (the layers still
// differ: each has its own files around them and its own build stamp).
type allocator struct {
	p        *pool
	group    int // next group
	next     int // next file within it
	deferred []int
	passes   int // times the pool was used up
}

// fits reports whether a file of estimated size est may go into a layer of
// target bytes that still lacks need: a big file waits for a big layer
// rather than blowing a small one up or being most of it (a layer is many
// files, unless it is tiny).
func fits(est, need, target int64) bool {
	return est <= need+max(need/4, min(target/8, 16<<10)) && (est <= target/2 || target < 64<<10)
}

// take returns files whose estimated compressed sizes add up to target.
func (a *allocator) take(target int64) []int {
	var got []int
	var have int64
	// Files put off by smaller layers come first.
	kept := a.deferred[:0]
	for _, i := range a.deferred {
		if have < target && fits(a.p.estimate(i), target-have, target) {
			got = append(got, i)
			have += a.p.estimate(i)
		} else {
			kept = append(kept, i)
		}
	}
	a.deferred = kept
	skipped := 0
	for have < target {
		i := a.nextFile()
		est := a.p.estimate(i)
		// Accept anything once a whole pool went by without a fit.
		if !fits(est, target-have, target) && skipped < len(a.p.files) {
			a.deferred = append(a.deferred, i)
			skipped++
			continue
		}
		got = append(got, i)
		have += est
	}
	return got
}

// takeOne returns one file of about est bytes, to replace a file in a new
// version of a layer: one within a factor of two among the files put off,
// or else among the next ones; failing that the closest seen.
func (a *allocator) takeOne(est int64) int {
	off := func(i int) float64 { return math.Abs(math.Log(float64(a.p.estimate(i)+1) / float64(est+1))) }
	best := -1
	for k, i := range a.deferred {
		if best < 0 || off(i) < off(a.deferred[best]) {
			best = k
		}
	}
	for n := 0; n < 256 && (best < 0 || off(a.deferred[best]) >= math.Ln2); n++ {
		a.deferred = append(a.deferred, a.nextFile())
		if k := len(a.deferred) - 1; best < 0 || off(a.deferred[k]) < off(a.deferred[best]) {
			best = k
		}
	}
	i := a.deferred[best]
	a.deferred = slices.Delete(a.deferred, best, best+1)
	return i
}

func (a *allocator) nextFile() int {
	for a.next >= len(a.p.groups[a.group]) {
		a.group, a.next = a.group+1, 0
		if a.group == len(a.p.groups) {
			a.group = 0
			a.passes++
		}
	}
	i := a.p.groups[a.group][a.next]
	a.next++
	return i
}
