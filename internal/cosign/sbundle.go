package cosign

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
)

// sigstoreBundle is the part of a Sigstore bundle (v0.1 to v0.3) that
// Verify reads.
type sigstoreBundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		Certificate *struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"certificate"`
		X509CertificateChain *struct {
			Certificates []struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"certificates"`
		} `json:"x509CertificateChain"`
		TlogEntries []bundleTlogEntry `json:"tlogEntries"`
	} `json:"verificationMaterial"`
	MessageSignature *struct {
		MessageDigest struct {
			Algorithm string `json:"algorithm"`
			Digest    []byte `json:"digest"`
		} `json:"messageDigest"`
		Signature []byte `json:"signature"`
	} `json:"messageSignature"`
	DSSEEnvelope *struct {
		Payload     []byte `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig []byte `json:"sig"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
}

// inTotoStatement is the part of an in-toto statement Verify reads.
type inTotoStatement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
}

// pae is DSSE's pre-authentication encoding, what a DSSE signature signs.
func pae(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

func (v *verifier) sigstoreBundle(ctx context.Context, raw []byte) (string, error) {
	var b sigstoreBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return "", fmt.Errorf("%w: the Sigstore bundle is not JSON: %v", ErrMalformed, err)
	}
	if !strings.HasPrefix(b.MediaType, "application/vnd.dev.sigstore.bundle") {
		return "", fmt.Errorf("%w: Sigstore bundle of media type %q", ErrMalformed, b.MediaType)
	}
	ev := &evidence{tlog: b.VerificationMaterial.TlogEntries}
	if len(ev.tlog) > MaxCandidates {
		return "", fmt.Errorf("%w: %d transparency log entries", ErrTooLarge, len(ev.tlog))
	}
	vm := b.VerificationMaterial
	var der [][]byte
	switch {
	case vm.Certificate != nil:
		der = [][]byte{vm.Certificate.RawBytes}
	case vm.X509CertificateChain != nil:
		for _, c := range vm.X509CertificateChain.Certificates {
			der = append(der, c.RawBytes)
		}
	}
	if len(der) > maxChain {
		return "", fmt.Errorf("%w: a chain of %d certificates", ErrTooLarge, len(der))
	}
	for i, d := range der {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return "", fmt.Errorf("%w: the bundle's certificate %d: %v", ErrMalformed, i, err)
		}
		if i == 0 {
			ev.cert = c
		} else {
			ev.chain = append(ev.chain, c)
		}
	}
	switch {
	case b.DSSEEnvelope != nil:
		env := b.DSSEEnvelope
		if env.PayloadType != inTotoPayloadType {
			return "", fmt.Errorf("%w: DSSE payload type %q", errNotSignature, env.PayloadType)
		}
		var st inTotoStatement
		if err := json.Unmarshal(env.Payload, &st); err != nil {
			return "", fmt.Errorf("%w: the DSSE payload is not an in-toto statement: %v", ErrMalformed, err)
		}
		if st.PredicateType != SignPredicateType {
			return "", fmt.Errorf("%w: an attestation of type %s", errNotSignature, st.PredicateType)
		}
		found := false
		for _, s := range st.Subject {
			if s.Digest[v.img.Digest.Algorithm().String()] == v.img.Digest.Encoded() {
				found = true
			}
		}
		if !found {
			return "", fmt.Errorf("%w: the signed statement does not name %s among its subjects", ErrWrongImage, v.img.Digest)
		}
		if len(env.Signatures) != 1 {
			return "", fmt.Errorf("%w: a DSSE envelope with %d signatures, want 1", ErrMalformed, len(env.Signatures))
		}
		return v.check(pae(env.PayloadType, env.Payload), env.Signatures[0].Sig, ev)
	case b.MessageSignature != nil:
		ms := b.MessageSignature
		if ms.MessageDigest.Algorithm != "SHA2_256" || v.img.Digest.Algorithm().String() != "sha256" {
			return "", fmt.Errorf("%w: message digest algorithm %q", ErrMalformed, ms.MessageDigest.Algorithm)
		}
		if !bytes.Equal(ms.MessageDigest.Digest, mustHex(v.img.Digest.Encoded())) {
			return "", fmt.Errorf("%w: the bundle signs a message of sha256 %x, not the manifest %s", ErrWrongImage, ms.MessageDigest.Digest, v.img.Digest)
		}
		// The message is the image manifest itself: fetched by digest, so
		// verified against it.
		m, err := v.src.Manifest(ctx, v.img.Digest.String(), MaxManifestBytes)
		if err != nil {
			return "", fmt.Errorf("fetching the signed manifest %s: %w", v.img.Digest, err)
		}
		if !bytes.Equal(mustHex(hashOf(m.Bytes)), ms.MessageDigest.Digest) {
			return "", fmt.Errorf("%w: the manifest served for %s does not hash to it", ErrWrongImage, v.img.Digest)
		}
		return v.check(m.Bytes, ms.Signature, ev)
	}
	return "", fmt.Errorf("%w: the Sigstore bundle holds neither a message signature nor a DSSE envelope", ErrMalformed)
}
