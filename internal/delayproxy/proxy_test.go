package delayproxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryproject/ferry/internal/delayproxy"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// deadlock bounds a wait that only ends if the proxy streams; it is a
// guard against hanging the test run, not a timing threshold.
const deadlock = 30 * time.Second

// client talks to the proxy with connections kept alive and no
// environment proxy.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// recorder keeps strings seen by handlers, safe for concurrent use.
type recorder struct {
	mu sync.Mutex
	s  []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.s = append(r.s, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.s...)
}

func start(t *testing.T, target string, opts delayproxy.Options) *delayproxy.Proxy {
	t.Helper()
	p, err := delayproxy.Start(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// backend is an HTTP server on 127.0.0.1 that counts the connections it
// accepts.
func backend(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestDelayPerRequestOverKeptAliveConnections(t *testing.T) {
	t.Parallel()
	var hosts recorder
	srv, backendConns := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hosts.add(r.Host)
		w.Header().Set("X-Path", r.URL.Path)
		fmt.Fprintf(w, "%s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
	})
	const delay = 2 * time.Millisecond
	var delayed atomic.Int64
	p := start(t, srv.Listener.Addr().String(), delayproxy.Options{Delay: delay, OnRequest: func(*http.Request) { delayed.Add(1) }})
	c := client(t)
	const n = 6
	for i := range n {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodHead
		}
		req, _ := http.NewRequest(method, fmt.Sprintf("http://%s/v2/r%d/blobs/x?digest=sha256%%3Aab", p.Addr(), i), nil)
		begin := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// A timer never fires early: this lower bound cannot flake.
		if took := time.Since(begin); took < delay {
			t.Errorf("request %d took %s, less than the delay %s", i, took, delay)
		}
		if want := fmt.Sprintf("GET /v2/r%d/blobs/x?digest=sha256%%3Aab", i); method == http.MethodGet && string(body) != want {
			t.Errorf("request %d: body %q, want %q", i, body, want)
		}
		if got := resp.Header.Get("X-Path"); got != fmt.Sprintf("/v2/r%d/blobs/x", i) {
			t.Errorf("request %d: X-Path %q", i, got)
		}
	}
	if got := delayed.Load(); got != n {
		t.Errorf("OnRequest saw %d requests, want %d", got, n)
	}
	st := p.Stats()
	if st.Requests != n || st.ClientConns != 1 || st.UpstreamConns != 1 {
		t.Errorf("stats %+v, want %d requests over 1 client and 1 upstream connection", st, n)
	}
	if got := backendConns.Load(); got != 1 {
		t.Errorf("the backend accepted %d connections, want 1 (kept alive)", got)
	}
	for i, h := range hosts.get() {
		if h != p.Addr() {
			t.Errorf("request %d reached the backend with Host %q, want the proxy's %q", i, h, p.Addr())
		}
	}
}

func TestRequestBodyStreams(t *testing.T) {
	t.Parallel()
	first := bytes.Repeat([]byte("a"), 256<<10)
	rest := bytes.Repeat([]byte("b"), 256<<10)
	gotFirst := make(chan struct{})
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, len(first))
		if _, err := io.ReadFull(r.Body, buf); err != nil || !bytes.Equal(buf, first) {
			http.Error(w, "first part", http.StatusBadRequest)
			return
		}
		close(gotFirst) // only now does the client send the rest
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil || n != int64(len(rest)) {
			http.Error(w, "rest", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	p := start(t, srv.Listener.Addr().String(), delayproxy.Options{Delay: time.Millisecond})
	pr, pw := io.Pipe()
	go func() {
		if _, err := pw.Write(first); err != nil {
			pw.CloseWithError(err)
			return
		}
		select {
		case <-gotFirst:
		case <-time.After(deadlock):
			pw.CloseWithError(errors.New("the backend never saw the first part: the proxy buffers request bodies"))
			return
		}
		_, err := pw.Write(rest)
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPut, "http://"+p.Addr()+"/upload", pr) // length unknown: chunked
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %s", resp.Status)
	}
}

func TestResponseBodyStreams(t *testing.T) {
	t.Parallel()
	first := bytes.Repeat([]byte("a"), 256<<10)
	rest := bytes.Repeat([]byte("b"), 256<<10)
	gotFirst := make(chan struct{})
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(first)+len(rest)))
		w.Write(first)
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst: // only now is the rest sent
		case <-time.After(deadlock):
			return // the client fails on a short body
		}
		w.Write(rest)
	})
	p := start(t, srv.Listener.Addr().String(), delayproxy.Options{Delay: time.Millisecond})
	resp, err := client(t).Get("http://" + p.Addr() + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	close(gotFirst)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != int64(len(rest)) {
		t.Fatalf("rest of the body: %d bytes, %v; the proxy buffers response bodies", n, err)
	}
}

