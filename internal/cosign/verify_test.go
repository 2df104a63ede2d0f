package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memSource is a Source in memory, counting what is fetched.
type memSource struct {
	manifests map[string][]byte // by tag and by digest
	blobs     map[digest.Digest][]byte
	referrers []ocispec.Descriptor
	// huge, when set, serves an endless blob for every digest.
	huge      bool
	blobReads atomic.Int64
	bytesRead atomic.Int64
}

func newMem() *memSource {
	return &memSource{manifests: map[string][]byte{}, blobs: map[digest.Digest][]byte{}}
}

func (m *memSource) Manifest(_ context.Context, ref string, limit int64) (*Manifest, error) {
	b, ok := m.manifests[ref]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s", ErrTooLarge, ref)
	}
	return &Manifest{Bytes: b, Digest: digest.FromBytes(b)}, nil
}

type endless struct{ n *atomic.Int64 }

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n.Add(int64(len(p)))
	return len(p), nil
}

func (m *memSource) Blob(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	m.blobReads.Add(1)
	if m.huge {
		return io.NopCloser(endless{&m.bytesRead}), nil
	}
	b, ok := m.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("%w: blob %s", ErrNotFound, desc.Digest)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memSource) Referrers(_ context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	if len(m.referrers) == 0 {
		return nil, ErrNotFound
	}
	return m.referrers, nil
}

// addBundle adds a referrer of subject holding the Sigstore bundle b, listed
// as cosign lists it in the fallback tag (artifact type of the empty
// config).
func (m *memSource) addBundle(subject digest.Digest, b []byte) {
	bd := digest.FromBytes(b)
	m.blobs[bd] = b
	man := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":%q,"digest":%q,"size":%d}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":100}}`,
		SigstoreBundleType, SigstoreBundleType, bd, len(b), subject)
	md := digest.FromBytes(man)
	m.manifests[md.String()] = man
	m.referrers = append(m.referrers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(man)), ArtifactType: "application/vnd.oci.empty.v1+json"})
}

// dsseBundle is a Sigstore bundle whose DSSE envelope holds an in-toto
// statement of predicate about subject, signed by k (the signature made
// over sign, normally the statement itself).
func dsseBundle(t *testing.T, k *ecdsa.PrivateKey, subject digest.Digest, predicate string, tamper bool) []byte {
	st := fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"registry.test/team/app","digest":{"sha256":%q}}],"predicateType":%q,"predicate":{}}`, subject.Encoded(), predicate)
	sig := signECDSA(t, k, pae(inTotoPayloadType, st))
	if tamper {
		st = append(st[:len(st)-1], ' ', '}')
	}
	b, _ := json.Marshal(map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{"publicKey": map[string]any{"hint": ""}},
		"dsseEnvelope":         map[string]any{"payload": st, "payloadType": inTotoPayloadType, "signatures": []any{map[string]any{"sig": sig, "keyid": ""}}},
	})
	return b
}

