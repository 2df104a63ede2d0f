package bundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// Signature errors. Each is a different failure an operator acts on
// differently; all of them wrap ErrVerification.
var (
	// ErrVerification is wrapped by every signature failure.
	ErrVerification = errors.New("signature verification failed")
	// ErrUnsigned: the bundle has no index.json.sig.
	ErrUnsigned = fmt.Errorf("%w: bundle is not signed", ErrVerification)
	// ErrSignatureInvalid: the signature does not verify over index.json.
	ErrSignatureInvalid = fmt.Errorf("%w: signature is invalid", ErrVerification)
	// ErrUnknownKey: the bundle is signed by a key that is not trusted.
	ErrUnknownKey = fmt.Errorf("%w: signed by an unknown key", ErrVerification)
	// ErrWrongPassword: a private key could not be decrypted.
	ErrWrongPassword = errors.New("wrong password for the private key")
)

// PEM block types.
const (
	pemEncryptedSigstore = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosign   = "ENCRYPTED COSIGN PRIVATE KEY"
	pemPrivate           = "PRIVATE KEY"
	pemECPrivate         = "EC PRIVATE KEY"
	pemPublic            = "PUBLIC KEY"
)

// GenerateKey makes a signing key: "ecdsa-p256" (the default when empty)
// or "ed25519".
func GenerateKey(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case "", "ecdsa-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key algorithm %q: use ecdsa-p256 or ed25519", algorithm)
}

// MarshalPrivateKey encodes k as cosign does: PKCS#8 DER encrypted with
// scrypt and secretbox, in a PEM block "ENCRYPTED SIGSTORE PRIVATE KEY".
func MarshalPrivateKey(k crypto.Signer, password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	ct, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedSigstore, Bytes: ct}), nil
}

// MarshalPublicKey encodes a public key as PKIX PEM.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// LoadPrivateKey reads a private key: cosign's encrypted format (made by
// `cosign generate-key-pair` or `ferry keygen`), or unencrypted PKCS#8 or
// SEC 1 PEM. Only ECDSA P-256 and Ed25519 keys are accepted.
func LoadPrivateKey(data, password []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("not a PEM private key")
	}
	der := b.Bytes
	switch b.Type {
	case pemEncryptedSigstore, pemEncryptedCosign:
		var err error
		if der, err = encrypted.Decrypt(b.Bytes, password); err != nil {
			if strings.Contains(err.Error(), "decryption failed") {
				return nil, fmt.Errorf("%w (set FERRY_PASSWORD or COSIGN_PASSWORD)", ErrWrongPassword)
			}
			return nil, fmt.Errorf("the encrypted private key is damaged or uses an unsupported format: %v", err)
		}
	case pemPrivate:
	case pemECPrivate:
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			return nil, err
		}
		return checkSigner(k)
	case "RSA PRIVATE KEY":
		return nil, errRSA
	default:
		return nil, fmt.Errorf("unsupported PEM block %q: want an (ENCRYPTED SIGSTORE) PRIVATE KEY", b.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported private key type")
	}
	return checkSigner(s)
}

func checkSigner(s crypto.Signer) (crypto.Signer, error) {
	if _, err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

func checkPublic(pub crypto.PublicKey) (crypto.PublicKey, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("unsupported ECDSA curve %s: only P-256", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PublicKey:
		return k, nil
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		return nil, errRSA
	}
	return nil, errors.New("unsupported key type: only ECDSA P-256 and Ed25519 keys are supported")
}

// errRSA: cosign can make RSA keys (from a KMS, or imported), ferry signs
// and verifies only ECDSA P-256 and Ed25519.
var errRSA = errors.New("RSA keys are not supported; use 'ferry keygen' or 'cosign generate-key-pair'")

// LoadPublicKey reads a PKIX PEM public key (cosign.pub, ferry keygen's P.pub).
func LoadPublicKey(data []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != pemPublic {
		return nil, errors.New("not a PEM public key (want -----BEGIN PUBLIC KEY-----)")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the public key: %w", err)
	}
	return checkPublic(pub)
}

// Fingerprint is "sha256:<hex>" of the key's PKIX DER encoding.
func Fingerprint(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	s := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(s[:])
}

// keyHint is what cosign writes as the public key hint of a Sigstore
// bundle: base64 of the SHA-256 of the PKIX DER.
func keyHint(pub crypto.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	s := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(s[:])
}

func hintFingerprint(hint string) string {
	b, err := base64.StdEncoding.DecodeString(hint)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return "sha256:" + hex.EncodeToString(b)
}

// sigstoreBundle is the part of the Sigstore bundle v0.3 format ferry
// reads and writes (a message signature with a public key hint).
type sigstoreBundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
	} `json:"verificationMaterial"`
	MessageSignature struct {
		MessageDigest struct {
			Algorithm string `json:"algorithm"`
			Digest    string `json:"digest"`
		} `json:"messageDigest"`
		Signature string `json:"signature"`
	} `json:"messageSignature"`
}

