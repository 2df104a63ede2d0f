package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferryproject/ferry/internal/delayproxy"
)

// latency is the latency scenario of one set: a delaying proxy in front
// of the source registry (for exports) and one in front of the
// destination registry (for imports). Each tool's export and import of the
// set is measured a second time through them, right after the loopback
// run, in the same repetition.
type latency struct {
	delay    time.Duration
	src, dst *delayproxy.Proxy
	dir      string // the scenario's work directory: images.txt naming the source proxy, one directory per tool
}

func (b *bench) startLatency(src, dst *distRegistry, setDir string) (*latency, error) {
	errLog := log.New(os.Stderr, "ferry-bench: delay proxy: ", 0)
	sp, err := delayproxy.Start(src.addr, delayproxy.Options{Delay: b.latency, ErrorLog: errLog})
	if err != nil {
		return nil, err
	}
	dp, err := delayproxy.Start(dst.addr, delayproxy.Options{Delay: b.latency, ErrorLog: errLog})
	if err != nil {
		sp.Close()
		return nil, err
	}
	return &latency{delay: b.latency, src: sp, dst: dp, dir: filepath.Join(setDir, "delayed")}, nil
}

func (l *latency) close() {
	l.src.Close()
	l.dst.Close()
}

// exportJob is j with its source behind the proxy and its files in the
// scenario's own directory (so the loopback archive stays as it was).
func (l *latency) exportJob(j job, tool string) job {
	j.src = l.src.Addr()
	j.dir = filepath.Join(l.dir, tool)
	return j
}

// importJob is j with its destination behind the proxy: the same archive
// as the loopback import, so that both push the same bytes.
func (l *latency) importJob(j job) job {
	j.dst = l.dst.Addr()
	return j
}

// latencyExport measures t's export of the set through the source proxy.
func (b *bench) latencyExport(ctx context.Context, l *latency, res *setResult, t tool, j job, rep int) error {
	lt := res.Latency.tool(t.name)
	if lt.Err != "" {
		return nil
	}
	dj := l.exportJob(j, t.name)
	b.logf("set %s rep %d: %s export, %v per request", res.Spec.Name, rep+1, t.name, l.delay)
	before := l.src.Stats()
	s, ok, err := b.step(ctx, &lt.toolResult, fmt.Sprintf("%s export at %v", t.name, l.delay), t.exportPrep(dj), t.export(dj), nil)
	if err != nil || !ok {
		return err
	}
	d := l.src.Stats().Sub(before)
	lt.Export = append(lt.Export, s)
	if loop := res.tool(t.name).Export; len(loop) > 0 {
		b.logf("set %s rep %d: %s export %.2f s at %v, %.2f s on loopback (%.2fx), %d requests", res.Spec.Name, rep+1, t.name,
			s.Wall.Seconds(), l.delay, loop[len(loop)-1].Wall.Seconds(), s.Wall.Seconds()/loop[len(loop)-1].Wall.Seconds(), d.Requests)
	}
	lt.ExportRequests = append(lt.ExportRequests, d.Requests)
	lt.ExportConns = append(lt.ExportConns, d.ClientConns)
	return nil
}

// latencyImport measures t's import of the loopback archive through the
// destination proxy, into an empty registry, and checks every digest.
func (b *bench) latencyImport(ctx context.Context, l *latency, res *setResult, t tool, j job, dst *distRegistry, rep int) error {
	lt := res.Latency.tool(t.name)
	if lt.Err != "" {
		return nil
	}
	dj := l.importJob(j)
	b.logf("set %s rep %d: %s import, %v per request", res.Spec.Name, rep+1, t.name, l.delay)
	reset := func() error {
		if err := dst.reset(ctx); err != nil {
			return err
		}
		l.dst.CloseIdleConnections() // they went to the registry before its restart
		return nil
	}
	var before delayproxy.Stats
	s, ok, err := b.step(ctx, &lt.toolResult, fmt.Sprintf("%s import at %v", t.name, l.delay), t.importPrep(dj), t.imp(dj), func() error {
		err := reset()
		before = l.dst.Stats()
		return err
	})
	if err != nil || !ok {
		return err
	}
	d := l.dst.Stats().Sub(before)
	lt.Import = append(lt.Import, s)
	if loop := res.tool(t.name).Import; len(loop) > 0 {
		b.logf("set %s rep %d: %s import %.2f s at %v, %.2f s on loopback (%.2fx), %d requests", res.Spec.Name, rep+1, t.name,
			s.Wall.Seconds(), l.delay, loop[len(loop)-1].Wall.Seconds(), s.Wall.Seconds()/loop[len(loop)-1].Wall.Seconds(), d.Requests)
	}
	lt.ImportRequests = append(lt.ImportRequests, d.Requests)
	lt.ImportConns = append(lt.ImportConns, d.ClientConns)
	bad, example, err := checkDigests(ctx, dst.addr, j.images)
	if err != nil {
		return err
	}
	if bad > 0 {
		lt.DigestErr = fmt.Sprintf("%d of %d images differ (%s)", bad, len(j.images), example)
	}
	_, err = b.measure(ctx, clean(dj.unpack()))
	return err
}

