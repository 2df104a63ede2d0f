// Command ferry-bench measures ferry side by side with crane, regctl and
// skopeo on the same machine and the same images, and writes the result
// to docs/performance.md. Run it with `make bench`.
//
// It sets up what it needs (Debian packages docker-registry, skopeo and
// zstd; crane and regctl with `go install` at pinned versions), generates
// deterministic image sets into a source registry (docker-registry on
// loopback), and for each tool measures EXPORT (every image into one
// archive file) and IMPORT (that archive into an empty destination
// registry), tools interleaved, several repetitions. Reference
// measurements on the same data give the machine's limits: a parallel GET
// of every unique blob, `zstd -T0 -3` of the unique blobs, and a parallel
// monolithic upload of every unique blob. A latency scenario measures
// every tool twice more through loopback proxies (internal/delayproxy), in
// front of the source for exports and of the destination for imports:
// once with no delay (what the proxy itself costs) and once with a delay
// before each request (what the link costs, against the run with no delay).
//
// Generated sets are kept under -dir and reused by later runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryproject/ferry/internal/benchset"
)

type setSpec struct {
	Name string
	Size int64
	Tiny int
}

var defaultSets = map[string]setSpec{
	"small": {Name: "small", Size: 150 << 20},
	"large": {Name: "large", Size: 1500 << 20},
	"huge":  {Name: "huge", Size: 2 << 30},
}

type bench struct {
	dir      string // everything lives here
	work     string
	home     string
	toolsBin string
	regBin   string
	seed     int64
	reps     int
	jobs     int
	tools    []tool
	logf     func(format string, args ...any)
	versions map[string]string
	profile  bool

	latency    time.Duration // the latency scenario's delay per request; 0 skips it
	latencySet string        // the set it runs on
}

func main() {
	if out := os.Getenv(rusageEnv); out != "" {
		os.Exit(rusageMain(out))
	}
	var (
		dir      = flag.String("dir", ".bench", "keep generated sets, tools and archives in `DIR`")
		sets     = flag.String("sets", "small,large", "comma-separated `SETS` to run: small (~150 MB), large (~1.5 GB), huge (~2 GB)")
		tiny     = flag.String("tiny", "250,500,1000", "image counts `N,...` for the tiny-image scaling run (empty to skip)")
		reps     = flag.Int("reps", 3, "repetitions of every measurement")
		seed     = flag.Int64("seed", 1, "seed of the generated image sets")
		only     = flag.String("tools", "ferry,crane,regctl,skopeo", "comma-separated `TOOLS` to compare")
		out      = flag.String("out", "docs/performance.md", "write the report to `FILE` ('' for none)")
		ferryBin = flag.String("ferry", "bin/ferry", "the ferry `binary` to measure")
		noSetup  = flag.Bool("no-install", false, "do not install missing tools; fail instead")
		latency  = flag.Duration("latency", 20*time.Millisecond, "also measure every tool through proxies that wait `DELAY` before each request (0 to skip)")
		latSet   = flag.String("latency-set", "small", "the `SET` the latency scenario runs on (one of -sets)")
		profile  = flag.Bool("profile", false, "also run ferry export and import once more with CPU and allocation profiles, and summarise them in the report")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatal(err)
	}
	b := &bench{
		dir: abs, work: filepath.Join(abs, "work"), home: filepath.Join(abs, "home"),
		toolsBin: filepath.Join(abs, "bin"), seed: *seed, reps: *reps, jobs: 8,
		logf:     func(f string, a ...any) { fmt.Fprintf(os.Stderr, "ferry-bench: "+f+"\n", a...) },
		versions: map[string]string{},
		profile:  *profile,
		latency:  *latency, latencySet: *latSet,
	}
	if b.latency < 0 {
		fatal(fmt.Errorf("-latency %s is negative", b.latency))
	}
	if b.latency > 0 && !slices.Contains(strings.Split(*sets, ","), b.latencySet) {
		b.logf("-latency-set %s is not in -sets %s: no latency scenario", b.latencySet, *sets)
	}
	for _, name := range strings.Split(*only, ",") {
		found := false
		for _, t := range tools {
			if t.name == name {
				b.tools, found = append(b.tools, t), true
			}
		}
		if !found {
			fatal(fmt.Errorf("unknown tool %q (known: ferry, crane, regctl, skopeo)", name))
		}
	}
	for _, d := range []string{b.work, b.home, b.toolsBin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fatal(err)
		}
	}
	if err := b.setup(ctx, *ferryBin, !*noSetup); err != nil {
		fatal(err)
	}
	rep := &report{Date: time.Now().UTC(), Machine: machine(), Versions: b.versions, Reps: b.reps, Seed: b.seed}
	for _, name := range strings.Split(*sets, ",") {
		spec, ok := defaultSets[name]
		if !ok {
			fatal(fmt.Errorf("unknown set %q (known: small, large, huge)", name))
		}
		res, err := b.runSet(ctx, spec)
		if err != nil {
			fatal(fmt.Errorf("set %s: %w", name, err))
		}
		rep.Sets = append(rep.Sets, res)
	}
	if *tiny != "" {
		var counts []int
		for _, s := range strings.Split(*tiny, ",") {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				fatal(fmt.Errorf("-tiny: %q is not a positive count", s))
			}
			counts = append(counts, n)
		}
		sc, err := b.runScaling(ctx, counts)
		if err != nil {
			fatal(fmt.Errorf("scaling: %w", err))
		}
		rep.Scaling = sc
	}
	text := rep.markdown()
	fmt.Println(rep.summary())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(text), 0o644); err != nil {
			fatal(err)
		}
		b.logf("wrote %s", *out)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "ferry-bench: %v\n", err)
	if errors.Is(err, context.Canceled) {
		os.Exit(130)
	}
	os.Exit(1)
}