func TestVerifySigstoreBundle(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := keyPolicy(t, &k.PublicKey)
	for _, tc := range []struct {
		name    string
		bundle  []byte
		wantErr error
		want    string
	}{
		{"signed", dsseBundle(t, k, imgDigest, SignPredicateType, false), nil, ""},
		{"another subject", dsseBundle(t, k, digest.FromString("another"), SignPredicateType, false), ErrWrongImage, "signature is for another image: the signed statement does not name " + imgDigest.String() + " among its subjects"},
		{"tampered statement", dsseBundle(t, k, imgDigest, SignPredicateType, true), ErrBadSignature, "signature does not verify with any of the 1 trusted key(s)"},
		{"attestation", dsseBundle(t, k, imgDigest, "https://slsa.dev/provenance/v0.2", false), ErrNoSignature, "no signature found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newMem()
			src.addBundle(imgDigest, tc.bundle)
			by, err := Verify(context.Background(), p, src, Image{Digest: imgDigest})
			if tc.wantErr == nil {
				if err != nil || by != "key "+fingerprint(&k.PublicKey) {
					t.Fatalf("got %q, %v", by, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v and %q", err, tc.wantErr, tc.want)
			}
		})
	}
	// A message signature over the image manifest itself.
	manifest := []byte(`{"schemaVersion":2}`)
	md := digest.FromBytes(manifest)
	h := sha256.Sum256(manifest)
	msg := func(d []byte, sig []byte) []byte {
		b, _ := json.Marshal(map[string]any{
			"mediaType":        "application/vnd.dev.sigstore.bundle.v0.3+json",
			"messageSignature": map[string]any{"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": d}, "signature": sig},
		})
		return b
	}
	src := newMem()
	src.manifests[md.String()] = manifest
	src.addBundle(md, msg(h[:], signECDSA(t, k, manifest)))
	if _, err := Verify(context.Background(), p, src, Image{Digest: md}); err != nil {
		t.Fatalf("message signature: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	src = newMem()
	src.manifests[md.String()] = manifest
	src.addBundle(md, msg(other[:], signECDSA(t, k, []byte("other"))))
	if _, err := Verify(context.Background(), p, src, Image{Digest: md}); !errors.Is(err, ErrWrongImage) || !strings.Contains(err.Error(), "the bundle signs a message of sha256 "+hex.EncodeToString(other[:])+", not the manifest "+md.String()) {
		t.Fatalf("message signature of another manifest: %v", err)
	}
}

var imgDigest = digest.FromString("the image manifest")

func payloadFor(d digest.Digest) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":"registry.test/team/app"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}`, d)
}

func signECDSA(t *testing.T, k *ecdsa.PrivateKey, msg []byte) []byte {
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// addSig puts a .sig manifest for img with one layer per payload and
// annotation set.
func (m *memSource) addSig(img digest.Digest, layers ...ocispec.Descriptor) {
	man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest.FromString("{}"), Size: 2}, Layers: layers}
	man.SchemaVersion = 2
	b, _ := json.Marshal(man)
	m.manifests[SigTag(img)] = b
}

func (m *memSource) layer(payload []byte, ann map[string]string) ocispec.Descriptor {
	d := digest.FromBytes(payload)
	m.blobs[d] = payload
	return ocispec.Descriptor{MediaType: SimpleSigningMediaType, Digest: d, Size: int64(len(payload)), Annotations: ann}
}

func keyPolicy(t *testing.T, pub crypto.PublicKey) *Policy {
	k, err := newKey("test.pub", pub)
	if err != nil {
		t.Fatal(err)
	}
	return &Policy{Keys: []*Key{k}}
}

func TestVerifyClassicKey(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := keyPolicy(t, &k.PublicKey)
	payload := payloadFor(imgDigest)
	good := signECDSA(t, k, payload)
	tampered := bytes.Clone(good)
	tampered[len(tampered)-3] ^= 1
	for _, tc := range []struct {
		name    string
		payload []byte
		sig     []byte
		wantErr error
		want    string
	}{
		{"signed", payload, good, nil, ""},
		{"another key", payload, signECDSA(t, other, payload), ErrBadSignature, "signature does not verify with any of the 1 trusted key(s)"},
		{"tampered", payload, tampered, ErrBadSignature, "signature does not verify with any of the 1 trusted key(s)"},
		{"another digest", payloadFor(digest.FromString("another")), signECDSA(t, k, payloadFor(digest.FromString("another"))), ErrWrongImage, "signature is for another image: the payload signs " + digest.FromString("another").String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newMem()
			src.addSig(imgDigest, src.layer(tc.payload, map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(tc.sig)}))
			by, err := Verify(context.Background(), p, src, Image{Digest: imgDigest})
			if tc.wantErr == nil {
				if err != nil || !strings.HasPrefix(by, "key sha256:") {
					t.Fatalf("got %q, %v", by, err)
				}
				return
			}
			if !errors.Is(err, ErrNoValidSignature) || !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v and %q", err, tc.wantErr, tc.want)
			}
		})
	}
	_, err := Verify(context.Background(), p, newMem(), Image{Digest: imgDigest})
	if !errors.Is(err, ErrNoSignature) || err.Error() != "no signature found (looked for the tag "+SigTag(imgDigest)+" and for referrers of type "+SigstoreBundleType+")" {
		t.Fatalf("unsigned: %v", err)
	}
}

