// Package registry is ferry's client for the OCI distribution API: fetch
// and push manifests and blobs, existence checks and cross-repository
// mounts. Authentication and token handling come from go-containerregistry's
// transport package; the calls themselves are made here so that every error
// can name the registry, repository and digest involved.
package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"
)

// Options configure a Client. The zero value uses the default keychain
// (docker and podman credential files and helpers) and http.DefaultTransport.
// bundle.RegistryOptions, which the bundle API and the CLI fill, has the
// same fields in the same order and converts to Options: change both.
type Options struct {
	Keychain authn.Keychain
	// Transport is the base round tripper (TLS settings, proxies).
	Transport http.RoundTripper
	// Insecure lists registry hosts that may be reached over plain HTTP,
	// credentials included, or unverified TLS. Without it, loopback,
	// *.localhost and RFC 1918 hosts get plain HTTP only when they do not
	// speak TLS, and credentials in clear only on loopback (see
	// decideScheme and checkCleartext).
	Insecure []string
	// UserAgent is sent with every request.
	UserAgent string
	// TLS, when set, is the TLS configuration for verified connections
	// (private CAs, client certificates).
	TLS *tls.Config
	// Retries is how many times a failed request is tried again (connection
	// errors, 408, 429, 5xx). Zero means 5; negative means none.
	Retries int
	// RetryBase is the first backoff (default 500ms); it doubles each try.
	RetryBase time.Duration
	// Debug, when set, receives a log of every HTTP request and response
	// (headers only, credentials redacted).
	Debug io.Writer
	// StallTimeout is how long a request may make no progress before it is
	// abandoned and tried again as a timeout (see stallTransport): waiting
	// for the response to a request without a body, sending an upload, or
	// reading a response body. Zero means DefaultStallTimeout; negative
	// means no limit.
	StallTimeout time.Duration
	// Egress, when set, records every host the client contacts (registries,
	// token services, redirect targets), with request and byte counts.
	Egress *EgressLog
}

// RetryPolicy returns the number of retries and the first backoff.
func (c *Client) RetryPolicy() (int, time.Duration) { return c.opts.Retries, c.opts.RetryBase }

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	opts Options

	mu         sync.Mutex
	transports map[string]http.RoundTripper    // by scopes, or by registry when it has no token auth
	challenges map[string]*transport.Challenge // by registry, from its /v2/ ping
	mounting   map[string]bool                 // registries seen to answer a mount request with 201
	handshakes singleflight.Group
	schemes    schemes // https or http, by registry host
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		secure := http.DefaultTransport.(*http.Transport).Clone()
		// Keep a connection per parallel job: the default of 2 idle
		// connections per host makes every other request open a new one.
		secure.MaxIdleConnsPerHost = 64
		if opts.TLS != nil {
			secure.TLSClientConfig = opts.TLS.Clone()
		}
		var base http.RoundTripper = secure
		if len(opts.Insecure) > 0 {
			insecure := secure.Clone()
			insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for hosts named with --insecure-registry
			if opts.TLS != nil {
				insecure.TLSClientConfig.Certificates = opts.TLS.Certificates
			}
			hosts := map[string]bool{}
			for _, h := range opts.Insecure {
				hosts[h] = true
			}
			base = &perHost{hosts: hosts, insecure: insecure, secure: secure}
		}
		opts.Transport = base
	}
	if opts.Egress != nil {
		// Lowest in the stack: every request on the wire, retries included.
		opts.Transport = &egressTransport{inner: opts.Transport, log: opts.Egress}
	}
	if opts.Debug != nil {
		opts.Transport = &debugTransport{inner: opts.Transport, w: opts.Debug}
	}
	if opts.StallTimeout == 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.StallTimeout > 0 {
		opts.Transport = &stallTransport{inner: opts.Transport, timeout: opts.StallTimeout}
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = 5
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 500 * time.Millisecond
	}
	opts.Transport = &retryTransport{inner: opts.Transport, retries: opts.Retries, base: opts.RetryBase}
	opts.Transport = &pingCache{inner: opts.Transport}
	c := &Client{transports: map[string]http.RoundTripper{}, challenges: map[string]*transport.Challenge{}, mounting: map[string]bool{}}
	opts.Transport = &schemeGuard{inner: opts.Transport, schemes: &c.schemes, cleartext: c.cleartextAllowed}
	if opts.UserAgent == "" {
		opts.UserAgent = "ferry"
	}
	c.opts = opts
	return c
}

