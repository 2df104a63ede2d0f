package registry

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

type countingTransport struct{ calls int }

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.calls++
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// TestSchemeGuard: once a registry's scheme is decided, a request to that
// host in the other scheme (the library's ping racing plain HTTP, a
// redirect) never leaves ferry; other hosts are not affected.
func TestSchemeGuard(t *testing.T) {
	inner := &countingTransport{}
	c := &Client{}
	g := &schemeGuard{inner: inner, schemes: &schemes{}, cleartext: c.cleartextAllowed}
	g.schemes.set("10.0.0.5:5000", "https")
	g.schemes.set("127.0.0.1:5000", "http")
	for _, tc := range []struct {
		url  string
		want string // error, or "" to pass
	}{
		{"http://10.0.0.5:5000/v2/", "refusing http://10.0.0.5:5000/v2/: this run reaches 10.0.0.5:5000 over https only"},
		{"https://10.0.0.5:5000/v2/", ""},
		{"https://127.0.0.1:5000/v2/", "refusing https://127.0.0.1:5000/v2/: this run reaches 127.0.0.1:5000 over http only"},
		{"http://127.0.0.1:5000/v2/", ""},
		{"http://blobs.example:80/x", ""},
	} {
		before := inner.calls
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		_, err := g.RoundTrip(req)
		switch {
		case tc.want == "" && (err != nil || inner.calls != before+1):
			t.Errorf("%s: %v, sent %d; want it sent", tc.url, err, inner.calls-before)
		case tc.want != "" && (err == nil || err.Error() != tc.want || inner.calls != before):
			t.Errorf("%s: %v, sent %d; want %q and nothing sent", tc.url, err, inner.calls-before, tc.want)
		}
	}
}

// TestCleartextCredentialsGuard: credentials (an Authorization header, or
// the form of an OAuth2 token request) never go over plain HTTP to a host
// that is not loopback and not named with --insecure-registry, such as a
// token realm a registry names on another host; nothing else is held back.
func TestCleartextCredentialsGuard(t *testing.T) {
	inner := &countingTransport{}
	c := &Client{opts: Options{Insecure: []string{"10.0.0.9:5000"}}}
	g := &schemeGuard{inner: inner, schemes: &schemes{}, cleartext: c.cleartextAllowed}
	const refused = "refusing to send credentials over plain HTTP to auth.example (%s http://auth.example/token?service=r): it is not a loopback address and was not named with --insecure-registry; a registry whose token service is on plain HTTP must move it to HTTPS"
	for _, tc := range []struct {
		method, url, auth, contentType string
		want                           string // error, or "" to pass
	}{
		{"GET", "http://auth.example/token?service=r", "Basic ZmVycnk6c2VjcmV0", "", fmt.Sprintf(refused, "GET")},
		{"POST", "http://auth.example/token?service=r", "", "application/x-www-form-urlencoded", fmt.Sprintf(refused, "POST")},
		{"GET", "https://auth.example/token?service=r", "Basic ZmVycnk6c2VjcmV0", "", ""},
		{"GET", "http://auth.example/token?service=r", "", "", ""},
		{"GET", "http://127.0.0.1:5000/token", "Basic ZmVycnk6c2VjcmV0", "", ""},
		{"GET", "http://localhost:5000/token", "Bearer x", "", ""},
		{"GET", "http://10.0.0.9:5000/v2/", "Bearer x", "", ""},
		{"POST", "http://10.0.0.8:5000/v2/r/blobs/uploads/", "", "", ""},
	} {
		before := inner.calls
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		_, err := g.RoundTrip(req)
		switch {
		case tc.want == "" && (err != nil || inner.calls != before+1):
			t.Errorf("%s %s: %v, sent %d; want it sent", tc.method, tc.url, err, inner.calls-before)
		case tc.want != "" && (!errors.Is(err, ErrCleartextCredentials) || err.Error() != tc.want || inner.calls != before):
			t.Errorf("%s %s: %v, sent %d; want %q and nothing sent", tc.method, tc.url, err, inner.calls-before, tc.want)
		}
	}
}