// Signer returns an ExportOptions.Sign function that signs index.json
// with k (ECDSA P-256: SHA-256 and ASN.1 DER; Ed25519: pure) and stores the
// signature as cosign sign-blob writes it, plus a Sigstore bundle.
func Signer(k crypto.Signer) func(index []byte) (map[string][]byte, error) {
	return func(index []byte) (map[string][]byte, error) {
		var sig []byte
		var err error
		digest := sha256.Sum256(index)
		switch key := k.(type) {
		case *ecdsa.PrivateKey:
			sig, err = ecdsa.SignASN1(rand.Reader, key, digest[:])
		case ed25519.PrivateKey:
			sig = ed25519.Sign(key, index)
		default:
			if _, ok := k.Public().(ed25519.PublicKey); ok {
				sig, err = k.Sign(rand.Reader, index, crypto.Hash(0))
			} else {
				sig, err = k.Sign(rand.Reader, digest[:], crypto.SHA256)
			}
		}
		if err != nil {
			return nil, err
		}
		b64 := base64.StdEncoding.EncodeToString(sig)
		var sb sigstoreBundle
		sb.MediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
		sb.VerificationMaterial.PublicKey.Hint = keyHint(k.Public())
		sb.MessageSignature.MessageDigest.Algorithm = "SHA2_256"
		sb.MessageSignature.MessageDigest.Digest = base64.StdEncoding.EncodeToString(digest[:])
		sb.MessageSignature.Signature = b64
		js, err := json.Marshal(sb)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{SignatureFile: []byte(b64), SigstoreBundleFile: js}, nil
	}
}

// SignatureInfo describes the signature of a bundle.
type SignatureInfo struct {
	Signed bool
	// KeyFingerprint is the fingerprint of the verifying key, or, when the
	// signature was not verified, of the key the Sigstore bundle names.
	KeyFingerprint string
	Verified       bool
}

// Verifier checks index.json against its signature files before anything
// parses it. It returns the fingerprint of the key that verified it.
type Verifier func(index []byte, files map[string][]byte) (string, error)

// KeyVerifier returns a Verifier that accepts a signature by any of keys
// (several keys allow rotation).
func KeyVerifier(keys ...crypto.PublicKey) Verifier {
	return func(index []byte, files map[string][]byte) (string, error) {
		return verifyIndex(index, files, keys)
	}
}

func verifyIndex(index []byte, files map[string][]byte, keys []crypto.PublicKey) (string, error) {
	raw, ok := files[SignatureFile]
	if !ok {
		return "", fmt.Errorf("%w: the bundle has no %s; sign it at export with --key (ferry import accepts an unsigned bundle only with --insecure-skip-verify)", ErrUnsigned, SignatureFile)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return "", fmt.Errorf("%w: %s is not base64", ErrSignatureInvalid, SignatureFile)
	}
	hint, signedDigest := "", ""
	if sb, ok := files[SigstoreBundleFile]; ok {
		var b sigstoreBundle
		if err := json.Unmarshal(sb, &b); err != nil {
			return "", fmt.Errorf("%w: %s is not valid JSON", ErrSignatureInvalid, SigstoreBundleFile)
		}
		if b.MessageSignature.Signature != "" && b.MessageSignature.Signature != strings.TrimSpace(string(raw)) {
			return "", fmt.Errorf("%w: %s and %s hold different signatures", ErrSignatureInvalid, SignatureFile, SigstoreBundleFile)
		}
		hint = hintFingerprint(b.VerificationMaterial.PublicKey.Hint)
		if b.MessageSignature.MessageDigest.Algorithm == "SHA2_256" {
			signedDigest = b.MessageSignature.MessageDigest.Digest
		}
	}
	digest := sha256.Sum256(index)
	var hinted crypto.PublicKey
	for _, k := range keys {
		fp := Fingerprint(k)
		if fp == hint {
			hinted = k
		}
		switch key := k.(type) {
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(key, digest[:], sig) {
				return fp, nil
			}
		case ed25519.PublicKey:
			if len(sig) == ed25519.SignatureSize && ed25519.Verify(key, index, sig) {
				return fp, nil
			}
		}
	}
	if hint != "" && hinted == nil {
		return "", fmt.Errorf("%w: signed by key %s, which is not among the %d trusted key(s); pass its public key with --key if you trust it", ErrUnknownKey, hint, len(keys))
	}
	if signedDigest != "" {
		if got := base64.StdEncoding.EncodeToString(digest[:]); got != signedDigest {
			return "", fmt.Errorf("%w: index.json was changed after it was signed (its sha256 is %s; the signature was made over %s)", ErrSignatureInvalid, got, signedDigest)
		}
		return "", fmt.Errorf("%w: index.json is what was signed, but the signature in %s was replaced or damaged", ErrSignatureInvalid, SignatureFile)
	}
	return "", fmt.Errorf("%w: the signature over index.json does not verify with the %d trusted key(s); the bundle was altered or the signature replaced", ErrSignatureInvalid, len(keys))
}

// signatureHint returns the key fingerprint named by the Sigstore bundle.
func signatureHint(files map[string][]byte) string {
	var b sigstoreBundle
	if err := json.Unmarshal(files[SigstoreBundleFile], &b); err != nil {
		return ""
	}
	return hintFingerprint(b.VerificationMaterial.PublicKey.Hint)
}