// latencyTool is what one tool did through the proxies.
type latencyTool struct {
	toolResult
	ExportRequests, ImportRequests []int64 // requests through the proxy per run
	ExportConns, ImportConns       []int64 // client connections to the proxy per run
}

type latencyResult struct {
	Delay  time.Duration
	Tools  map[string]*latencyTool
	order  []string
	Traces []ferryTrace
}

func (r *latencyResult) tool(name string) *latencyTool {
	if t, ok := r.Tools[name]; ok {
		return t
	}
	t := &latencyTool{}
	r.Tools[name] = t
	r.order = append(r.order, name)
	return t
}

func medianInt(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// latencyRatios returns ferry's delayed / loopback wall time, median
// against median, for export and import; ok false when either is missing.
func (s *setResult) latencyRatios() (exp, imp float64, ok bool) {
	if s.Latency == nil {
		return 0, 0, false
	}
	f, lf := s.Tools["ferry"], s.Latency.Tools["ferry"]
	if f == nil || lf == nil || !f.ranked() || !lf.ranked() || len(lf.Export) == 0 || len(lf.Import) == 0 {
		return 0, 0, false
	}
	return summarize(lf.Export).Wall.Seconds() / summarize(f.Export).Wall.Seconds(),
		summarize(lf.Import).Wall.Seconds() / summarize(f.Import).Wall.Seconds(), true
}

// latencyMarkdown is the report's Latency section for one set.
func (s *setResult) latencyMarkdown(b *strings.Builder) {
	l := s.Latency
	fmt.Fprintf(b, "\n### Latency: set %s, %v before every request\n\n", s.Spec.Name, l.Delay)
	fmt.Fprintf(b, "Each tool's export and import of set %s, measured again through a proxy that waits %v before forwarding every request "+
		"(in front of the source for EXPORT, of the destination for IMPORT), right after the loopback run of the same repetition. "+
		"Wall time is the median with the fastest and slowest run in brackets; the ratio is median against median; "+
		"requests is how many went through the proxy in one run (median); added / delay is the time the delay added divided by the delay: "+
		"the number of round trips on the tool's critical path.\n\n", s.Spec.Name, l.Delay)
	b.WriteString("| tool | export loopback | export delayed | ratio | requests | added / delay | import loopback | import delayed | ratio | requests | added / delay | digests |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	type half struct {
		loop, delayed stats
		requests      int64
	}
	cells := func(h half) string {
		if h.loop.N == 0 || h.delayed.N == 0 {
			return fmt.Sprintf("%s | %s | - | - | -", h.loop.wall(), h.delayed.wall())
		}
		ratio := h.delayed.Wall.Seconds() / h.loop.Wall.Seconds()
		added := float64(h.delayed.Wall-h.loop.Wall) / float64(l.Delay)
		return fmt.Sprintf("%s | %s | %.2fx | %d | %.0f", h.loop.wall(), h.delayed.wall(), ratio, h.requests, added)
	}
	for _, name := range l.order {
		t, lt := s.Tools[name], l.Tools[name]
		if t == nil {
			continue
		}
		digests := "all equal"
		switch {
		case lt.Err != "":
			digests = "**" + lt.Err + "**"
		case lt.DigestErr != "":
			digests = "**changed: " + lt.DigestErr + "** (not ranked)"
		}
		e := half{summarize(t.Export), summarize(lt.Export), medianInt(lt.ExportRequests)}
		i := half{summarize(t.Import), summarize(lt.Import), medianInt(lt.ImportRequests)}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, cells(e), cells(i), digests)
	}
	if f, lf := s.Tools["ferry"], l.Tools["ferry"]; f != nil && lf != nil && len(lf.Export) > 0 {
		b.WriteString("\nRatios (median against median, same run):\n\n")
		if e, i, ok := s.latencyRatios(); ok {
			fmt.Fprintf(b, "- ferry at %v / ferry on loopback: export %.2fx, import %.2fx\n", l.Delay, e, i)
		}
		for _, name := range l.order {
			t, lt := s.Tools[name], l.Tools[name]
			if name == "ferry" || !t.ranked() || !lt.ranked() || len(lt.Export) == 0 || len(lt.Import) == 0 {
				continue
			}
			fmt.Fprintf(b, "- %s / ferry: at %v export %.2fx, import %.2fx; on loopback export %.2fx, import %.2fx\n", name, l.Delay,
				summarize(lt.Export).Wall.Seconds()/summarize(lf.Export).Wall.Seconds(),
				summarize(lt.Import).Wall.Seconds()/summarize(lf.Import).Wall.Seconds(),
				summarize(t.Export).Wall.Seconds()/summarize(f.Export).Wall.Seconds(),
				summarize(t.Import).Wall.Seconds()/summarize(f.Import).Wall.Seconds())
		}
	}
	if len(l.Traces) > 0 {
		b.WriteString("\nWhere ferry's time goes: each kind of registry request, how many, and when the first started and the last ended. " +
			"Kinds whose spans overlap ran in parallel; a kind that starts when another ends waited for it.\n")
	}
	for _, ft := range l.Traces {
		traceMarkdown(b, ft, l.Delay)
	}
}
