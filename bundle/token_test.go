package bundle_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// staticKeychain gives the same credentials for every registry.
type staticKeychain authn.AuthConfig

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig(k)), nil
}

// The token registries of these tests issue tokens that live 1 s (at most
// 2 s: the expiry is in whole seconds); a request held longer than that
// reaches the registry with an expired token.
var (
	tokenOptions = registrytest.Options{Username: "ferry", Password: "secret", Token: &registrytest.TokenAuth{TTL: time.Second}}
	tokenKeys    = staticKeychain{Username: "ferry", Password: "secret"}
	pastTokenTTL = 2100 * time.Millisecond
)

// checkImportedWith asserts every sample image is at reg/prefix with its
// digest, reading with the given credentials.
func (f *fixture) checkImportedWith(t *testing.T, reg *registrytest.Registry, keys authn.Keychain, prefix string) {
	t.Helper()
	for _, ref := range f.sample.Refs {
		dst := reg.Host + "/" + prefix + strings.TrimPrefix(ref, f.src.Host+"/")
		r, err := name.ParseReference(dst)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(r, remote.WithAuthFromKeychain(keys))
		if err != nil {
			t.Fatalf("resolving %s: %v", dst, err)
		}
		if want := f.sample.Digests[ref]; d.Digest.String() != want {
			t.Errorf("%s: digest %s, want %s", dst, d.Digest, want)
		}
	}
}

// TestTokenExpiresDuringImport imports into a registry with token
// authentication whose tokens expire within 2 s, with the first blob upload
// held until its token has expired: the registry refuses the upload, ferry
// renews the token and sends the blob again (from the file, or from the
// copy spooled while the stream went by); requests made for other
// repositories after their tokens expired go through with renewed tokens
// too. The digests are identical.
func TestTokenExpiresDuringImport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			dst := registrytest.New(t, tokenOptions)
			held := &registrytest.Fault{Method: "PUT", Path: "/blobs/uploads/", Delay: pastTokenTTL, Times: 1}
			dst.InjectFaults(held)
			opts := bundle.ImportOptions{Registry: bundle.RegistryOptions{Keychain: tokenKeys, RetryBase: 5 * time.Millisecond}}
			var err error
			if stream {
				_, err = bundle.Import(context.Background(), openStream(t, path), dst.Host+"/m", opts)
			} else {
				_, err = bundle.ImportFile(context.Background(), path, dst.Host+"/m", opts)
			}
			if err != nil {
				t.Fatalf("import with tokens expiring: %v", err)
			}
			if held.Hits() != 1 {
				t.Errorf("the upload was held %d times, want 1", held.Hits())
			}
			if n := dst.TokensRejected(); n < 1 {
				t.Errorf("the registry rejected %d expired tokens, want at least 1", n)
			}
			t.Logf("tokens issued %d, expired tokens rejected %d", dst.TokensIssued(), dst.TokensRejected())
			f.checkImportedWith(t, dst, tokenKeys, "m/")
		})
	}
}

// TestTokenExpiresDuringExport exports from a registry with token
// authentication whose tokens expire within 2 s, with the first blob
// download held until its token has expired: ferry renews the token and
// the export, imported again, gives identical digests.
func TestTokenExpiresDuringExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Two registries on one storage: an open one to push the sample to,
	// and one with token authentication to export from.
	f := &fixture{src: registrytest.New(t, registrytest.Options{Dir: dir}), dst: registrytest.New(t, registrytest.Options{})}
	var err error
	if f.sample, err = testimages.Push(context.Background(), f.src.Host, 32<<10); err != nil {
		t.Fatal(err)
	}
	src := registrytest.New(t, registrytest.Options{Dir: dir, Username: tokenOptions.Username, Password: tokenOptions.Password, Token: tokenOptions.Token})
	var refs []string
	for _, ref := range f.sample.Refs {
		refs = append(refs, strings.Replace(ref, f.src.Host, src.Host, 1))
	}
	held := &registrytest.Fault{Method: "GET", Path: "/blobs/", Delay: pastTokenTTL, Times: 1}
	src.InjectFaults(held)
	path := filepath.Join(t.TempDir(), "b.tar.zst")
	opts := bundle.ExportOptions{Registry: bundle.RegistryOptions{Keychain: tokenKeys, RetryBase: 5 * time.Millisecond}}
	if _, err := bundle.ExportFile(context.Background(), refs, path, opts); err != nil {
		t.Fatalf("export with tokens expiring: %v", err)
	}
	if held.Hits() != 1 || src.TokensRejected() < 1 {
		t.Errorf("download held %d times, %d expired tokens rejected; want 1 and at least 1", held.Hits(), src.TokensRejected())
	}
	if _, err := bundle.ImportFile(context.Background(), path, f.dst.Host+"/m", bundle.ImportOptions{}); err != nil {
		t.Fatalf("import: %v", err)
	}
	f.checkImported(t, "m/")
}

// TestTokenWrongPassword: wrong credentials for a registry with token
// authentication fail export and import at once with the unauthorized
// message, each worker asking for a token once, and nothing is pushed.
func TestTokenWrongPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path, _ := f.export(t, bundle.ExportOptions{})
	reg := registrytest.New(t, tokenOptions)
	wrong := bundle.RegistryOptions{Keychain: staticKeychain{Username: "ferry", Password: "wrong"}}
	const jobs = 4

	_, err := bundle.Export(context.Background(), []string{reg.Host + "/team/app:1.0"}, nil, bundle.ExportOptions{Registry: wrong})
	if err == nil || !strings.Contains(err.Error(), "authentication refused by "+reg.Host) {
		t.Fatalf("export with a wrong password: %v; want the unauthorized message", err)
	}
	if n := reg.TokensRefused(); n != 1 {
		t.Errorf("export asked for a token %d times, want 1", n)
	}

	// Retries would take over a minute: the backoff doubles from 500 ms.
	wrong.Retries = 10
	start := time.Now()
	_, err = bundle.ImportFile(context.Background(), path, reg.Host+"/m", bundle.ImportOptions{Jobs: jobs, Registry: wrong})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "authentication refused by "+reg.Host) || !strings.Contains(err.Error(), "docker login "+reg.Host) {
		t.Fatalf("import with a wrong password: %v; want the unauthorized message", err)
	}
	// Each worker asks for a token at most once (a request cancelled when
	// another worker failed may be counted after Import returns): jobs
	// for large blobs, 4×jobs for small ones.
	const workers = jobs + 4*jobs
	if n := reg.TokensRefused() - 1; took > 10*time.Second || n > workers || reg.TokensIssued() != 0 || reg.BlobUploads.Load() != 0 {
		t.Errorf("import with a wrong password took %s, %d token requests refused, %d tokens issued, %d blobs pushed; want fast, at most %d, 0, 0",
			took, n, reg.TokensIssued(), reg.BlobUploads.Load(), workers)
	}
}
