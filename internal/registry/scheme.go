package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Sentinel errors of the choice between HTTPS and plain HTTP.
var (
	// ErrTLS: the registry answered the TLS handshake, but the handshake or
	// the verification of its certificate failed. ferry does not fall back
	// to plain HTTP then.
	ErrTLS = errors.New("TLS handshake failed")
	// ErrCleartextCredentials: credentials would have gone over plain HTTP
	// to a registry that is neither loopback nor named by
	// --insecure-registry.
	ErrCleartextCredentials = errors.New("refusing to send credentials over plain HTTP")
)

// schemes holds the scheme (https or http) decided for each registry host
// of a run. Once decided, every request to that host must use it: the
// guard below refuses the other, so neither go-containerregistry's ping,
// which tries HTTPS and then plain HTTP for loopback, *.localhost and
// RFC 1918 registries, nor a redirect can move a registry to plain HTTP.
type schemes struct {
	mu sync.Mutex
	m  map[string]string // by host[:port] as in request URLs
}

func (s *schemes) get(host string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[host]
	return v, ok
}

func (s *schemes) set(host, scheme string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[host] = scheme
}

// schemeGuard refuses a request to a registry host in the other scheme
// than the one decided for it, and credentials over plain HTTP to any host
// where they are not allowed in clear: a token service that a registry
// names with an http:// realm gets no password, whatever the registry.
type schemeGuard struct {
	inner     http.RoundTripper
	schemes   *schemes
	cleartext func(host string) bool // credentials may go to host over plain HTTP
}

func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	refuse := func(err error) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if want, ok := g.schemes.get(req.URL.Host); ok && req.URL.Scheme != want {
		return refuse(fmt.Errorf("refusing %s://%s%s: this run reaches %s over %s only", req.URL.Scheme, req.URL.Host, req.URL.Path, req.URL.Host, want))
	}
	// Credentials travel in the Authorization header, or in the form of an
	// OAuth2 token request (password or refresh token).
	credentials := req.Header.Get("Authorization") != "" ||
		(req.Method == http.MethodPost && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded"))
	if req.URL.Scheme == "http" && credentials && !g.cleartext(req.URL.Host) {
		return refuse(fmt.Errorf("%w to %s (%s %s): it is not a loopback address and was not named with --insecure-registry; a registry whose token service is on plain HTTP must move it to HTTPS",
			ErrCleartextCredentials, req.URL.Host, req.Method, req.URL.Redacted()))
	}
	return g.inner.RoundTrip(req)
}

// decideScheme chooses, once per registry, between HTTPS and plain HTTP by
// a GET /v2/ (whose answer the ping cache keeps for the library's own ping):
//
//   - HTTPS whenever the registry answers over TLS, whatever the status;
//   - plain HTTP only for a registry go-containerregistry allows it for
//     (loopback, *.localhost, RFC 1918, --insecure-registry), and only when
//     the TLS attempt shows that the registry does not speak TLS at all
//     (connection refused, or a plain-HTTP or other non-TLS answer);
//     a host named by --insecure-registry falls back after any failure;
//   - never after a TLS handshake or certificate verification error:
//     that is ErrTLS, with what the operator can do.
func (c *Client) decideScheme(ctx context.Context, reg name.Registry, base http.RoundTripper) (string, error) {
	host := reg.RegistryStr()
	if s, ok := c.schemes.get(host); ok {
		return s, nil
	}
	err := probe(ctx, base, "https", host)
	if err == nil {
		c.schemes.set(host, "https")
		return "https", nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	plainAllowed := reg.Scheme() == "http"
	if !plainAllowed || !(c.insecure(host) || notTLS(err)) {
		if isTLSFailure(err) {
			return "", tlsError(host, err, plainAllowed)
		}
		return "", c.classify(host, err)
	}
	if perr := probe(ctx, base, "http", host); perr != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", c.classify(host, fmt.Errorf("over HTTPS: %w; over plain HTTP: %w", err, perr))
	}
	c.schemes.set(host, "http")
	return "http", nil
}

// probe sends GET /v2/ without credentials and without following
// redirects; any HTTP answer is a success.
func probe(ctx context.Context, base http.RoundTripper, scheme, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: base, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPingBody))
	resp.Body.Close()
	return nil
}

// notTLS reports whether the error of a TLS attempt shows that nothing
// speaks TLS there: the connection was refused, or the answer was not a
// TLS record (a plain-HTTP server answers a ClientHello with a 400).
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh)
}

// isTLSFailure reports whether err is a failed TLS handshake or
// certificate verification.
func isTLSFailure(err error) bool {
	var (
		verr    *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invalid x509.CertificateInvalidError
		alert   tls.AlertError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &unknown), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &alert):
		return true
	}
	return strings.Contains(err.Error(), "tls: ")
}

func tlsError(host string, err error, plainAllowed bool) error {
	fallback := ""
	if plainAllowed {
		fallback = "; ferry does not fall back to plain HTTP for a registry that answers TLS"
	}
	return fmt.Errorf("%w with %s: %w%s (trust its CA with --ca-file CA.pem, or accept its certificate knowingly with --insecure-registry %s)",
		ErrTLS, host, err, fallback, host)
}

// insecure reports whether host was named with --insecure-registry.
func (c *Client) insecure(host string) bool {
	for _, h := range c.opts.Insecure {
		if h == host {
			return true
		}
	}
	return false
}

// cleartextAllowed reports whether credentials may go to host over plain
// HTTP: it is loopback (localhost, 127.0.0.0/8, ::1), where nobody else is
// on the path, or the operator named it with --insecure-registry.
func (c *Client) cleartextAllowed(host string) bool {
	if c.insecure(host) {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkCleartext applies the rule for credentials over plain HTTP to the
// credentials resolved for reg: it returns them unchanged over HTTPS or to
// a host where cleartext is allowed; anonymous access for a registry that
// asks for no authentication (challenge ""); and ErrCleartextCredentials
// otherwise.
func (c *Client) checkCleartext(ctx context.Context, reg name.Registry, challenge string, auth authn.Authenticator) (authn.Authenticator, error) {
	host := reg.RegistryStr()
	if s, _ := c.schemes.get(host); s != "http" || c.cleartextAllowed(host) || auth == authn.Anonymous {
		return auth, nil
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return nil, fmt.Errorf("reading credentials for %s: %w", host, err)
	}
	if *cfg == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	if challenge == "" {
		// The registry lets anyone in: it needs no credentials, so send none.
		return authn.Anonymous, nil
	}
	return nil, fmt.Errorf("%w to %s: it does not speak TLS and is not a loopback address; serve it over TLS, or accept sending the credentials in clear with --insecure-registry %s",
		ErrCleartextCredentials, host, host)
}
