package cosign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Key is a trusted public key.
type Key struct {
	// Name says where the key came from (a file name), for messages.
	Name string
	Pub  crypto.PublicKey
}

// Fingerprint is "sha256:<hex>" of the key's PKIX DER encoding, as ferry
// names keys elsewhere.
func (k *Key) Fingerprint() string { return fingerprint(k.Pub) }

func fingerprint(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	s := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ParseKey reads a PEM public key as cosign writes it (PKIX "PUBLIC KEY";
// an RSA "RSA PUBLIC KEY" too): ECDSA P-256, P-384 or P-521, Ed25519, or
// RSA of 2048 bits or more.
func ParseKey(name string, data []byte) (*Key, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("not a PEM public key (want -----BEGIN PUBLIC KEY-----, as cosign.pub)")
	}
	var pub crypto.PublicKey
	var err error
	switch b.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key (want PUBLIC KEY, as cosign.pub; a private key or certificate is not accepted)", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the public key: %w", err)
	}
	return newKey(name, pub)
}

func newKey(name string, pub crypto.PublicKey) (*Key, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T: want ECDSA, Ed25519 or RSA", pub)
	}
	return &Key{Name: name, Pub: pub}, nil
}

// Identity is a keyless signer as cosign's --certificate-identity and
// --certificate-oidc-issuer (or their -regexp forms) name it: a subject
// alternative name of the Fulcio certificate and the OIDC issuer recorded
// in it. Exactly one of Subject and SubjectRegexp, and one of Issuer and
// IssuerRegexp, is set.
type Identity struct {
	Subject, Issuer             string
	SubjectRegexp, IssuerRegexp *regexp.Regexp
}

func (id Identity) String() string {
	s, i := id.Subject, id.Issuer
	if id.SubjectRegexp != nil {
		s = "~" + id.SubjectRegexp.String()
	}
	if id.IssuerRegexp != nil {
		i = "~" + id.IssuerRegexp.String()
	}
	return fmt.Sprintf("%s (issuer %s)", s, i)
}

func (id Identity) matches(subjects []string, issuer string) bool {
	if id.IssuerRegexp != nil {
		if !id.IssuerRegexp.MatchString(issuer) {
			return false
		}
	} else if id.Issuer != issuer {
		return false
	}
	for _, s := range subjects {
		if id.SubjectRegexp != nil && id.SubjectRegexp.MatchString(s) || id.SubjectRegexp == nil && id.Subject == s {
			return true
		}
	}
	return false
}

// Policy is what a signature must satisfy: made by one of Keys, or by a
// certificate that chains to a certificate authority of Root and names one
// of Identities.
type Policy struct {
	Keys       []*Key
	Identities []Identity
	Root       *TrustedRoot
	// Now is the time certificates are checked at when no verified
	// transparency log entry gives the time of signing; nil means
	// time.Now.
	Now func() time.Time
}

// Check reports an incomplete policy.
func (p *Policy) Check() error {
	if len(p.Keys) == 0 && len(p.Identities) == 0 {
		return errors.New("the signature policy names no key and no certificate identity")
	}
	if len(p.Identities) > 0 && (p.Root == nil || len(p.Root.CAs) == 0) {
		return errors.New("certificate identities need a trusted root with at least one certificate authority (--trusted-root)")
	}
	return nil
}

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// TrustedRoot is the part of a Sigstore trusted root
// (application/vnd.dev.sigstore.trustedroot+json) that offline checks use:
// certificate authorities (Fulcio) and transparency logs (Rekor).
type TrustedRoot struct {
	CAs   []CA
	Tlogs []Tlog
}

// CA is a certificate authority: its chain, the root last, and when it
// issued certificates.
type CA struct {
	URI                 string
	Chain               []*x509.Certificate
	ValidFrom, ValidTil time.Time // ValidTil zero: still valid
}

// Tlog is a transparency log's key.
type Tlog struct {
	BaseURL             string
	LogID               []byte // SHA-256 of the key's PKIX DER
	Pub                 crypto.PublicKey
	ValidFrom, ValidTil time.Time
}

type rawValidity struct {
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end"`
}

func (v *rawValidity) window() (time.Time, time.Time) {
	if v == nil {
		return time.Time{}, time.Time{}
	}
	if v.End == nil {
		return v.Start, time.Time{}
	}
	return v.Start, *v.End
}

// maxRootBytes bounds a trusted root file; the public good instance's is
// about 7 KB.
const maxRootBytes = 1 << 20

// ParseTrustedRoot reads a Sigstore trusted_root.json (as `cosign
// trusted-root create` writes, or the TUF repository of a Sigstore
// instance serves).
func ParseTrustedRoot(b []byte) (*TrustedRoot, error) {
	if len(b) > maxRootBytes {
		return nil, fmt.Errorf("trusted root is %d bytes, more than the %d accepted", len(b), maxRootBytes)
	}
	var raw struct {
		MediaType string `json:"mediaType"`
		Tlogs     []struct {
			BaseURL   string `json:"baseUrl"`
			PublicKey struct {
				RawBytes []byte       `json:"rawBytes"`
				ValidFor *rawValidity `json:"validFor"`
			} `json:"publicKey"`
			LogID struct {
				KeyID []byte `json:"keyId"`
			} `json:"logId"`
		} `json:"tlogs"`
		CertificateAuthorities []struct {
			URI       string `json:"uri"`
			CertChain struct {
				Certificates []struct {
					RawBytes []byte `json:"rawBytes"`
				} `json:"certificates"`
			} `json:"certChain"`
			ValidFor *rawValidity `json:"validFor"`
		} `json:"certificateAuthorities"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a Sigstore trusted root (JSON): %w", err)
	}
	if raw.MediaType == "" || !regexp.MustCompile(`^application/vnd\.dev\.sigstore\.trustedroot(\.v0\.1)?\+json`).MatchString(raw.MediaType) {
		return nil, fmt.Errorf("not a Sigstore trusted root: mediaType %q, want application/vnd.dev.sigstore.trustedroot+json;version=0.1", raw.MediaType)
	}
	r := &TrustedRoot{}
	for i, ca := range raw.CertificateAuthorities {
		c := CA{URI: ca.URI}
		c.ValidFrom, c.ValidTil = ca.ValidFor.window()
		for j, cert := range ca.CertChain.Certificates {
			x, err := x509.ParseCertificate(cert.RawBytes)
			if err != nil {
				return nil, fmt.Errorf("trusted root: certificate authority %d, certificate %d: %w", i, j, err)
			}
			c.Chain = append(c.Chain, x)
		}
		if len(c.Chain) == 0 {
			return nil, fmt.Errorf("trusted root: certificate authority %d (%s) has no certificate", i, ca.URI)
		}
		r.CAs = append(r.CAs, c)
	}
	for i, tl := range raw.Tlogs {
		pub, err := x509.ParsePKIXPublicKey(tl.PublicKey.RawBytes)
		if err != nil {
			return nil, fmt.Errorf("trusted root: transparency log %d (%s): %w", i, tl.BaseURL, err)
		}
		t := Tlog{BaseURL: tl.BaseURL, LogID: tl.LogID.KeyID, Pub: pub}
		t.ValidFrom, t.ValidTil = tl.PublicKey.ValidFor.window()
		if len(t.LogID) == 0 {
			der, _ := x509.MarshalPKIXPublicKey(pub)
			s := sha256.Sum256(der)
			t.LogID = s[:]
		}
		r.Tlogs = append(r.Tlogs, t)
	}
	return r, nil
}

func within(t, from, til time.Time) bool {
	return !t.Before(from) && (til.IsZero() || !t.After(til))
}
