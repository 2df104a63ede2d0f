package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// TestPrivateCAAndCredentials exports from a registry behind TLS with a
// private certificate, then imports into one that requires a password,
// with the connection flags an air-gapped site uses.
func TestPrivateCAAndCredentials(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{TLS: true})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, src.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	// The sample pusher trusts the system roots only: seed a plain
	// registry, export from it, then import into the TLS one.
	plain := registrytest.New(t, registrytest.Options{})
	sample, err := testimages.Push(context.Background(), plain.Host, 1024)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	out := filepath.Join(dir, "b.tar.zst")
	ferry(t, nil, append([]string{"export", "-q", "-o", out}, sample.Refs[:2]...)...).expect(t, exitOK)

	// Without the CA the TLS registry is refused; with --ca-file it works.
	res := ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--to", src.Host+"/m", out)
	res.expect(t, exitFailure, "certificate")
	ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--ca-file", ca, "--to", src.Host+"/m", out).expect(t, exitOK)
	// --insecure-registry skips verification for that host only.
	ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--insecure-registry", src.Host, "--to", src.Host+"/n", out).expect(t, exitOK)

	// Credentials from --username and --password-stdin.
	auth := registrytest.New(t, registrytest.Options{Username: "op", Password: "s3cret"})
	ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--to", auth.Host+"/m", out).expect(t, exitFailure, "authentication refused")
	ferry(t, strings.NewReader("s3cret\n"), "import", "-q", "--insecure-skip-verify", "-u", "op", "--password-stdin", "--to", auth.Host+"/m", out).expect(t, exitOK)
	ferry(t, strings.NewReader("wrong\n"), "import", "-q", "--insecure-skip-verify", "-u", "op", "--password-stdin", "--to", auth.Host+"/x", out).expect(t, exitFailure, "authentication refused")
	// Bad flag combinations are usage errors.
	ferry(t, nil, "import", "--insecure-skip-verify", "-u", "op", "--to", auth.Host, out).expect(t, exitUsage, "--password-stdin")
	ferry(t, nil, "import", "--insecure-skip-verify", "--client-cert", ca, "--to", auth.Host, out).expect(t, exitUsage, "--client-key")
	ferry(t, nil, "import", "--insecure-skip-verify", "--ca-file", out, "--to", auth.Host, out).expect(t, exitUsage, "no PEM certificate")
}

// TestRetriesFlag: --retries N means at most N+1 requests for a manifest
// that the registry never serves (0: no retry at all).
func TestRetriesFlag(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	img, err := testimages.Image("linux/amd64", false, testimages.Layer("retries-flag", 1024))
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/team/app:1.0"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		retries string
		want    int64
	}{{"0", 1}, {"1", 2}} {
		fault := &registrytest.Fault{Method: http.MethodGet, Path: "/manifests/", Status: http.StatusServiceUnavailable, Times: 1000}
		reg.InjectFaults(fault)
		ferry(t, nil, "export", "-q", "--retries", tc.retries, "-o", filepath.Join(dir, "b.tar.zst"), ref).
			expect(t, exitFailure, "resolving "+ref+": GET ", "UNAVAILABLE: injected fault")
		if fault.Hits() != tc.want {
			t.Errorf("--retries %s: the manifest was requested %d times, want %d", tc.retries, fault.Hits(), tc.want)
		}
		assertDirEmpty(t, dir)
	}
}