// setup finds or installs every tool and records its version.
func (b *bench) setup(ctx context.Context, ferryBin string, install bool) error {
	var missing []string
	for _, p := range []struct{ bin, pkg string }{{"docker-registry", "docker-registry"}, {"skopeo", "skopeo"}, {"zstd", "zstd"}} {
		if _, err := exec.LookPath(p.bin); err != nil {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) > 0 {
		if !install {
			return fmt.Errorf("missing %s (apt-get install %s)", strings.Join(missing, ", "), strings.Join(missing, " "))
		}
		b.logf("installing %s with apt-get", strings.Join(missing, " "))
		var sudo []string
		if os.Geteuid() != 0 {
			sudo = []string{"sudo", "-n"}
		}
		run := func(args ...string) error {
			full := append(append([]string{}, sudo...), args...)
			return b.run(ctx, full[0], full[1:]...)
		}
		install := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, missing...)
		if err := run(install...); err != nil {
			b.logf("apt-get install failed, trying again after apt-get update")
			if err := run("apt-get", "update"); err != nil {
				return err
			}
			if err := run(install...); err != nil {
				return err
			}
		}
	}
	reg, err := exec.LookPath("docker-registry")
	if err != nil {
		return err
	}
	b.regBin = reg
	for _, m := range []string{craneModule, regctlModule} {
		bin := filepath.Join(b.toolsBin, filepath.Base(strings.Split(m, "@")[0]))
		stamp := bin + ".version"
		if v, err := os.ReadFile(stamp); err == nil && string(v) == m {
			if _, err := os.Stat(bin); err == nil {
				continue
			}
		}
		if !install {
			return fmt.Errorf("missing %s (go install %s)", bin, m)
		}
		b.logf("go install %s", m)
		cmd := exec.CommandContext(ctx, "go", "install", m)
		cmd.Env = append(os.Environ(), "GOBIN="+b.toolsBin, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go install %s: %w\n%s", m, err, out)
		}
		if err := os.WriteFile(stamp, []byte(m), 0o644); err != nil {
			return err
		}
	}
	src, err := filepath.Abs(ferryBin)
	if err != nil {
		return err
	}
	if err := copyFile(src, filepath.Join(b.toolsBin, "ferry")); err != nil {
		return fmt.Errorf("ferry binary %s: %w (run make build first)", ferryBin, err)
	}
	for name, args := range map[string][]string{
		"ferry": {"--version"}, "crane": {"version"}, "regctl": {"version", "--format", "{{.VCSTag}}"},
		"skopeo": {"--version"}, "zstd": {"--version"}, "docker-registry": {"--version"},
	} {
		path, err := lookPathIn(name, b.toolsBin)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = b.env()
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		b.versions[name] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	b.versions["go"] = goVersion(ctx)
	return nil
}

func lookPathIn(name, dir string) (string, error) {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return exec.LookPath(name)
}

func goVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// cachedSet is what is kept beside a generated set's registry storage.
type cachedSet struct {
	Spec setSpec
	Seed int64
	Set  benchset.Set
}

// source starts the source registry of a set, generating the set first
// when it is not in the cache.
func (b *bench) source(ctx context.Context, spec setSpec) (*distRegistry, *benchset.Set, error) {
	key := fmt.Sprintf("%s-seed%d", spec.Name, b.seed)
	storage := filepath.Join(b.dir, "sets", key)
	meta := storage + ".json"
	reg, err := newDistRegistry(b.regBin, storage)
	if err != nil {
		return nil, nil, err
	}
	var cs cachedSet
	if data, err := os.ReadFile(meta); err == nil && json.Unmarshal(data, &cs) == nil && cs.Spec == spec && cs.Seed == b.seed {
		if err := reg.start(ctx); err != nil {
			return nil, nil, err
		}
		b.logf("set %s: reusing %d images from %s", spec.Name, len(cs.Set.Images), storage)
		return reg, &cs.Set, nil
	}
	if err := reg.reset(ctx); err != nil {
		return nil, nil, err
	}
	b.logf("set %s: generating (seed %d)", spec.Name, b.seed)
	start := time.Now()
	set, err := benchset.Generate(ctx, benchset.Spec{Seed: b.seed, Size: spec.Size, Tiny: spec.Tiny, Log: b.logf}, reg.addr)
	if err != nil {
		reg.stop()
		return nil, nil, err
	}
	b.logf("set %s: %d images, %d blobs, %s in %.1f s", spec.Name, len(set.Images), set.UniqueBlobs, human(set.UniqueBytes), time.Since(start).Seconds())
	data, _ := json.MarshalIndent(cachedSet{Spec: spec, Seed: b.seed, Set: *set}, "", "  ")
	if err := os.WriteFile(meta, data, 0o644); err != nil {
		reg.stop()
		return nil, nil, err
	}
	return reg, set, nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// open starts the source registry of a set (generating the set when it is
// not cached), prepares the destination registry, and reads every image
// and unique blob of the set back from the source. The caller stops both
// registries.
func (b *bench) open(ctx context.Context, spec setSpec) (src, dst *distRegistry, set *benchset.Set, images []image, blobs []blob, err error) {
	src, set, err = b.source(ctx, spec)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	dst, err = newDistRegistry(b.regBin, filepath.Join(b.work, "dst"))
	if err == nil {
		images, blobs, err = survey(ctx, src.addr, set.Images)
		if err != nil {
			err = fmt.Errorf("reading the set back from %s: %w", src.addr, err)
		}
	}
	if err != nil {
		src.stop()
		return nil, nil, nil, nil, nil, err
	}
	return src, dst, set, images, blobs, nil
}

// writeList writes images.txt in dir: the images as ferry reads them with
// -f, one source reference per line.
func writeList(dir, addr string, images []image) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var list strings.Builder
	for _, img := range images {
		fmt.Fprintf(&list, "%s/%s\n", addr, img.ref())
	}
	return os.WriteFile(filepath.Join(dir, "images.txt"), []byte(list.String()), 0o644)
}

// runSet measures every tool and the references on one set.
func (b *bench) runSet(ctx context.Context, spec setSpec) (*setResult, error) {
	src, dst, set, images, blobs, err := b.open(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer src.stop()
	defer dst.stop()
	res := &setResult{Spec: spec, Set: *set, Images: len(images), Blobs: len(blobs), Tools: map[string]*toolResult{}}
	for _, bl := range blobs {
		res.UniqueBytes += bl.Size
	}
	setDir := filepath.Join(b.work, spec.Name)
	blobDir := filepath.Join(b.dir, "sets", fmt.Sprintf("%s-seed%d-blobs", spec.Name, b.seed))
	if err := writeList(setDir, src.addr, images); err != nil {
		return nil, err
	}
	var lat *latency
	if b.latency > 0 && spec.Name == b.latencySet {
		if lat, err = b.startLatency(src, dst, setDir); err != nil {
			return nil, err
		}
		defer lat.close()
		if err := writeList(lat.dir, lat.src.Addr(), images); err != nil {
			return nil, err
		}
		res.Latency = &latencyResult{Delay: b.latency, Tools: map[string]*latencyTool{}}
	}
	b.logf("set %s: %d images, %d unique blobs, %s", spec.Name, len(images), len(blobs), human(res.UniqueBytes))
	if err := fetchBlobs(ctx, src.addr, blobs, blobDir); err != nil {
		return nil, fmt.Errorf("fetching the blobs for the references: %w", err)
	}

	for r := 0; r < b.reps; r++ {
		// References.
		d, err := refGet(ctx, src.addr, blobs, b.jobs)
		if err != nil {
			return nil, fmt.Errorf("reference GET: %w", err)
		}
		res.RefGet = append(res.RefGet, sample{Wall: d})
		zst := filepath.Join(setDir, "reference.zst")
		s, err := b.measure(ctx, fmt.Sprintf("cat %s/* | zstd -T0 -3 -q -f -o %s", q(blobDir), q(zst)))
		if err != nil {
			return nil, fmt.Errorf("reference zstd: %w", err)
		}
		res.RefZstd = append(res.RefZstd, s)
		if fi, err := os.Stat(zst); err == nil {
			res.RefZstdSize = fi.Size()
			os.Remove(zst)
		}
		if err := dst.reset(ctx); err != nil {
			return nil, err
		}
		d, err = refUpload(ctx, dst.addr, blobs, blobDir, b.jobs)
		if err != nil {
			return nil, fmt.Errorf("reference upload: %w", err)
		}
		res.RefUpload = append(res.RefUpload, sample{Wall: d})

		// EXPORT, tools interleaved.
		for _, t := range b.tools {
			tr := res.tool(t.name)
			if tr.Err != "" {
				continue
			}
			j := job{src: src.addr, dst: dst.addr, images: images, dir: filepath.Join(setDir, t.name)}
			b.logf("set %s rep %d: %s export", spec.Name, r+1, t.name)
			s, ok, err := b.step(ctx, tr, t.name+" export", t.exportPrep(j), t.export(j), nil)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			tr.Export = append(tr.Export, s)
			if fi, err := os.Stat(j.archive()); err == nil {
				tr.Archive = fi.Size()
			}
			if lat != nil {
				if err := b.latencyExport(ctx, lat, res, t, j, r); err != nil {
					return nil, err
				}
			}
		}
		// IMPORT, tools interleaved, each into an empty registry.
		for _, t := range b.tools {
			tr := res.tool(t.name)
			if tr.Err != "" {
				continue
			}
			j := job{src: src.addr, dst: dst.addr, images: images, dir: filepath.Join(setDir, t.name)}
			b.logf("set %s rep %d: %s import", spec.Name, r+1, t.name)
			s, ok, err := b.step(ctx, tr, t.name+" import", t.importPrep(j), t.imp(j), func() error { return dst.reset(ctx) })
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			tr.Import = append(tr.Import, s)
			bad, example, err := checkDigests(ctx, dst.addr, images)
			if err != nil {
				return nil, err
			}
			if bad > 0 {
				tr.DigestErr = fmt.Sprintf("%d of %d images differ (%s)", bad, len(images), example)
			}
			if _, err := b.measure(ctx, clean(j.unpack())); err != nil {
				return nil, err
			}
			if lat != nil {
				if err := b.latencyImport(ctx, lat, res, t, j, dst, r); err != nil {
					return nil, err
				}
			}
		}
	}
	if tr := res.Tools["ferry"]; lat != nil && tr != nil && tr.ranked() {
		if err := b.traceFerry(ctx, lat, res, setDir, src, dst); err != nil {
			return nil, fmt.Errorf("tracing ferry: %w", err)
		}
	}
	if b.profile {
		if err := b.profileFerry(ctx, res, setDir, src.addr, dst); err != nil {
			return nil, fmt.Errorf("profiling ferry: %w", err)
		}
	}
	// ferry inspect reads the seek table and index only.
	if tr := res.Tools["ferry"]; tr != nil && tr.Err == "" {
		j := job{dir: filepath.Join(setDir, "ferry")}
		for r := 0; r < max(b.reps, 5); r++ {
			s, err := b.measure(ctx, fmt.Sprintf("ferry inspect %s >/dev/null", q(j.archive())))
			if err != nil {
				return nil, fmt.Errorf("ferry inspect: %w", err)
			}
			res.Inspect = append(res.Inspect, s)
		}
	}
	return res, nil
}

// profileFerry runs ferry export and import once more with CPU and
// allocation profiles (FERRY_CPUPROFILE, FERRY_MEMPROFILE) and keeps the
// top of each for the report.
func (b *bench) profileFerry(ctx context.Context, res *setResult, setDir, src string, dst *distRegistry) error {
	dir := filepath.Join(setDir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ferry := tools[0]
	j := job{src: src, dst: dst.addr, dir: filepath.Join(setDir, "ferry")}
	if _, err := b.measure(ctx, ferry.exportPrep(j)); err != nil {
		return err
	}
	for _, op := range []string{"export", "import"} {
		script := ferry.export(j)
		if op == "import" {
			if err := dst.reset(ctx); err != nil {
				return err
			}
			script = ferry.imp(j)
		}
		cpu, mem := filepath.Join(dir, op+".cpu.pprof"), filepath.Join(dir, op+".allocs.pprof")
		b.logf("set %s: profiling ferry %s", res.Spec.Name, op)
		if _, err := b.measure(ctx, fmt.Sprintf("export FERRY_CPUPROFILE=%s FERRY_MEMPROFILE=%s\n%s", q(cpu), q(mem), script)); err != nil {
			return err
		}
		for _, p := range []struct{ file, kind, flag string }{{cpu, "CPU", "-top"}, {mem, "allocated bytes", "-sample_index=alloc_space"}} {
			args := []string{"tool", "pprof", "-top", "-nodecount=12"}
			if p.flag != "-top" {
				args = append(args, p.flag)
			}
			out, err := exec.CommandContext(ctx, "go", append(args, filepath.Join(b.toolsBin, "ferry"), p.file)...).Output()
			if err != nil {
				return fmt.Errorf("go tool pprof %s: %w", p.file, err)
			}
			res.Profiles = append(res.Profiles, profileTop{Op: op, Kind: p.kind, Top: trimPprof(string(out))})
		}
	}
	return nil
}

// trimPprof keeps the summary lines and the table of pprof -top.
func trimPprof(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

// step runs prep and then before (neither measured), then measures script,
// one EXPORT or IMPORT of one tool. A failure of the tool marks it failed
// (reported, not ranked) and returns ok false; only cancellation and
// failures of the harness itself are returned as errors.
func (b *bench) step(ctx context.Context, tr *toolResult, what, prep, script string, before func() error) (s sample, ok bool, err error) {
	if _, err := b.measure(ctx, prep); err != nil {
		return sample{}, false, err
	}
	if before != nil {
		if err := before(); err != nil {
			return sample{}, false, err
		}
	}
	s, err = b.measure(ctx, script)
	if err != nil {
		if ctx.Err() != nil {
			return sample{}, false, ctx.Err()
		}
		tr.Err = what + " failed: " + firstLine(err)
		b.logf("%s failed: %v", what, err)
		return sample{}, false, nil
	}
	return s, true, nil
}

// runScaling measures ferry on the first N images of a set of tiny
// images, for each N.
func (b *bench) runScaling(ctx context.Context, counts []int) (*scalingResult, error) {
	most := 0
	for _, n := range counts {
		most = max(most, n)
	}
	src, dst, _, images, _, err := b.open(ctx, setSpec{Name: fmt.Sprintf("tiny%d", most), Tiny: most})
	if err != nil {
		return nil, err
	}
	defer src.stop()
	defer dst.stop()
	sc := &scalingResult{}
	ferry := tools[0]
	for _, n := range counts {
		if n > len(images) {
			return nil, fmt.Errorf("the tiny set has %d images, fewer than %d", len(images), n)
		}
		dir := filepath.Join(b.work, fmt.Sprintf("tiny%d", n))
		if err := writeList(dir, src.addr, images[:n]); err != nil {
			return nil, err
		}
		row := scalingRow{Images: n}
		j := job{src: src.addr, dst: dst.addr, images: images[:n], dir: filepath.Join(dir, "ferry")}
		for r := 0; r < b.reps; r++ {
			if _, err := b.measure(ctx, ferry.exportPrep(j)); err != nil {
				return nil, err
			}
			b.logf("tiny %d rep %d: ferry export", n, r+1)
			s, err := b.measure(ctx, ferry.export(j))
			if err != nil {
				return nil, fmt.Errorf("ferry export of %d tiny images: %w", n, err)
			}
			row.Export = append(row.Export, s)
			if err := dst.reset(ctx); err != nil {
				return nil, err
			}
			b.logf("tiny %d rep %d: ferry import", n, r+1)
			s, err = b.measure(ctx, ferry.imp(j))
			if err != nil {
				return nil, fmt.Errorf("ferry import of %d tiny images: %w", n, err)
			}
			row.Import = append(row.Import, s)
			if bad, example, err := checkDigests(ctx, dst.addr, images[:n]); err != nil {
				return nil, err
			} else if bad > 0 {
				return nil, fmt.Errorf("ferry import of %d tiny images: %d differ (%s)", n, bad, example)
			}
		}
		sc.Rows = append(sc.Rows, row)
	}
	return sc, nil
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		rest := strings.TrimSpace(s[i+1:])
		if j := strings.LastIndexByte(rest, '\n'); j >= 0 {
			rest = rest[j+1:]
		}
		s = s[:i] + ": " + rest
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
