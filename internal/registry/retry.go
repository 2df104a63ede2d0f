package registry

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// retryTransport retries requests that failed for reasons that pass:
// connection errors, 408, 429 (honouring Retry-After) and 5xx other than 501.
// A request is retried only when its body can be produced again (no body,
// or GetBody set, as http.NewRequest does for in-memory bodies); blob
// uploads that stream from a bundle are retried a level up, by re-reading
// the blob.
//
// It sits below go-containerregistry's bearer transport, which answers a
// 401 by fetching a new token and sending the same request again. Every
// send of an in-memory body therefore starts from a fresh copy of it, and a
// streamed upload body (a bodyReader) is never sent twice: the second send
// fails with ErrTokenRenewed, which the caller treats as temporary.
type retryTransport struct {
	inner   http.RoundTripper
	retries int
	base    time.Duration
}

// maxRetryAfter caps how long a Retry-After header can make ferry wait.
const maxRetryAfter = 2 * time.Minute

// ErrTokenRenewed is in the chain of the error of a blob upload that the
// registry refused because its token had expired. A new token has been
// fetched by then; the upload must start again from the first byte, which
// only the caller can do (IsTemporary reports true).
var ErrTokenRenewed = errors.New("the token expired during the upload and was renewed; the blob must be sent again")

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if b, ok := req.Body.(*bodyReader); ok && !b.claim() {
		return nil, ErrTokenRenewed
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody != nil {
		// The body may have been read by an earlier send of this request.
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = body
	}
	for attempt := 0; ; attempt++ {
		resp, err := t.inner.RoundTrip(req)
		if attempt >= t.retries || !replayable(req) || !Retryable(resp, err) || req.Context().Err() != nil || !takeRetry(req.Context()) {
			return resp, err
		}
		wait := t.wait(resp, attempt)
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := Sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		if req.Body != nil && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// retryBudget is the number of retries left to one operation; see
// Client.RetryBudget.
type retryBudget struct{ left atomic.Int64 }

func (b *retryBudget) take() bool { return b.left.Add(-1) >= 0 }

type budgetKey struct{}

// takeRetry takes a retry from the budget ctx carries, if any, and reports
// whether there was one left; without a budget every retry is allowed.
func takeRetry(ctx context.Context) bool {
	b, ok := ctx.Value(budgetKey{}).(*retryBudget)
	return !ok || b.take()
}

// RetryBudget returns a context under which the requests of one operation
// (fetching a manifest, reading a small blob) share the client's Retries:
// each time the transport sends a request again (after a connection error,
// 408, 429 or 5xx) it takes one, and take takes one for a retry the caller
// makes itself, such as reading again a response body that broke midway,
// which the transport cannot retry; take reports false when none is left.
// So an operation makes at most Retries+1 attempts, whatever failed, rather
// than Retries+1 attempts of Retries+1 requests each.
func (c *Client) RetryBudget(ctx context.Context) (_ context.Context, take func() bool) {
	b := &retryBudget{}
	b.left.Store(int64(c.opts.Retries))
	return context.WithValue(ctx, budgetKey{}, b), b.take
}

// wait is how long to wait before sending a request again after attempt
// (from 0) got resp (nil after a connection error): what its Retry-After
// says, at most maxRetryAfter, or else the backoff.
func (t *retryTransport) wait(resp *http.Response, attempt int) time.Duration {
	if resp != nil {
		if ra := retryAfter(resp); ra > 0 {
			return ra
		}
	}
	return Backoff(t.base, attempt)
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// Retryable reports whether a response or error is worth another try.
func Retryable(resp *http.Response, err error) bool {
	if err != nil {
		return temporaryNetError(err)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Backoff is the wait before retry attempt+1: exponential from base, with
// up to 50% jitter, capped at 30 s.
func Backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt, 10)
	d = min(d, 30*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func retryAfter(resp *http.Response) time.Duration {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// Sleep waits for d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// temporaryNetError: the connection broke or timed out; a refused
// connection, an unknown host or a TLS failure are not retried (they are
// settings to fix, and retrying them only delays the message).
func temporaryNetError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var nerr net.Error
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return true
	case errors.As(err, &nerr) && nerr.Timeout():
		return true
	}
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// IsTemporary reports whether an error returned by the client is worth
// another try after re-reading the content: a broken or stalled
// connection, a registry answering 408, 429 or 5xx, or a token renewed
// during an upload.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrTokenRenewed) {
		return true
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return Retryable(&http.Response{StatusCode: terr.StatusCode}, nil)
	}
	return temporaryNetError(err)
}
