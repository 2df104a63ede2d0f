package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStallTimeout is how long a request may make no progress before it
// is abandoned, when Options.StallTimeout is zero.
const DefaultStallTimeout = time.Minute

// ErrStalled is in the chain of an error of a request abandoned because
// the registry sent, or accepted, nothing for the stall timeout. It is a
// timeout: the request or the blob transfer is tried again.
var ErrStalled = errors.New("registry stalled")

// stallError says what ferry was waiting for. It is a net.Error whose
// Timeout is true, so the retry logic treats it as a timeout.
type stallError struct {
	after time.Duration
	what  string
}

func (e *stallError) Error() string {
	return fmt.Sprintf("%v: nothing for %s while %s", ErrStalled, e.after, e.what)
}
func (e *stallError) Unwrap() error   { return ErrStalled }
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }

// What the watchdog waits for.
const (
	waitConnect  = "connecting and sending the request"
	waitUpload   = "sending the request body"
	waitResponse = "waiting for the response"
	waitBody     = "reading the response body"
)

// stallTransport abandons a request that makes no progress for timeout:
//   - a request without a body, from the start until the response headers;
//   - an upload, while the connection does not take more of its body (the
//     time ferry spends producing the body, for example reading a slow
//     standard input, does not count);
//   - a response body, while a read of it returns nothing (the time the
//     caller spends between reads does not count).
//
// The wait for the response to an upload is not limited: a registry may
// take long to check and store a large blob once it has all of it. A
// trickle is progress: only a complete stop for timeout counts.
type stallTransport struct {
	inner   http.RoundTripper
	timeout time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watchdog{timeout: t.timeout, cancel: cancel}
	req = req.WithContext(ctx)
	var up *uploadWatch
	if req.Body != nil && req.Body != http.NoBody {
		up = &uploadWatch{ReadCloser: req.Body, w: w}
		req.Body = up
		w.arm(waitConnect)
	} else {
		w.arm(waitResponse)
	}
	resp, err := t.inner.RoundTrip(req)
	if up != nil {
		// The transport may go on reading the body after the registry
		// answered early; that is no longer watched.
		up.finished.Store(true)
	}
	w.disarm()
	if err != nil {
		if se := stalled(ctx); se != nil {
			err = se
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = &bodyWatch{ReadCloser: resp.Body, w: w, ctx: ctx, cancel: cancel}
	return resp, nil
}

// stalled returns the stall error that ended ctx, if that is what ended it.
func stalled(ctx context.Context) error {
	var se *stallError
	if errors.As(context.Cause(ctx), &se) {
		return se
	}
	return nil
}

// watchdog cancels a request when it stays armed for timeout.
type watchdog struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc

	mu    sync.Mutex
	timer *time.Timer
	what  string
}

func (w *watchdog) arm(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.what = what
	if w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, w.fire)
		return
	}
	w.timer.Reset(w.timeout)
}

func (w *watchdog) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *watchdog) fire() {
	w.mu.Lock()
	what := w.what
	w.mu.Unlock()
	w.cancel(&stallError{after: w.timeout, what: what})
}

// uploadWatch keeps the watchdog armed while the transport is sending what
// it has read of the body, and disarmed while it waits for more.
type uploadWatch struct {
	io.ReadCloser
	w        *watchdog
	finished atomic.Bool
}

func (u *uploadWatch) Read(p []byte) (int, error) {
	u.w.disarm()
	n, err := u.ReadCloser.Read(p)
	if err == nil && !u.finished.Load() {
		u.w.arm(waitUpload)
	}
	return n, err
}

// bodyWatch keeps the watchdog armed while a read of the response body is
// under way.
type bodyWatch struct {
	io.ReadCloser
	w      *watchdog
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	b.w.arm(waitBody)
	n, err := b.ReadCloser.Read(p)
	b.w.disarm()
	if err != nil && err != io.EOF {
		if se := stalled(b.ctx); se != nil {
			err = se
		}
	}
	return n, err
}

func (b *bodyWatch) Close() error {
	b.w.disarm()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
