// Package registrytest runs a real OCI distribution registry
// (github.com/distribution/distribution/v3) in process on loopback, for tests
// and for the demo. It is never linked into the ferry binary.
package registrytest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Options configure a registry. The zero value is an anonymous in-memory
// registry.
type Options struct {
	// Dir, when set, stores blobs on the filesystem below Dir instead of in memory.
	Dir string
	// Username and Password, when set, require HTTP basic authentication,
	// or with Token, are the credentials the token endpoint accepts.
	Username, Password string
	// Token, when set, requires token authentication (see TokenAuth).
	Token *TokenAuth
	// ReadOnly makes the registry refuse every write with 405 (as a
	// registry in maintenance mode does).
	ReadOnly bool
	// TLS serves HTTPS with a self-signed certificate (see CertPEM).
	TLS bool
	// MixedTLS answers, on one port, a TLS handshake with a self-signed
	// certificate (see CertPEM) and plain HTTP otherwise: a plain-HTTP
	// registry as a client sees it when someone on the path answers its
	// TLS attempts with a certificate it cannot trust.
	MixedTLS bool
	// IgnoreMount makes the registry ignore cross-repository mount
	// requests and open a plain upload instead, as some registries do.
	IgnoreMount bool
}

// Fault makes the first Times requests whose method is Method (any when
// empty) and whose path contains Path misbehave, in one of these ways:
//   - Status: answer with that status (and a Retry-After header when
//     RetryAfter is set);
//   - Drop: cut the connection halfway through the request or response body;
//   - Delay: hold the request that long before the registry sees it (a slow
//     queue in front of it; a token can expire meanwhile), then serve it;
//   - Trickle: serve the response body at Trickle bytes per second, in
//     twenty small flushed writes a second;
//   - Stall: send the response headers and half the body, then nothing for
//     Stall (or until the client gives up), then cut the connection;
//   - Corrupt: flip one byte of the body: of the request body, before the
//     registry stores it, when the request has one (an upload), otherwise of
//     the response body (a download); the registry serves the request;
//   - Digest: serve the request, with Docker-Content-Digest set to Digest
//     (a registry or proxy that reports another manifest than it holds);
//   - Redirect: answer 307 with Location (and Content-Location) naming the
//     same path with Redirect as its query, as a registry that sends blob
//     downloads to pre-signed storage URLs does; the redirected request,
//     which carries that query, is served. With RedirectTo, the Location
//     names that base URL (another host: the storage or CDN) instead of the
//     registry; serve Storage there.
//
// Body, with Status, replaces the JSON error body of the answer (a registry
// or proxy that answers with its own text).
//
// A fault with a large Times and Status set counts the requests it answers:
// see Hits.
type Fault struct {
	Method, Path string
	// Query, when set, must be part of the request's query string too.
	Query      string
	Status     int
	RetryAfter string
	Drop       bool
	Delay      time.Duration
	Trickle    int
	Stall      time.Duration
	Corrupt    bool
	Digest     string
	Redirect   string
	RedirectTo string
	Body       string
	Times      int64
	hits       atomic.Int64
	// abandoned counts stalls and delays the client gave up on.
	abandoned atomic.Int64
}

// Hits is how many times the fault was injected.
func (f *Fault) Hits() int64 { return min(f.hits.Load(), f.Times) }

// Abandoned is how many of the Delay and Stall faults ended because the
// client closed the connection before the time was up.
func (f *Fault) Abandoned() int64 { return f.abandoned.Load() }

func (f *Fault) match(r *http.Request) bool {
	if (f.Method != "" && f.Method != r.Method) || !strings.Contains(r.URL.Path, f.Path) || !strings.Contains(r.URL.RawQuery, f.Query) {
		return false
	}
	return f.hits.Add(1) <= f.Times
}

// InjectFaults puts faults in front of the registry from now on, checked in
// order; it replaces earlier ones.
func (r *Registry) InjectFaults(faults ...*Fault) { r.faults.Store(&faults) }

