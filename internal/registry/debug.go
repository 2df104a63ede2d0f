package registry

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
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
		fmt.Fprintf(&b, "<-- error %v (%s)\n", err, time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "<-- %d (%s)\n%s", resp.StatusCode, time.Since(start).Round(time.Millisecond), headers(resp.Header))
	}
	d.mu.Lock()
	_, _ = io.WriteString(d.w, b.String())
	d.mu.Unlock()
	return resp, err
}

func redactURL(req *http.Request) string {
	u := *req.URL
	q := u.Query()
	for k := range q {
		if k != "digest" && k != "mount" && k != "from" && k != "n" && k != "last" {
			q.Set(k, "<redacted>")
		}
	}
	u.RawQuery = q.Encode()
	u.User = nil
	return u.String()
}

func headers(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := strings.Join(h[k], ", ")
		if secretHeaders[http.CanonicalHeaderKey(k)] {
			v = "<redacted>"
		}
		fmt.Fprintf(&b, "    %s: %s\n", k, v)
	}
	return b.String()
}
