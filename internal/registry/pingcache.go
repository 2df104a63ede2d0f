package registry

import (
	"bytes"
	"io"
	"net/http"
	"sync"

	"golang.org/x/sync/singleflight"
)

// pingCache answers the version check (GET /v2/) of a registry from the
// first answer it got: the library pings again for every transport it makes
// (one per repository and mount source on a registry with token
// authentication), and each ping is a round trip on the critical path.
// Only answers are kept (200, 401), never errors, so a failed ping is tried
// again; a ping that carries credentials is always sent.
type pingCache struct {
	inner   http.RoundTripper
	mu      sync.Mutex
	answers map[string]*pingAnswer // by scheme://host
	flight  singleflight.Group
}

type pingAnswer struct {
	status int
	header http.Header
	body   []byte
}

// maxPingBody bounds what is kept of a ping's body (registries send {} or
// an error document).
const maxPingBody = 64 << 10

func (p *pingCache) RoundTrip(req *http.Request) (*http.Response, error) {
	// A ping with credentials (ferry login checks them so) is a question of
	// its own.
	if req.Method != http.MethodGet || req.URL.Path != "/v2/" || req.Header.Get("Authorization") != "" {
		return p.inner.RoundTrip(req)
	}
	key := req.URL.Scheme + "://" + req.URL.Host
	p.mu.Lock()
	a, ok := p.answers[key]
	p.mu.Unlock()
	if ok {
		return a.response(req), nil
	}
	v, err, _ := p.flight.Do(key, func() (any, error) {
		resp, err := p.inner.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxPingBody))
		if err != nil {
			return nil, err
		}
		a := &pingAnswer{status: resp.StatusCode, header: resp.Header.Clone(), body: body}
		// Every caller waiting on this ping gets a copy of the answer; only
		// 200 and 401 are kept for later ones.
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			p.mu.Lock()
			if p.answers == nil {
				p.answers = map[string]*pingAnswer{}
			}
			p.answers[key] = a
			p.mu.Unlock()
		}
		return a, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*pingAnswer).response(req), nil
}

func (a *pingAnswer) response(req *http.Request) *http.Response {
	return &http.Response{
		Status:        http.StatusText(a.status),
		StatusCode:    a.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        a.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       req,
	}
}
