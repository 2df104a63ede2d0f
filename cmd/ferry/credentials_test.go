package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// seeded starts a registry with opts that holds the sample images (pushed
// anonymously into another registry on the same storage), and returns it
// with the references of the sample in it.
func seeded(t *testing.T, opts registrytest.Options) (*registrytest.Registry, []string) {
	t.Helper()
	dir := t.TempDir()
	seed, err := registrytest.Start(registrytest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sample, err := testimages.Push(context.Background(), seed.Host, 1024)
	seed.Close()
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = dir
	reg := registrytest.New(t, opts)
	var refs []string
	for _, r := range sample.Refs {
		refs = append(refs, reg.Host+strings.TrimPrefix(r, seed.Host))
	}
	return reg, refs
}

// exactly checks the exit code and the whole error line.
func (r result) exactly(t *testing.T, code int, msg string) {
	t.Helper()
	if r.code != code || r.errMessage() != msg {
		t.Errorf("exit %d, %q\nwant exit %d, %q", r.code, r.errMessage(), code, msg)
	}
}

// TestUsernameBoundToOneRegistry: the password of --password-stdin goes to
// one registry: on export the only registry of the references, or the one
// --registry names when there are several. Another registry of the same
// export, here one with token authentication whose token endpoint would
// take any credentials, never sees it.
func TestUsernameBoundToOneRegistry(t *testing.T) {
	const pass = "s3cret-XYZZY"
	priv, privRefs := seeded(t, registrytest.Options{Username: "op", Password: pass})
	other, otherRefs := seeded(t, registrytest.Options{Token: &registrytest.TokenAuth{}})
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar.zst")
	export := func(args ...string) result {
		return ferry(t, strings.NewReader(pass+"\n"), append([]string{"export", "-q", "-o", out, "-u", "op", "--password-stdin"}, args...)...)
	}
	both := []string{privRefs[0], otherRefs[0]}

	export(both...).exactly(t, exitUsage, fmt.Sprintf("ferry: the references name 2 registries (%s, %s): say which one --username logs in to with --registry HOST; the others use stored credentials (ferry login) (see 'ferry --help')", priv.Host, other.Host))
	export(append([]string{"--registry", "elsewhere.example:5000"}, both...)...).exactly(t, exitUsage, fmt.Sprintf("ferry: --registry elsewhere.example:5000 is none of the registries of the references (%s, %s) (see 'ferry --help')", priv.Host, other.Host))
	ferry(t, nil, "export", "-q", "-o", out, "--registry", priv.Host, privRefs[0]).exactly(t, exitUsage, "ferry: --registry says which registry --username logs in to; give it with --username USER --password-stdin (see 'ferry --help')")
	export("oci:"+dir).exactly(t, exitUsage, "ferry: --username has no registry to log in to: the references name none (only OCI layouts) (see 'ferry --help')")
	assertDirEmpty(t, dir)

	// One registry: the credentials are bound to it without --registry.
	export(privRefs...).expect(t, exitOK)
	if priv.BasicAuths.Load() == 0 {
		t.Fatal("the registry of the references did not receive the credentials")
	}
	// Two registries, the credentials bound to one.
	export(append([]string{"--registry", priv.Host}, both...)...).expect(t, exitOK)
	if n := other.BasicAuths.Load(); n != 0 {
		t.Fatalf("the other registry or its token endpoint received the password %d times, want 0", n)
	}
	if other.TokensIssued() == 0 {
		t.Fatal("the other registry was not used")
	}
	// Bound to the other one, the private registry gets none.
	export(append([]string{"--registry", other.Host}, both...)...).expect(t, exitFailure, "authentication refused by "+priv.Host)
	if n := other.BasicAuths.Load(); n == 0 {
		t.Error("--registry did not bind the credentials to the registry it names")
	}

	// Import: bound to the --to registry; an OCI layout has none.
	ferry(t, strings.NewReader(pass+"\n"), "import", "-q", "--insecure-skip-verify", "-u", "op", "--password-stdin", "--to", "oci:"+t.TempDir(), out).
		exactly(t, exitUsage, "ferry: --username has no registry to log in to with --to oci:DIR (see 'ferry --help')")
}

// acrUser is the user name az acr login stores beside a refresh token.
const acrUser = "00000000-0000-0000-0000-000000000000"

// identityConfig points DOCKER_CONFIG at a config.json as az acr login
// leaves it: for each host, the ACR user with no password, and an OAuth2
// refresh token as identitytoken.
func identityConfig(t *testing.T, tokens map[string]string) string {
	t.Helper()
	auths := map[string]any{}
	for host, tok := range tokens {
		auths[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(acrUser + ":")), "identitytoken": tok}
	}
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	return dir
}

