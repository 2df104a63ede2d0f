package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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

// loopServer serves the tag list of team/app as page makes it from the
// number of the request (from 0), each page naming the next with a Link
// header that next makes from that number; it counts the requests.
func loopServer(t *testing.T, page func(n int) string, next func(n int) string) (string, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
			w.WriteHeader(http.StatusOK)
		case "/v2/team/app/tags/list":
			n := int(hits.Add(1)) - 1
			if n > 1000 {
				http.Error(w, "enough", http.StatusTeapot)
				return
			}
			w.Header().Set("Link", "<"+next(n)+`>; rel="next"`)
			fmt.Fprint(w, page(n))
		default:
			http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host, &hits
}

// A hostile registry whose tag list names the same page as the next one
// forever, or serves empty pages that each name another, held ListTags
// (and so every import to it) in a loop that only the tag limit could end,
// and empty pages never reach it: every import hung. A page that adds no
// tag, or a Link to a page already read, ends the listing with an error.
func TestListTagsPageLoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := registry.New(registry.Options{Retries: -1})
	self, hits := loopServer(t, func(int) string { return `{"name":"team/app","tags":["a"]}` },
		func(int) string { return "/v2/team/app/tags/list" })
	repo, _ := c.ParseRepository(self + "/team/app")
	_, err := c.ListTags(ctx, repo, 100000)
	if want := "the tag list of " + self + "/team/app: the registry names the page /v2/team/app/tags/list again as the next"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests for a page that names itself as the next", n)
	}
	empty, hits := loopServer(t, func(int) string { return `{"name":"team/app","tags":[]}` },
		func(n int) string { return fmt.Sprintf("/v2/team/app/tags/list?last=%d", n) })
	repo, _ = c.ParseRepository(empty + "/team/app")
	_, err = c.ListTags(ctx, repo, 100000)
	if want := "the tag list of " + empty + "/team/app: a page that lists no tags names a next page"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests for empty pages", n)
	}
}

// Each page is read up to 4 MiB, and the tags were kept until the limit
// counted them: a hostile registry that serves one tag of almost 4 MiB per
// page made ListTags hold limit times that (400 GB for the receipts'
// limit). A tag is at most 128 characters (distribution spec); a longer
// one ends the listing with an error.
func TestListTagsLongTag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := registry.New(registry.Options{Retries: -1})
	long := strings.Repeat("x", 4<<20-100)
	host, hits := loopServer(t, func(int) string { return `{"name":"team/app","tags":["` + long + `"]}` },
		func(n int) string { return fmt.Sprintf("/v2/team/app/tags/list?last=%d", n) })
	repo, _ := c.ParseRepository(host + "/team/app")
	_, err := c.ListTags(ctx, repo, 100000)
	if want := fmt.Sprintf("the tag list of %s/team/app: a tag of %d characters; a tag has at most 128", host, len(long)); err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d pages read", n)
	}
}

// A Link header may name several links: ListTags took the first for the
// next page whatever its rel, so a registry that also names the previous
// (or first) page sent it back over pages already read.
func TestListTagsSeveralLinks(t *testing.T) {
	t.Parallel()
	c := registry.New(registry.Options{Retries: -1})
	tags := []string{"a", "b", "c", "d", "e"}
	host := tagServer(t, tags, func(next string) string {
		return `</v2/team/app/tags/list?from=0>; rel="first", <` + next + `>; rel=next`
	})
	repo, _ := c.ParseRepository(host + "/team/app")
	if got, err := c.ListTags(context.Background(), repo, 10); err != nil || !slices.Equal(got, tags) {
		t.Errorf("ListTags: %q, %v; want %q", got, err, tags)
	}
}

// A registry that lists every tag in one page (distribution does, when
// the client asks for no page size) sent more than the 4 MiB one page was
// read up to once the receipt repository held some 57000 record tags,
// well under the 100000 the receipts allow: the JSON was cut and every
// import to that prefix failed. A page is read up to what the tags still
// allowed can take.
func TestListTagsOnePageUpToLimit(t *testing.T) {
	t.Parallel()
	var tags []string
	for i := range 60000 {
		tags = append(tags, fmt.Sprintf("import-%064x", i))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/team/app/tags/list" {
			json.NewEncoder(w).Encode(map[string]any{"name": "team/app", "tags": tags})
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	c := registry.New(registry.Options{Retries: -1})
	repo, _ := c.ParseRepository(u.Host + "/team/app")
	got, err := c.ListTags(context.Background(), repo, 100000)
	if err != nil || !slices.Equal(got, tags) {
		t.Errorf("ListTags: %d tags, %v; want %d", len(got), err, len(tags))
	}
}
