package benchset

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// client pushes to a registry over plain HTTP with no authentication, the
// way the benchmark's local registries run. It is deliberately not ferry's
// own client: the set must not depend on the code it measures.
type client struct {
	base string // http://host
	http *http.Client
}

func newClient(host string, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * conns
	tr.MaxIdleConnsPerHost = 2 * conns
	tr.Proxy = nil // a loopback registry; a proxy from the environment would be wrong
	base := host
	if !strings.Contains(host, "://") {
		base = "http://" + host
	}
	return &client{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: tr, Timeout: 0}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// do sends req and fails unless the status is one of ok.
func (c *client) do(ctx context.Context, req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.http.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(msg))
}

// startUpload opens an upload session in repo and returns its location.
func (c *client) startUpload(ctx context.Context, repo string) (*url.URL, error) {
	req, _ := http.NewRequest(http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := c.do(ctx, req, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return location(resp)
}

func location(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s %s: no Location in the response", resp.Request.Method, resp.Request.URL.Path)
	}
	return resp.Request.URL.Parse(loc)
}

// putBlob uploads a blob held in memory: one POST, one PUT.
func (c *client) putBlob(ctx context.Context, repo, digest string, data []byte) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	return c.finish(ctx, loc, digest, data)
}

// finish closes an upload session with the blob's last bytes and digest.
func (c *client) finish(ctx context.Context, loc *url.URL, digest string, data []byte) error {
	q := loc.Query()
	q.Set("digest", digest)
	u := *loc
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(ctx, req, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// streamBlob uploads a blob as write produces it, in one chunked PATCH, as
// docker push does; the digest is known only at the end, so write returns
// it. A few MiB are buffered between the two, so that write does not wait
// on the network.
func (c *client) streamBlob(ctx context.Context, repo string, write func(io.Writer) (string, error)) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	pr, pw := newPipe(16)
	type result struct {
		digest string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		d, err := write(pw)
		pw.CloseWithError(err)
		done <- result{d, err}
	}()
	req, _ := http.NewRequest(http.MethodPatch, loc.String(), pr)
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(ctx, req, http.StatusAccepted, http.StatusNoContent)
	pr.CloseWithError(fmt.Errorf("upload ended")) // unblocks write if the request failed early
	res := <-done
	if res.err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return res.err
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	if loc, err = location(resp); err != nil {
		return err
	}
	return c.finish(ctx, loc, res.digest, nil)
}

// mount links a blob of repository from into repo. It reports false when
// the registry declined and opened an upload session instead (cancelled
// here).
func (c *client) mount(ctx context.Context, repo, from, digest string) (bool, error) {
	q := url.Values{"mount": {digest}, "from": {from}}
	req, _ := http.NewRequest(http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/?"+q.Encode(), nil)
	resp, err := c.do(ctx, req, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, nil
	}
	if loc, err := location(resp); err == nil {
		del, _ := http.NewRequest(http.MethodDelete, loc.String(), nil)
		if r, err := c.http.Do(del.WithContext(ctx)); err == nil {
			r.Body.Close()
		}
	}
	return false, nil
}

// putManifest pushes a manifest or index under ref (a tag or its digest).
func (c *client) putManifest(ctx context.Context, repo, ref, mediaType string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPut, c.base+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(ctx, req, http.StatusCreated, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ping checks that the registry answers the distribution API without
// authentication.
func (c *client) ping(ctx context.Context) error {
	req, _ := http.NewRequest(http.MethodGet, c.base+"/v2/", nil)
	resp, err := c.do(ctx, req, http.StatusOK)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// pipe is io.Pipe with a buffer of a few writes: the writer goes on while
// the reader is busy, up to the limit. Each write is copied.
type pipe struct {
	ch     chan []byte
	cur    []byte
	closed chan struct{} // closed by the reader's CloseWithError
	mu     sync.Mutex
	rerr   error // the reader's error, for the writer
	werr   error // the writer's error, for the reader (io.EOF when clean)
	wdone  chan struct{}
}

type pipeReader struct{ *pipe }
type pipeWriter struct{ *pipe }

func newPipe(depth int) (*pipeReader, *pipeWriter) {
	p := &pipe{ch: make(chan []byte, depth), closed: make(chan struct{}), wdone: make(chan struct{})}
	return &pipeReader{p}, &pipeWriter{p}
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	select {
	case <-w.closed:
	default:
		select {
		case w.ch <- bytes.Clone(b):
			return len(b), nil
		case <-w.closed:
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return 0, w.rerr
}

// CloseWithError ends the stream: the reader gets err after the buffered
// writes, or io.EOF when err is nil.
func (w *pipeWriter) CloseWithError(err error) {
	if err == nil {
		err = io.EOF
	}
	w.mu.Lock()
	w.werr = err
	w.mu.Unlock()
	close(w.wdone)
}

func (r *pipeReader) Read(b []byte) (int, error) {
	for len(r.cur) == 0 {
		select {
		case r.cur = <-r.ch:
		case <-r.wdone:
			// Buffered writes first.
			select {
			case r.cur = <-r.ch:
			default:
				r.mu.Lock()
				defer r.mu.Unlock()
				return 0, r.werr
			}
		}
	}
	n := copy(b, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// CloseWithError makes the writer's next writes fail with err.
func (r *pipeReader) CloseWithError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rerr == nil {
		r.rerr = err
		close(r.closed)
	}
}

func (r *pipeReader) Close() error { r.CloseWithError(io.ErrClosedPipe); return nil }
