package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
)

// progress turns library events into lines on stderr: a line rewritten in
// place on a terminal, a line every few seconds otherwise.
type progress struct {
	w         io.Writer
	verb      string
	tty       bool
	start     time.Time
	total     atomic.Int64
	bytes     atomic.Int64
	blobs     atomic.Int64
	skipped   atomic.Int64
	refs      atomic.Int64
	manifests atomic.Int64
	stop      chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	lastLine  int
}

func newProgress(w io.Writer, verb string, quiet bool) *progress {
	if quiet {
		return nil
	}
	p := &progress{w: w, verb: verb, tty: isTerminal(w), start: time.Now(), stop: make(chan struct{})}
	interval := 5 * time.Second
	if p.tty {
		interval = 250 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.print()
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
	return func(e bundle.Event) {
		switch e.Kind {
		case bundle.EventResolved:
			p.refs.Add(1)
		case bundle.EventManifest:
			p.manifests.Add(1)
		case bundle.EventBlobStart:
			if e.Total > 0 {
				p.total.Store(e.Total)
			}
		case bundle.EventBlobBytes:
			p.bytes.Add(e.Bytes)
		case bundle.EventBlobDone:
			p.blobs.Add(1)
		case bundle.EventBlobSkipped:
			p.skipped.Add(1)
			if e.Total > 0 {
				p.total.Store(e.Total)
			}
		}
	}
}

func (p *progress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Seconds()
	b := p.bytes.Load()
	line := fmt.Sprintf("%s: %d blobs (%d skipped), %s of %s, %s/s", p.verb, p.blobs.Load(), p.skipped.Load(),
		human.Bytes(b), human.Bytes(p.total.Load()), human.Bytes(int64(float64(b)/max(el, 0.001))))
	if m := p.manifests.Load(); m > 0 {
		line += fmt.Sprintf(", %d manifests", m)
	}
	if p.blobs.Load() == 0 && p.skipped.Load() == 0 && b == 0 {
		line = fmt.Sprintf("%s: resolving images (%d resolved, %d manifests read)", p.verb, p.refs.Load(), p.manifests.Load())
	}
	if p.tty {
		pad := max(0, p.lastLine-len(line))
		fmt.Fprintf(p.w, "\r%s%*s", line, pad, "")
		p.lastLine = len(line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// Done stops the progress display.
func (p *progress) Done() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	if p.tty && p.lastLine > 0 {
		fmt.Fprintf(p.w, "\r%*s\r", p.lastLine, "")
	}
}