// perHost sends requests for the insecure hosts through a transport that
// does not verify TLS certificates.
type perHost struct {
	hosts            map[string]bool
	insecure, secure http.RoundTripper
}

func (p *perHost) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.hosts[r.URL.Host] {
		return p.insecure.RoundTrip(r)
	}
	return p.secure.RoundTrip(r)
}

// Sentinel errors of the client.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("authentication refused")
	ErrDenied       = errors.New("access denied")
	ErrUnreachable  = errors.New("registry unreachable")
	// ErrDigestMismatch: the registry served content that does not match
	// the digest it was asked for.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrDigestRefused: the registry refused content ferry sent as not
	// matching its digest (DIGEST_INVALID). ferry verifies what it sends,
	// so the content was damaged on the way: a proxy, the network.
	ErrDigestRefused = errors.New("the registry refused the content as not matching its digest")
	// ErrUnsupported: the registry does not do what was asked (405).
	ErrUnsupported = errors.New("not supported by the registry")
	// ErrTooMany: the registry listed more than the caller allows.
	ErrTooMany = errors.New("too many entries")
	// ErrNoReferrersAPI: the registry has no OCI 1.1 Referrers API.
	ErrNoReferrersAPI = errors.New("no Referrers API")
	// ErrForeignLink: a registry's Link header sends the client to another
	// host, which would get the credentials of this one.
	ErrForeignLink = errors.New("link to another host refused")
)

// ParseRepository parses "host[:port]/path" with this client's insecure
// settings.
func (c *Client) ParseRepository(s string) (name.Repository, error) {
	return name.NewRepository(s, c.nameOpts(s)...)
}

func (c *Client) nameOpts(s string) []name.Option {
	host, _, _ := strings.Cut(s, "/")
	for _, h := range c.opts.Insecure {
		if h == host {
			return []name.Option{name.Insecure}
		}
	}
	return nil
}

// roundTripper returns an authenticated transport for repo with the given
// actions ("pull", "push"), plus pull access to the extra repositories
// (mount sources).
func (c *Client) roundTripper(ctx context.Context, repo name.Repository, push bool, from ...name.Repository) (http.RoundTripper, error) {
	scopes := []string{repo.Scope(transport.PullScope)}
	if push {
		scopes = []string{repo.Scope(transport.PushScope + "," + transport.PullScope)}
	}
	for _, f := range from {
		scopes = append(scopes, f.Scope(transport.PullScope))
	}
	// Scopes name the repository, not the registry: two registries can
	// hold the same repository path.
	key := repo.RegistryStr() + " " + strings.Join(scopes, " ")
	c.mu.Lock()
	rt, ok := c.transports[key]
	c.mu.Unlock()
	if ok {
		return rt, nil
	}
	// Parallel jobs that need the same transport at once share one
	// handshake (ping, token) instead of each making its own.
	v, err, _ := c.handshakes.Do(key, func() (any, error) { return c.newTransport(ctx, repo, key, scopes) })
	if err != nil {
		return nil, err
	}
	return v.(http.RoundTripper), nil
}

// newTransport makes (and caches under key) the transport for scopes.
func (c *Client) newTransport(ctx context.Context, repo name.Repository, key string, scopes []string) (http.RoundTripper, error) {
	c.mu.Lock()
	rt, ok := c.transports[key]
	c.mu.Unlock()
	if ok {
		return rt, nil
	}
	reg := repo.Registry
	base := transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent)
	pr, err := c.challenge(ctx, reg, base)
	if err != nil {
		return nil, err
	}
	// A registry without token auth (anonymous or basic) needs one
	// transport whatever the scopes: make it once, however many
	// repositories and mount sources ask for it at the same time.
	if strings.ToLower(pr.Scheme) != "bearer" {
		key = "registry " + reg.RegistryStr()
		v, err, _ := c.handshakes.Do(key, func() (any, error) { return c.makeTransport(ctx, reg, key, base, scopes, pr) })
		if err != nil {
			return nil, err
		}
		return v.(http.RoundTripper), nil
	}
	return c.makeTransport(ctx, reg, key, base, scopes, pr)
}

