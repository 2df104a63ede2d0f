package registry_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
)

// TestErrorURLRedactedWhenQuoted: the error of a request whose connection
// broke names its URL as net/url does, quoted with %q; a storage URL a
// registry redirects to whose query holds a character %q escapes (a double
// quote, a backslash) is redacted all the same: its signature never shows.
func TestErrorURLRedactedWhenQuoted(t *testing.T) {
	t.Parallel()
	d := digest.FromString("blob")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()):
			w.Header().Set("Location", `/storage/blob?X-Amz-Signature=S3CR3T"sig\x&digest=`+d.String())
			w.WriteHeader(http.StatusTemporaryRedirect)
		case r.URL.Path == "/storage/blob":
			// The storage connection breaks.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	c := registry.New(registry.Options{Retries: -1})
	repo, err := c.ParseRepository(u.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.GetBlob(context.Background(), repo, d)
	if err == nil {
		rc.Close()
		t.Fatal("GetBlob succeeded through a broken connection: nothing was tested")
	}
	var uerr *url.Error
	if !errors.As(err, &uerr) || !strings.Contains(uerr.URL, "S3CR3T") {
		t.Fatalf("error %v is not a *url.Error naming the storage URL: nothing was tested", err)
	}
	if strings.Contains(err.Error(), "S3CR3T") {
		t.Errorf("the error shows the storage signature: %s", err)
	}
	if !strings.Contains(err.Error(), "X-Amz-Signature=<redacted>") {
		t.Errorf("error %q does not show X-Amz-Signature=<redacted>", err)
	}
}

// TestRedirectGetsNoCredentials: a registry that redirects blob downloads
// (to storage on another host, on another port of its own address, or to
// itself under another name) has the redirected request sent without its
// credentials; only requests to the registry's own host:port carry them.
func TestRedirectGetsNoCredentials(t *testing.T) {
	t.Parallel()
	blob := []byte("blob content")
	d := digest.FromBytes(blob)
	var mu sync.Mutex
	seen := map[string]string{} // Host header -> Authorization of the storage request
	record := func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen[r.Host] = r.Header.Get("Authorization")
	}
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		_, _ = w.Write(blob)
	}))
	t.Cleanup(storage.Close)
	_, sport, _ := net.SplitHostPort(strings.TrimPrefix(storage.URL, "http://"))
	var target atomic.Value
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/storage/blob" {
			record(r)
			_, _ = w.Write(blob)
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()):
			w.Header().Set("Location", target.Load().(string))
			w.WriteHeader(http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	_, rport, _ := net.SplitHostPort(host)
	for _, to := range []string{
		"http://storage.example:" + sport + "/blob?sig=x",
		"http://127.0.0.1:" + sport + "/blob?sig=x",
		"http://localhost:" + rport + "/storage/blob?sig=x",
		"https://storage.example:" + sport + "/blob?sig=x", // fails: plain HTTP server
	} {
		target.Store(to)
		c := registry.New(registry.Options{Keychain: staticKeychain{Username: "u", Password: "p"}, Transport: redirectTo127(), Retries: -1})
		repo, err := c.ParseRepository(host + "/team/app")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.GetBlob(context.Background(), repo, d)
		if err == nil {
			rc.Close()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Errorf("storage saw %d hosts, want 3: %v", len(seen), seen)
	}
	for h, a := range seen {
		if a != "" {
			t.Errorf("redirect to %s carried credentials %q", h, a)
		}
	}
}