func (reg *Registry) inject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var faults []*Fault
		if p := reg.faults.Load(); p != nil {
			faults = *p
		}
		for _, f := range faults {
			if !f.match(r) {
				continue
			}
			switch {
			case f.Drop:
				drop(w, r, next)
				return
			case f.Delay > 0:
				if !f.wait(r, f.Delay) {
					return
				}
				next.ServeHTTP(w, r)
				return
			case f.Trickle > 0:
				next.ServeHTTP(&trickleWriter{ResponseWriter: w, rc: http.NewResponseController(w), ctx: r.Context(), rate: f.Trickle}, r)
				return
			case f.Stall > 0:
				f.stall(w, r, next)
				return
			case f.Corrupt && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody:
				r.Body = &flipReader{ReadCloser: r.Body}
				next.ServeHTTP(w, r)
				return
			case f.Corrupt:
				next.ServeHTTP(&flipWriter{ResponseWriter: w}, r)
				return
			case f.Digest != "":
				next.ServeHTTP(&digestWriter{ResponseWriter: w, digest: f.Digest}, r)
				return
			case f.Redirect != "" && r.URL.RawQuery == f.Redirect:
				next.ServeHTTP(w, r)
				return
			case f.Redirect != "":
				to := f.RedirectTo + r.URL.Path + "?" + f.Redirect
				w.Header().Set("Location", to)
				w.Header().Set("Content-Location", to)
				w.WriteHeader(http.StatusTemporaryRedirect)
				return
			}
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			if f.Body != "" {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(f.Status)
				_, _ = io.WriteString(w, f.Body)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// drop cuts the connection: after half of an upload body, or after half of
// a download.
func drop(w http.ResponseWriter, r *http.Request, next http.Handler) {
	hj := http.NewResponseController(w)
	if r.ContentLength > 0 {
		_, _ = io.CopyN(io.Discard, r.Body, r.ContentLength/2)
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(fmt.Sprintf("registrytest: hijacking the connection: %v", err))
		}
		conn.Close()
		return
	}
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	body := rec.Body.Bytes()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
	for k, vs := range rec.Header() {
		for _, v := range vs {
			fmt.Fprintf(buf, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(buf, "Content-Length: %d\r\n\r\n", len(body))
	_, _ = buf.Write(body[:len(body)/2])
	_ = buf.Flush()
	conn.Close()
}

// wait waits for d and reports true, or reports false when the client
// went away first.
func (f *Fault) wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		f.abandoned.Add(1)
		return false
	}
}

// stall sends the headers and half the body of the response, then waits.
func (f *Fault) stall(w http.ResponseWriter, r *http.Request, next http.Handler) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body[:len(body)/2])
	_ = http.NewResponseController(w).Flush()
	f.wait(r, f.Stall)
	// Cut the connection rather than end a response that is too short.
	panic(http.ErrAbortHandler)
}

// flipReader inverts the first byte of a request body.
type flipReader struct {
	io.ReadCloser
	done bool
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 0xff
		f.done = true
	}
	return n, err
}

// flipWriter inverts the first byte of a response body.
type flipWriter struct {
	http.ResponseWriter
	done bool
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if len(p) > 0 && !f.done {
		p = append([]byte{p[0] ^ 0xff}, p[1:]...)
		f.done = true
	}
	return f.ResponseWriter.Write(p)
}

// digestWriter replaces the Docker-Content-Digest header of a response.
type digestWriter struct {
	http.ResponseWriter
	digest string
	wrote  bool
}

func (d *digestWriter) WriteHeader(code int) {
	if !d.wrote {
		d.wrote = true
		d.Header().Set("Docker-Content-Digest", d.digest)
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *digestWriter) Write(p []byte) (int, error) {
	if !d.wrote {
		d.WriteHeader(http.StatusOK)
	}
	return d.ResponseWriter.Write(p)
}

// trickleWriter writes the response in small pieces, flushing each and
// pausing between them.
type trickleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	ctx  context.Context
	rate int
}

const trickleTicks = 20 // writes a second

func (t *trickleWriter) Write(p []byte) (int, error) {
	chunk := max(t.rate/trickleTicks, 1)
	written := 0
	for len(p) > 0 {
		n, err := t.ResponseWriter.Write(p[:min(chunk, len(p))])
		written += n
		if err != nil {
			return written, err
		}
		if err := t.rc.Flush(); err != nil {
			return written, err
		}
		p = p[n:]
		select {
		case <-time.After(time.Second / trickleTicks):
		case <-t.ctx.Done():
			return written, t.ctx.Err()
		}
	}
	return written, nil
}

