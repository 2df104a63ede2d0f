package cosign

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// evidence is what a signature carries besides itself: a certificate and
// its chain, and transparency log entries that may give the time of
// signing.
type evidence struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
	// rekorBundle is the classic dev.sigstore.cosign/bundle annotation.
	rekorBundle []byte
	// tlog are the entries of a Sigstore bundle.
	tlog []bundleTlogEntry
}

// Fulcio certificate extensions holding the OIDC issuer.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// maxChain bounds the certificates read from a signature's PEM.
const maxChain = 10

func parseCertPEM(certPEM, chainPEM string) (*x509.Certificate, []*x509.Certificate, error) {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEMLimited([]byte(certPEM), maxChain)
	if err != nil || len(certs) == 0 {
		return nil, nil, fmt.Errorf("%w: the certificate annotation holds no PEM certificate", ErrMalformed)
	}
	var chain []*x509.Certificate
	if chainPEM != "" {
		if chain, err = cryptoutils.UnmarshalCertificatesFromPEMLimited([]byte(chainPEM), maxChain); err != nil {
			return nil, nil, fmt.Errorf("%w: the chain annotation: %v", ErrMalformed, err)
		}
	}
	return certs[0], chain, nil
}

// certIdentity returns the subject alternative names and the OIDC issuer
// of a Fulcio certificate.
func certIdentity(c *x509.Certificate) ([]string, string) {
	subjects := cryptoutils.GetSubjectAlternateNames(c)
	issuer := ""
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(oidIssuerV2):
			var s string
			if rest, err := asn1.Unmarshal(e.Value, &s); err == nil && len(rest) == 0 {
				issuer = s
			}
		case e.Id.Equal(oidIssuerV1) && issuer == "":
			issuer = string(e.Value)
		}
	}
	return subjects, issuer
}

// keyless verifies a signature made with a certificate's key: the
// signature with the certificate's public key, the certificate against the
// trusted root's certificate authorities at the time of signing, and its
// identity against the policy.
func (v *verifier) keyless(message, sig []byte, ev *evidence) (string, error) {
	subjects, issuer := certIdentity(ev.cert)
	who := fmt.Sprintf("%s (issuer %s)", strings.Join(subjects, ", "), issuer)
	if !verifySig(ev.cert.PublicKey, message, sig) {
		return "", fmt.Errorf("%w with the public key of its certificate for %s", ErrBadSignature, who)
	}
	at, logged, err := v.signedTime(sig, ev)
	if err != nil {
		return "", err
	}
	if err := v.chains(ev, at); err != nil {
		when := "now"
		if logged {
			when = "at " + at.UTC().Format(time.RFC3339) + ", when the transparency log recorded the signature"
		}
		return "", fmt.Errorf("%w: the certificate for %s does not chain to a certificate authority of the trusted root valid %s: %v", ErrUntrustedCertificate, who, when, err)
	}
	for _, id := range v.p.Identities {
		if id.matches(subjects, issuer) {
			return "certificate " + who, nil
		}
	}
	want := make([]string, len(v.p.Identities))
	for i, id := range v.p.Identities {
		want[i] = id.String()
	}
	return "", fmt.Errorf("%w: signed by %s, the policy accepts %s", ErrIdentityMismatch, who, strings.Join(want, " or "))
}

func (v *verifier) chains(ev *evidence, at time.Time) error {
	var last error = errors.New("no certificate authority in the trusted root")
	for _, ca := range v.p.Root.CAs {
		if !within(at, ca.ValidFrom, ca.ValidTil) {
			last = fmt.Errorf("certificate authority %s is valid from %s", ca.URI, ca.ValidFrom.UTC().Format(time.RFC3339))
			continue
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(ca.Chain[len(ca.Chain)-1])
		for _, c := range ca.Chain[:len(ca.Chain)-1] {
			inter.AddCert(c)
		}
		for _, c := range ev.chain {
			inter.AddCert(c)
		}
		_, err := ev.cert.Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		})
		if err == nil {
			return nil
		}
		last = err
	}
	return last
}

// signedTime is the time a certificate is checked at: the integrated time
// of a transparency log entry whose signed entry timestamp verifies with a
// log key of the trusted root and whose body records this signature and
// certificate; without one, now.
func (v *verifier) signedTime(sig []byte, ev *evidence) (time.Time, bool, error) {
	var entries []tlogEntry
	if len(ev.rekorBundle) > 0 {
		e, err := parseRekorBundle(ev.rekorBundle)
		if err != nil {
			return time.Time{}, false, err
		}
		entries = append(entries, e)
	}
	for _, b := range ev.tlog {
		e, err := b.entry()
		if err != nil {
			return time.Time{}, false, err
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return v.p.now(), false, nil
	}
	var last error
	for _, e := range entries {
		if e.set == nil {
			last = fmt.Errorf("%w: the transparency log entry has no signed entry timestamp (inclusion proofs are not checked offline)", ErrUntrustedCertificate)
			continue
		}
		if err := v.checkEntry(e, sig, ev); err != nil {
			last = err
			continue
		}
		return time.Unix(e.IntegratedTime, 0), true, nil
	}
	return time.Time{}, false, last
}

// tlogEntry is a Rekor entry as signed by its signed entry timestamp.
type tlogEntry struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
	set            []byte
}

