package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CheckLogin checks that user and password are accepted by the registry at
// host (GET /v2/ with the credentials, after any token exchange).
func (c *Client) CheckLogin(ctx context.Context, host, user, password string) error {
	opts := c.nameOpts(host + "/x")
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	base := transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent)
	rt, err := transport.NewWithContext(ctx, reg, auth, base, []string{"registry:catalog:*"})
	if err != nil {
		return c.classify(host, err)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	resp, err := c.do(ctx, rt, req, http.StatusOK)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

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

// SaveCredentials stores user and password for host in the docker
// configuration file, as docker login does without a credential helper.
// It refuses when the file names a credential helper for the host, since
// the stored entry would then be ignored.
func SaveCredentials(host, user, password string) (string, error) {
	path, err := DockerConfigPath()
	if err != nil {
		return "", err
	}
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
	if h := helpers[host]; h != "" {
		store = h
	}
	if store != "" {
		return path, fmt.Errorf("%s uses the credential helper %q; log in with docker login %s (ferry reads what it stores)", path, store, host)
	}
	auths := map[string]map[string]any{}
	_ = json.Unmarshal(cfg["auths"], &auths)
	auths[host] = map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
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
