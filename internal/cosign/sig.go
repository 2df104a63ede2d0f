package cosign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // the hashes verifySig uses
	_ "crypto/sha512"
)

// hashesFor lists the hashes a signature by pub may be made over, as
// cosign and sigstore sign: SHA-256 for P-256 and RSA; for P-384 and P-521
// their own hash (sigstore's default) or SHA-256 (cosign's key files); none
// for Ed25519, which signs the message itself.
func hashesFor(pub crypto.PublicKey) []crypto.Hash {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			return []crypto.Hash{crypto.SHA384, crypto.SHA256}
		case elliptic.P521():
			return []crypto.Hash{crypto.SHA512, crypto.SHA256}
		}
	}
	return []crypto.Hash{crypto.SHA256}
}

// verifySig reports whether sig is a signature of message by pub: ECDSA
// (ASN.1 DER), Ed25519 (pure), or RSA (PKCS #1 v1.5 or PSS).
func verifySig(pub crypto.PublicKey, message, sig []byte) bool {
	if k, ok := pub.(ed25519.PublicKey); ok {
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k, message, sig)
	}
	for _, h := range hashesFor(pub) {
		hh := h.New()
		hh.Write(message)
		sum := hh.Sum(nil)
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(k, sum, sig) {
				return true
			}
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(k, h, sum, sig) == nil || rsa.VerifyPSS(k, h, sum, sig, nil) == nil {
				return true
			}
		}
	}
	return false
}
