package registry

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// BoundKeychain answers with auth for the registry host only, and with
// authn.Anonymous for every other registry, so that in an
// authn.NewMultiKeychain the next keychain (the stored credentials) answers
// for those. Credentials given for one command (--username with
// --password-stdin) are bound so: a reference to another registry, or the
// token endpoint another registry names, never receives them. host is
// compared as go-containerregistry names registries: docker.io is
// index.docker.io.
func BoundKeychain(host string, auth authn.Authenticator) (authn.Keychain, error) {
	reg, err := name.NewRegistry(host)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", host, err)
	}
	return boundKeychain{registry: reg.RegistryStr(), auth: auth}, nil
}

type boundKeychain struct {
	registry string
	auth     authn.Authenticator
}

var _ authn.Keychain = boundKeychain{}

func (k boundKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.registry {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}

// RegistryHost is host as go-containerregistry names the registry
// (docker.io is index.docker.io), for comparing two spellings of a host.
func RegistryHost(host string) (string, error) {
	reg, err := name.NewRegistry(host)
	if err != nil {
		return "", err
	}
	return reg.RegistryStr(), nil
}