// Registry is a running registry.
type Registry struct {
	// Host is host:port on 127.0.0.1, usable in image references.
	Host   string
	server *httptest.Server
	cancel context.CancelFunc
	tokens *tokenServer
	tmpDir string
	// app is the registry behind its fault injection and counters.
	app http.Handler

	// Counters of requests by kind, for tests that assert what was sent.
	BlobUploads atomic.Int64 // completed blob uploads (PUT on an upload session)
	BlobMounts  atomic.Int64 // mount requests (POST with ?mount=)
	Pings       atomic.Int64 // GET /v2/, the version check clients ping
	Requests    atomic.Int64
	// BodyBytes counts the response body bytes the registry wrote (sent:
	// none for HEAD).
	BodyBytes atomic.Int64
	// PlainRequests counts the requests that came over plain HTTP.
	PlainRequests atomic.Int64
	// BasicAuths counts the requests, to the registry or its token
	// endpoint, that carried HTTP basic credentials (a password).
	BasicAuths atomic.Int64

	// CertPEM is the server certificate of a TLS registry.
	CertPEM []byte

	faults         atomic.Pointer[[]*Fault]
	tokensRejected atomic.Int64
}

func init() {
	// The registry logs every request at info level; tests only want errors.
	logrus.SetLevel(logrus.ErrorLevel)
	logrus.SetOutput(io.Discard)
}

// Start starts a registry on 127.0.0.1. Call Close when done.
func Start(opts Options) (*Registry, error) {
	storage := configuration.Storage{
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	if opts.Dir != "" {
		storage["filesystem"] = configuration.Parameters{"rootdirectory": opts.Dir}
	} else {
		storage["inmemory"] = configuration.Parameters{}
	}
	if opts.ReadOnly {
		storage["maintenance"] = configuration.Parameters{
			"uploadpurging": map[any]any{"enabled": false},
			"readonly":      map[any]any{"enabled": true},
		}
	}
	config := &configuration.Configuration{Storage: storage}
	config.Catalog.MaxEntries = 1000 // the default distribution sets when it parses YAML
	config.Log.AccessLog.Disabled = true
	config.Log.Level = "error"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on loopback: %w", err)
	}
	r := &Registry{Host: l.Addr().String()}
	if opts.Token != nil {
		if r.tmpDir, err = os.MkdirTemp("", "registrytest-"); err != nil {
			l.Close()
			return nil, err
		}
		var bundle string
		if r.tokens, bundle, err = newTokenServer(opts, r.tmpDir); err != nil {
			l.Close()
			os.RemoveAll(r.tmpDir)
			return nil, fmt.Errorf("starting the token server: %w", err)
		}
		scheme := "http"
		if opts.TLS || opts.MixedTLS {
			scheme = "https"
		}
		realm := scheme + "://" + r.Host + TokenPath
		if opts.Token.Realm != "" {
			realm = opts.Token.Realm
		}
		config.Auth = r.tokens.authConfig(realm, bundle)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	app := handlers.NewApp(ctx, config)

	var h http.Handler = app
	switch {
	case r.tokens != nil:
		mux := http.NewServeMux()
		mux.Handle(TokenPath, r.tokens)
		mux.Handle("/", app)
		h = mux
	case opts.Username != "":
		h = basicAuth(opts.Username, opts.Password, h)
	}
	r.app = h
	h = r.inject(h)
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.Requests.Add(1)
		if req.TLS == nil {
			r.PlainRequests.Add(1)
		}
		if _, _, ok := req.BasicAuth(); ok {
			r.BasicAuths.Add(1)
		}
		if req.URL.Path == "/v2/" {
			r.Pings.Add(1)
		}
		if req.Method == http.MethodPost && req.URL.Query().Get("mount") != "" {
			r.BlobMounts.Add(1)
			if opts.IgnoreMount {
				q := req.URL.Query()
				q.Del("mount")
				q.Del("from")
				req.URL.RawQuery = q.Encode()
			}
		}
		// The body of an answer to HEAD is not sent (net/http drops it):
		// it is not counted.
		counted := &r.BodyBytes
		if req.Method == http.MethodHead {
			counted = new(atomic.Int64)
		}
		rec := &statusRecorder{ResponseWriter: w, bytes: counted}
		inner.ServeHTTP(rec, req)
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") && rec.status == http.StatusCreated {
			r.BlobUploads.Add(1)
		}
		if rec.status == http.StatusUnauthorized && strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			r.tokensRejected.Add(1)
		}
	})
	r.server = &httptest.Server{Listener: l, Config: &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}}
	switch {
	case opts.MixedTLS:
		cert, certPEM, err := selfSigned()
		if err != nil {
			l.Close()
			cancel()
			return nil, err
		}
		r.CertPEM = certPEM
		r.server.Listener = newMixedListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		r.server.Start()
	case opts.TLS:
		r.server.StartTLS()
		r.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.server.Certificate().Raw})
	default:
		r.server.Start()
	}
	return r, nil
}

