package main

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/termtext"
)

// Progress display. The library's events only update counters (atomics,
// and a map under a mutex for the blobs in flight); a ticker draws from
// them. No event ever waits for drawing, so progress cannot slow a
// transfer.
//
// On a terminal: an overall bar with bytes done of total, rate and ETA,
// and below it the largest blobs in flight, redrawn in place every
// ttyInterval. Elsewhere: one plain line every plainInterval (a JSON
// record with --log-format json).

var (
	ttyInterval   = 200 * time.Millisecond
	plainInterval = 5 * time.Second
)

// Blobs in flight shown on a terminal: at most maxFlightLines, largest
// first; blobs under minFlightSize only count (they come and go too fast
// to read).
const (
	maxFlightLines = 5
	minFlightSize  = 1 << 20
)

type progress struct {
	w     io.Writer
	log   *slog.Logger // plain lines as records, for --log-format json
	verb  string
	tty   bool
	width int
	now   func() time.Time
	start time.Time

	planned   atomic.Bool
	total     atomic.Int64
	count     atomic.Int64 // blobs to transfer
	bytes     atomic.Int64
	blobs     atomic.Int64
	skipped   atomic.Int64
	refs      atomic.Int64
	manifests atomic.Int64

	mu        sync.Mutex
	done      map[string]bool    // blobs done, by digest: counted once, however many repositories get them
	resolving []string           // references being resolved, in order
	flight    map[string]*flight // by digest

	// drawMu serialises drawing, apart from mu: an event never waits
	// for a slow terminal.
	drawMu sync.Mutex
	lines  int // lines drawn last time (terminal)

	stop chan struct{}
	wg   sync.WaitGroup
}

// flight is a blob in transfer.
type flight struct {
	digest, ref string
	size        int64
	done        atomic.Int64
}

// newProgress starts the progress display of verb on w: nil (nothing
// shown) when quiet. log, when not nil, receives the plain lines as
// records.
func newProgress(w io.Writer, verb string, quiet bool, log *slog.Logger) *progress {
	if quiet {
		return nil
	}
	// JSON log records are for a collector: no bar, even on a terminal.
	p := &progress{w: w, log: log, verb: verb, tty: log == nil && isTerminal(w), now: time.Now, flight: map[string]*flight{}, done: map[string]bool{}, width: inspectWidth}
	p.start = p.now()
	interval := plainInterval
	if p.tty {
		interval = ttyInterval
		if f, ok := osFile(w); ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
				p.width = cols
			}
		}
	}
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// Func returns the callback to hand to the library.
func (p *progress) Func() bundle.ProgressFunc {
	if p == nil {
		return nil
	}
	return p.event
}

func (p *progress) event(e bundle.Event) {
	switch e.Kind {
	case bundle.EventResolving:
		p.mu.Lock()
		p.resolving = append(p.resolving, e.Ref)
		p.mu.Unlock()
	case bundle.EventResolved:
		p.refs.Add(1)
		p.mu.Lock()
		if i := slices.Index(p.resolving, e.Ref); i >= 0 {
			p.resolving = slices.Delete(p.resolving, i, i+1)
		}
		p.mu.Unlock()
	case bundle.EventManifest:
		p.manifests.Add(1)
	case bundle.EventPlanned:
		p.total.Store(e.Total)
		p.count.Store(int64(e.Blobs))
		p.planned.Store(true)
	case bundle.EventBlobStart:
		if e.Total > 0 {
			p.total.Store(e.Total)
		}
		if p.tty {
			p.mu.Lock()
			p.flight[e.Digest] = &flight{digest: e.Digest, ref: e.Ref, size: e.Size}
			p.mu.Unlock()
		}
	case bundle.EventBlobBytes:
		p.bytes.Add(e.Bytes)
		if p.tty {
			p.mu.Lock()
			f := p.flight[e.Digest]
			p.mu.Unlock()
			if f != nil {
				f.done.Add(e.Bytes)
			}
		}
	case bundle.EventBlobDone, bundle.EventBlobSkipped:
		// Import reports a blob once per repository that gets it (the
		// others mount it): the first report counts.
		p.mu.Lock()
		first := !p.done[e.Digest]
		p.done[e.Digest] = true
		delete(p.flight, e.Digest)
		p.mu.Unlock()
		switch {
		case !first:
		case e.Kind == bundle.EventBlobDone:
			p.blobs.Add(1)
		default:
			p.skipped.Add(1)
		}
		if e.Total > 0 {
			p.total.Store(e.Total)
		}
	}
}

// snapshot is what one drawing shows.
type snapshot struct {
	elapsed                             time.Duration
	planned                             bool
	total, bytes, count, blobs, skipped int64
	refs, manifests                     int64
	resolving                           []string
	flight                              []*flight
	flying                              int
}

