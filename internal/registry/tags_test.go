package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/ferryproject/ferry/internal/registry"
)

// tagServer serves the tag list of team/app in pages of two, each naming
// the next with a Link header that link makes from the next page's path.
func tagServer(t *testing.T, tags []string, link func(next string) string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
			w.WriteHeader(http.StatusOK)
		case "/v2/team/app/tags/list":
			from, _ := strconv.Atoi(r.URL.Query().Get("from"))
			to := min(from+2, len(tags))
			if to < len(tags) {
				w.Header().Set("Link", link(fmt.Sprintf("/v2/team/app/tags/list?from=%d", to)))
			}
			fmt.Fprintf(w, `{"name":"team/app","tags":[`)
			for i, tag := range tags[from:to] {
				if i > 0 {
					fmt.Fprint(w, ",")
				}
				fmt.Fprintf(w, "%q", tag)
			}
			fmt.Fprint(w, "]}")
		default:
			http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// ListTags follows the pages a registry links, stops at the limit, and
// follows no link to another host: the credentials of this registry go
// to it alone.
func TestListTags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := registry.New(registry.Options{Retries: -1})
	tags := []string{"a", "b", "c", "d", "e"}
	host := tagServer(t, tags, func(next string) string { return "<" + next + `>; rel="next"` })
	repo, _ := c.ParseRepository(host + "/team/app")
	got, err := c.ListTags(ctx, repo, 10)
	if err != nil || !slices.Equal(got, tags) {
		t.Fatalf("ListTags: %q, %v; want %q", got, err, tags)
	}
	_, err = c.ListTags(ctx, repo, 4)
	if want := "too many entries: " + host + "/team/app lists more than 4 tags"; !errors.Is(err, registry.ErrTooMany) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// A repository the registry does not know has no tags.
	none, _ := c.ParseRepository(host + "/team/none")
	if got, err := c.ListTags(ctx, none, 10); err != nil || got != nil {
		t.Errorf("unknown repository: %q, %v", got, err)
	}

	other := tagServer(t, tags, func(next string) string { return "<http://127.0.0.2:1" + next + `>; rel="next"` })
	repo, _ = c.ParseRepository(other + "/team/app")
	_, err = c.ListTags(ctx, repo, 10)
	if want := "the tag list of " + other + "/team/app: link to another host refused: the Link header's next page is on http://127.0.0.2:1, not on the registry"; !errors.Is(err, registry.ErrForeignLink) || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// A Link that is not rel="next" ends the list.
	prev := tagServer(t, tags, func(next string) string { return "<" + next + `>; rel="prev"` })
	repo, _ = c.ParseRepository(prev + "/team/app")
	if got, err := c.ListTags(ctx, repo, 10); err != nil || !slices.Equal(got, tags[:2]) {
		t.Errorf("rel=prev: %q, %v", got, err)
	}
}
