package registry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// The ping cache keeps answers (200, 401) per registry, and never an error
// or another status, which are asked again.
func TestPingCache(t *testing.T) {
	var pings, other atomic.Int64
	status := atomic.Int64{}
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			other.Add(1)
			return
		}
		pings.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	c := &http.Client{Transport: &pingCache{inner: http.DefaultTransport}}
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/v2/" && resp.StatusCode != http.StatusServiceUnavailable && string(body) != "{}" {
			t.Errorf("cached ping body %q", body)
		}
		return resp
	}
	get("/v2/")
	get("/v2/")
	if n := pings.Load(); n != 2 {
		t.Fatalf("a 503 ping was kept: %d pings, want 2", n)
	}
	status.Store(http.StatusUnauthorized)
	for range 3 {
		if resp := get("/v2/"); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="x"` {
			t.Errorf("ping answered %d %v", resp.StatusCode, resp.Header)
		}
	}
	if n := pings.Load(); n != 3 {
		t.Errorf("%d pings after three asks of a 401, want 3 (2 + 1)", n)
	}
	// With credentials (ferry login), the ping is always sent.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	req.Header.Set("Authorization", "Basic eDp5")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := pings.Load(); n != 4 {
		t.Errorf("a ping with credentials was answered from the cache: %d pings, want 4", n)
	}
	get("/v2/library/x/manifests/1")
	get("/v2/library/x/manifests/1")
	if n := other.Load(); n != 2 {
		t.Errorf("other requests answered from the cache: %d sent, want 2", n)
	}
	// An error is not kept.
	dead := &http.Client{Transport: &pingCache{inner: http.DefaultTransport}}
	srv2 := httptest.NewServer(http.NotFoundHandler())
	url := srv2.URL
	srv2.Close()
	for range 2 {
		if _, err := dead.Get(url + "/v2/"); err == nil {
			t.Fatal("a ping to a closed server succeeded")
		}
	}
	if n := len(dead.Transport.(*pingCache).answers); n != 0 {
		t.Errorf("%d answers kept after errors, want 0", n)
	}
}
