package registry

// Found by a security review: the ping cache leaked the body of a ping
// answer it does not keep (a 5xx, a 404) when other pings of the same
// registry joined the flight. singleflight reports shared=true to every
// caller, the one that made the request included, so every caller pings
// again and nobody closes the first response: its connection (and the
// transport's read goroutine) stays open for good.

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type closeCounter struct {
	io.Reader
	closed *atomic.Int64
}

func (c closeCounter) Close() error { c.closed.Add(1); return nil }

type slowPing struct {
	calls, closed atomic.Int64
}

func (s *slowPing) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.calls.Add(1) == 1 {
		time.Sleep(300 * time.Millisecond) // let the other pings join the flight
	}
	return &http.Response{
		StatusCode: http.StatusServiceUnavailable,
		Header:     http.Header{},
		Body:       closeCounter{strings.NewReader("busy"), &s.closed},
		Request:    req,
	}, nil
}

func TestPingCacheSharedUnkeptAnswer(t *testing.T) {
	inner := &slowPing{}
	p := &pingCache{inner: inner}
	const n = 4
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			req, _ := http.NewRequest(http.MethodGet, "https://reg.example/v2/", nil)
			resp, err := p.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if calls, closed := inner.calls.Load(), inner.closed.Load(); closed != calls {
		t.Errorf("%d pings sent, %d response bodies closed: the body of the shared 503 is never closed (every caller, the first included, sees shared=true and pings again)", calls, closed)
	}
}
