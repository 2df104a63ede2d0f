package registry_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestNoPlainHTTPAfterTLSFailure: a loopback registry that answers TLS
// with a certificate ferry cannot verify, and plain HTTP otherwise, is not
// used over plain HTTP: the request fails with ErrTLS and says what to do,
// and the registry receives no request at all, so no credentials. Trusting
// the certificate (--ca-file) or naming the host as insecure reaches it
// over TLS, never plain HTTP.
func TestNoPlainHTTPAfterTLSFailure(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{MixedTLS: true, Username: "u", Password: "p"})
	keys := staticKeychain{Username: "u", Password: "p"}
	d := digest.FromString("nothing")
	exists := func(opts registry.Options) error {
		t.Helper()
		opts.Keychain, opts.RetryBase = keys, time.Millisecond
		c := registry.New(opts)
		repo, err := c.ParseRepository(reg.Host + "/team/app")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.BlobExists(context.Background(), repo, d)
		return err
	}

	err := exists(registry.Options{})
	if !errors.Is(err, registry.ErrTLS) {
		t.Fatalf("untrusted certificate: %v; want ErrTLS", err)
	}
	prefix := "TLS handshake failed with " + reg.Host + `: Get "https://` + reg.Host + `/v2/": tls: failed to verify certificate: x509: certificate signed by unknown authority`
	suffix := "; ferry does not fall back to plain HTTP for a registry that answers TLS (trust its CA with --ca-file CA.pem, or accept its certificate knowingly with --insecure-registry " + reg.Host + ")"
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, suffix) {
		t.Errorf("untrusted certificate:\n got %s\nwant %s…%s", msg, prefix, suffix)
	}
	if n, b := reg.Requests.Load(), reg.BasicAuths.Load(); n != 0 || b != 0 {
		t.Fatalf("the registry received %d requests (%d with credentials), want none", n, b)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(reg.CertPEM)
	for _, tc := range []struct {
		name string
		opts registry.Options
	}{
		{"trusted CA", registry.Options{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}},
		{"insecure registry", registry.Options{Insecure: []string{reg.Host}}},
	} {
		before := reg.BasicAuths.Load()
		if err := exists(tc.opts); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if reg.BasicAuths.Load() == before {
			t.Errorf("%s: no credentials reached the registry", tc.name)
		}
		if n := reg.PlainRequests.Load(); n != 0 {
			t.Errorf("%s: %d requests over plain HTTP, want 0", tc.name, n)
		}
	}
}

// redirectTo127 returns a transport that connects to 127.0.0.1 whatever host
// a request names, so a registry on loopback can stand for one at a
// private address or a *.localhost name.
func redirectTo127() *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
	}}
}

// TestCleartextCredentials: a registry that does not speak TLS at an
// RFC 1918 address or a *.localhost name is reached over plain HTTP, but
// credentials go there only when the host is named as insecure; an open
// registry there is used without them.
func TestCleartextCredentials(t *testing.T) {
	t.Parallel()
	auth := registrytest.New(t, registrytest.Options{Username: "u", Password: "p"})
	open := registrytest.New(t, registrytest.Options{})
	_, authPort, _ := net.SplitHostPort(auth.Host)
	_, openPort, _ := net.SplitHostPort(open.Host)
	d := digest.FromString("nothing")
	exists := func(host string, insecure bool) error {
		t.Helper()
		opts := registry.Options{Keychain: staticKeychain{Username: "u", Password: "p"}, Transport: redirectTo127(), RetryBase: time.Millisecond}
		if insecure {
			opts.Insecure = []string{host}
		}
		c := registry.New(opts)
		repo, err := c.ParseRepository(host + "/team/app")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.BlobExists(context.Background(), repo, d)
		return err
	}
	for _, name := range []string{"10.20.30.40", "registry.localhost"} {
		host := name + ":" + authPort
		err := exists(host, false)
		if !errors.Is(err, registry.ErrCleartextCredentials) {
			t.Fatalf("%s: %v; want ErrCleartextCredentials", host, err)
		}
		want := "refusing to send credentials over plain HTTP to " + host + ": it does not speak TLS and is not a loopback address; serve it over TLS, or accept sending the credentials in clear with --insecure-registry " + host
		if err.Error() != want {
			t.Errorf("%s:\n got %s\nwant %s", host, err, want)
		}
		if n := auth.BasicAuths.Load(); n != 0 {
			t.Fatalf("%s: %d requests carried the password over plain HTTP, want 0", host, n)
		}
		if err := exists(host, true); err != nil {
			t.Fatalf("%s named insecure: %v", host, err)
		}
		if auth.BasicAuths.Load() == 0 {
			t.Fatalf("%s named insecure: the credentials were not sent", host)
		}
		auth.BasicAuths.Store(0)

		// ferry login: the same rule.
		login := registry.New(registry.Options{Transport: redirectTo127(), RetryBase: time.Millisecond})
		refresh, err := login.CheckLogin(context.Background(), name+":"+authPort, "u", "p")
		if !errors.Is(err, registry.ErrCleartextCredentials) || err.Error() != want || refresh != "" {
			t.Fatalf("login to %s: %q, %v; want %q", host, refresh, err, want)
		}
		if n := auth.BasicAuths.Load(); n != 0 {
			t.Fatalf("login to %s: %d requests carried the password over plain HTTP, want 0", host, n)
		}

		host = name + ":" + openPort
		if err := exists(host, false); err != nil {
			t.Fatalf("open registry %s: %v", host, err)
		}
		if n := open.BasicAuths.Load(); n != 0 {
			t.Errorf("open registry %s: %d requests carried credentials over plain HTTP, want 0", host, n)
		}
	}
}