// A blob upload through the proxy into a real registry: the upload
// Location points back at the proxy, so the PUT is delayed too.
func TestRegistryUploadThroughProxy(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	var methods recorder
	p := start(t, reg.Host, delayproxy.Options{Delay: time.Millisecond, OnRequest: func(r *http.Request) { methods.add(r.Method) }})
	c := client(t)
	blob := bytes.Repeat([]byte("layer "), 100_000)
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))

	resp, err := c.Post("http://"+p.Addr()+"/v2/team/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s", resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Host != p.Addr() {
		t.Fatalf("upload Location %s bypasses the proxy %s", loc, p.Addr())
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(blob))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, err = c.Get("http://" + p.Addr() + "/v2/team/app/blobs/" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GET: %d bytes, %v", len(got), err)
	}
	if got, want := strings.Join(methods.get(), " "), "POST PUT GET"; got != want {
		t.Errorf("delayed requests %s, want %s", got, want)
	}
	if st := p.Stats(); st.Requests != 3 || st.UpstreamConns != 1 {
		t.Errorf("stats %+v, want 3 requests over 1 upstream connection", st)
	}
}

func TestOnlyLoopback(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"10.0.0.1:5000", "localhost:5000", "[::1]:5000", "0.0.0.0:5000", "registry.example:443"} {
		if _, err := delayproxy.Start(target, delayproxy.Options{}); !errors.Is(err, delayproxy.ErrNotLoopback) {
			t.Errorf("Start(%q): %v, want ErrNotLoopback", target, err)
		}
	}
	if _, err := delayproxy.Start("127.0.0.1", delayproxy.Options{}); err == nil {
		t.Error("Start without a port: no error")
	}
	p := start(t, "127.0.0.1:1", delayproxy.Options{})
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Errorf("listening on %s, want 127.0.0.1", p.Addr())
	}
}

func TestClientGoneDuringDelay(t *testing.T) {
	t.Parallel()
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, srv.Listener.Addr().String(), delayproxy.Options{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr()+"/", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := client(t).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("request: %v, want context.Canceled", err)
	}
	if st := p.Stats(); st.Requests != 0 {
		t.Errorf("%d requests forwarded, want 0", st.Requests)
	}
}

// A changed delay applies to the next request: a proxy started with an
// hour's delay forwards at once after SetDelay(0), and holds the next
// request back again after SetDelay(time.Hour). Only counters are checked.
func TestSetDelayAppliesToNextRequest(t *testing.T) {
	t.Parallel()
	var reached atomic.Int64
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })
	var forwarded atomic.Int64
	p := start(t, srv.Listener.Addr().String(), delayproxy.Options{Delay: time.Hour, OnRequest: func(*http.Request) { forwarded.Add(1) }})
	if got := p.Delay(); got != time.Hour {
		t.Fatalf("Delay() %s, want 1h", got)
	}
	if err := p.SetDelay(-time.Second); err == nil {
		t.Error("SetDelay(-1s): no error")
	}
	if err := p.SetDelay(0); err != nil {
		t.Fatal(err)
	}
	if got := p.Delay(); got != 0 {
		t.Fatalf("Delay() %s after SetDelay(0)", got)
	}
	c := client(t)
	// With the hour still in force this would hang: deadlock only guards
	// the test run.
	ctx, cancel := context.WithTimeout(context.Background(), deadlock)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr()+"/now", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("request after SetDelay(0): %v (the old delay still applies)", err)
	}
	resp.Body.Close()
	if forwarded.Load() != 1 || reached.Load() != 1 || p.Stats().Requests != 1 {
		t.Fatalf("forwarded %d, reached %d, stats %+v; want 1 each", forwarded.Load(), reached.Load(), p.Stats())
	}

	// Back to an hour: the next request waits, and is dropped when its
	// client goes away, never forwarded.
	if err := p.SetDelay(time.Hour); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	written := make(chan struct{})
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(written) }}
	req, _ = http.NewRequestWithContext(httptrace.WithClientTrace(ctx2, trace), http.MethodGet, "http://"+p.Addr()+"/later", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-written:
	case <-time.After(deadlock):
		t.Fatal("the request was never written")
	}
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("request after SetDelay(1h): %v, want context.Canceled (it was not held back)", err)
	}
	// With the hour applied the request is never forwarded, so this cannot
	// flake; without it the proxy would race the cancellation, and usually
	// answer or count the request first.
	if forwarded.Load() != 1 || reached.Load() != 1 || p.Stats().Requests != 1 {
		t.Errorf("forwarded %d, reached %d, stats %+v after SetDelay(1h); want still 1 each", forwarded.Load(), reached.Load(), p.Stats())
	}
}