// challenge pings a registry once per client, however many jobs ask at
// once, and returns its authentication challenge. It first decides
// between HTTPS and plain HTTP (decideScheme); the library's own ping then
// finds only that scheme open.
func (c *Client) challenge(ctx context.Context, reg name.Registry, base http.RoundTripper) (*transport.Challenge, error) {
	c.mu.Lock()
	ch, ok := c.challenges[reg.RegistryStr()]
	c.mu.Unlock()
	if ok {
		return ch, nil
	}
	v, err, _ := c.handshakes.Do("ping "+reg.RegistryStr(), func() (any, error) {
		c.mu.Lock()
		ch, ok := c.challenges[reg.RegistryStr()]
		c.mu.Unlock()
		if ok {
			return ch, nil
		}
		if _, err := c.decideScheme(ctx, reg, base); err != nil {
			return nil, err
		}
		pr, err := transport.Ping(ctx, reg, base)
		if err != nil {
			return nil, c.classify(reg.RegistryStr(), err)
		}
		if strings.EqualFold(pr.Scheme, "bearer") && c.opts.Egress != nil {
			c.opts.Egress.noteRealm(pr.Parameters["realm"])
		}
		c.mu.Lock()
		c.challenges[reg.RegistryStr()] = pr
		c.mu.Unlock()
		return pr, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*transport.Challenge), nil
}

// makeTransport makes the authenticated transport for scopes and caches it
// under key.
func (c *Client) makeTransport(ctx context.Context, reg name.Registry, key string, base http.RoundTripper, scopes []string, pr *transport.Challenge) (http.RoundTripper, error) {
	c.mu.Lock()
	rt, ok := c.transports[key]
	c.mu.Unlock()
	if ok {
		return rt, nil
	}
	auth, err := authn.Resolve(ctx, c.opts.Keychain, reg)
	if err != nil {
		return nil, fmt.Errorf("reading credentials for %s: %w", reg.RegistryStr(), err)
	}
	if auth, err = c.checkCleartext(ctx, reg, strings.ToLower(pr.Scheme), auth); err != nil {
		return nil, err
	}
	rt, err = transport.NewWithContext(ctx, reg, auth, base, scopes)
	if err != nil {
		return nil, c.classify(reg.RegistryStr(), err)
	}
	c.mu.Lock()
	c.transports[key] = rt
	c.mu.Unlock()
	return rt, nil
}

func (c *Client) classify(registry string, err error) error {
	err = safeText(err)
	if errors.Is(err, ErrStalled) {
		return err // it names the URL; it is not "unreachable"
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w by %s: %w (check the credentials: docker login %s)", ErrUnauthorized, registry, err, registry)
		case http.StatusForbidden:
			return fmt.Errorf("%w by %s: %w (the credentials lack permission)", ErrDenied, registry, err)
		case http.StatusMethodNotAllowed:
			return fmt.Errorf("%w: %s refuses the request (is it read-only or in maintenance mode?): %w", ErrDenied, registry, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case http.StatusBadRequest:
			for _, d := range terr.Errors {
				if d.Code == transport.DigestInvalidErrorCode {
					return fmt.Errorf("%w (%s answered DIGEST_INVALID): it was damaged after ferry verified it, on the network or in a proxy; run the command again, and if it fails the same way, check what lies between ferry and %s: %w", ErrDigestRefused, registry, registry, err)
				}
			}
		}
		return err
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var nerr net.Error
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &nerr) && nerr.Timeout()) {
		// A request the registry redirected (a blob download sent to
		// storage or a CDN) or a token service it named: the host that
		// cannot be reached is another one, which a firewall may not
		// allow.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			if u, perr := url.Parse(uerr.URL); perr == nil && u.Host != "" && u.Host != registry {
				return fmt.Errorf("%w: %s sent ferry to %s, which cannot be reached (a firewall must allow it too: see export --egress-report): %w", ErrUnreachable, registry, u.Host, err)
			}
		}
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, registry, err)
	}
	return err
}

