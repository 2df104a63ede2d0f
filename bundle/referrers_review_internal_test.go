package bundle

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/internal/registry"
)

// TestReferrerReviewListMemory: a list of referrers is kept while its
// pages are read (64 of up to 4 MiB), at export and at import, by every
// lookup running at once. A registry whose descriptors carry megabytes of
// annotations must not make ferry hold them: only the media type, digest
// and size of each are used.
func TestReferrerReviewListMemory(t *testing.T) {
	t.Parallel()
	subject := digest.FromString("subject")
	pad := strings.Repeat("x", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			w.WriteHeader(http.StatusOK) // the /v2/ ping
			return
		}
		page := 0
		fmt.Sscan(r.URL.Query().Get("page"), &page)
		w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
		if page < 2 {
			w.Header().Set("Link", fmt.Sprintf(`<%s?page=%d>; rel="next"`, r.URL.Path, page+1))
		}
		fmt.Fprintf(w, `{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":10,"artifactType":"application/x-big","annotations":{"pad":%q}}]}`,
			ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, digest.FromString(fmt.Sprint(page)), pad)
	}))
	defer srv.Close()
	c := registry.New(registry.Options{Retries: -1})
	repo, err := c.ParseRepository(strings.TrimPrefix(srv.URL, "http://") + "/app")
	if err != nil {
		t.Fatal(err)
	}
	list, err := apiReferrers(context.Background(), c, repo, subject)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d referrers, want 3", len(list))
	}
	kept := 0
	for _, d := range list {
		for k, v := range d.Annotations {
			kept += len(k) + len(v)
		}
		kept += len(d.ArtifactType)
	}
	if kept != 0 {
		t.Errorf("the list holds %d bytes of annotations and artifact types, want 0 (only media type, digest and size are used)", kept)
	}
}