// A hostile source cannot make Verify read more than the limits: a layer
// declared larger is not fetched, and a blob longer than declared is cut.
func TestVerifyBounded(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := keyPolicy(t, &k.PublicKey)
	ann := map[string]string{AnnotationSignature: "AAAA"}

	src := newMem()
	src.addSig(imgDigest, ocispec.Descriptor{MediaType: SimpleSigningMediaType, Digest: digest.FromString("x"), Size: 1 << 30, Annotations: ann})
	_, err := Verify(context.Background(), p, src, Image{Digest: imgDigest})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "is 1073741824 bytes, more than the 1048576 accepted") || src.blobReads.Load() != 0 {
		t.Fatalf("declared 1 GiB: %v (%d blob reads)", err, src.blobReads.Load())
	}

	src = newMem()
	src.huge = true
	src.addSig(imgDigest, ocispec.Descriptor{MediaType: SimpleSigningMediaType, Digest: digest.FromString("x"), Size: 100, Annotations: ann})
	_, err = Verify(context.Background(), p, src, Image{Digest: imgDigest})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "does not match its digest and size (100 bytes)") {
		t.Fatalf("endless blob: %v", err)
	}
	if n := src.bytesRead.Load(); n > 64<<10 {
		t.Errorf("read %d bytes of a blob declared 100", n)
	}

	src = newMem()
	var layers []ocispec.Descriptor
	for range MaxCandidates + 5 {
		layers = append(layers, src.layer(payloadFor(imgDigest), ann))
	}
	src.addSig(imgDigest, layers...)
	_, err = Verify(context.Background(), p, src, Image{Digest: imgDigest})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d signatures; the rest were not examined", MaxCandidates)) || src.blobReads.Load() != MaxCandidates {
		t.Fatalf("many layers: %v (%d blob reads)", err, src.blobReads.Load())
	}
}

// keyless material made in the test: a CA, a certificate for
// dev@example.com issued by https://issuer.test valid for 10 minutes in
// 2025, and a transparency log key.
type keylessKit struct {
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	leaf     *x509.Certificate
	leafKey  *ecdsa.PrivateKey
	logKey   *ecdsa.PrivateKey
	root     *TrustedRoot
	signedAt time.Time
}

func newKit(t *testing.T) *keylessKit {
	kit := &keylessKit{signedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	kit.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: kit.signedAt.AddDate(-1, 0, 0), NotAfter: kit.signedAt.AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, _ := x509.CreateCertificate(rand.Reader, caT, caT, &kit.caKey.PublicKey, kit.caKey)
	kit.ca, _ = x509.ParseCertificate(der)
	kit.leafKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, _ := asn1.MarshalWithParams("https://issuer.test", "utf8")
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: kit.signedAt.Add(-time.Minute), NotAfter: kit.signedAt.Add(9 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, EmailAddresses: []string{"dev@example.com"},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV2, Value: iss}}}
	der, _ = x509.CreateCertificate(rand.Reader, lt, kit.ca, &kit.leafKey.PublicKey, kit.caKey)
	kit.leaf, _ = x509.ParseCertificate(der)
	kit.logKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	logDER, _ := x509.MarshalPKIXPublicKey(&kit.logKey.PublicKey)
	id := sha256.Sum256(logDER)
	kit.root = &TrustedRoot{CAs: []CA{{URI: "https://ca.test", Chain: []*x509.Certificate{kit.ca}}}, Tlogs: []Tlog{{BaseURL: "https://log.test", LogID: id[:], Pub: &kit.logKey.PublicKey}}}
	return kit
}

func (kit *keylessKit) certPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kit.leaf.Raw}))
}