func (c *Client) url(repo name.Repository, path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), path)
}

func (c *Client) do(ctx context.Context, rt http.RoundTripper, req *http.Request, ok ...int) (*http.Response, error) {
	req = req.WithContext(ctx)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, c.classify(req.URL.Host, err)
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		return nil, c.classify(req.URL.Host, err)
	}
	return resp, nil
}

// ManifestAccept lists the manifest media types ferry asks for. Docker
// schema 1 is not among them: registries that can convert will, and those
// that cannot return it anyway, which the caller refuses.
var ManifestAccept = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.oci.artifact.manifest.v1+json",
}

// Manifest is a manifest as the registry served it.
type Manifest struct {
	Bytes     []byte
	MediaType string
	Digest    digest.Digest
	// Next is the URL of the next page of a list of referrers (the Link
	// header's rel="next"), empty on the last page.
	Next string
}

// GetManifest fetches a manifest by tag or digest, up to limit bytes. When
// ref is a digest the content is verified against it.
func (c *Client) GetManifest(ctx context.Context, repo name.Repository, ref string, limit int64) (*Manifest, error) {
	rt, err := c.roundTripper(ctx, repo, false)
	if err != nil {
		return nil, err
	}
	m, err := c.getSmall(ctx, rt, repo, c.url(repo, "manifests/"+ref), "manifest", strings.Join(ManifestAccept, ","), limit)
	if err != nil {
		return nil, err
	}
	if d, err := digest.Parse(ref); err == nil {
		if got := d.Algorithm().FromBytes(m.Bytes); got != d {
			return nil, fmt.Errorf("%w: manifest served for %s hashes to %s", ErrDigestMismatch, d, got)
		}
		m.Digest = d
	}
	return m, nil
}

