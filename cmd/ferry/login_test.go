package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

func TestLogin(t *testing.T) {
	plain := registrytest.New(t, registrytest.Options{})
	sample, err := testimages.Push(t.Context(), plain.Host, 1024)
	if err != nil {
		t.Fatal(err)
	}
	auth := registrytest.New(t, registrytest.Options{Username: "op", Password: "s3cret"})
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	out := filepath.Join(t.TempDir(), "b.tar.zst")
	ferry(t, nil, "export", "-q", "-o", out, sample.Refs[0]).expect(t, exitOK)

	res := ferry(t, strings.NewReader("pw-XYZZY-secret\n"), "login", auth.Host, "-u", "op", "--password-stdin")
	res.expect(t, exitFailure, "authentication refused", auth.Host)
	if strings.Contains(res.stderr+res.stdout, "XYZZY") || strings.Contains(res.stderr, "Authorization") {
		t.Errorf("the password or an Authorization header appears in the output: %s", res.stderr)
	}
	if _, err := os.Stat(filepath.Join(cfg, "config.json")); err == nil {
		t.Error("a refused login stored credentials")
	}
	ferry(t, nil, "login", auth.Host, "-u", "op").expect(t, exitUsage, "--password-stdin")
	ferry(t, strings.NewReader("s3cret\n"), "login", auth.Host, "-u", "op", "--password-stdin").expect(t, exitOK)
	st, err := os.Stat(filepath.Join(cfg, "config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json not stored with mode 0600: %v %v", st, err)
	}
	// export and import now find the credentials; --debug shows the
	// requests but never the credentials.
	res = ferry(t, nil, "import", "-q", "--debug", "--insecure-skip-verify", "--to", auth.Host+"/m", out)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, "Authorization: <redacted>") || strings.Contains(res.stderr, "b3A6czNjcmV0") {
		t.Errorf("debug log should show a redacted Authorization header and never the credentials:\n%s", res.stderr)
	}

	// A credential helper in the config is respected, not overwritten.
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"credsStore":"desktop"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ferry(t, strings.NewReader("s3cret\n"), "login", auth.Host, "-u", "op", "--password-stdin").expect(t, exitFailure, "credential helper")
}

// TestLoginConnectionFlags: login takes the connection flags of export and
// import. A registry with a private CA is refused without --ca-file and
// accepted with it (or with --insecure-registry); --debug logs the requests
// with the credentials redacted; wrong connection flags are usage errors.
func TestLoginConnectionFlags(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{TLS: true, Username: "op", Password: "s3cret"})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, reg.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	stored := func() bool {
		_, err := os.Stat(filepath.Join(cfg, "config.json"))
		return err == nil
	}
	login := func(args ...string) result {
		return ferry(t, strings.NewReader("s3cret\n"), append([]string{"login", reg.Host, "-u", "op", "--password-stdin"}, args...)...)
	}

	login().expect(t, exitFailure, "logging in to "+reg.Host, "certificate signed by unknown authority")
	if stored() {
		t.Fatal("a login refused for its certificate stored credentials")
	}
	login("--ca-file", filepath.Join(dir, "missing.pem")).expect(t, exitUsage, "--ca-file", "missing.pem")
	login("--ca-file", cfg).expect(t, exitUsage, "--ca-file")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	login("--ca-file", notPEM).expect(t, exitUsage, "--ca-file "+notPEM+" holds no PEM certificate")
	login("--ca-file", ca, "--client-cert", ca).expect(t, exitUsage, "--client-cert and --client-key go together")

	res := login("--ca-file", ca, "--debug")
	res.expect(t, exitOK)
	if !stored() {
		t.Fatal("login with --ca-file stored no credentials")
	}
	for _, w := range []string{"--> ", "GET https://" + reg.Host + "/v2/", "<-- 200", "Authorization: <redacted>", "login succeeded"} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("login --debug: stderr does not show %q:\n%s", w, res.stderr)
		}
	}
	if strings.Contains(res.stderr, "s3cret") || strings.Contains(res.stderr, "b3A6czNjcmV0") {
		t.Errorf("login --debug shows the password:\n%s", res.stderr)
	}
	// --insecure-registry skips the certificate check for that host only.
	if err := os.Remove(filepath.Join(cfg, "config.json")); err != nil {
		t.Fatal(err)
	}
	login("--insecure-registry", reg.Host).expect(t, exitOK)
	if !stored() {
		t.Fatal("login with --insecure-registry stored no credentials")
	}
}