// New starts a registry for the duration of a test.
func New(t testing.TB, opts Options) *Registry {
	t.Helper()
	r, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// Close stops the registry.
func (r *Registry) Close() {
	r.server.CloseClientConnections()
	r.server.Close()
	r.cancel()
	if r.tmpDir != "" {
		os.RemoveAll(r.tmpDir)
	}
}

// TokensIssued is how many tokens the token endpoint has issued.
func (r *Registry) TokensIssued() int64 {
	if r.tokens == nil {
		return 0
	}
	return r.tokens.issued.Load()
}

// RefreshGrants is how many access tokens the token endpoint issued for
// the refresh token of TokenAuth.RefreshToken.
func (r *Registry) RefreshGrants() int64 {
	if r.tokens == nil {
		return 0
	}
	return r.tokens.grants.Load()
}

// TokensRefused is how many token requests had wrong credentials.
func (r *Registry) TokensRefused() int64 {
	if r.tokens == nil {
		return 0
	}
	return r.tokens.refused.Load()
}

// TokensRejected is how many requests the registry answered with 401
// although they carried a token: an expired token, mostly.
func (r *Registry) TokensRejected() int64 { return r.tokensRejected.Load() }

// SetPassword changes the password the token endpoint accepts, as revoking
// or rotating a registry token does. Tokens already issued stay valid
// until they expire.
func (r *Registry) SetPassword(password string) {
	if r.tokens == nil {
		panic("registrytest: SetPassword needs TokenAuth")
	}
	r.tokens.mu.Lock()
	r.tokens.pass = password
	r.tokens.mu.Unlock()
}

// Storage serves what a Fault with RedirectTo sends clients to: the blob
// the redirected request names, from the registry, to anyone who has the
// URL (a pre-signed storage URL needs no credentials), whatever its query.
// It is the handler of a second server, the "CDN".
func (r *Registry) Storage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req = req.Clone(req.Context())
		req.URL.RawQuery = ""
		req.Header.Del("Authorization")
		if r.tokens != nil {
			repo, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
			if !ok {
				http.NotFound(w, req)
				return
			}
			tok := httptest.NewRecorder()
			treq := httptest.NewRequest(http.MethodGet, TokenPath+"?service="+tokenService+"&scope=repository:"+repo+":pull", nil)
			r.tokens.mu.Lock()
			user, pass := r.tokens.user, r.tokens.pass
			r.tokens.mu.Unlock()
			if user != "" {
				treq.SetBasicAuth(user, pass)
			}
			r.tokens.ServeHTTP(tok, treq)
			r.tokens.issued.Add(-1) // not a token a client asked for
			var answer struct{ Token string }
			if err := json.Unmarshal(tok.Body.Bytes(), &answer); err != nil || answer.Token == "" {
				http.Error(w, "registrytest: no token for the storage", http.StatusInternalServerError)
				return
			}
			req.Header.Set("Authorization", "Bearer "+answer.Token)
		}
		r.app.ServeHTTP(w, req)
	})
}

// URL is the registry's base URL.
func (r *Registry) URL() string { return r.server.URL }

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  *atomic.Int64
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.bytes.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (Flush, Hijack).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func basicAuth(user, pass string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}
