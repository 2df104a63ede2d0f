package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CheckLogin checks that user and password are accepted by the registry at
// host (GET /v2/ with the credentials, after any token exchange). When the
// registry uses token authentication, the token is asked for with
// offline_token=true, as docker login does; a refresh token in the answer
// (an OAuth2 refresh token, as Azure Container Registry gives) is returned,
// to be stored in place of the password.
func (c *Client) CheckLogin(ctx context.Context, host, user, password string) (refreshToken string, err error) {
	opts := c.nameOpts(host + "/x")
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return "", err
	}
	base := transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent)
	pr, err := c.challenge(ctx, reg, base)
	if err != nil {
		return "", err
	}
	// A login sends the credentials whatever the registry's challenge: name
	// one, so that plain HTTP to a registry that asks for none is refused
	// too rather than "succeeding" without them.
	auth, err := c.checkCleartext(ctx, reg, "login", authn.FromConfig(authn.AuthConfig{Username: user, Password: password}))
	if err != nil {
		return "", err
	}
	offline := &offlineToken{inner: base}
	if strings.EqualFold(pr.Scheme, "bearer") {
		offline.realm, _ = url.Parse(pr.Parameters["realm"])
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, offline, []string{"registry:catalog:*"})
	if err != nil {
		return "", c.classify(host, err)
	}
	s, _ := c.schemes.get(reg.RegistryStr())
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s://%s/v2/", s, reg.RegistryStr()), nil)
	resp, err := c.do(ctx, rt, req, http.StatusOK)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return offline.refreshToken(), nil
}

// offlineToken asks the token endpoint realm for a refresh token
// (offline_token=true, as docker login does) and keeps the one the answer
// holds.
type offlineToken struct {
	inner http.RoundTripper
	realm *url.URL

	mu      sync.Mutex
	refresh string
}

func (o *offlineToken) refreshToken() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refresh
}

func (o *offlineToken) RoundTrip(req *http.Request) (*http.Response, error) {
	if o.realm == nil || req.Method != http.MethodGet || req.URL.Scheme != o.realm.Scheme || req.URL.Host != o.realm.Host || req.URL.Path != o.realm.Path {
		return o.inner.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	q := req.URL.Query()
	q.Set("offline_token", "true")
	if q.Get("client_id") == "" {
		q.Set("client_id", "ferry")
	}
	req.URL.RawQuery = q.Encode()
	resp, err := o.inner.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(body, &tok) == nil && tok.RefreshToken != "" {
		o.mu.Lock()
		o.refresh = tok.RefreshToken
		o.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// maxTokenBody bounds what is read of a token endpoint's answer.
const maxTokenBody = 64 << 10

// DockerConfigPath is where docker login stores credentials:
// $DOCKER_CONFIG/config.json or ~/.docker/config.json.
func DockerConfigPath() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// DockerHubKey is the key under which docker stores Docker Hub
// credentials, and under which the keychain looks them up.
const DockerHubKey = authn.DefaultAuthKey

// CredentialKey is the key of the docker configuration's "auths" for a
// registry host: https://index.docker.io/v1/ for Docker Hub (docker.io,
// index.docker.io, registry-1.docker.io), the host itself otherwise.
func CredentialKey(host string) string {
	switch host {
	case "docker.io", name.DefaultRegistry, "registry-1.docker.io":
		return DockerHubKey
	}
	return host
}

// SaveCredentials stores user and password for host in the docker
// configuration file, as docker login does without a credential helper,
// under the key docker uses (CredentialKey). With a refreshToken (see
// CheckLogin) it stores that as the identity token, and no password, as
// docker login does. It refuses when the file names a credential helper
// for the host, since the stored entry would then be ignored.
func SaveCredentials(host, user, password, refreshToken string) (string, error) {
	path, err := DockerConfigPath()
	if err != nil {
		return "", err
	}
	key := CredentialKey(host)
	cfg := map[string]json.RawMessage{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return path, fmt.Errorf("%s is not valid JSON: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return path, err
	}
	var store string
	_ = json.Unmarshal(cfg["credsStore"], &store)
	helpers := map[string]string{}
	_ = json.Unmarshal(cfg["credHelpers"], &helpers)
	for _, k := range []string{host, key} {
		if h := helpers[k]; h != "" {
			store = h
		}
	}
	if store != "" {
		return path, fmt.Errorf("%s uses the credential helper %q; log in with docker login %s (ferry reads what it stores)", path, store, host)
	}
	auths := map[string]map[string]any{}
	_ = json.Unmarshal(cfg["auths"], &auths)
	entry := map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	if refreshToken != "" {
		entry = map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":")), "identitytoken": refreshToken}
	}
	auths[key] = entry
	if cfg["auths"], err = json.Marshal(auths); err != nil {
		return path, err
	}
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return path, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return path, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config.json-*")
	if err != nil {
		return path, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return path, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return path, err
	}
	if err := tmp.Close(); err != nil {
		return path, err
	}
	return path, os.Rename(tmp.Name(), path)
}
