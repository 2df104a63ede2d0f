package registry_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// asDockerHub resolves every registry as Docker Hub: a loopback registry
// then stands in for the hub, reached with what the keychain finds for
// docker.io.
type asDockerHub struct{ inner authn.Keychain }

func (k asDockerHub) Resolve(authn.Resource) (authn.Authenticator, error) {
	return k.inner.Resolve(name.MustParseReference("docker.io/library/alpine").Context())
}

// TestDockerHubCredentials: credentials saved for docker.io (as ferry
// login docker.io does), index.docker.io or registry-1.docker.io are
// stored under https://index.docker.io/v1/, where docker stores them and
// the keychain looks for them, and so are sent to the hub.
func TestDockerHubCredentials(t *testing.T) {
	for _, host := range []string{"docker.io", "index.docker.io", "registry-1.docker.io"} {
		t.Run(host, func(t *testing.T) {
			cfgDir := t.TempDir()
			t.Setenv("HOME", t.TempDir())
			t.Setenv("DOCKER_CONFIG", cfgDir)
			pass := "hub-pass-" + host
			if _, err := registry.SaveCredentials(host, "hubuser", pass, ""); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct{ Auths map[string]any }
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if _, ok := cfg.Auths["https://index.docker.io/v1/"]; !ok || len(cfg.Auths) != 1 {
				t.Fatalf("stored under %v, want https://index.docker.io/v1/ only", cfg.Auths)
			}

			// The keychain finds them for docker.io references.
			auth, err := authn.DefaultKeychain.Resolve(name.MustParseReference("docker.io/library/alpine:3.20").Context())
			if err != nil {
				t.Fatal(err)
			}
			got, err := auth.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if got.Username != "hubuser" || got.Password != pass {
				t.Fatalf("the keychain resolves docker.io to %q/%q, want hubuser/%s", got.Username, got.Password, pass)
			}

			// And the client sends them to the registry standing in for the hub.
			hub := registrytest.New(t, registrytest.Options{Username: "hubuser", Password: pass})
			c := registry.New(registry.Options{Keychain: asDockerHub{authn.DefaultKeychain}, RetryBase: time.Millisecond})
			repo, err := c.ParseRepository(hub.Host + "/library/alpine")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.BlobExists(context.Background(), repo, digest.FromString("x")); err != nil {
				t.Fatalf("with the stored hub credentials: %v", err)
			}
			if hub.BasicAuths.Load() == 0 {
				t.Fatal("the stored hub credentials were not sent")
			}
		})
	}
}

// TestBoundKeychain: credentials bound to one registry answer for it,
// however Docker Hub is spelt, and for no other.
func TestBoundKeychain(t *testing.T) {
	t.Parallel()
	auth := authn.FromConfig(authn.AuthConfig{Username: "u", Password: "p"})
	for _, tc := range []struct {
		bound, ref string
		want       bool
	}{
		{"reg.local:5000", "reg.local:5000/team/app", true},
		{"reg.local:5000", "reg.local:5001/team/app", false},
		{"reg.local:5000", "evil.example/team/app", false},
		{"docker.io", "index.docker.io/library/alpine", true},
		{"docker.io", "alpine", true},
		{"index.docker.io", "docker.io/library/alpine", true},
		{"docker.io", "ghcr.io/x/y", false},
	} {
		kc, err := registry.BoundKeychain(tc.bound, auth)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := kc.Resolve(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		if (got == auth) != tc.want {
			t.Errorf("bound to %s, %s: credentials given %v, want %v", tc.bound, tc.ref, got == auth, tc.want)
		}
	}
}