// getSmall reads a document of at most limit bytes (a manifest, a list of
// referrers) from u, a URL of repo's registry.
func (c *Client) getSmall(ctx context.Context, rt http.RoundTripper, repo name.Repository, u, what, accept string, limit int64) (*Manifest, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.do(ctx, rt, req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, &sizeError{fmt.Sprintf("%s is %d bytes, more than the %d allowed", what, resp.ContentLength, limit)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", what, repo.RegistryStr(), err)
	}
	if int64(len(b)) > limit {
		return nil, &sizeError{fmt.Sprintf("%s is more than the %d bytes allowed", what, limit)}
	}
	mt := resp.Header.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	next, err := nextPage(req.URL, resp.Header.Get("Link"))
	if err != nil {
		return nil, fmt.Errorf("%s from %s: %w", what, repo.RegistryStr(), err)
	}
	return &Manifest{Bytes: b, MediaType: mt, Digest: digest.FromBytes(b), Next: next}, nil
}

// relNext reports whether a link's parameters (`; rel="next"`, `;rel=next`,
// `; rel="next last"`) name it the next page.
func relNext(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "rel") && slices.Contains(strings.Fields(strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`))), "next") {
			return true
		}
	}
	return false
}

// nextPage is the URL a Link header gives as rel="next", resolved against
// the request's URL; it must be on the same registry (credentials for it
// are sent there).
func nextPage(base *url.URL, link string) (string, error) {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(part, ";")
		target = strings.TrimSpace(target)
		if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") || !relNext(params) {
			continue
		}
		u, err := base.Parse(target[1 : len(target)-1])
		if err != nil {
			return "", fmt.Errorf("the Link header's next page: %w", err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host {
			return "", fmt.Errorf("%w: the Link header's next page is on %s://%s, not on the registry", ErrForeignLink, u.Scheme, u.Host)
		}
		return u.String(), nil
	}
	return "", nil
}

// Referrers asks the OCI 1.1 Referrers API of repo for the manifests that
// name d as their subject, and returns the image index it answers (at most
// limit bytes), with Next set when the registry has more pages: page is
// then that URL (empty for the first page). A registry without the API
// answers 404 (some 400 or 406, or something other than an image index):
// the error is then ErrNoReferrersAPI, and the caller uses the fallback tag
// instead.
func (c *Client) Referrers(ctx context.Context, repo name.Repository, d digest.Digest, page string, limit int64) (*Manifest, error) {
	rt, err := c.roundTripper(ctx, repo, false)
	if err != nil {
		return nil, err
	}
	if page == "" {
		page = c.url(repo, "referrers/"+d.String())
	}
	m, err := c.getSmall(ctx, rt, repo, page, "list of referrers", "application/vnd.oci.image.index.v1+json", limit)
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusNotFound || terr.StatusCode == http.StatusBadRequest || terr.StatusCode == http.StatusNotAcceptable):
		return nil, fmt.Errorf("%w: %s answered %d", ErrNoReferrersAPI, repo.RegistryStr(), terr.StatusCode)
	case err != nil:
		return nil, err
	case m.MediaType != "application/vnd.oci.image.index.v1+json":
		return nil, fmt.Errorf("%w: %s answered %q", ErrNoReferrersAPI, repo.RegistryStr(), m.MediaType)
	}
	return m, nil
}

// HeadManifest resolves ref to a digest without fetching the manifest.
func (c *Client) HeadManifest(ctx context.Context, repo name.Repository, ref string) (digest.Digest, error) {
	rt, err := c.roundTripper(ctx, repo, false)
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodHead, c.url(repo, "manifests/"+ref), nil)
	req.Header.Set("Accept", strings.Join(ManifestAccept, ","))
	resp, err := c.do(ctx, rt, req, http.StatusOK)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		// Not every registry sends the header on HEAD; fetch instead.
		m, gerr := c.GetManifest(ctx, repo, ref, 4<<20)
		if gerr != nil {
			return "", gerr
		}
		return m.Digest, nil
	}
	return d, nil
}

// GetBlob streams a blob. The caller verifies the content.
func (c *Client) GetBlob(ctx context.Context, repo name.Repository, d digest.Digest) (io.ReadCloser, error) {
	rt, err := c.roundTripper(ctx, repo, false)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodGet, c.url(repo, "blobs/"+d.String()), nil)
	resp, err := c.do(ctx, rt, req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// BlobExists reports whether repo holds blob d.
func (c *Client) BlobExists(ctx context.Context, repo name.Repository, d digest.Digest) (bool, error) {
	rt, err := c.roundTripper(ctx, repo, true)
	if err != nil {
		return false, err
	}
	req, _ := http.NewRequest(http.MethodHead, c.url(repo, "blobs/"+d.String()), nil)
	resp, err := c.do(ctx, rt, req, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// PushBlob uploads a blob of known digest and size in one monolithic PUT.
// The registry checks the digest before it commits the blob; body should
// also be a verifying reader so a bad blob is never sent in full.
func (c *Client) PushBlob(ctx context.Context, repo name.Repository, d digest.Digest, size int64, body io.Reader) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	return c.PutUpload(ctx, repo, loc, d, size, body)
}

// StartUpload makes blob d present in repo if the registry can do it
// without the content, or opens an upload. It asks the registry to mount d
// from the repository from, which may be repo itself: a registry answers
// that with 201 when repo already holds the blob, so one request both
// checks and, when the blob is missing, opens the upload session. mounted
// reports the blob is in repo; otherwise PutUpload sends it to loc.
// A registry that refuses mount requests gets a plain upload request.
func (c *Client) StartUpload(ctx context.Context, repo, from name.Repository, d digest.Digest) (mounted bool, loc *url.URL, err error) {
	var extra []name.Repository
	if from.Name() != repo.Name() {
		extra = append(extra, from)
	}
	rt, err := c.roundTripper(ctx, repo, true, extra...)
	if err != nil {
		return false, nil, err
	}
	q := url.Values{"mount": {d.String()}, "from": {from.RepositoryStr()}}
	req, _ := http.NewRequest(http.MethodPost, c.url(repo, "blobs/uploads/")+"?"+q.Encode(), nil)
	resp, err := c.do(ctx, rt, req, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		// A refused mount source (no pull access to it) or a registry that
		// rejects mount requests: upload instead.
		if IsTemporary(err) || ctx.Err() != nil || (errors.Is(err, ErrUnauthorized) && len(extra) == 0) {
			return false, nil, err
		}
		loc, err := c.startUpload(ctx, repo)
		return false, loc, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		c.mu.Lock()
		c.mounting[repo.RegistryStr()] = true
		c.mu.Unlock()
		return true, nil, nil
	}
	loc, err = uploadLocation(resp, repo)
	return false, loc, err
}

// Mounts reports whether the registry has answered a mount request with
// 201 in this run. A registry that ignores mount requests answers 202
// whether or not it has the blob, so its answer says nothing about
// presence; check with BlobExists.
func (c *Client) Mounts(repo name.Repository) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mounting[repo.RegistryStr()]
}

// CancelUpload abandons an upload session, best effort.
func (c *Client) CancelUpload(ctx context.Context, repo name.Repository, loc *url.URL) {
	rt, err := c.roundTripper(ctx, repo, true)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, loc.String(), nil)
	if resp, err := (&http.Client{Transport: rt}).Do(req); err == nil {
		resp.Body.Close()
	}
}

// startUpload opens a plain upload session (POST without mount).
func (c *Client) startUpload(ctx context.Context, repo name.Repository) (*url.URL, error) {
	rt, err := c.roundTripper(ctx, repo, true)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodPost, c.url(repo, "blobs/uploads/"), nil)
	resp, err := c.do(ctx, rt, req, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return uploadLocation(resp, repo)
}

// CheckPush checks, before anything is pushed, that repo can be written
// with this client's credentials: it opens an upload session and cancels
// it. Reaching the registry (TLS, the plain-HTTP rules) and its token
// service are checked on the way.
func (c *Client) CheckPush(ctx context.Context, repo name.Repository) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	// Closed even when the check of another repository failed and ended
	// ctx meanwhile: no session is left open.
	c.CancelUpload(context.WithoutCancel(ctx), repo, loc)
	return nil
}

func uploadLocation(resp *http.Response, repo name.Repository) (*url.URL, error) {
	h := resp.Header.Get("Location")
	loc, err := resp.Request.URL.Parse(h)
	if err != nil || h == "" {
		return nil, fmt.Errorf("registry %s gave no upload location", repo.RegistryStr())
	}
	return loc, nil
}

// PutUpload sends blob d, size bytes read from body, to the upload session
// loc in one monolithic PUT.
func (c *Client) PutUpload(ctx context.Context, repo name.Repository, loc *url.URL, d digest.Digest, size int64, body io.Reader) error {
	rt, err := c.roundTripper(ctx, repo, true)
	if err != nil {
		return err
	}
	u := *loc
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	br := &bodyReader{r: body}
	defer br.detach()
	put, _ := http.NewRequest(http.MethodPut, u.String(), br)
	put.ContentLength = size
	put.Header.Set("Content-Type", "application/octet-stream")
	if size == 0 {
		put.Body = http.NoBody
	}
	resp, err := c.do(ctx, rt, put, http.StatusCreated)
	if berr := br.failed(); berr != nil {
		// The content failed (a verification error, a truncated bundle): say
		// that, not what the aborted request looked like on the wire.
		if resp != nil {
			resp.Body.Close()
		}
		return berr
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// bodyReader remembers the error of the upload body, and whether it was
// handed to a connection (see retryTransport). The transport reads it on
// its own goroutine, so the error is guarded.
type bodyReader struct {
	r    io.Reader
	sent atomic.Bool
	mu   sync.Mutex
	err  error
	// rmu is held during every read of r; detach takes it, so once detach
	// returns no read of r is in progress or will start. net/http may still
	// be reading a request body on its own goroutine after the response.
	rmu      sync.Mutex
	detached bool
}

var errDetached = errors.New("upload body read after the request ended")

// detach waits for a read in progress and makes later reads fail, so the
// caller may use the content again (to retry, or to drain it).
func (b *bodyReader) detach() {
	b.rmu.Lock()
	b.detached = true
	b.rmu.Unlock()
}

// claim reports whether the body has not been sent before, and marks it sent.
func (b *bodyReader) claim() bool { return b.sent.CompareAndSwap(false, true) }

// Close does nothing: the caller owns the content.
func (b *bodyReader) Close() error { return nil }

func (b *bodyReader) Read(p []byte) (int, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if b.detached {
		return 0, errDetached
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyReader) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// PutManifest pushes manifest bytes unchanged under ref (a tag or the digest).
func (c *Client) PutManifest(ctx context.Context, repo name.Repository, ref, mediaType string, body []byte) error {
	rt, err := c.roundTripper(ctx, repo, true)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodPut, c.url(repo, "manifests/"+ref), bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(ctx, rt, req, http.StatusCreated, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// maxTagLen caps one tag (the distribution spec's
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}); a page of a tag list is read up to
// what the tags still allowed can take at that length, quoted and
// separated, and tagPageSlack more (the JSON around them).
const (
	maxTagLen    = 128
	tagPageSlack = 64 << 10
)

// ListTags lists the tags of repo, following the registry's pagination
// (a Link header naming the next page on the same registry), and fails
// with ErrTooMany past limit tags: the work stays bounded whatever the
// registry claims. Each page must add a tag and name a page not yet read,
// and no tag may be longer than a tag can be, so the pages read and the
// memory held are bounded by limit too. A repository the registry does
// not know has no tags.
func (c *Client) ListTags(ctx context.Context, repo name.Repository, limit int) ([]string, error) {
	rt, err := c.roundTripper(ctx, repo, false)
	if err != nil {
		return nil, err
	}
	next := c.url(repo, "tags/list")
	var tags []string
	read := map[string]bool{}
	for next != "" {
		read[next] = true
		req, err := http.NewRequest(http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, rt, req, http.StatusOK, http.StatusNotFound)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			return nil, nil
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, int64(limit-len(tags)+1)*(maxTagLen+3)+tagPageSlack)).Decode(&page)
		link := resp.Header.Get("Link")
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the tag list of %s: %w", repo, err)
		}
		for _, t := range page.Tags {
			if len(t) > maxTagLen {
				return nil, fmt.Errorf("the tag list of %s: a tag of %d characters; a tag has at most %d", repo, len(t), maxTagLen)
			}
		}
		tags = append(tags, page.Tags...)
		if len(tags) > limit {
			return nil, fmt.Errorf("%w: %s lists more than %d tags", ErrTooMany, repo, limit)
		}
		if next, err = nextPage(req.URL, link); err != nil {
			return nil, fmt.Errorf("the tag list of %s: %w", repo, err)
		}
		switch {
		case next == "":
		case len(page.Tags) == 0:
			return nil, fmt.Errorf("the tag list of %s: a page that lists no tags names a next page", repo)
		case read[next]:
			u, _ := url.Parse(next)
			return nil, fmt.Errorf("the tag list of %s: the registry names the page %s again as the next", repo, u.RequestURI())
		}
	}
	return tags, nil
}

// DeleteManifest deletes the manifest d from repo, and with it every tag
// that points to it. A registry that does not allow deletes answers
// ErrUnsupported (or ErrDenied, ErrUnauthorized for the account).
func (c *Client) DeleteManifest(ctx context.Context, repo name.Repository, d digest.Digest) error {
	rt, err := c.roundTripper(ctx, repo, true)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodDelete, c.url(repo, "manifests/"+d.String()), nil)
	resp, err := c.do(ctx, rt, req, http.StatusAccepted, http.StatusOK, http.StatusNotFound, http.StatusMethodNotAllowed)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusMethodNotAllowed {
		return fmt.Errorf("%w: %s does not allow deleting manifests", ErrUnsupported, repo.RegistryStr())
	}
	return nil
}

// ProbeBlob starts the download of blob d and ends it after the first byte
// (it asks for that byte alone with a Range header), following redirects
// as GetBlob does: the hosts a download reaches are contacted, and nothing
// more than a byte is transferred from a registry that honours Range.
func (c *Client) ProbeBlob(ctx context.Context, repo name.Repository, d digest.Digest) error {
	rt, err := c.roundTripper(ctx, repo, false)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodGet, c.url(repo, "blobs/"+d.String()), nil)
	req.Header.Set("Range", "bytes=0-0")
	resp, err := c.do(ctx, rt, req, http.StatusOK, http.StatusPartialContent)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.CopyN(io.Discard, resp.Body, 1); err != nil && err != io.EOF {
		return fmt.Errorf("reading blob %s from %s: %w", d, repo.RegistryStr(), err)
	}
	return nil
}
