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
// set is measured twice more through them, right after the loopback run,
// in the same repetition: first with the proxies' delay at zero, then at
// the delay. The run at zero pays for the proxy alone (it copies every
// byte, in this process, on the same cores as the tool and the
// registries), so delayed / zero is what the delay itself costs.
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

// setDelay sets both proxies' delay, for the requests from now on.
func (l *latency) setDelay(d time.Duration) error {
	if err := l.src.SetDelay(d); err != nil {
		return err
	}
	return l.dst.SetDelay(d)
}

// exportJob is j with its source behind the proxy and its files in the
// scenario's own directory (so the loopback archive stays as it was).
func (l *latency) exportJob(j job, tool string) job {
	j.src = l.src.Addr()
	j.dir = filepath.Join(l.dir, tool)
	return j
}

// importJob is j with its destination behind the proxy: the same archive
// as the loopback import, so that all three push the same bytes.
func (l *latency) importJob(j job) job {
	j.dst = l.dst.Addr()
	return j
}

// ratio is a / b in wall time, for the log.
func ratio(a, b sample) float64 { return a.Wall.Seconds() / b.Wall.Seconds() }

// latencyExport measures t's export of the set through the source proxy,
// first with no delay and then at the delay.
func (b *bench) latencyExport(ctx context.Context, l *latency, res *setResult, t tool, j job, rep int) error {
	lt := res.Latency.tool(t.name)
	if lt.Err != "" {
		return nil
	}
	dj := l.exportJob(j, t.name)
	run := func(delay time.Duration, what string) (sample, delayproxy.Stats, bool, error) {
		if err := l.setDelay(delay); err != nil {
			return sample{}, delayproxy.Stats{}, false, err
		}
		b.logf("set %s rep %d: %s export, %s", res.Spec.Name, rep+1, t.name, what)
		before := l.src.Stats()
		s, ok, err := b.step(ctx, &lt.toolResult, fmt.Sprintf("%s export %s", t.name, what), t.exportPrep(dj), t.export(dj), nil)
		return s, l.src.Stats().Sub(before), ok, err
	}
	s0, _, ok, err := run(0, "through the proxy with no delay")
	if err != nil || !ok {
		return err
	}
	s, d, ok, err := run(l.delay, fmt.Sprintf("%v per request", l.delay))
	if err != nil || !ok {
		return err
	}
	lt.Export0 = append(lt.Export0, s0)
	lt.Export = append(lt.Export, s)
	if loop := res.tool(t.name).Export; len(loop) > 0 {
		lo := loop[len(loop)-1]
		b.logf("set %s rep %d: %s export %.2f s at %v, %.2f s through the proxy with no delay (%.2fx), %.2f s on loopback (%.2fx), %d requests",
			res.Spec.Name, rep+1, t.name, s.Wall.Seconds(), l.delay, s0.Wall.Seconds(), ratio(s, s0), lo.Wall.Seconds(), ratio(s, lo), d.Requests)
	}
	lt.ExportRequests = append(lt.ExportRequests, d.Requests)
	lt.ExportConns = append(lt.ExportConns, d.ClientConns)
	return nil
}

