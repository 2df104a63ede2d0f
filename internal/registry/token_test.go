package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// staticKeychain gives the same credentials for every registry.
type staticKeychain authn.AuthConfig

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig(k)), nil
}

// Tokens live 1 s (at most 2 s, rounded up to the second); a request held
// longer than that reaches the registry with an expired token.
const (
	tokenTTL     = time.Second
	pastTokenTTL = 2100 * time.Millisecond
)

func tokenRegistry(t *testing.T) (*registrytest.Registry, *registry.Client, name.Repository) {
	t.Helper()
	reg := registrytest.New(t, registrytest.Options{Username: "u", Password: "p", Token: &registrytest.TokenAuth{TTL: tokenTTL}})
	// A new connection for every request: net/http then never sends a
	// request again by itself, so what is tested is what ferry does.
	c := registry.New(registry.Options{
		Keychain:  staticKeychain{Username: "u", Password: "p"},
		Transport: &http.Transport{DisableKeepAlives: true},
		RetryBase: time.Millisecond,
	})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	return reg, c, repo
}

// oneShot hides the type of a reader, so that nothing can read it twice.
type oneShot struct{ io.Reader }

func push(ctx context.Context, c *registry.Client, repo name.Repository, b []byte) error {
	return c.PushBlob(ctx, repo, digest.FromBytes(b), int64(len(b)), oneShot{bytes.NewReader(b)})
}

// TestTokenExpiresBeforeUploadAndManifest holds a blob upload and a
// manifest push until their token has expired. The registry answers 401;
// the manifest is sent again with a new token; the streamed upload, which
// cannot be sent twice, fails with ErrTokenRenewed, a temporary error, and
// the next attempt succeeds with the new token.
func TestTokenExpiresBeforeUploadAndManifest(t *testing.T) {
	t.Parallel()
	reg, c, repo := tokenRegistry(t)
	ctx := context.Background()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	if err := push(ctx, c, repo, config); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	issued := reg.TokensIssued()

	held := &registrytest.Fault{Method: http.MethodPut, Delay: pastTokenTTL, Times: 2}
	reg.InjectFaults(held)
	layer := bytes.Repeat([]byte("layer "), 10000)
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, digest.FromBytes(config), len(config))
	var wg sync.WaitGroup
	var upErr, manErr error
	wg.Go(func() { upErr = push(ctx, c, repo, layer) })
	wg.Go(func() {
		manErr = c.PutManifest(ctx, repo, "1.0", "application/vnd.oci.image.manifest.v1+json", manifest)
	})
	wg.Wait()
	if held.Hits() != 2 {
		t.Fatalf("the fault held %d requests, want 2", held.Hits())
	}
	if n := reg.TokensRejected(); n != 2 {
		t.Errorf("the registry rejected %d expired tokens, want 2", n)
	}
	if manErr != nil {
		t.Errorf("manifest push with an expired token: %v", manErr)
	}
	if !errors.Is(upErr, registry.ErrTokenRenewed) || !registry.IsTemporary(upErr) {
		t.Fatalf("upload with an expired token: %v; want a temporary ErrTokenRenewed", upErr)
	}
	if reg.TokensIssued() <= issued {
		t.Errorf("no new token was issued (%d in all)", reg.TokensIssued())
	}
	if err := push(ctx, c, repo, layer); err != nil {
		t.Fatalf("upload after the renewal: %v", err)
	}
	if ok, err := c.BlobExists(ctx, repo, digest.FromBytes(layer)); !ok || err != nil {
		t.Errorf("blob after the renewal: exists %v, %v", ok, err)
	}
	if d, err := c.HeadManifest(ctx, repo, "1.0"); err != nil || d != digest.FromBytes(manifest) {
		t.Errorf("manifest after the renewal: %s, %v; want %s", d, err, digest.FromBytes(manifest))
	}
}

// TestRevokedCredentialsFailAtRenewal: when the credentials stop working
// during a run, the first renewal fails with ErrUnauthorized, which is not
// temporary, after one token request.
func TestRevokedCredentialsFailAtRenewal(t *testing.T) {
	t.Parallel()
	reg, c, repo := tokenRegistry(t)
	ctx := context.Background()
	if err := push(ctx, c, repo, []byte("first")); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	reg.SetPassword("rotated")
	reg.InjectFaults(&registrytest.Fault{Method: http.MethodPut, Delay: pastTokenTTL, Times: 1})
	err := push(ctx, c, repo, []byte("second"))
	if !errors.Is(err, registry.ErrUnauthorized) || registry.IsTemporary(err) || !strings.Contains(err.Error(), "docker login "+reg.Host) {
		t.Fatalf("upload after the password changed: %v; want ErrUnauthorized, not temporary, naming docker login", err)
	}
	if n := reg.TokensRefused(); n != 1 {
		t.Errorf("%d token requests were refused, want 1", n)
	}
}

// TestWrongPasswordFailsFast: wrong credentials fail with ErrUnauthorized
// on the first request, after one token request.
func TestWrongPasswordFailsFast(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{Username: "u", Password: "p", Token: &registrytest.TokenAuth{}})
	c := registry.New(registry.Options{Keychain: staticKeychain{Username: "u", Password: "wrong"}})
	repo, err := c.ParseRepository(reg.Host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BlobExists(context.Background(), repo, digest.FromString("x"))
	if !errors.Is(err, registry.ErrUnauthorized) || registry.IsTemporary(err) {
		t.Fatalf("got %v, want ErrUnauthorized", err)
	}
	if reg.TokensIssued() != 0 || reg.TokensRefused() != 1 {
		t.Errorf("tokens issued %d, refused %d; want 0 and 1", reg.TokensIssued(), reg.TokensRefused())
	}
}

// TestParallelFirstUseSharesOneToken: jobs that start on the same
// repository at once share one handshake, so the token endpoint is asked
// once, not once per job.
func TestParallelFirstUseSharesOneToken(t *testing.T) {
	reg, c, repo := tokenRegistry(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.BlobExists(context.Background(), repo, digest.FromString("absent"))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.TokensIssued(); n != 1 {
		t.Errorf("8 parallel first requests made %d tokens, want 1", n)
	}
}

// TestSameRepositoryOnTwoRegistries: transports are kept per registry, so
// the same repository path on two registries with different credentials
// gets each its own (a transport cached by scope alone sent the second
// registry's requests through the first one's authentication).
func TestSameRepositoryOnTwoRegistries(t *testing.T) {
	a := registrytest.New(t, registrytest.Options{Username: "u", Password: "p", Token: &registrytest.TokenAuth{TTL: time.Minute}})
	b := registrytest.New(t, registrytest.Options{Username: "u", Password: "p"})
	c := registry.New(registry.Options{Keychain: staticKeychain{Username: "u", Password: "p"}, RetryBase: time.Millisecond})
	for _, host := range []string{a.Host, b.Host, a.Host} {
		repo, err := c.ParseRepository(host + "/team/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.BlobExists(context.Background(), repo, digest.FromString("absent")); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}
