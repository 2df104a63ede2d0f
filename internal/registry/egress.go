package registry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Roles of a host in an EgressLog: what ferry asked it for.
const (
	// RoleRegistry: the distribution API (/v2/...) of a registry.
	RoleRegistry = "registry"
	// RoleToken: a token service (the realm of a registry's Bearer
	// challenge), on the registry's host or another.
	RoleToken = "token"
	// RoleRedirect: the target of a redirect net/http followed, such as
	// the storage or CDN a registry sends blob downloads to.
	RoleRedirect = "redirect"
)

// EgressLog counts, per host, the HTTP requests a Client sends and the body
// bytes they carry, at the lowest level of its transport stack: every
// request that goes on the wire is seen, including the token requests of
// the authentication library, the requests to hosts that net/http follows
// a redirect to, and every retry; answers served from the client's own
// caches are not. It keeps host names, schemes and ports only, never a
// path, a query or a header, so nothing secret (a signed storage URL, a
// token, a password) can reach it. The zero value is ready to use; it is
// safe for concurrent use.
type EgressLog struct {
	mu     sync.Mutex
	hosts  map[string]*hostCounts // by lower-case host name
	realms map[string]bool        // host:port/path of the token services named by challenges
}

type hostCounts struct {
	roles     map[string]bool
	endpoints map[Endpoint]bool // tried
	answered  map[Endpoint]bool // gave an HTTP answer
	failures  map[string]bool
	requests  int64
	failed    int64
	received  atomic.Int64
	sent      atomic.Int64
}

// Endpoint is a scheme and port a host was contacted on.
type Endpoint struct {
	Scheme string `json:"scheme"`
	Port   int    `json:"port"`
}

// HostTraffic is what an EgressLog recorded for one host.
type HostTraffic struct {
	// Host is the host name (or IP address) in lower case, without port.
	Host string
	// Endpoints are the schemes and ports that gave an HTTP answer, or,
	// when none did, those tried, sorted. (ferry tries HTTPS first on a
	// loopback or private registry that turns out to speak plain HTTP: that
	// attempt counts in Failed, but its endpoint is not listed.)
	Endpoints []Endpoint
	// Roles are RoleRegistry, RoleToken and RoleRedirect, as seen, sorted.
	Roles []string
	// Requests is the number of requests sent, retries included, and
	// requests ferry canceled itself (after another failure, or an
	// interrupt).
	Requests int64
	// Failed counts the requests that got no HTTP answer at all; Failures
	// names their kinds ("name not resolved", "connection refused",
	// "connection reset", "timeout", "not TLS", "TLS", "other"), sorted.
	Failed   int64
	Failures []string
	// BytesReceived and BytesSent count response and request bodies read
	// (headers not included).
	BytesReceived, BytesSent int64
}

// Hosts returns the traffic of every host contacted so far, sorted by host.
func (l *EgressLog) Hosts() []HostTraffic {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]HostTraffic, 0, len(l.hosts))
	for h, c := range l.hosts {
		t := HostTraffic{Host: h, Requests: c.requests, Failed: c.failed, BytesReceived: c.received.Load(), BytesSent: c.sent.Load()}
		used := c.answered
		if len(used) == 0 {
			used = c.endpoints
		}
		for e := range used {
			t.Endpoints = append(t.Endpoints, e)
		}
		slices.SortFunc(t.Endpoints, func(a, b Endpoint) int {
			if c := strings.Compare(a.Scheme, b.Scheme); c != 0 {
				return c
			}
			return a.Port - b.Port
		})
		for r := range c.roles {
			t.Roles = append(t.Roles, r)
		}
		slices.Sort(t.Roles)
		for f := range c.failures {
			t.Failures = append(t.Failures, f)
		}
		slices.Sort(t.Failures)
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b HostTraffic) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// noteRealm records the token service a registry's challenge names, so
// that requests to it are counted as RoleToken.
func (l *EgressLog) noteRealm(realm string) {
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.realms == nil {
		l.realms = map[string]bool{}
	}
	l.realms[realmKey(u)] = true
}

func realmKey(u *url.URL) string {
	host, port := hostPort(u)
	return net.JoinHostPort(host, strconv.Itoa(port)) + u.EscapedPath()
}

// hostPort returns u's host name in lower case and its port, the scheme's
// default when the URL names none.
func hostPort(u *url.URL) (string, int) {
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = 443
		if u.Scheme == "http" {
			port = 80
		}
	}
	return strings.ToLower(u.Hostname()), port
}

// start counts a request about to be sent and returns its host's counters
// and endpoint.
func (l *EgressLog) start(req *http.Request) (*hostCounts, Endpoint) {
	host, port := hostPort(req.URL)
	ep := Endpoint{Scheme: req.URL.Scheme, Port: port}
	l.mu.Lock()
	defer l.mu.Unlock()
	role := RoleRegistry
	switch {
	case l.realms[realmKey(req.URL)]:
		role = RoleToken
	case req.Response != nil:
		role = RoleRedirect
	}
	if l.hosts == nil {
		l.hosts = map[string]*hostCounts{}
	}
	c := l.hosts[host]
	if c == nil {
		c = &hostCounts{roles: map[string]bool{}, endpoints: map[Endpoint]bool{}, answered: map[Endpoint]bool{}, failures: map[string]bool{}}
		l.hosts[host] = c
	}
	c.roles[role] = true
	c.endpoints[ep] = true
	c.requests++
	return c, ep
}

func (l *EgressLog) answered(c *hostCounts, ep Endpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.answered[ep] = true
}

func (l *EgressLog) failed(c *hostCounts, err error) {
	if errors.Is(err, context.Canceled) {
		return // ferry ended it: after another failure, or an interrupt
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c.failed++
	c.failures[failureKind(err)] = true
}

// failureKind names why a request got no answer, in words that say what
// a firewall or proxy in the way may have done; never the error text,
// which can hold a URL.
func failureKind(err error) string {
	var dnsErr *net.DNSError
	var nerr net.Error
	switch {
	case errors.As(err, &dnsErr):
		return "name not resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case notTLS(err):
		return "not TLS"
	case isTLSFailure(err):
		return "TLS"
	}
	return "other"
}

// egressTransport records every request in an EgressLog.
type egressTransport struct {
	inner http.RoundTripper
	log   *EgressLog
}

func (t *egressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, ep := t.log.start(req)
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &countingBody{ReadCloser: req.Body, n: &c.sent}
	}
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		t.log.failed(c, err)
		return nil, err
	}
	t.log.answered(c, ep)
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.received}
	return resp, nil
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
