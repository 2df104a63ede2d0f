package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// phase is one kind of registry request in a ferry --debug log: how many
// there were, when the first one started and when the last one ended,
// counted from the first request of the run.
type phase struct {
	Kind     string
	N        int
	From, To time.Duration
}

// trace is the phases of one ferry run read from its --debug log.
type trace struct {
	Phases []phase
	Total  time.Duration // first request to last response
}

// ferryTrace is one op of ferry, traced on loopback and through the proxy.
type ferryTrace struct {
	Op              string
	Loopback, Delay trace
}

var (
	debugRequest  = regexp.MustCompile(`^--> (\d\d):(\d\d):(\d\d\.\d{3}) (\S+) (\S+)`)
	debugResponse = regexp.MustCompile(`^<-- .*\((\S+)\)\s*$`)
)

// requestKind names a registry request by what it does.
func requestKind(method, rawURL string) string {
	if strings.HasPrefix(rawURL, "https://") && strings.HasSuffix(rawURL, "/v2/") {
		return "ping over TLS (refused on plain HTTP)"
	}
	_, path, _ := strings.Cut(rawURL, "/v2/")
	path, query, _ := strings.Cut(path, "?")
	switch {
	case path == "":
		return "ping GET /v2/"
	case strings.Contains(path, "/blobs/uploads/"):
		if method == "POST" && strings.Contains(query, "mount=") {
			return "POST upload with mount"
		}
		return method + " upload"
	case strings.Contains(path, "/blobs/"):
		return method + " blob"
	case strings.Contains(path, "/manifests/sha256:"):
		return method + " manifest by digest"
	case strings.Contains(path, "/manifests/"):
		return method + " manifest by tag"
	}
	return method + " other"
}

// parseDebug reads the request and response lines of a ferry --debug log.
func parseDebug(path string) (trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return trace{}, err
	}
	defer f.Close()
	type req struct {
		kind       string
		start, end time.Duration // since midnight
	}
	var (
		reqs []req
		cur  *req
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := debugRequest.FindStringSubmatch(line); m != nil {
			var h, mi int
			var s float64
			fmt.Sscan(m[1], &h)
			fmt.Sscan(m[2], &mi)
			fmt.Sscan(m[3], &s)
			start := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s*float64(time.Second))
			cur = &req{kind: requestKind(m[4], m[5]), start: start}
			continue
		}
		if m := debugResponse.FindStringSubmatch(line); m != nil && cur != nil {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				return trace{}, fmt.Errorf("%s: duration in %q: %w", path, line, err)
			}
			cur.end = cur.start + d
			reqs = append(reqs, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return trace{}, err
	}
	if len(reqs) == 0 {
		return trace{}, fmt.Errorf("%s: no request logged", path)
	}
	t0, t1 := reqs[0].start, reqs[0].end
	for _, r := range reqs {
		t0, t1 = min(t0, r.start), max(t1, r.end)
	}
	byKind := map[string]*phase{}
	var tr trace
	for _, r := range reqs {
		p := byKind[r.kind]
		if p == nil {
			p = &phase{Kind: r.kind, From: r.start - t0, To: r.end - t0}
			byKind[r.kind] = p
		}
		p.N++
		p.From, p.To = min(p.From, r.start-t0), max(p.To, r.end-t0)
	}
	for _, p := range byKind {
		tr.Phases = append(tr.Phases, *p)
	}
	sort.Slice(tr.Phases, func(i, j int) bool { return tr.Phases[i].From < tr.Phases[j].From })
	tr.Total = t1 - t0
	return tr, nil
}

// traceFerry runs ferry export and import once more with --debug, on
// loopback and through the proxies (not measured), and keeps the phases
// of each run for the report.
func (b *bench) traceFerry(ctx context.Context, l *latency, res *setResult, setDir string, src, dst *distRegistry) error {
	dir := filepath.Join(setDir, "traces")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := l.setDelay(l.delay); err != nil { // the runs at zero delay set it back, but do not rely on it
		return err
	}
	loop := job{src: src.addr, dst: dst.addr, dir: filepath.Join(setDir, "ferry")}
	for _, op := range []string{"export", "import"} {
		ft := ferryTrace{Op: op}
		for _, delayed := range []bool{false, true} {
			j, mode, list := loop, "loopback", filepath.Join(setDir, "images.txt")
			if delayed {
				j, mode, list = l.importJob(loop), "delayed", filepath.Join(l.dir, "images.txt")
			}
			log := filepath.Join(dir, op+"-"+mode+".debug")
			var script string
			if op == "export" {
				archive := filepath.Join(dir, "export-"+mode+".tar.zst")
				script = fmt.Sprintf("ferry export -q --debug -f %s -o %s 2>%s >/dev/null\n", q(list), q(archive), q(log)) + clean(archive)
			} else {
				if err := dst.reset(ctx); err != nil {
					return err
				}
				l.dst.CloseIdleConnections()
				script = fmt.Sprintf("ferry import -q --debug --insecure-skip-verify %s --to %s 2>%s >/dev/null\n", q(j.archive()), j.dst, q(log))
			}
			b.logf("set %s: tracing ferry %s, %s", res.Spec.Name, op, mode)
			if _, err := b.measure(ctx, script); err != nil {
				return err
			}
			tr, err := parseDebug(log)
			if err != nil {
				return err
			}
			if delayed {
				ft.Delay = tr
			} else {
				ft.Loopback = tr
			}
		}
		res.Latency.Traces = append(res.Latency.Traces, ft)
	}
	return nil
}

// traceMarkdown is the table of one traced op: each kind of request, how
// many, and from when to when, on loopback and through the proxy.
func traceMarkdown(b *strings.Builder, ft ferryTrace, delay time.Duration) {
	fmt.Fprintf(b, "\nferry %s, one run with `--debug` on each side (seconds from the first request; not among the measured runs):\n\n", ft.Op)
	fmt.Fprintf(b, "| requests | loopback: n | from | to | at %v: n | from | to |\n|---|---|---|---|---|---|---|\n", delay)
	loop := map[string]phase{}
	for _, p := range ft.Loopback.Phases {
		loop[p.Kind] = p
	}
	seen := map[string]bool{}
	row := func(kind string, lp, dp *phase) {
		cell := func(p *phase) string {
			if p == nil {
				return "- | - | -"
			}
			return fmt.Sprintf("%d | %.2f | %.2f", p.N, p.From.Seconds(), p.To.Seconds())
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", kind, cell(lp), cell(dp))
	}
	for _, p := range ft.Delay.Phases {
		seen[p.Kind] = true
		var lp *phase
		if x, ok := loop[p.Kind]; ok {
			lp = &x
		}
		row(p.Kind, lp, &p)
	}
	for _, p := range ft.Loopback.Phases {
		if !seen[p.Kind] {
			row(p.Kind, &p, nil)
		}
	}
	fmt.Fprintf(b, "| all | | | %.2f | | | %.2f |\n", ft.Loopback.Total.Seconds(), ft.Delay.Total.Seconds())
}
