package registry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// fakeTransport answers every request with resp, without a network.
type fakeTransport struct{ header http.Header }

func (f fakeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusAccepted, Header: f.header.Clone(), Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// TestDebugLogRedactsQueries: the --debug log shows no upload-session
// state, no signature or credential of a pre-signed storage URL and no user
// information, neither in the request line nor in a Location header; it
// keeps the parameters that say which request it was (digest, mount, from).
func TestDebugLogRedactsQueries(t *testing.T) {
	t.Parallel()
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, method, url, location string
		secrets                     []string
		shown                       []string
	}{
		{
			name: "upload PUT", method: http.MethodPut,
			url:      "http://127.0.0.1:5000/v2/team/app/blobs/uploads/5f1c?_state=STATE-SECRET-1&digest=" + dgst,
			location: "/v2/team/app/blobs/uploads/5f1c?_state=STATE-SECRET-2",
			secrets:  []string{"STATE-SECRET-1", "STATE-SECRET-2"},
			shown:    []string{"_state=<redacted>", "digest=" + url.QueryEscape(dgst), "Location: /v2/team/app/blobs/uploads/5f1c?_state=<redacted>"},
		},
		{
			name: "mount POST", method: http.MethodPost,
			url:      "http://127.0.0.1:5000/v2/team/app/blobs/uploads/?from=team%2Fbase&mount=" + dgst,
			location: "http://127.0.0.1:5000/v2/team/app/blobs/uploads/9a2e?_state=STATE-SECRET-3",
			secrets:  []string{"STATE-SECRET-3"},
			shown:    []string{"from=team%2Fbase", "mount=" + url.QueryEscape(dgst), "_state=<redacted>"},
		},
		{
			name: "redirect to pre-signed S3 URL", method: http.MethodGet,
			url:      "https://registry.example/v2/team/app/blobs/" + dgst,
			location: "https://bucket.s3.example/docker/blobs/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA-CRED-SECRET&X-Amz-Signature=SIG-SECRET-1&X-Amz-Security-Token=TOKEN-SECRET",
			secrets:  []string{"AKIA-CRED-SECRET", "SIG-SECRET-1", "TOKEN-SECRET"},
			shown:    []string{"X-Amz-Signature=<redacted>", "X-Amz-Credential=<redacted>"},
		},
		{
			name: "GET of a pre-signed Azure URL", method: http.MethodGet,
			url:     "https://acct.blob.core.example/c/blob?sv=2020-08-04&se=2030-01-01&sp=r&sig=SIG-SECRET-2",
			secrets: []string{"SIG-SECRET-2"},
			shown:   []string{"sig=<redacted>"},
		},
		{
			name: "user information in the URL", method: http.MethodGet,
			url:     "https://op:PASSWORD-SECRET@registry.example/v2/",
			secrets: []string{"PASSWORD-SECRET", "op:"},
			shown:   []string{"https://registry.example/v2/"},
		},
	}
	for _, tc := range tests {
		var log bytes.Buffer
		h := http.Header{}
		if tc.location != "" {
			h.Set("Location", tc.location)
		}
		c := registry.New(registry.Options{Transport: fakeTransport{h}, Debug: &log, Retries: -1})
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Transport().RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		for _, s := range tc.secrets {
			if strings.Contains(log.String(), s) {
				t.Errorf("%s: the debug log shows %q:\n%s", tc.name, s, log.String())
			}
		}
		for _, s := range tc.shown {
			if !strings.Contains(log.String(), s) {
				t.Errorf("%s: the debug log does not show %q:\n%s", tc.name, s, log.String())
			}
		}
	}
}

// stateRecorder records the upload-session state the registry hands out in
// Location headers, below the debug log.
type stateRecorder struct {
	mu     sync.Mutex
	states []string
}

func (s *stateRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		if u, perr := url.Parse(resp.Header.Get("Location")); perr == nil && u.Query().Get("_state") != "" {
			s.mu.Lock()
			s.states = append(s.states, u.Query().Get("_state"))
			s.mu.Unlock()
		}
	}
	return resp, err
}

