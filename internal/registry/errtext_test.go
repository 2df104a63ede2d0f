package registry_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestRegistryErrorBodyEscaped: a registry answers an upload with 400 and
// a body that tries to rewrite the terminal (escape sequences, a carriage
// return, newlines starting a fake summary). The error ferry returns holds
// that text on one line with every control character escaped, and is still
// a *transport.Error underneath.
func TestRegistryErrorBodyEscaped(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	body := "bad request\x1b[1A\x1b[2K\rexported 3 images to x.tar.zst\n  signature: valid\r\n"
	reg.InjectFaults(&registrytest.Fault{Method: http.MethodPost, Path: "/blobs/uploads/", Status: http.StatusBadRequest, Body: body, Times: 1})
	c := registry.New(registry.Options{Retries: -1})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("x")
	err = c.PushBlob(context.Background(), repo, digest.FromBytes(blob), 1, bytes.NewReader(blob))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusBadRequest {
		t.Fatalf("PushBlob: %v, want a *transport.Error with status 400", err)
	}
	want := "POST http://" + reg.Host + `/v2/team/app/blobs/uploads/: unexpected status code 400 Bad Request: bad request\x1b[1A\x1b[2K\rexported 3 images to x.tar.zst\n  signature: valid`
	if err.Error() != want { // the body's final line break trimmed, the rest escaped
		t.Errorf("error text\n%q\nwant\n%q", err.Error(), want)
	}
	if strings.ContainsAny(err.Error(), "\x1b\r\n") {
		t.Errorf("the error holds raw control characters: %q", err.Error())
	}
}

// TestRegistryErrorBodyCut: an error page of 10 KiB is cut to a line of
// about 2 KiB that says how much was left out.
func TestRegistryErrorBodyCut(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	body := strings.Repeat("<p>maintenance</p>\n", 540)
	reg.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/manifests/", Status: http.StatusBadRequest, Body: body, Times: 1})
	c := registry.New(registry.Options{Retries: -1})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetManifest(context.Background(), repo, "1.0", 4<<20)
	var terr *transport.Error
	if !errors.As(err, &terr) {
		t.Fatalf("GetManifest: %v, want a *transport.Error", err)
	}
	full := strings.TrimSpace(terr.Error()) // the final line break is trimmed
	if len(full) <= 2048 {
		t.Fatalf("the full error is %d bytes: nothing was tested", len(full))
	}
	if !strings.HasSuffix(err.Error(), "... ("+strconv.Itoa(len(full)-2048)+" more bytes)") {
		t.Errorf("error text does not end saying %d more bytes: ...%q", len(full)-2048, err.Error()[len(err.Error())-60:])
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("the error holds a newline")
	}
}

// TestRegistryErrorURLRedacted: a connection cut during an upload gives an
// error naming the request URL; the upload-session state in its query is
// shown as <redacted>, as in the --debug log.
func TestRegistryErrorURLRedacted(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	reg.InjectFaults(&registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Drop: true, Times: 1})
	c := registry.New(registry.Options{Retries: -1})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("x"), 64<<10)
	d := digest.FromBytes(blob)
	err = c.PushBlob(context.Background(), repo, d, int64(len(blob)), bytes.NewReader(blob))
	if err == nil {
		t.Fatal("PushBlob succeeded through a cut connection: nothing was tested")
	}
	if !strings.Contains(err.Error(), "_state=<redacted>") || !strings.Contains(err.Error(), "digest="+url.QueryEscape(d.String())) {
		t.Errorf("error %q does not show _state=<redacted> and the digest", err)
	}
	var uerr *url.Error
	if !errors.As(err, &uerr) || !strings.Contains(uerr.URL, "_state=") {
		t.Fatalf("error %v is not a *url.Error naming the session: nothing was tested", err)
	}
	if st := uerr.URL[strings.Index(uerr.URL, "_state=")+len("_state="):]; strings.Contains(err.Error(), strings.Split(st, "&")[0]) {
		t.Errorf("error %q shows the upload state", err)
	}
}
