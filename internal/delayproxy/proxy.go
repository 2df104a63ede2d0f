package delayproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// ErrNotLoopback is returned for a target that is not on 127.0.0.1.
var ErrNotLoopback = errors.New("the proxy only connects to 127.0.0.1")

// Options configure a Proxy. The zero value forwards every request at once.
type Options struct {
	// Delay is how long each request waits, once its header has arrived,
	// before it is forwarded. SetDelay changes it while the proxy runs.
	Delay time.Duration
	// OnRequest, when set, is called for every request once its delay is
	// over, just before it is forwarded. It must be safe for concurrent use.
	OnRequest func(*http.Request)
	// ErrorLog receives the proxy's own errors (the target refused a
	// connection or broke one off); nil discards them.
	ErrorLog *log.Logger
}

// Stats count what went through a proxy since it started.
type Stats struct {
	Requests      int64 // requests forwarded, each after the delay
	ClientConns   int64 // connections accepted from clients
	UpstreamConns int64 // connections opened to the target
}

// Sub returns s minus an earlier o: what happened in between.
func (s Stats) Sub(o Stats) Stats {
	return Stats{Requests: s.Requests - o.Requests, ClientConns: s.ClientConns - o.ClientConns, UpstreamConns: s.UpstreamConns - o.UpstreamConns}
}

// Proxy is a running delaying reverse proxy. Its Addr is a host:port on
// 127.0.0.1 that clients use instead of the target's.
type Proxy struct {
	addr   string
	target string
	delay  atomic.Int64 // a time.Duration, read once per request
	srv    *http.Server
	tr     *http.Transport

	requests, clientConns, upstreamConns atomic.Int64
}

// Start listens on a free port of 127.0.0.1 and forwards every request,
// after opts.Delay, to target, a host:port on 127.0.0.1. The Host header
// is passed on unchanged, so the URLs a registry builds from it (upload
// Locations) point back at the proxy.
func Start(target string, opts Options) (*Proxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target %q: %w", target, err)
	}
	if host != "127.0.0.1" {
		return nil, fmt.Errorf("proxy target %q: %w", target, ErrNotLoopback)
	}
	if opts.Delay < 0 {
		return nil, fmt.Errorf("proxy delay %s is negative", opts.Delay)
	}
	errLog := opts.ErrorLog
	if errLog == nil {
		errLog = log.New(io.Discard, "", 0)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{addr: ln.Addr().String(), target: target}
	p.delay.Store(int64(opts.Delay))
	var dialer net.Dialer
	p.tr = &http.Transport{
		Proxy: nil, // never an HTTP_PROXY from the environment
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			if addr != target {
				return nil, fmt.Errorf("dialing %s: %w", addr, ErrNotLoopback)
			}
			c, err := dialer.DialContext(ctx, "tcp4", target)
			if err == nil {
				p.upstreamConns.Add(1)
			}
			return c, err
		},
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // pass Accept-Encoding and bodies through untouched
	}
	u := &url.URL{Scheme: "http", Host: target}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport:     p.tr,
		FlushInterval: -1, // write each piece of a response body on as it comes
		ErrorLog:      errLog,
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !p.wait(r.Context()) {
				return // the client went away
			}
			p.requests.Add(1)
			if opts.OnRequest != nil {
				opts.OnRequest(r)
			}
			rp.ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				p.clientConns.Add(1)
			}
		},
		ErrorLog: errLog,
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// wait sleeps for the delay in force when the request arrived; false if
// ctx ended first.
func (p *Proxy) wait(ctx context.Context) bool {
	d := p.Delay()
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Addr is the host:port (on 127.0.0.1) the proxy listens on.
func (p *Proxy) Addr() string { return p.addr }

// Delay is the wait before each request.
func (p *Proxy) Delay() time.Duration { return time.Duration(p.delay.Load()) }

// SetDelay changes the wait before each request, for the requests that
// arrive from now on; a request already waiting keeps the delay it got. It
// is safe to call while requests go through, so that one proxy (and the
// CPU it costs) can be measured with and without the delay.
func (p *Proxy) SetDelay(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("proxy delay %s is negative", d)
	}
	p.delay.Store(int64(d))
	return nil
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{Requests: p.requests.Load(), ClientConns: p.clientConns.Load(), UpstreamConns: p.upstreamConns.Load()}
}

// CloseIdleConnections drops the idle connections to the target; call it
// after the target restarted, so that no request goes to a dead one.
func (p *Proxy) CloseIdleConnections() { p.tr.CloseIdleConnections() }

// Close stops listening and closes every connection, to clients and to
// the target.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.tr.CloseIdleConnections()
	return err
}
