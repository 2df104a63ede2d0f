package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
)

const stallTimeout = 200 * time.Millisecond

// hold blocks until the client goes away or the test ends (a server that
// has not read the request body does not notice that the client went
// away), or for 5 s, so that a client that never gives up fails the test
// instead of hanging it.
func hold(r *http.Request, testDone <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-testDone:
	case <-time.After(5 * time.Second):
	}
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// lateReader waits before its first read.
type lateReader struct {
	r      io.Reader
	pause  time.Duration
	waited bool
}

func (l *lateReader) Read(p []byte) (int, error) {
	if !l.waited {
		time.Sleep(l.pause)
		l.waited = true
	}
	return l.r.Read(p)
}

// TestStallTimeout runs the client, with a short stall timeout and no
// retries, against a fake registry whose blob endpoints misbehave: a
// complete stop fails with ErrStalled (a temporary error) within a few
// timeouts; slowness that is not a stop (a trickle, a slow caller, a slow
// upload source, a long wait for the answer to an upload) does not.
func TestStallTimeout(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	d := digest.FromBytes(blob)
	tests := []struct {
		name string
		// handle serves blob requests (GET, HEAD, PUT); /v2/ and POST are
		// answered as a registry does.
		handle  func(w http.ResponseWriter, r *http.Request, done <-chan struct{})
		run     func(ctx context.Context, t *testing.T, c *registry.Client, repo name.Repository) error
		stalled bool
	}{
		{
			name: "response body stops",
			handle: func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				w.Header().Set("Content-Length", "10000")
				_, _ = w.Write(blob[:4000])
				http.NewResponseController(w).Flush()
				hold(r, done)
			},
			run:     getBlob,
			stalled: true,
		},
		{
			name:    "no response",
			handle:  func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) { hold(r, done) },
			run:     getBlob,
			stalled: true,
		},
		{
			name: "upload not taken",
			handle: func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				if r.Method == http.MethodPut {
					hold(r, done) // reads nothing of the body
				}
			},
			run: func(ctx context.Context, t *testing.T, c *registry.Client, repo name.Repository) error {
				// More than the socket buffers hold, so the writes block.
				return c.PushBlob(ctx, repo, d, 1<<30, zeros{})
			},
			stalled: true,
		},
		{
			name: "response body trickles",
			handle: func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				w.Header().Set("Content-Length", "10000")
				for i := 0; i < 10000; i += 1000 {
					_, _ = w.Write(blob[i : i+1000])
					http.NewResponseController(w).Flush()
					time.Sleep(stallTimeout / 4)
				}
			},
			run: getBlob,
		},
		{
			name: "caller reads slowly",
			handle: func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				_, _ = w.Write(blob)
			},
			run: func(ctx context.Context, t *testing.T, c *registry.Client, repo name.Repository) error {
				rc, err := c.GetBlob(ctx, repo, d)
				if err != nil {
					return err
				}
				defer rc.Close()
				got, err := io.ReadAll(&lateReader{r: rc, pause: 2 * stallTimeout})
				if err == nil && !bytes.Equal(got, blob) {
					t.Error("wrong content")
				}
				return err
			},
		},
		{
			name: "upload source is slow, registry is slow to answer",
			handle: func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				if r.Method == http.MethodPut {
					_, _ = io.Copy(io.Discard, r.Body)
					time.Sleep(2 * stallTimeout) // checking and storing the blob
					w.WriteHeader(http.StatusCreated)
				}
			},
			run: func(ctx context.Context, t *testing.T, c *registry.Client, repo name.Repository) error {
				return c.PushBlob(ctx, repo, d, int64(len(blob)), &lateReader{r: oneShot{bytes.NewReader(blob)}, pause: 2 * stallTimeout})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/v2/":
				case r.Method == http.MethodPost:
					w.Header().Set("Location", "/v2/x/blobs/uploads/1")
					w.WriteHeader(http.StatusAccepted)
				default:
					tt.handle(w, r, done)
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(done) }) // runs first
			c := registry.New(registry.Options{Keychain: authn.NewMultiKeychain(), Retries: -1, StallTimeout: stallTimeout})
			repo, err := c.ParseRepository(strings.TrimPrefix(srv.URL, "http://") + "/x")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = tt.run(context.Background(), t, c, repo)
			took := time.Since(start)
			switch {
			case tt.stalled && (!errors.Is(err, registry.ErrStalled) || !registry.IsTemporary(err)):
				t.Fatalf("got %v, want a temporary ErrStalled", err)
			case tt.stalled && took > 10*stallTimeout:
				t.Errorf("the stall was noticed after %s (timeout %s)", took, stallTimeout)
			case !tt.stalled && err != nil:
				t.Fatalf("got %v, want success", err)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

func getBlob(ctx context.Context, t *testing.T, c *registry.Client, repo name.Repository) error {
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	rc, err := c.GetBlob(ctx, repo, digest.FromBytes(blob))
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil && !bytes.Equal(got, blob) {
		t.Error("wrong content")
	}
	return err
}
