package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/cosign/cosigntest"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// The publisher signature flags: what is not a policy is a usage error
// (exit 2) saying what is wrong with which flag, found before any
// registry is contacted.
func TestRequireSignatureUsage(t *testing.T) {
	dir := t.TempDir()
	text := writeFile(t, "notes.txt", []byte("not a key\n"))
	root := "../../testdata/publisher/keyless/trusted_root.json"
	for _, tc := range []struct {
		name  string
		args  []string
		words []string
	}{
		{"a private key", []string{"--require-signature", cosignDir + "/ecdsa.key"},
			[]string{`--require-signature ../../testdata/cosign/ecdsa.key: PEM block "ENCRYPTED SIGSTORE PRIVATE KEY" is not a public key (want PUBLIC KEY, as cosign.pub; a private key or certificate is not accepted)`}},
		{"not PEM", []string{"--require-signature", text}, []string{"--require-signature " + text + ": not a PEM public key (want -----BEGIN PUBLIC KEY-----, as cosign.pub)"}},
		{"missing", []string{"--require-signature", filepath.Join(dir, "nope.pub")}, []string{"--require-signature " + filepath.Join(dir, "nope.pub") + ": open", "no such file or directory"}},
		{"identity without issuer", []string{"--certificate-identity", "a@example.com", "--trusted-root", root}, []string{"a keyless signer needs both --certificate-identity (or --certificate-identity-regexp) and --certificate-oidc-issuer (or --certificate-oidc-issuer-regexp)"}},
		{"identity without trusted root", []string{"--certificate-identity", "a@example.com", "--certificate-oidc-issuer", "https://issuer.example"}, []string{"--certificate-identity needs --trusted-root FILE"}},
		{"trusted root alone", []string{"--trusted-root", root}, []string{"--trusted-root is used only for keyless signatures"}},
		{"not a trusted root", []string{"--certificate-identity", "a@example.com", "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", cosignDir + "/index.json"}, []string{"signature policy: not a Sigstore trusted root: mediaType \"application/vnd.oci.image.index.v1+json\""}},
		{"bad regexp", []string{"--certificate-identity-regexp", "(", "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", root}, []string{"signature policy: certificate identity regexp \"(\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "b.tar.zst")
			r := ferry(t, nil, append([]string{"export", "127.0.0.1:1/x:1", "-o", out}, tc.args...)...)
			r.expect(t, exitUsage, tc.words...)
			if _, err := os.Stat(out); err == nil {
				t.Error("a bundle was written")
			}
		})
	}
	r := ferry(t, nil, "import", "-", "--to", "127.0.0.1:1", "--insecure-skip-verify", "--require-signature", cosignDir+"/ecdsa.pub")
	r.expect(t, exitUsage, "--require-signature needs a bundle file: the signatures are read before anything is pushed, and standard input can be read only once")
}

// An unsigned image fails export (exit 1) and import (exit 1) naming it;
// the signed one passes both.
func TestRequireSignatureCLI(t *testing.T) {
	reg := registrytest.New(t, registrytest.Options{})
	rec, err := cosigntest.Replay(context.Background(), reg.Host, "../../testdata/publisher/registry")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar.zst")
	signed, unsigned := reg.Host+"/team/signed:1.0", reg.Host+"/team/unsigned:1.0"
	r := ferry(t, nil, "export", signed, unsigned, "-o", out, "--require-signature", cosignDir+"/ecdsa.pub", "-q")
	r.expect(t, exitFailure, "publisher signature required: 1 of 2 image(s) carry no valid signature", "nothing was written", unsigned+" ("+rec.Images["team/unsigned"].String()+"): no signature found")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a bundle was written")
	}
	ferry(t, nil, "export", signed, unsigned, "-o", out, "-q").expect(t, exitOK)
	dst := registrytest.New(t, registrytest.Options{})
	r = ferry(t, nil, "import", out, "--to", dst.Host, "--insecure-skip-verify", "--require-signature", cosignDir+"/ecdsa.pub", "-q")
	r.expect(t, exitFailure, "nothing was pushed", unsigned+" ("+rec.Images["team/unsigned"].String()+"): no signature found")
	if n := dst.Requests.Load(); n != 0 {
		t.Errorf("the destination received %d requests", n)
	}
	b, _ := os.ReadFile(cosignDir + "/ecdsa.pub")
	k, err := bundle.ParsePublisherKey("ecdsa.pub", b)
	if err != nil {
		t.Fatal(err)
	}
	fp := "key " + k.Fingerprint()
	r = ferry(t, nil, "export", signed, "-o", out, "--require-signature", cosignDir+"/ecdsa.pub")
	r.expect(t, exitOK)
	if want := "  publishers:     1 image(s) signed by their publishers (" + fp + ")\n"; !strings.Contains(r.stderr, want) {
		t.Errorf("export summary does not say %q:\n%s", want, r.stderr)
	}
	r = ferry(t, nil, "import", out, "--to", dst.Host, "--insecure-skip-verify", "--require-signature", cosignDir+"/ecdsa.pub")
	r.expect(t, exitOK)
	if want := "checked before the push: 1 image(s) signed by their publishers (" + fp + ")\n"; !strings.Contains(r.stderr, want) {
		t.Errorf("import summary does not say %q:\n%s", want, r.stderr)
	}
	// The --json documents name the signer of each image.
	r = ferry(t, nil, "export", signed, "-o", out, "--json", "--require-signature", cosignDir+"/ecdsa.pub")
	r.expect(t, exitOK)
	var exp struct {
		Images []struct{ Ref, PublisherSignedBy string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &exp); err != nil || len(exp.Images) != 1 || exp.Images[0].Ref != signed || exp.Images[0].PublisherSignedBy != fp {
		t.Errorf("export --json: %v %+v\n%s", err, exp, r.stdout)
	}
	r = ferry(t, nil, "import", out, "--to", dst.Host, "--json", "--insecure-skip-verify", "--require-signature", cosignDir+"/ecdsa.pub")
	r.expect(t, exitOK)
	var imp struct {
		Images []struct{ Source, PublisherSignedBy string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &imp); err != nil || len(imp.Images) == 0 || imp.Images[0].Source != signed || imp.Images[0].PublisherSignedBy != fp {
		t.Errorf("import --json: %v %+v\n%s", err, imp, r.stdout)
	}
	for _, img := range imp.Images[1:] {
		if img.PublisherSignedBy != "" {
			t.Errorf("import --json: referrer %s has publisherSignedBy %q", img.Source, img.PublisherSignedBy)
		}
	}
}