// latencyImport measures t's import of the loopback archive through the
// destination proxy, first with no delay and then at the delay, each into
// an empty registry, and checks every digest after each.
func (b *bench) latencyImport(ctx context.Context, l *latency, res *setResult, t tool, j job, dst *distRegistry, rep int) error {
	lt := res.Latency.tool(t.name)
	if lt.Err != "" {
		return nil
	}
	dj := l.importJob(j)
	run := func(delay time.Duration, what string) (sample, delayproxy.Stats, bool, error) {
		if err := l.setDelay(delay); err != nil {
			return sample{}, delayproxy.Stats{}, false, err
		}
		b.logf("set %s rep %d: %s import, %s", res.Spec.Name, rep+1, t.name, what)
		var before delayproxy.Stats
		s, ok, err := b.step(ctx, &lt.toolResult, fmt.Sprintf("%s import %s", t.name, what), t.importPrep(dj), t.imp(dj), func() error {
			if err := dst.reset(ctx); err != nil {
				return err
			}
			l.dst.CloseIdleConnections() // they went to the registry before its restart
			before = l.dst.Stats()
			return nil
		})
		if err != nil || !ok {
			return s, delayproxy.Stats{}, ok, err
		}
		d := l.dst.Stats().Sub(before)
		bad, example, err := checkDigests(ctx, dst.addr, j.images)
		if err != nil {
			return s, d, false, err
		}
		if bad > 0 && lt.DigestErr == "" {
			lt.DigestErr = fmt.Sprintf("%s: %d of %d images differ (%s)", what, bad, len(j.images), example)
		}
		_, err = b.measure(ctx, clean(dj.unpack()))
		return s, d, err == nil, err
	}
	s0, _, ok, err := run(0, "through the proxy with no delay")
	if err != nil || !ok {
		return err
	}
	s, d, ok, err := run(l.delay, fmt.Sprintf("%v per request", l.delay))
	if err != nil || !ok {
		return err
	}
	lt.Import0 = append(lt.Import0, s0)
	lt.Import = append(lt.Import, s)
	if loop := res.tool(t.name).Import; len(loop) > 0 {
		lo := loop[len(loop)-1]
		b.logf("set %s rep %d: %s import %.2f s at %v, %.2f s through the proxy with no delay (%.2fx), %.2f s on loopback (%.2fx), %d requests",
			res.Spec.Name, rep+1, t.name, s.Wall.Seconds(), l.delay, s0.Wall.Seconds(), ratio(s, s0), lo.Wall.Seconds(), ratio(s, lo), d.Requests)
	}
	lt.ImportRequests = append(lt.ImportRequests, d.Requests)
	lt.ImportConns = append(lt.ImportConns, d.ClientConns)
	return nil
}