// rekorBundle is the dev.sigstore.cosign/bundle annotation of a
// hashedrekord entry recording sig and cert, signed by logKey.
func (kit *keylessKit) rekorBundle(t *testing.T, logKey *ecdsa.PrivateKey, payload, sig []byte, at time.Time) string {
	body := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"%s"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}`,
		hashOf(payload), base64.StdEncoding.EncodeToString(sig), base64.StdEncoding.EncodeToString([]byte(kit.certPEM())))
	logDER, _ := x509.MarshalPKIXPublicKey(&logKey.PublicKey)
	id := sha256.Sum256(logDER)
	e := tlogEntry{Body: base64.StdEncoding.EncodeToString([]byte(body)), IntegratedTime: at.Unix(), LogID: hex.EncodeToString(id[:]), LogIndex: 7}
	canon, _ := json.Marshal(e)
	set := signECDSA(t, logKey, canon)
	b, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": e})
	return string(b)
}

func TestVerifyKeyless(t *testing.T) {
	kit := newKit(t)
	other := newKit(t)
	payload := payloadFor(imgDigest)
	sig := signECDSA(t, kit.leafKey, payload)
	id := Identity{Subject: "dev@example.com", Issuer: "https://issuer.test"}
	policy := func(root *TrustedRoot, ids ...Identity) *Policy {
		return &Policy{Identities: ids, Root: root, Now: func() time.Time { return kit.signedAt.Add(time.Hour) }}
	}
	for _, tc := range []struct {
		name    string
		p       *Policy
		bundle  string
		wantErr error
		want    string
	}{
		{"logged", policy(kit.root, id), kit.rekorBundle(t, kit.logKey, payload, sig, kit.signedAt), nil, "certificate dev@example.com (issuer https://issuer.test)"},
		{"not logged: the certificate has expired", policy(kit.root, id), "", ErrUntrustedCertificate, "does not chain to a certificate authority of the trusted root valid now: x509: certificate has expired"},
		{"subject mismatch", policy(kit.root, Identity{Subject: "ops@example.com", Issuer: "https://issuer.test"}), kit.rekorBundle(t, kit.logKey, payload, sig, kit.signedAt), ErrIdentityMismatch, "certificate identity mismatch: signed by dev@example.com (issuer https://issuer.test), the policy accepts ops@example.com (issuer https://issuer.test)"},
		{"issuer mismatch", policy(kit.root, Identity{Subject: "dev@example.com", Issuer: "https://other.test"}), kit.rekorBundle(t, kit.logKey, payload, sig, kit.signedAt), ErrIdentityMismatch, "the policy accepts dev@example.com (issuer https://other.test)"},
		{"another CA", policy(other.root, id), kit.rekorBundle(t, other.logKey, payload, sig, kit.signedAt), ErrUntrustedCertificate, "x509: certificate signed by unknown authority"},
		{"unknown log", policy(kit.root, id), kit.rekorBundle(t, other.logKey, payload, sig, kit.signedAt), ErrUntrustedCertificate, "which the trusted root does not name"},
		{"log entry of another signature", policy(kit.root, id), kit.rekorBundle(t, kit.logKey, payload, signECDSA(t, kit.leafKey, payload), kit.signedAt), ErrUntrustedCertificate, "the transparency log entry records another signature or certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newMem()
			ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig), AnnotationCertificate: kit.certPEM()}
			if tc.bundle != "" {
				ann[AnnotationBundle] = tc.bundle
			}
			src.addSig(imgDigest, src.layer(payload, ann))
			by, err := Verify(context.Background(), tc.p, src, Image{Digest: imgDigest})
			if tc.wantErr == nil {
				if err != nil || by != tc.want {
					t.Fatalf("got %q, %v", by, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v and %q", err, tc.wantErr, tc.want)
			}
		})
	}
	// A key policy does not accept a certificate's signature, and says how.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	src := newMem()
	src.addSig(imgDigest, src.layer(payload, map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig), AnnotationCertificate: kit.certPEM()}))
	_, err := Verify(context.Background(), keyPolicy(t, &k.PublicKey), src, Image{Digest: imgDigest})
	if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "it carries a certificate for dev@example.com (issuer https://issuer.test): accept it with --certificate-identity") {
		t.Fatalf("key policy, keyless signature: %v", err)
	}
}

// A keyless Sigstore bundle: DSSE signed with the certificate's key, its
// time from a transparency log entry of kind dsse in the bundle.
func TestVerifyKeylessSigstoreBundle(t *testing.T) {
	kit := newKit(t)
	st := fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":%q}}],"predicateType":%q,"predicate":{}}`, imgDigest.Encoded(), SignPredicateType)
	sig := signECDSA(t, kit.leafKey, pae(inTotoPayloadType, st))
	entry := func(logKey *ecdsa.PrivateKey, recorded []byte) map[string]any {
		body := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":{"algorithm":"sha256","value":"00"},"payloadHash":{"algorithm":"sha256","value":"%s"},"signatures":[{"signature":"%s","verifier":"%s"}]}}`,
			hashOf(st), base64.StdEncoding.EncodeToString(recorded), base64.StdEncoding.EncodeToString([]byte(kit.certPEM())))
		logDER, _ := x509.MarshalPKIXPublicKey(&logKey.PublicKey)
		id := sha256.Sum256(logDER)
		e := tlogEntry{Body: base64.StdEncoding.EncodeToString([]byte(body)), IntegratedTime: kit.signedAt.Unix(), LogID: hex.EncodeToString(id[:]), LogIndex: 42}
		canon, _ := json.Marshal(e)
		return map[string]any{
			"logIndex": "42", "logId": map[string]any{"keyId": id[:]}, "kindVersion": map[string]any{"kind": "dsse", "version": "0.0.1"},
			"integratedTime": fmt.Sprint(kit.signedAt.Unix()), "inclusionPromise": map[string]any{"signedEntryTimestamp": signECDSA(t, logKey, canon)},
			"canonicalizedBody": []byte(body),
		}
	}
	mk := func(entries ...map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{
			"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
			"verificationMaterial": map[string]any{"certificate": map[string]any{"rawBytes": kit.leaf.Raw}, "tlogEntries": entries},
			"dsseEnvelope":         map[string]any{"payload": st, "payloadType": inTotoPayloadType, "signatures": []any{map[string]any{"sig": sig}}},
		})
		return b
	}
	p := &Policy{Identities: []Identity{{Subject: "dev@example.com", Issuer: "https://issuer.test"}}, Root: kit.root, Now: func() time.Time { return kit.signedAt.AddDate(0, 1, 0) }}
	src := newMem()
	src.addBundle(imgDigest, mk(entry(kit.logKey, sig)))
	if by, err := Verify(context.Background(), p, src, Image{Digest: imgDigest}); err != nil || by != "certificate dev@example.com (issuer https://issuer.test)" {
		t.Fatalf("logged: %q, %v", by, err)
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"no entry: expired now", mk(), "valid now: x509: certificate has expired"},
		{"entry of another signature", mk(entry(kit.logKey, []byte("another"))), "the transparency log entry records another signature or certificate"},
		{"entry signed by an unknown log", mk(entry(newKit(t).logKey, sig)), "which the trusted root does not name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newMem()
			src.addBundle(imgDigest, tc.bundle)
			_, err := Verify(context.Background(), p, src, Image{Digest: imgDigest})
			if !errors.Is(err, ErrUntrustedCertificate) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// Every key type cosign can hold, with the hashes it signs with, and the
// keys ParseKey refuses.
func TestVerifySigKeyTypes(t *testing.T) {
	msg := []byte("the payload")
	sum := func(h crypto.Hash) []byte { hh := h.New(); hh.Write(msg); return hh.Sum(nil) }
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecSig := func(k *ecdsa.PrivateKey, h crypto.Hash) []byte {
		s, _ := ecdsa.SignASN1(rand.Reader, k, sum(h))
		return s
	}
	pkcs1, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, sum(crypto.SHA256))
	pss, _ := rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, sum(crypto.SHA256), nil)
	for _, tc := range []struct {
		name string
		pub  crypto.PublicKey
		sig  []byte
		want bool
	}{
		{"P-256 SHA-256", &p256.PublicKey, ecSig(p256, crypto.SHA256), true},
		{"P-384 SHA-384", &p384.PublicKey, ecSig(p384, crypto.SHA384), true},
		{"P-384 SHA-256", &p384.PublicKey, ecSig(p384, crypto.SHA256), true},
		{"P-521 SHA-512", &p521.PublicKey, ecSig(p521, crypto.SHA512), true},
		{"P-256 SHA-512", &p256.PublicKey, ecSig(p256, crypto.SHA512), false},
		{"Ed25519", edPub, ed25519.Sign(edKey, msg), true},
		{"Ed25519 over a digest", edPub, ed25519.Sign(edKey, sum(crypto.SHA256)), false},
		{"RSA PKCS #1 v1.5", &rsaKey.PublicKey, pkcs1, true},
		{"RSA PSS", &rsaKey.PublicKey, pss, true},
		{"another key", &p384.PublicKey, ecSig(p256, crypto.SHA256), false},
	} {
		if got := verifySig(tc.pub, msg, tc.sig); got != tc.want {
			t.Errorf("%s: verifySig = %v, want %v", tc.name, got, tc.want)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	if _, err := ParseKey("small.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err == nil || err.Error() != "RSA key of 1024 bits: at least 2048 are required" {
		t.Errorf("1024-bit RSA: %v", err)
	}
	if _, err := ParseKey("cert.pem", []byte(newKit(t).certPEM())); err == nil || !strings.HasPrefix(err.Error(), `PEM block "CERTIFICATE" is not a public key`) {
		t.Errorf("certificate: %v", err)
	}
}
