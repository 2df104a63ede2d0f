package registry

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferryproject/ferry/internal/termtext"
)

// debugTransport logs each request and response line with its headers to w,
// with credentials redacted. Bodies are never logged (they are blobs).
type debugTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	w     io.Writer
}

// secretHeaders are replaced by <redacted> in debug logs.
var secretHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true}

func (d *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := d.inner.RoundTrip(req)
	var b strings.Builder
	fmt.Fprintf(&b, "--> %s %s %s\n%s", start.Format("15:04:05.000"), req.Method, redactURL(req), headers(req.Header))
	if err != nil {
		fmt.Fprintf(&b, "<-- error %s (%s)\n", termtext.Escape(err.Error()), time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "<-- %d (%s)\n%s", resp.StatusCode, time.Since(start).Round(time.Millisecond), headers(resp.Header))
	}
	d.mu.Lock()
	_, _ = io.WriteString(d.w, b.String())
	d.mu.Unlock()
	return resp, err
}

func redactURL(req *http.Request) string { return redactQuery(req.URL) }

// plainQuery are the query parameters shown in debug logs: digests,
// repository names and paging, which say which request it was and are no
// secret (a blob digest is also in the path of every request for it).
// Every other value is <redacted>: the state of an upload session
// (distribution's _state), and the signatures and credentials of a
// pre-signed storage URL a registry redirects to (X-Amz-Signature,
// X-Amz-Credential, sig, Signature, ...).
var plainQuery = map[string]bool{"digest": true, "mount": true, "from": true, "n": true, "last": true}

// redactQuery returns u without user information and with every query
// value other than those of plainQuery replaced by <redacted>.
func redactQuery(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery == "" {
		return c.String()
	}
	q, err := url.ParseQuery(c.RawQuery)
	if err != nil {
		c.RawQuery = "<redacted>" // unparsable: show none of it
		return c.String()
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(q)) {
		for _, v := range q[k] {
			if !plainQuery[k] {
				v = "<redacted>"
			} else {
				v = url.QueryEscape(v)
			}
			parts = append(parts, url.QueryEscape(k)+"="+v)
		}
	}
	c.RawQuery = strings.Join(parts, "&")
	return c.String()
}

// urlHeaders hold URLs, shown with their query redacted: the Location of
// an upload session carries its state, and a redirect to storage its
// signature.
var urlHeaders = map[string]bool{"Location": true, "Content-Location": true}

func headers(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := strings.Join(h[k], ", ")
		switch ck := http.CanonicalHeaderKey(k); {
		case secretHeaders[ck]:
			v = "<redacted>"
		case urlHeaders[ck]:
			vs := make([]string, len(h[k]))
			for i, s := range h[k] {
				u, err := url.Parse(s)
				if err != nil {
					vs[i] = "<redacted>"
					continue
				}
				vs[i] = redactQuery(u)
			}
			v = strings.Join(vs, ", ")
		}
		// A header value is what the registry chose to send: no escape
		// sequence of it reaches the terminal.
		fmt.Fprintf(&b, "    %s: %s\n", termtext.Escape(k), termtext.Escape(v))
	}
	return b.String()
}
