package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

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