// TestDebugLogHidesUploadState uploads a blob to a real registry with the
// debug log on: the _state values the registry handed out (in the Location
// of the upload session, then in the query of the PUT) appear nowhere in
// the log.
func TestDebugLogHidesUploadState(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	rec := &stateRecorder{}
	var log bytes.Buffer
	c := registry.New(registry.Options{Transport: rec, Debug: &log})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("a blob uploaded with the debug log on")
	if err := c.PushBlob(context.Background(), repo, digest.FromBytes(blob), int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	if len(rec.states) == 0 {
		t.Fatal("the registry handed out no _state: nothing was tested")
	}
	for _, s := range rec.states {
		for _, form := range []string{s, url.QueryEscape(s)} {
			if strings.Contains(log.String(), form) {
				t.Errorf("the debug log shows the upload state %q:\n%s", form, log.String())
			}
		}
	}
	if n := strings.Count(log.String(), "_state=<redacted>"); n < 2 {
		t.Errorf("the debug log shows _state=<redacted> %d times, want the Location of the session and the PUT:\n%s", n, log.String())
	}
}

// TestDebugLogRedactsStorageRedirect downloads a blob from a real registry
// that sends blob downloads to pre-signed storage URLs (an S3 signature and
// an Azure SAS signature in the query): the Location and Content-Location
// of the redirect and the request line of the redirected GET show every
// signature as <redacted>, and the blob still arrives.
func TestDebugLogRedactsStorageRedirect(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	var log bytes.Buffer
	c := registry.New(registry.Options{Debug: &log})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("a blob served from pre-signed storage")
	d := digest.FromBytes(blob)
	if err := c.PushBlob(context.Background(), repo, d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	presigned := "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA-CRED-SECRET&X-Amz-Signature=SIG-SECRET-S3&sig=SIG-SECRET-SAS&sv=2020-08-04"
	redirect := &registrytest.Fault{Method: http.MethodGet, Path: "/blobs/" + d.String(), Redirect: presigned, Times: 10}
	reg.InjectFaults(redirect)
	log.Reset()
	rc, err := c.GetBlob(context.Background(), repo, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("the redirected download read %q, %v; want %q", got, err, blob)
	}
	if redirect.Hits() != 2 {
		t.Fatalf("the registry saw %d requests for the blob, want the first and the redirected one: nothing was tested", redirect.Hits())
	}
	for _, s := range []string{"AKIA-CRED-SECRET", "SIG-SECRET-S3", "SIG-SECRET-SAS"} {
		if strings.Contains(log.String(), s) {
			t.Errorf("the debug log shows %q:\n%s", s, log.String())
		}
	}
	want := "/v2/team/app/blobs/" + d.String() + "?X-Amz-Algorithm=<redacted>&X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&sig=<redacted>&sv=<redacted>"
	for _, line := range []string{"    Location: " + want, "    Content-Location: " + want, "GET http://" + reg.Host + want} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("the debug log has no line with %q:\n%s", line, log.String())
		}
	}
}

// TestDebugLogEscapesHeaders: a header value with an escape sequence is
// logged with it escaped, so it cannot rewrite the terminal.
func TestDebugLogEscapesHeaders(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	h := http.Header{"X-Note": {"ok\x1b[2K\x1b[1Gexported"}}
	c := registry.New(registry.Options{Transport: fakeTransport{h}, Debug: &log, Retries: -1})
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/", nil)
	resp, err := c.Transport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if strings.Contains(log.String(), "\x1b") {
		t.Errorf("the debug log holds a raw escape:\n%q", log.String())
	}
	if want := `    X-Note: ok\x1b[2K\x1b[1Gexported` + "\n"; !strings.Contains(log.String(), want) {
		t.Errorf("the debug log has no line %q:\n%s", want, log.String())
	}
}
