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