// latencyTool is what one tool did through the proxies: its toolResult
// holds the runs at the delay.
type latencyTool struct {
	toolResult
	Export0, Import0               []sample // through the proxy with no delay, right before each delayed run
	ExportRequests, ImportRequests []int64  // requests through the proxy per delayed run
	ExportConns, ImportConns       []int64  // client connections to the proxy per delayed run
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

// linkRatios are one op's wall-time ratios, median against median.
type linkRatios struct {
	Link  float64 // at the delay / through the proxy with no delay: what the delay costs
	Total float64 // at the delay / loopback: the delay and the proxy together
	Proxy float64 // through the proxy with no delay / loopback: what the proxy costs
}

func ratiosOf(loop, zero, delayed stats) linkRatios {
	return linkRatios{
		Link:  delayed.Wall.Seconds() / zero.Wall.Seconds(),
		Total: delayed.Wall.Seconds() / loop.Wall.Seconds(),
		Proxy: zero.Wall.Seconds() / loop.Wall.Seconds(),
	}
}

// latencyRatios returns ferry's ratios for export and import; ok false
// when any of the three runs of either is missing.
func (s *setResult) latencyRatios() (exp, imp linkRatios, ok bool) {
	if s.Latency == nil {
		return linkRatios{}, linkRatios{}, false
	}
	f, lf := s.Tools["ferry"], s.Latency.Tools["ferry"]
	if f == nil || lf == nil || !f.ranked() || !lf.ranked() {
		return linkRatios{}, linkRatios{}, false
	}
	for _, v := range [][]sample{f.Export, f.Import, lf.Export0, lf.Import0, lf.Export, lf.Import} {
		if len(v) == 0 {
			return linkRatios{}, linkRatios{}, false
		}
	}
	return ratiosOf(summarize(f.Export), summarize(lf.Export0), summarize(lf.Export)),
		ratiosOf(summarize(f.Import), summarize(lf.Import0), summarize(lf.Import)), true
}

// latencyMarkdown is the report's Latency section for one set.
func (s *setResult) latencyMarkdown(b *strings.Builder) {
	l := s.Latency
	fmt.Fprintf(b, "\n### Latency: set %s, %v before every request\n\n", s.Spec.Name, l.Delay)
	fmt.Fprintf(b, "Each tool's export and import of set %s, measured twice more through a proxy on 127.0.0.1 "+
		"(in front of the source for EXPORT, of the destination for IMPORT), right after the loopback run of the same repetition: "+
		"first with the proxy forwarding at once, then with the proxy waiting %v before forwarding every request.\n\n", s.Spec.Name, l.Delay)
	fmt.Fprintf(b, "Why three runs: the proxy is a program too. It runs inside the benchmark, on the same cores as the tool and the registries, "+
		"and every byte of the set goes through it, so it slows a run down even when it adds no delay at all. "+
		"Comparing the delayed run with plain loopback would charge the tool for the proxy's work as well as for the delay. "+
		"The run through the proxy with no delay pays for the proxy and nothing else, so **%v / no delay is what the link costs**: "+
		"the targets use it. %v / loopback is kept for reference, and no delay / loopback shows what the proxy itself costs.\n\n", l.Delay, l.Delay)
	b.WriteString("Wall time is the median with the fastest and slowest run in brackets; ratios are median against median; " +
		"requests is how many went through the proxy in one delayed run (median); added / delay is the time the delay added " +
		"(delayed minus no delay) divided by the delay: the number of round trips on the tool's critical path.\n")
	type op struct {
		loop, zero, delayed stats
		requests            int64
	}
	cells := func(o op) string {
		walls := fmt.Sprintf("%s | %s | %s", o.loop.wall(), o.zero.wall(), o.delayed.wall())
		if o.loop.N == 0 || o.zero.N == 0 || o.delayed.N == 0 {
			return walls + " | - | - | - | - | -"
		}
		r := ratiosOf(o.loop, o.zero, o.delayed)
		added := float64(o.delayed.Wall-o.zero.Wall) / float64(l.Delay)
		return fmt.Sprintf("%s | %.2fx | %.2fx | %.2fx | %d | %.0f", walls, r.Link, r.Total, r.Proxy, o.requests, added)
	}
	for _, name := range []string{"export", "import"} {
		fmt.Fprintf(b, "\n| %s | loopback | proxy, no delay | proxy, %v | link: %v / no delay | %v / loopback | proxy: no delay / loopback | requests | added / delay |",
			name, l.Delay, l.Delay, l.Delay)
		if name == "import" {
			b.WriteString(" digests |\n|---|---|---|---|---|---|---|---|---|---|\n")
		} else {
			b.WriteString("\n|---|---|---|---|---|---|---|---|---|\n")
		}
		for _, tn := range l.order {
			t, lt := s.Tools[tn], l.Tools[tn]
			if t == nil {
				continue
			}
			if name == "export" {
				fmt.Fprintf(b, "| %s | %s |\n", tn, cells(op{summarize(t.Export), summarize(lt.Export0), summarize(lt.Export), medianInt(lt.ExportRequests)}))
				continue
			}
			digests := "all equal"
			switch {
			case lt.Err != "":
				digests = "**" + lt.Err + "**"
			case lt.DigestErr != "":
				digests = "**changed: " + lt.DigestErr + "** (not ranked)"
			}
			fmt.Fprintf(b, "| %s | %s | %s |\n", tn, cells(op{summarize(t.Import), summarize(lt.Import0), summarize(lt.Import), medianInt(lt.ImportRequests)}), digests)
		}
	}
	if f, lf := s.Tools["ferry"], l.Tools["ferry"]; f != nil && lf != nil && len(lf.Export) > 0 {
		b.WriteString("\nRatios (median against median, same run):\n\n")
		if e, i, ok := s.latencyRatios(); ok {
			fmt.Fprintf(b, "- ferry, what the link costs (%v / no delay, the targets' figure): export %.2fx, import %.2fx\n", l.Delay, e.Link, i.Link)
			fmt.Fprintf(b, "- ferry, %v / loopback (for reference): export %.2fx, import %.2fx\n", l.Delay, e.Total, i.Total)
			fmt.Fprintf(b, "- ferry, what the proxy costs (no delay / loopback): export %.2fx, import %.2fx\n", e.Proxy, i.Proxy)
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
