package registry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
)

// TestReferrersWithoutAPI: what a registry without the Referrers API
// answers (404, 400, 406, or a page that is not an image index) is
// ErrNoReferrersAPI; an image index is the list; any other failure is
// itself.
func TestReferrersWithoutAPI(t *testing.T) {
	t.Parallel()
	subject := digest.FromString("subject")
	for _, tc := range []struct {
		name    string
		status  int
		ctype   string
		body    string
		wantErr error
		want    string
	}{
		{"404", http.StatusNotFound, "text/plain", "404 page not found", registry.ErrNoReferrersAPI, "no Referrers API: HOST answered 404"},
		{"400", http.StatusBadRequest, "application/json", `{"errors":[{"code":"UNSUPPORTED"}]}`, registry.ErrNoReferrersAPI, "no Referrers API: HOST answered 400"},
		{"406", http.StatusNotAcceptable, "text/plain", "", registry.ErrNoReferrersAPI, "no Referrers API: HOST answered 406"},
		{"a web page", http.StatusOK, "text/html", "<html></html>", registry.ErrNoReferrersAPI, `no Referrers API: HOST answered "text/html"`},
		{"refused", http.StatusForbidden, "application/json", `{"errors":[{"code":"DENIED"}]}`, registry.ErrDenied, "access denied by HOST"},
		{"the API", http.StatusOK, "application/vnd.oci.image.index.v1+json", `{"schemaVersion":2,"manifests":[]}`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				if r.URL.Path != "/v2/app/referrers/"+subject.String() {
					t.Errorf("asked for %s", r.URL.Path)
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer s.Close()
			host := strings.TrimPrefix(s.URL, "http://")
			c := registry.New(registry.Options{Retries: -1})
			repo, err := c.ParseRepository(host + "/app")
			if err != nil {
				t.Fatal(err)
			}
			m, err := c.Referrers(context.Background(), repo, subject, "", 1<<20)
			if tc.wantErr == nil {
				if err != nil || string(m.Bytes) != tc.body {
					t.Fatalf("Referrers: %v, %v", m, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Referrers: %v, want %v", err, tc.wantErr)
			}
			if want := strings.ReplaceAll(tc.want, "HOST", host); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Referrers: %v\nwant %s", err, want)
			}
		})
	}
}
