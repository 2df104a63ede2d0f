package registry

import (
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
	g := &schemeGuard{inner: inner, schemes: &schemes{}}
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
