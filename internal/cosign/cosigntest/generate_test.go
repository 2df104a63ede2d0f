package cosigntest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/cosign/cosigntest"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// fixtures is testdata/publisher, from this package's directory.
const fixtures = "../../../testdata/publisher"

// TestRegenerateFixtures signs the test images with the cosign CLI in a
// loopback registry and records what it pushed in testdata/publisher. It
// changes the fixtures (ECDSA signatures are randomised), so it runs only
// when asked: FERRY_REGENERATE_PUBLISHER_FIXTURES=1, with cosign in PATH.
func TestRegenerateFixtures(t *testing.T) {
	if os.Getenv("FERRY_REGENERATE_PUBLISHER_FIXTURES") != "1" {
		t.Skip("rewrites testdata/publisher; set FERRY_REGENERATE_PUBLISHER_FIXTURES=1 to run (needs cosign in PATH)")
	}
	cosignBin, err := exec.LookPath("cosign")
	if err != nil {
		t.Fatal("cosign is not in PATH")
	}
	ctx := context.Background()
	reg := registrytest.New(t, registrytest.Options{})
	images, err := cosigntest.PushImages(ctx, reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	keyless := filepath.Join(fixtures, "keyless")
	if _, err := os.Stat(filepath.Join(keyless, "leaf.key")); os.IsNotExist(err) {
		makeKeyless(t, keyless)
	}
	home := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(cosignBin, args...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "COSIGN_PASSWORD=ferry-test", "SIGSTORE_NO_CACHE=true"}
		out, err := cmd.CombinedOutput()
		t.Logf("cosign %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("cosign %s: %v", args[0], err)
		}
	}
	ref := func(repo string) string { return reg.Host + "/" + repo + "@" + images[repo].String() }
	key := "../../../testdata/cosign/ecdsa.key"
	common := []string{"--tlog-upload=false", "--allow-insecure-registry", "--yes"}
	run(append([]string{"sign", "--key", key}, append(common, ref("team/signed"))...)...)
	pred := filepath.Join(t.TempDir(), "predicate.json")
	if err := os.WriteFile(pred, []byte(`{"buildType":"https://ferry.example/test","builder":{"id":"ferry-test"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run(append([]string{"attest", "--key", key, "--type", "slsaprovenance", "--predicate", pred}, append(common, ref("team/signed"))...)...)
	run(append([]string{"sign", "--key", key, "--new-bundle-format"}, append(common, ref("team/bundled"))...)...)
	run(append([]string{"attest", "--key", key, "--new-bundle-format", "--type", "slsaprovenance", "--predicate", pred}, append(common, ref("team/attested"))...)...)
	run(append([]string{"sign", "--key", filepath.Join(keyless, "leaf.key"), "--certificate", filepath.Join(keyless, "leaf.pem"), "--certificate-chain", filepath.Join(keyless, "ca.pem")}, append(common, ref("team/keyless"))...)...)
	run(append([]string{"sign", "--key", key, "--recursive"}, append(common, ref("team/multi"))...)...)
	out := filepath.Join(fixtures, "registry")
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	if err := cosigntest.Dump(ctx, reg.Host, images, out); err != nil {
		t.Fatal(err)
	}
}

// Fulcio's certificate extensions for the OIDC issuer (v1: raw string; v2:
// DER UTF8String).
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// makeKeyless writes a certificate authority shaped like Fulcio's, a
// signing certificate it issued for release@example.com with issuer
// https://issuer.example, its key (cosign's encrypted format, password
// ferry-test), and trusted roots: one naming the CA, one naming another CA.
func makeKeyless(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	til := from.AddDate(10, 0, 0)
	ca, caKey := makeCA(t, "ferry test CA", from, til)
	other, _ := makeCA(t, "another CA", from, til)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v2, _ := asn1.MarshalWithParams("https://issuer.example", "utf8")
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(2),
		NotBefore:      from,
		NotAfter:       til,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{"release@example.com"},
		ExtraExtensions: []pkix.Extension{
			{Id: oidIssuerV1, Value: []byte("https://issuer.example")},
			{Id: oidIssuerV2, Value: v2},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := bundle.MarshalPrivateKey(leafKey, []byte("ferry-test"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write("leaf.key", keyPEM)
	write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	write("trusted_root.json", trustedRoot(t, ca, from))
	write("other_root.json", trustedRoot(t, other, from))
}

func makeCA(t *testing.T, cn string, from, til time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"ferry test"}},
		NotBefore:             from,
		NotAfter:              til,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func trustedRoot(t *testing.T, ca *x509.Certificate, from time.Time) []byte {
	root := map[string]any{
		"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
		"certificateAuthorities": []any{map[string]any{
			"subject":   map[string]any{"organization": "ferry test", "commonName": ca.Subject.CommonName},
			"uri":       "https://fulcio.test",
			"certChain": map[string]any{"certificates": []any{map[string]any{"rawBytes": ca.Raw}}},
			"validFor":  map[string]any{"start": from.Format(time.RFC3339)},
		}},
	}
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