func parseRekorBundle(b []byte) (tlogEntry, error) {
	var rb struct {
		SignedEntryTimestamp []byte    `json:"SignedEntryTimestamp"`
		Payload              tlogEntry `json:"Payload"`
	}
	if err := json.Unmarshal(b, &rb); err != nil {
		return tlogEntry{}, fmt.Errorf("%w: the %s annotation is not JSON: %v", ErrMalformed, AnnotationBundle, err)
	}
	e := rb.Payload
	e.set = rb.SignedEntryTimestamp
	return e, nil
}

// bundleTlogEntry is a transparency log entry of a Sigstore bundle.
type bundleTlogEntry struct {
	LogIndex string `json:"logIndex"`
	LogID    struct {
		KeyID []byte `json:"keyId"`
	} `json:"logId"`
	IntegratedTime   string `json:"integratedTime"`
	InclusionPromise *struct {
		SignedEntryTimestamp []byte `json:"signedEntryTimestamp"`
	} `json:"inclusionPromise"`
	CanonicalizedBody []byte `json:"canonicalizedBody"`
}

func (b bundleTlogEntry) entry() (tlogEntry, error) {
	it, err1 := strconv.ParseInt(b.IntegratedTime, 10, 64)
	li, err2 := strconv.ParseInt(b.LogIndex, 10, 64)
	if err1 != nil || err2 != nil {
		return tlogEntry{}, fmt.Errorf("%w: transparency log entry with integrated time %q, index %q", ErrMalformed, b.IntegratedTime, b.LogIndex)
	}
	e := tlogEntry{Body: base64.StdEncoding.EncodeToString(b.CanonicalizedBody), IntegratedTime: it, LogID: hex.EncodeToString(b.LogID.KeyID), LogIndex: li}
	if b.InclusionPromise != nil {
		e.set = b.InclusionPromise.SignedEntryTimestamp
	}
	return e, nil
}

// checkEntry verifies an entry's signed entry timestamp with the trusted
// root's log key, and that its body records sig and the certificate.
func (v *verifier) checkEntry(e tlogEntry, sig []byte, ev *evidence) error {
	id, err := hex.DecodeString(e.LogID)
	if err != nil {
		return fmt.Errorf("%w: transparency log id %q", ErrMalformed, e.LogID)
	}
	var log *Tlog
	if v.p.Root != nil {
		for i := range v.p.Root.Tlogs {
			if bytes.Equal(v.p.Root.Tlogs[i].LogID, id) {
				log = &v.p.Root.Tlogs[i]
			}
		}
	}
	if log == nil {
		return fmt.Errorf("%w: the signature was logged by transparency log %s, which the trusted root does not name", ErrUntrustedCertificate, e.LogID)
	}
	at := time.Unix(e.IntegratedTime, 0)
	if !within(at, log.ValidFrom, log.ValidTil) {
		return fmt.Errorf("%w: transparency log %s was not valid at %s", ErrUntrustedCertificate, log.BaseURL, at.UTC().Format(time.RFC3339))
	}
	canonical, _ := json.Marshal(e) // fields in key order, no spaces: canonical JSON
	if !verifySig(log.Pub, canonical, e.set) {
		return fmt.Errorf("%w: the signed entry timestamp of transparency log entry %d does not verify with the key of %s", ErrUntrustedCertificate, e.LogIndex, log.BaseURL)
	}
	body, err := base64.StdEncoding.DecodeString(e.Body)
	if err != nil {
		return fmt.Errorf("%w: transparency log entry body is not base64", ErrMalformed)
	}
	return checkBody(body, sig, ev)
}

// checkBody checks that a Rekor entry body (hashedrekord or dsse, version
// 0.0.1) records this signature made with this certificate.
func checkBody(body, sig []byte, ev *evidence) error {
	var b struct {
		Kind string `json:"kind"`
		Spec struct {
			Signature struct {
				Content   []byte `json:"content"`
				PublicKey struct {
					Content []byte `json:"content"`
				} `json:"publicKey"`
			} `json:"signature"`
			Signatures []struct {
				Signature string `json:"signature"`
				Verifier  []byte `json:"verifier"`
			} `json:"signatures"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return fmt.Errorf("%w: transparency log entry body: %v", ErrMalformed, err)
	}
	sameCert := func(p []byte) bool {
		blk, _ := pem.Decode(p)
		return blk != nil && bytes.Equal(blk.Bytes, ev.cert.Raw)
	}
	switch b.Kind {
	case "hashedrekord":
		if bytes.Equal(b.Spec.Signature.Content, sig) && sameCert(b.Spec.Signature.PublicKey.Content) {
			return nil
		}
	case "dsse":
		for _, s := range b.Spec.Signatures {
			if s.Signature == base64.StdEncoding.EncodeToString(sig) && sameCert(s.Verifier) {
				return nil
			}
		}
	default:
		return fmt.Errorf("%w: transparency log entry of kind %q; only hashedrekord and dsse entries are read", ErrUntrustedCertificate, b.Kind)
	}
	return fmt.Errorf("%w: the transparency log entry records another signature or certificate", ErrUntrustedCertificate)
}

// hashOf is the SHA-256 of b, for messages.
func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
