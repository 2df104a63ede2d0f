package registry

import (
	"net/http"
	"testing"
	"time"
)

// TestRetryAfterCapped: a registry cannot make ferry wait longer than
// maxRetryAfter, whether Retry-After is in seconds or an HTTP date; a
// shorter Retry-After is honoured as given, and without one the wait is the
// backoff. Nothing sleeps: the wait is computed, not waited.
func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()
	if maxRetryAfter != 2*time.Minute {
		t.Errorf("maxRetryAfter = %v; docs/user-guide.md documents 2 minutes", maxRetryAfter)
	}
	const base = 100 * time.Millisecond
	rt := &retryTransport{retries: 5, base: base}
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration // 0: the backoff of the first retry
	}{
		{"seconds above the cap", http.StatusTooManyRequests, "100000", maxRetryAfter},
		{"HTTP date a day ahead", http.StatusTooManyRequests, time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat), maxRetryAfter},
		{"seconds below the cap", http.StatusTooManyRequests, "3", 3 * time.Second},
		{"503 with seconds above the cap", http.StatusServiceUnavailable, "100000", maxRetryAfter},
		{"no Retry-After", http.StatusTooManyRequests, "", 0},
		{"unparsable Retry-After", http.StatusTooManyRequests, "soon", 0},
	}
	for _, tc := range tests {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
		if tc.retryAfter != "" {
			resp.Header.Set("Retry-After", tc.retryAfter)
		}
		got := rt.wait(resp, 0)
		if tc.want == 0 {
			if got < base/2 || got > base {
				t.Errorf("%s: wait %v, want the backoff, between %v and %v", tc.name, got, base/2, base)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s: wait %v, want %v", tc.name, got, tc.want)
		}
	}
	// After a connection error there is no response: the backoff.
	if got := rt.wait(nil, 0); got < base/2 || got > base {
		t.Errorf("connection error: wait %v, want between %v and %v", got, base/2, base)
	}
}
