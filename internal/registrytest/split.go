package registrytest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Split is a registry spread over three hosts, as Docker Hub is
// (registry-1.docker.io, its token service auth.docker.io, and a CDN that
// blob downloads are redirected to): a registry with token authentication
// on 127.0.0.1, its token service on a second loopback listener, and a
// "CDN" on a third that every blob GET is redirected to with a pre-signed
// looking query (StorageQuery). Each server counts what it served.
type Split struct {
	*Registry
	// TokenHost and CDNHost are host:port of the token service and the CDN,
	// with the names given to NewSplit.
	TokenHost, CDNHost string
	Token, CDN         *Served
}

// StorageQuery is the query of every redirect to the CDN: what a signed
// storage URL carries, and what must never show in ferry's output.
const StorageQuery = "X-Amz-Credential=AKIAFERRYTEST&X-Amz-Signature=S3CR3TSIGNATURE"

// Served counts the requests a server answered and the body bytes it wrote.
type Served struct {
	Requests, Bytes atomic.Int64
}

func (s *Served) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		h.ServeHTTP(&countingWriter{ResponseWriter: w, n: &s.Bytes}, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// NewSplit starts a Split whose token service is reached as tokenName and
// CDN as cdnName (host names or IP addresses; a name must resolve to
// 127.0.0.1, or the client must dial it there; an IP address is listened
// on). The token service is on plain HTTP, so the registry is reached as
// an insecure one. opts.Token is set when nil.
func NewSplit(t testing.TB, tokenName, cdnName string, opts Options) *Split {
	t.Helper()
	s := &Split{Token: &Served{}, CDN: &Served{}}
	var token atomic.Value
	tokenSrv := listen(t, tokenName, s.Token.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token.Load().(http.Handler).ServeHTTP(w, r)
	})))
	s.TokenHost = net.JoinHostPort(tokenName, port(tokenSrv))
	if opts.Token == nil {
		opts.Token = &TokenAuth{}
	}
	tok := *opts.Token
	tok.Realm = "http://" + s.TokenHost + TokenPath
	opts.Token = &tok
	s.Registry = New(t, opts)
	token.Store(s.Registry.TokenHandler())
	cdnSrv := listen(t, cdnName, s.CDN.wrap(s.Registry.Storage()))
	s.CDNHost = net.JoinHostPort(cdnName, port(cdnSrv))
	s.InjectFaults()
	return s
}

// InjectFaults puts faults in front of the registry, checked in order
// before the redirect of blob downloads to the CDN (which a fault with
// Redirect can replace); it replaces earlier ones.
func (s *Split) InjectFaults(faults ...*Fault) {
	cdn := &Fault{Method: http.MethodGet, Path: "/blobs/sha256:", Redirect: StorageQuery, RedirectTo: "http://" + s.CDNHost, Times: 1 << 40}
	s.Registry.InjectFaults(append(faults, cdn)...)
}

func port(s *httptest.Server) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	return p
}

// listen serves h on loopback: on name when it is an IP address, on
// 127.0.0.1 otherwise.
func listen(t testing.TB, name string, h http.Handler) *httptest.Server {
	t.Helper()
	addr := "127.0.0.1:0"
	if net.ParseIP(name) != nil {
		addr = net.JoinHostPort(name, "0")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}
