package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/bundle"
)

const unsignedNote = "ferry: note: no --key: the bundle will be unsigned, and importing it will need --insecure-skip-verify (make a key with 'ferry keygen')\n"

// TestExportSignatureSummary: without --key, export says up front that the
// bundle is unsigned and its summary says "unsigned"; with --key, no note,
// and the summary names the key's fingerprint. Not parallel: t.Setenv.
func TestExportSignatureSummary(t *testing.T) {
	_, sample := source(t)
	unsetenv(t, "COSIGN_PASSWORD")
	t.Setenv("FERRY_PASSWORD", "summary")
	dir := t.TempDir()

	res := ferry(t, nil, "export", "-o", filepath.Join(dir, "u.tar.zst"), sample.Refs[0])
	res.expect(t, exitOK)
	if !strings.HasPrefix(res.stderr, unsignedNote) {
		t.Errorf("stderr does not start with the unsigned note:\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, "\n  signature:      unsigned (no --key)\n") {
		t.Errorf("the summary does not say unsigned:\n%s", res.stderr)
	}

	prefix := filepath.Join(dir, "k")
	ferry(t, nil, "keygen", "--output-prefix", prefix).expect(t, exitOK)
	pubPEM, _ := os.ReadFile(prefix + ".pub")
	pub, err := bundle.LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	res = ferry(t, nil, "export", "--key", prefix+".key", "-o", filepath.Join(dir, "s.tar.zst"), sample.Refs[0])
	res.expect(t, exitOK)
	if strings.Contains(res.stderr, "unsigned") {
		t.Errorf("a signed export says unsigned:\n%s", res.stderr)
	}
	if want := "\n  signature:      key " + bundle.Fingerprint(pub) + "\n"; !strings.Contains(res.stderr, want) {
		t.Errorf("the summary has no line %q:\n%s", want, res.stderr)
	}
}

// TestExportHelpShowsKey: the examples of export --help sign.
func TestExportHelpShowsKey(t *testing.T) {
	res := ferry(t, nil, "export", "--help")
	if !strings.Contains(res.stdout, "ferry export nginx:1.27 alpine:3.20 --key ferry.key -o images.tar.zst") {
		t.Errorf("export --help shows no example with --key:\n%s", res.stdout)
	}
}

// TestWrongPasswordNamesVariable: a wrong password says which variable
// it came from, and that FERRY_PASSWORD hides COSIGN_PASSWORD. Not
// parallel: t.Setenv.
func TestWrongPasswordNamesVariable(t *testing.T) {
	_, sample := source(t)
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	unsetenv(t, "COSIGN_PASSWORD")
	t.Setenv("FERRY_PASSWORD", "right")
	ferry(t, nil, "keygen", "--output-prefix", prefix).expect(t, exitOK)
	key := prefix + ".key"
	for _, tc := range []struct {
		name          string
		ferry, cosign string // "-" unset
		want          string
	}{
		{"FERRY_PASSWORD", "wrong", "-", "the password from FERRY_PASSWORD does not decrypt it"},
		{"COSIGN_PASSWORD", "-", "wrong", "the password from COSIGN_PASSWORD does not decrypt it"},
		{"both set", "wrong", "right", "the password from FERRY_PASSWORD does not decrypt it (FERRY_PASSWORD is used before COSIGN_PASSWORD, which is also set)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range map[string]string{"FERRY_PASSWORD": tc.ferry, "COSIGN_PASSWORD": tc.cosign} {
				if v == "-" {
					unsetenv(t, k)
				} else {
					t.Setenv(k, v)
				}
			}
			_, err := loadSigner(&env{}, key)
			want := "loading private key " + key + ": wrong password for the private key: " + tc.want
			if !errors.Is(err, bundle.ErrWrongPassword) || err.Error() != want {
				t.Errorf("loadSigner: %v\nwant ErrWrongPassword and %q", err, want)
			}
			res := ferry(t, nil, "export", "-q", "--key", key, "-o", filepath.Join(dir, "x.tar.zst"), sample.Refs[0])
			if res.code != exitFailure || res.stderr != "ferry: "+want+"\n" {
				t.Errorf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, exitFailure, "ferry: "+want+"\n")
			}
		})
	}
}

// TestRSAKeyRefused: an RSA key (PKCS#8, PKCS#1, or public) is refused
// with what to use instead, not a Go type name.
func TestRSAKeyRefused(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	pkix, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	p8 := writeFile(t, "rsa8.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	p1 := writeFile(t, "rsa1.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	pub := writeFile(t, "rsa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))
	const msg = "RSA keys are not supported; use 'ferry keygen' or 'cosign generate-key-pair'"
	for _, p := range []string{p8, p1} {
		res := ferry(t, nil, "export", "-q", "--key", p, "-o", filepath.Join(t.TempDir(), "x.tar.zst"), "127.0.0.1:1/x:1")
		if want := "ferry: loading private key " + p + ": " + msg + "\n"; res.code != exitFailure || res.stderr != want {
			t.Errorf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, exitFailure, want)
		}
	}
	res := ferry(t, nil, "verify", "--key", pub, p8)
	if want := "ferry: public key " + pub + ": " + msg + " (see 'ferry --help')\n"; res.code != exitUsage || res.stderr != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, exitUsage, want)
	}
}

// TestImagesFileStdin: -f - reads the list from standard input; it cannot
// share standard input with --password-stdin.
func TestImagesFileStdin(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	dir := t.TempDir()
	list := "# from stdin\n" + strings.Join(sample.Refs, "\n") + "\n"
	res := ferry(t, strings.NewReader(list), "export", "-f", "-", "-o", filepath.Join(dir, "x.tar.zst"))
	res.expect(t, exitOK)
	if want := "exported " + strconv.Itoa(len(sample.Refs)) + " images"; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
	}
	res = ferry(t, strings.NewReader(list), "export", "-q", "-f", "-", "-u", "op", "--password-stdin", "-o", filepath.Join(dir, "y.tar.zst"))
	if want := "ferry: --images-file - and --password-stdin both read standard input; put the references in a file (see 'ferry --help')\n"; res.code != exitUsage || res.stderr != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, exitUsage, want)
	}
}