// TestACRIdentityToken: export and import with the credentials az acr
// login leaves, a refresh token traded at the token endpoint for access
// tokens (grant_type=refresh_token), including an access token that
// expires during the import: the upload held past its expiry is refused,
// a new access token is traded for, and the import completes. A wrong
// refresh token is refused with the unauthorized message.
func TestACRIdentityToken(t *testing.T) {
	src, refs := seeded(t, registrytest.Options{Username: acrUser, Password: "never-given", Token: &registrytest.TokenAuth{RefreshToken: "acr-refresh-src"}})
	dst := registrytest.New(t, registrytest.Options{Username: acrUser, Password: "never-given", Token: &registrytest.TokenAuth{TTL: time.Second, RefreshToken: "acr-refresh-dst"}})
	identityConfig(t, map[string]string{src.Host: "acr-refresh-src", dst.Host: "acr-refresh-dst"})
	out := filepath.Join(t.TempDir(), "b.tar.zst")

	ferry(t, nil, append([]string{"export", "-q", "-o", out}, refs...)...).expect(t, exitOK)
	if src.RefreshGrants() == 0 {
		t.Fatal("the export did not trade the refresh token for an access token")
	}

	held := &registrytest.Fault{Method: http.MethodPut, Path: "/blobs/uploads/", Delay: 2100 * time.Millisecond, Times: 1}
	dst.InjectFaults(held)
	ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--to", dst.Host+"/m", out).expect(t, exitOK)
	if held.Hits() != 1 || dst.TokensRejected() == 0 || dst.RefreshGrants() < 2 {
		t.Errorf("upload held %d times, %d expired tokens rejected, %d refresh grants; want 1, at least 1, at least 2", held.Hits(), dst.TokensRejected(), dst.RefreshGrants())
	}
	if n := src.BasicAuths.Load() + dst.BasicAuths.Load(); n != 0 {
		t.Errorf("%d requests carried a password, want none: the refresh token is the credential", n)
	}
	for _, ref := range refs {
		r, err := name.ParseReference(dst.Host + "/m" + strings.TrimPrefix(ref, src.Host))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Head(r, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			t.Errorf("%s not imported: %v", r, err)
		}
	}

	identityConfig(t, map[string]string{src.Host: "revoked"})
	ferry(t, nil, append([]string{"export", "-q", "-o", out}, refs[0])...).expect(t, exitFailure, "authentication refused by "+src.Host)
}

// TestLoginStoresRefreshToken: a registry whose token endpoint returns a
// refresh token for offline_token=true gets it stored as identitytoken, in
// place of the password, as docker login does; export then trades it for
// access tokens.
func TestLoginStoresRefreshToken(t *testing.T) {
	const pass = "s3cret-XYZZY"
	reg, refs := seeded(t, registrytest.Options{Username: "op", Password: pass, Token: &registrytest.TokenAuth{RefreshToken: "rt-from-login"}})
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	res := ferry(t, strings.NewReader(pass+"\n"), "login", reg.Host, "-u", "op", "--password-stdin")
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, "a refresh token (not the password)") {
		t.Errorf("login does not say it stored a refresh token:\n%s", res.stderr)
	}
	b, err := os.ReadFile(filepath.Join(cfg, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
		}
	}
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	e := stored.Auths[reg.Host]
	if e.IdentityToken != "rt-from-login" || e.Auth != base64.StdEncoding.EncodeToString([]byte("op:")) || strings.Contains(string(b), pass) {
		t.Fatalf("config.json holds %s; want the refresh token as identitytoken and no password", b)
	}
	basic := reg.BasicAuths.Load()
	ferry(t, nil, "export", "-q", "-o", filepath.Join(t.TempDir(), "b.tar.zst"), refs[0]).expect(t, exitOK)
	if reg.RefreshGrants() == 0 || reg.BasicAuths.Load() != basic {
		t.Errorf("export: %d refresh grants, %d requests with the password; want at least 1 and 0", reg.RefreshGrants(), reg.BasicAuths.Load()-basic)
	}
}

// TestNoDowngradeFromCLI: a loopback registry that answers TLS with an
// untrusted certificate and plain HTTP otherwise. export, import and login
// with a password stop with the TLS error and what to do, and the registry
// receives no request, so no password; with --ca-file they go over TLS.
func TestNoDowngradeFromCLI(t *testing.T) {
	const pass = "s3cret-XYZZY"
	reg := registrytest.New(t, registrytest.Options{MixedTLS: true, Username: "op", Password: pass})
	ca := writeFile(t, "ca.pem", reg.CertPEM)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	bundlePath := writeFile(t, "images.tar.zst", sampleBundle(t))
	words := []string{"TLS handshake failed with " + reg.Host, "x509: certificate signed by unknown authority",
		"ferry does not fall back to plain HTTP for a registry that answers TLS (trust its CA with --ca-file CA.pem, or accept its certificate knowingly with --insecure-registry " + reg.Host + ")"}
	pw := func() *strings.Reader { return strings.NewReader(pass + "\n") }
	dir := t.TempDir()

	ferry(t, pw(), "export", "-q", "-u", "op", "--password-stdin", "-o", filepath.Join(dir, "b.tar.zst"), reg.Host+"/team/app:1.0").expect(t, exitFailure, words...)
	assertDirEmpty(t, dir)
	ferry(t, pw(), "import", "-q", "--insecure-skip-verify", "-u", "op", "--password-stdin", "--to", reg.Host+"/m", bundlePath).expect(t, exitFailure, words...)
	ferry(t, pw(), "login", reg.Host, "-u", "op", "--password-stdin").expect(t, exitFailure, words...)
	if n := reg.Requests.Load(); n != 0 {
		t.Fatalf("the registry received %d requests (%d with the password), want none", n, reg.BasicAuths.Load())
	}

	ferry(t, pw(), "import", "-q", "--insecure-skip-verify", "-u", "op", "--password-stdin", "--ca-file", ca, "--to", reg.Host+"/m", bundlePath).expect(t, exitOK)
	if reg.PlainRequests.Load() != 0 || reg.BasicAuths.Load() == 0 {
		t.Errorf("with --ca-file: %d plain-HTTP requests, %d with the password; want 0 and some", reg.PlainRequests.Load(), reg.BasicAuths.Load())
	}
}
