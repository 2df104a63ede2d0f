package cosign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzVerify feeds Verify signature artifacts a registry or a bundle could
// hold: a .sig manifest, a payload with its annotations, and a Sigstore
// bundle. It must never panic, and never accept a signature it did not
// verify (the fuzzer knows no key of the policy).
func FuzzVerify(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kit := newKit(nil)
	payload := payloadFor(imgDigest)
	f.Add([]byte(`{"layers":[]}`), payload, "MEUCIQ==", kit.certPEM(), `{"SignedEntryTimestamp":"","Payload":{"body":"","integratedTime":1,"logIndex":1,"logID":"00"}}`, []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}}`))
	f.Fuzz(func(t *testing.T, man, payload []byte, sig, cert, rekor string, sb []byte) {
		src := newMem()
		src.manifests[SigTag(imgDigest)] = man
		ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString([]byte(sig)), AnnotationCertificate: cert, AnnotationBundle: rekor}
		l := src.layer(payload, ann)
		m := ocispec.Manifest{Layers: []ocispec.Descriptor{l}}
		if b, err := json.Marshal(m); err == nil && len(man) == 0 {
			src.manifests[SigTag(imgDigest)] = b
		}
		src.addBundle(imgDigest, sb)
		p := &Policy{Keys: []*Key{{Name: "k", Pub: &k.PublicKey}}, Identities: []Identity{{Subject: "dev@example.com", Issuer: "https://issuer.test"}}, Root: kit.root,
			Now: func() time.Time { return kit.signedAt }}
		if by, err := Verify(context.Background(), p, src, Image{Digest: imgDigest}); err == nil {
			t.Fatalf("accepted a signature the fuzzer made: %s", by)
		}
	})
}