func (p *progress) snapshot() snapshot {
	s := snapshot{
		elapsed: p.now().Sub(p.start), planned: p.planned.Load(),
		total: p.total.Load(), bytes: p.bytes.Load(), count: p.count.Load(), blobs: p.blobs.Load(), skipped: p.skipped.Load(),
		refs: p.refs.Load(), manifests: p.manifests.Load(),
	}
	p.mu.Lock()
	s.resolving = slices.Clone(p.resolving)
	for _, f := range p.flight {
		s.flying++
		if f.size >= minFlightSize {
			s.flight = append(s.flight, f)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(s.flight, func(a, b *flight) int {
		return cmp.Or(cmp.Compare(b.size, a.size), strings.Compare(a.digest, b.digest))
	})
	return s
}

// rate is bytes per second so far, and the time left at that rate (0
// when unknown).
func (s snapshot) rate() (perSec int64, eta time.Duration) {
	secs := s.elapsed.Seconds()
	if secs <= 0 || s.bytes == 0 {
		return 0, 0
	}
	r := float64(s.bytes) / secs
	if left := s.total - s.bytes; left > 0 {
		eta = time.Duration(float64(left) / r * float64(time.Second)).Round(time.Second)
	}
	return int64(r), eta
}

// started says whether the transfer has begun: before, the line says what
// is being prepared.
func (s snapshot) started() bool {
	return s.planned || s.blobs > 0 || s.skipped > 0 || s.bytes > 0
}

// plainLine is the line printed every few seconds when not on a terminal.
func (p *progress) plainLine(s snapshot) string {
	if !s.started() {
		return p.preparing(s)
	}
	perSec, eta := s.rate()
	line := fmt.Sprintf("%s: %d of %d blobs (%d skipped), %s of %s (%d%%), %s/s", p.verb, s.blobs+s.skipped, s.count, s.skipped,
		human.Bytes(s.bytes), human.Bytes(s.total), percent(s.bytes, s.total), human.Bytes(perSec))
	if eta > 0 {
		line += ", ETA " + eta.String()
	}
	if s.manifests > 0 {
		line += fmt.Sprintf(", %d manifests", s.manifests)
	}
	return line
}

// preparing says what happens before the first blob: the references
// being resolved (export), or the destination being checked (import).
func (p *progress) preparing(s snapshot) string {
	if len(s.resolving) == 0 && s.refs == 0 {
		if p.verb == "import" {
			return "import: reading the bundle and checking the destination"
		}
		return p.verb + ": preparing"
	}
	line := fmt.Sprintf("%s: resolving images (%d resolved, %d manifests read)", p.verb, s.refs, s.manifests)
	if len(s.resolving) > 0 {
		line += ": " + s.resolving[0]
		if len(s.resolving) > 1 {
			line += fmt.Sprintf(" +%d", len(s.resolving)-1)
		}
	}
	return line
}

func percent(n, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return min(100, n*100/total)
}

// ttyLines are the lines drawn on a terminal, each at most width runes.
func (p *progress) ttyLines(s snapshot) []string {
	if !s.started() {
		return []string{cutLine(p.preparing(s), p.width)}
	}
	perSec, eta := s.rate()
	right := fmt.Sprintf(" %s / %s  %s/s", human.Bytes(s.bytes), human.Bytes(s.total), human.Bytes(perSec))
	if eta > 0 {
		right += "  ETA " + eta.String()
	}
	right += fmt.Sprintf("  %d/%d blobs", s.blobs+s.skipped, s.count)
	left := fmt.Sprintf("%s %3d%% ", p.verb, percent(s.bytes, s.total))
	// A bar of fixed width, so it does not jump as the numbers change;
	// the numbers take at most about 62 columns.
	barWidth := min(30, p.width-1-len(left)-62)
	lines := []string{left + bar(s.bytes, s.total, barWidth) + right}
	shown := s.flight[:min(len(s.flight), maxFlightLines)]
	for _, f := range shown {
		lines = append(lines, fmt.Sprintf("  %s  %s / %s  %s", shortDigest(f.digest), human.Bytes(f.done.Load()), human.Bytes(f.size), f.ref))
	}
	if more := s.flying - len(shown); more > 0 {
		lines = append(lines, fmt.Sprintf("  +%d more in flight", more))
	}
	for i, l := range lines {
		lines[i] = cutLine(l, p.width-1)
	}
	return lines
}

// bar is [=====>    ] of width runes (nothing when too narrow).
func bar(n, total int64, width int) string {
	if width < 5 {
		return ""
	}
	inner := width - 2
	fill := 0
	if total > 0 {
		fill = int(min(n, total) * int64(inner) / total)
	}
	b := strings.Repeat("=", fill)
	if fill < inner {
		b += ">" + strings.Repeat(" ", inner-fill-1)
	}
	return "[" + b + "]"
}

// cutLine keeps a line to n runes, so a terminal never wraps it (which
// would break redrawing in place). Names in it come from the bundle or
// the command line: escaped.
func cutLine(s string, n int) string {
	return elide(escapeLine(s), n)
}

func (p *progress) draw() {
	s := p.snapshot()
	if !p.tty {
		line := p.plainLine(s)
		if p.log != nil {
			perSec, eta := s.rate()
			p.log.Info(line, "phase", map[bool]string{true: "transfer", false: "prepare"}[s.started()],
				"blobsDone", s.blobs+s.skipped, "blobs", s.count, "skipped", s.skipped, "bytes", s.bytes, "totalBytes", s.total,
				"bytesPerSecond", perSec, "etaSeconds", int64(eta.Seconds()))
			return
		}
		fmt.Fprintln(p.w, escapeLine(line))
		return
	}
	lines := p.ttyLines(s)
	p.drawMu.Lock()
	defer p.drawMu.Unlock()
	var b strings.Builder
	p.clear(&b)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	p.lines = len(lines)
	io.WriteString(p.w, b.String())
}

// clear moves back over the lines drawn last time and erases them.
func (p *progress) clear(b *strings.Builder) {
	if p.lines > 0 {
		fmt.Fprintf(b, "\x1b[%dA\r\x1b[J", p.lines)
	}
}

// Done stops the progress display and erases it from a terminal.
func (p *progress) Done() {
	if p == nil {
		return
	}
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
	}
	if p.tty {
		p.drawMu.Lock()
		defer p.drawMu.Unlock()
		var b strings.Builder
		p.clear(&b)
		p.lines = 0
		io.WriteString(p.w, b.String())
	}
}

// escapeLine escapes control characters (termtext) and counts as one
// line.
func escapeLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return termtext.Escape(s)
}
