package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
)

// Flags of the publisher signature policy, shared by export and import;
// the names are cosign's.
const (
	flagRequireSignature            = "require-signature"
	flagCertificateIdentity         = "certificate-identity"
	flagCertificateIdentityRegexp   = "certificate-identity-regexp"
	flagCertificateOIDCIssuer       = "certificate-oidc-issuer"
	flagCertificateOIDCIssuerRegexp = "certificate-oidc-issuer-regexp"
	flagTrustedRoot                 = "trusted-root"
)

func publisherFlags(where string) []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: flagRequireSignature, Usage: "require every image to carry a cosign signature " + where + " by the public key `KEY` (cosign.pub; repeatable: any of them)"},
		&cli.StringFlag{Name: flagCertificateIdentity, Usage: "also accept a keyless signature whose certificate names `IDENTITY` (email or URI; with --certificate-oidc-issuer and --trusted-root)"},
		&cli.StringFlag{Name: flagCertificateIdentityRegexp, Usage: "as --certificate-identity, matching the Go regular expression `RE`"},
		&cli.StringFlag{Name: flagCertificateOIDCIssuer, Usage: "the OIDC issuer `URL` the keyless certificate must name"},
		&cli.StringFlag{Name: flagCertificateOIDCIssuerRegexp, Usage: "as --certificate-oidc-issuer, matching the Go regular expression `RE`"},
		&cli.StringFlag{Name: flagTrustedRoot, Usage: "Sigstore trusted root `FILE` (trusted_root.json) holding the certificate authorities and transparency log keys of keyless signatures"},
	}
}

// signaturePolicy maps publisherFlags; nil when none is given. Every
// mistake in them is a usage error, found before anything is fetched.
func signaturePolicy(c *cli.Context) (*bundle.SignaturePolicy, error) {
	var keys []bundle.PublisherKey
	for _, f := range c.StringSlice(flagRequireSignature) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("--%s %s: %v", flagRequireSignature, f, err)
		}
		k, err := bundle.ParsePublisherKey(f, b)
		if err != nil {
			return nil, usagef("--%s %s: %v", flagRequireSignature, f, err)
		}
		keys = append(keys, k)
	}
	id := bundle.CertificateIdentity{
		Subject: c.String(flagCertificateIdentity), SubjectRegexp: c.String(flagCertificateIdentityRegexp),
		Issuer: c.String(flagCertificateOIDCIssuer), IssuerRegexp: c.String(flagCertificateOIDCIssuerRegexp),
	}
	var ids []bundle.CertificateIdentity
	if id != (bundle.CertificateIdentity{}) {
		if id.Subject == "" && id.SubjectRegexp == "" || id.Issuer == "" && id.IssuerRegexp == "" {
			return nil, usagef("a keyless signer needs both --%s (or --%s) and --%s (or --%s)", flagCertificateIdentity, flagCertificateIdentityRegexp, flagCertificateOIDCIssuer, flagCertificateOIDCIssuerRegexp)
		}
		if c.String(flagTrustedRoot) == "" {
			return nil, usagef("--%s needs --%s FILE: keyless certificates are checked offline against a Sigstore trusted root", flagCertificateIdentity, flagTrustedRoot)
		}
		ids = append(ids, id)
	}
	var root []byte
	if f := c.String(flagTrustedRoot); f != "" {
		if len(ids) == 0 {
			return nil, usagef("--%s is used only for keyless signatures: give --%s and --%s too", flagTrustedRoot, flagCertificateIdentity, flagCertificateOIDCIssuer)
		}
		var err error
		if root, err = os.ReadFile(f); err != nil {
			return nil, usagef("--%s %s: %v", flagTrustedRoot, f, err)
		}
	}
	if len(keys) == 0 && len(ids) == 0 {
		return nil, nil
	}
	p, err := bundle.NewSignaturePolicy(keys, ids, root)
	if err != nil {
		return nil, usagef("signature policy: %v", err)
	}
	return p, nil
}

// signersLine says how many images were checked and by what they are
// signed, each signer once, for the summaries of export and import.
func signersLine(signed []bundle.PublisherSignature) string {
	var by []string
	seen := map[string]bool{}
	for _, s := range signed {
		if !seen[s.SignedBy] {
			seen[s.SignedBy] = true
			by = append(by, s.SignedBy)
		}
	}
	return fmt.Sprintf("%d image(s) signed by their publishers (%s)", len(signed), firstOf(by, 3))
}
