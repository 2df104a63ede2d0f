package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDebug(t *testing.T) {
	t.Parallel()
	log := `--> 06:30:46.026 GET https://127.0.0.1:5000/v2/
    User-Agent: ferry
<-- error tls: first record does not look like a TLS handshake (3ms)
--> 06:30:46.030 GET http://127.0.0.1:5000/v2/
<-- 200 (27ms)
    Content-Length: 2
--> 06:30:46.060 POST http://127.0.0.1:5000/v2/team/api/blobs/uploads/?from=team%2Fapi&mount=sha256%3Aab
<-- 202 (40ms)
--> 06:30:46.100 PUT http://127.0.0.1:5000/v2/team/api/blobs/uploads/0f1e?digest=sha256%3Aab
<-- 201 (1.2s)
--> 06:30:47.300 PUT http://127.0.0.1:5000/v2/team/api/manifests/sha256:cd
<-- 201 (20ms)
--> 06:30:47.320 PUT http://127.0.0.1:5000/v2/team/api/manifests/1.0.0
<-- 201 (20ms)
--> 06:30:47.320 PUT http://127.0.0.1:5000/v2/team/api/manifests/latest
<-- 201 (25ms)
--> 06:30:47.345 HEAD http://127.0.0.1:5000/v2/team/api/manifests/latest
<-- 200 (0s)
`
	path := filepath.Join(t.TempDir(), "debug.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := parseDebug(path)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	want := []phase{
		{"ping over TLS (refused on plain HTTP)", 1, 0, ms(3)},
		{"ping GET /v2/", 1, ms(4), ms(31)},
		{"POST upload with mount", 1, ms(34), ms(74)},
		{"PUT upload", 1, ms(74), ms(1274)},
		{"PUT manifest by digest", 1, ms(1274), ms(1294)},
		{"PUT manifest by tag", 2, ms(1294), ms(1319)},
		{"HEAD manifest by tag", 1, ms(1319), ms(1319)},
	}
	if len(tr.Phases) != len(want) {
		t.Fatalf("phases %+v, want %+v", tr.Phases, want)
	}
	for i, p := range tr.Phases {
		if p != want[i] {
			t.Errorf("phase %d: %+v, want %+v", i, p, want[i])
		}
	}
	if tr.Total != ms(1319) {
		t.Errorf("total %s, want 1.319s", tr.Total)
	}
}

func secsN(s ...float64) []sample {
	out := make([]sample, len(s))
	for i, x := range s {
		out[i] = sample{Wall: time.Duration(x * float64(time.Second))}
	}
	return out
}

func TestLatencyReport(t *testing.T) {
	t.Parallel()
	s := &setResult{Spec: setSpec{Name: "small"}, Tools: map[string]*toolResult{}}
	s.tool("ferry").Export, s.tool("ferry").Import = secsN(1, 1.1, 0.9), secsN(2, 2.2, 1.8)
	s.tool("regctl").Export, s.tool("regctl").Import = secsN(2), secsN(5)
	s.Latency = &latencyResult{Delay: 20 * time.Millisecond, Tools: map[string]*latencyTool{}}
	lf := s.Latency.tool("ferry")
	lf.Export, lf.Import = secsN(1.2, 1.3, 1.1), secsN(3, 2.9, 3.1)
	lf.ExportRequests, lf.ImportRequests = []int64{140, 141, 140}, []int64{280, 280, 281}
	lr := s.Latency.tool("regctl")
	lr.Export, lr.Import = secsN(4), secsN(10)

	e, i, ok := s.latencyRatios()
	if !ok || e < 1.19 || e > 1.21 || i < 1.49 || i > 1.51 {
		t.Fatalf("ratios %.3f %.3f %v, want 1.20 and 1.50", e, i, ok)
	}
	rep := &report{Sets: []*setResult{s}}
	var met, unmet int
	for _, tg := range rep.targets() {
		if strings.Contains(tg.What, "20ms per request / loopback") {
			if tg.Met {
				met++
			} else {
				unmet++
			}
		}
	}
	if met != 1 || unmet != 1 {
		t.Errorf("latency targets: %d met, %d not, want export met and import not", met, unmet)
	}
	var b strings.Builder
	s.latencyMarkdown(&b)
	md := b.String()
	for _, want := range []string{
		"### Latency: set small, 20ms before every request",
		"| ferry | 1.00 s (0.90-1.10) | 1.20 s (1.10-1.30) | 1.20x | 140 | 10 | 2.00 s (1.80-2.20) | 3.00 s (2.90-3.10) | 1.50x | 280 | 50 | all equal |",
		"- ferry at 20ms / ferry on loopback: export 1.20x, import 1.50x",
		"- regctl / ferry: at 20ms export 3.33x, import 3.33x; on loopback export 2.00x, import 2.50x",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
