package bundle

// Tests of the signed index: cosign interoperability with the real cosign
// artifacts in testdata/cosign (see its README.md), and tampered bundles,
// each of which must be refused with its own error.

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/archivetest"
)

// cosignDir holds keys and signatures made by the cosign CLI itself.
const cosignDir = "../testdata/cosign"

// cosignPassword is the password of the cosign private keys.
const cosignPassword = "ferry-test"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cosignDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixturePub(t testing.TB, name string) crypto.PublicKey {
	t.Helper()
	k, err := LoadPublicKey(fixture(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k
}

// cosignKeys are the two cosign private keys, decrypted once: scrypt with
// cosign's parameters takes over a second per key under -race.
var cosignKeys struct {
	once sync.Once
	keys map[string]crypto.Signer
	errs map[string]error
}

func cosignKey(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	cosignKeys.once.Do(func() {
		cosignKeys.keys, cosignKeys.errs = map[string]crypto.Signer{}, map[string]error{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, a := range []string{"ecdsa", "ed25519"} {
			data := fixture(t, a+".key")
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := LoadPrivateKey(data, []byte(cosignPassword))
				mu.Lock()
				cosignKeys.keys[a], cosignKeys.errs[a] = k, err
				mu.Unlock()
			}()
		}
		wg.Wait()
	})
	if err := cosignKeys.errs[alg]; err != nil {
		t.Fatalf("loading cosign's %s.key with password %q: %v", alg, cosignPassword, err)
	}
	return cosignKeys.keys[alg]
}

func TestCosignPrivateKeys(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ecdsa", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			k := cosignKey(t, alg)
			switch k.(type) {
			case *ecdsa.PrivateKey:
				if alg != "ecdsa" {
					t.Errorf("%s.key loaded as ECDSA", alg)
				}
			case ed25519.PrivateKey:
				if alg != "ed25519" {
					t.Errorf("%s.key loaded as Ed25519", alg)
				}
			default:
				t.Errorf("%s.key loaded as %T", alg, k)
			}
			if got, want := Fingerprint(k.Public()), Fingerprint(fixturePub(t, alg+".pub")); got != want {
				t.Errorf("%s.key has public key %s, cosign's %s.pub is %s", alg, got, alg, want)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		_, err := LoadPrivateKey(fixture(t, "ecdsa.key"), []byte("not-"+cosignPassword))
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("got %v, want ErrWrongPassword", err)
		}
		if errors.Is(err, ErrVerification) {
			t.Errorf("a wrong password is reported as a verification failure: %v", err)
		}
		for _, w := range []string{"wrong password", "FERRY_PASSWORD"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q does not say %q", err, w)
			}
		}
	})
	// A damaged or foreign encrypted key is not a wrong password: the
	// operator would retry passwords forever. (No scrypt run here: the
	// payload fails before key derivation.)
	t.Run("damaged encrypted key is not a wrong password", func(t *testing.T) {
		t.Parallel()
		b, _ := pem.Decode(fixture(t, "ecdsa.key"))
		damaged := map[string][]byte{
			"payload is not JSON":         b.Bytes[:len(b.Bytes)/2],
			"unsupported scrypt settings": bytes.Replace(b.Bytes, []byte(`"N":65536`), []byte(`"N":1024`), 1),
			"unknown cipher":              bytes.Replace(b.Bytes, []byte(`nacl/secretbox`), []byte(`aes-256-gcm/x`), 1),
		}
		for name, payload := range damaged {
			key := pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: payload})
			_, err := LoadPrivateKey(key, []byte(cosignPassword))
			if err == nil {
				t.Errorf("%s: loaded", name)
				continue
			}
			t.Logf("%s: %v", name, err)
			if errors.Is(err, ErrWrongPassword) || strings.Contains(err.Error(), "wrong password") {
				t.Errorf("%s: reported as a wrong password (the password is right; the key file is damaged or not supported): %v", name, err)
			}
		}
	})
}

func TestUnencryptedPrivateKeys(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		pub  crypto.PublicKey
	}{
		{"PKCS#8 ECDSA P-256", pkcs8(ec), ec.Public()},
		{"PKCS#8 Ed25519", pkcs8(ed), ed.Public()},
		{"SEC 1 ECDSA P-256", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ec.Public()},
	} {
		k, err := LoadPrivateKey(tc.data, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if Fingerprint(k.Public()) != Fingerprint(tc.pub) {
			t.Errorf("%s: loaded another key", tc.name)
		}
		// The key signs a bundle that verifies with its public key.
		files, err := Signer(k)([]byte(`{"schemaVersion":2}`))
		if err != nil {
			t.Fatalf("%s: signing: %v", tc.name, err)
		}
		if _, err := KeyVerifier(tc.pub)([]byte(`{"schemaVersion":2}`), files); err != nil {
			t.Errorf("%s: own signature: %v", tc.name, err)
		}
	}
	if _, err := LoadPrivateKey(pkcs8(p384), nil); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("P-384 key: got %v, want a refusal naming P-256", err)
	}
}

// KeyVerifier accepts what `cosign sign-blob` writes, with and without the
// Sigstore bundle, and names the key that verified.
func TestKeyVerifierAcceptsCosignSignatures(t *testing.T) {
	t.Parallel()
	index := fixture(t, "index.json")
	ecPub, edPub := fixturePub(t, "ecdsa.pub"), fixturePub(t, "ed25519.pub")
	ecSig, edSig := fixture(t, "index.json.ecdsa.sig"), fixture(t, "index.json.ed25519.sig")
	ecBundle := fixture(t, "index.json.ecdsa.sigstore.json")
	withNL := func(b []byte) []byte { return append(bytes.Clone(b), '\n') }

	ok := []struct {
		name  string
		files map[string][]byte
		keys  []crypto.PublicKey
		want  crypto.PublicKey
	}{
		{"ecdsa with sigstore bundle", map[string][]byte{SignatureFile: ecSig, SigstoreBundleFile: ecBundle}, []crypto.PublicKey{ecPub}, ecPub},
		{"ecdsa signature only", map[string][]byte{SignatureFile: ecSig}, []crypto.PublicKey{ecPub}, ecPub},
		{"ecdsa signature with a trailing newline", map[string][]byte{SignatureFile: withNL(ecSig), SigstoreBundleFile: ecBundle}, []crypto.PublicKey{ecPub}, ecPub},
		{"ed25519 signature only", map[string][]byte{SignatureFile: edSig}, []crypto.PublicKey{edPub}, edPub},
		{"ed25519 signature with a trailing newline", map[string][]byte{SignatureFile: withNL(edSig)}, []crypto.PublicKey{edPub}, edPub},
		{"ecdsa among two keys", map[string][]byte{SignatureFile: ecSig, SigstoreBundleFile: ecBundle}, []crypto.PublicKey{edPub, ecPub}, ecPub},
		{"ed25519 among two keys", map[string][]byte{SignatureFile: edSig}, []crypto.PublicKey{ecPub, edPub}, edPub},
	}
	for _, tc := range ok {
		fp, err := KeyVerifier(tc.keys...)(index, tc.files)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if fp != Fingerprint(tc.want) {
			t.Errorf("%s: verified by %s, want %s", tc.name, fp, Fingerprint(tc.want))
		}
	}

	bad := []struct {
		name  string
		index []byte
		files map[string][]byte
		keys  []crypto.PublicKey
		want  error
	}{
		{"index.json changed", bytes.Replace(index, []byte("nginx:1.27"), []byte("nginx:1.28"), 1),
			map[string][]byte{SignatureFile: ecSig, SigstoreBundleFile: ecBundle}, []crypto.PublicKey{ecPub}, ErrSignatureInvalid},
		{"ecdsa signature, only the ed25519 key trusted, bundle names the key", index,
			map[string][]byte{SignatureFile: ecSig, SigstoreBundleFile: ecBundle}, []crypto.PublicKey{edPub}, ErrUnknownKey},
		{"ed25519 signature, only the ecdsa key trusted", index,
			map[string][]byte{SignatureFile: edSig}, []crypto.PublicKey{ecPub}, ErrSignatureInvalid},
		{"ed25519 signature presented as ecdsa", index,
			map[string][]byte{SignatureFile: edSig, SigstoreBundleFile: ecBundle}, []crypto.PublicKey{ecPub}, ErrSignatureInvalid},
		{"sigstore bundle only", index, map[string][]byte{SigstoreBundleFile: ecBundle}, []crypto.PublicKey{ecPub}, ErrUnsigned},
		{"no key trusted", index, map[string][]byte{SignatureFile: ecSig}, nil, ErrSignatureInvalid},
	}
	for _, tc := range bad {
		_, err := KeyVerifier(tc.keys...)(tc.index, tc.files)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrVerification) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// What ferry writes with a cosign key is what cosign writes: the .sig is
// base64 ASN.1 DER ECDSA over SHA-256 (what `cosign verify-blob --key`
// checks) or pure Ed25519, and the Sigstore bundle has cosign's shape,
// messageDigest and public key hint.
func TestSignerMatchesCosign(t *testing.T) {
	t.Parallel()
	index := fixture(t, "index.json")
	sum := sha256.Sum256(index)
	var cosignBundle map[string]any
	if err := json.Unmarshal(fixture(t, "index.json.ecdsa.sigstore.json"), &cosignBundle); err != nil {
		t.Fatal(err)
	}
	// Sanity of the fixture: cosign's digest is base64 SHA-256 of index.json.
	if got := jsonPath(cosignBundle, "messageSignature", "messageDigest", "digest"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("fixture messageDigest %v is not the SHA-256 of index.json", got)
	}
	for _, alg := range []string{"ecdsa", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			k := cosignKey(t, alg)
			pub := fixturePub(t, alg+".pub")
			files, err := Signer(k)(index)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 2 || files[SignatureFile] == nil || files[SigstoreBundleFile] == nil {
				t.Fatalf("Signer wrote %d files, want %s and %s", len(files), SignatureFile, SigstoreBundleFile)
			}
			sig, err := base64.StdEncoding.DecodeString(string(files[SignatureFile]))
			if err != nil {
				t.Fatalf("%s is not plain base64: %v", SignatureFile, err)
			}
			switch p := pub.(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(p, sum[:], sig) {
					t.Errorf("the signature is not ASN.1 DER ECDSA over SHA-256 of index.json with cosign's ecdsa.pub")
				}
			case ed25519.PublicKey:
				if !ed25519.Verify(p, index, sig) {
					t.Errorf("the signature is not pure Ed25519 over index.json with cosign's ed25519.pub")
				}
			}

			var got map[string]any
			if err := json.Unmarshal(files[SigstoreBundleFile], &got); err != nil {
				t.Fatalf("%s: %v", SigstoreBundleFile, err)
			}
			for _, c := range []struct {
				path []string
				want string
			}{
				{[]string{"mediaType"}, "application/vnd.dev.sigstore.bundle.v0.3+json"},
				{[]string{"messageSignature", "messageDigest", "algorithm"}, "SHA2_256"},
				{[]string{"messageSignature", "messageDigest", "digest"}, base64.StdEncoding.EncodeToString(sum[:])},
				{[]string{"messageSignature", "signature"}, string(files[SignatureFile])},
				{[]string{"verificationMaterial", "publicKey", "hint"}, keyHintOf(t, pub)},
			} {
				if v := jsonPath(got, c.path...); v != c.want {
					t.Errorf("%s: %s is %v, want %q", SigstoreBundleFile, strings.Join(c.path, "."), v, c.want)
				}
			}
			if alg == "ecdsa" {
				want := jsonPath(cosignBundle, "verificationMaterial", "publicKey", "hint")
				if v := jsonPath(got, "verificationMaterial", "publicKey", "hint"); v != want {
					t.Errorf("public key hint %v, cosign wrote %v for the same key", v, want)
				}
			}
			// Same fields as cosign's bundle, nothing more, nothing less.
			if g, w := jsonKeys(got, ""), jsonKeys(cosignBundle, ""); strings.Join(g, " ") != strings.Join(w, " ") {
				t.Errorf("Sigstore bundle fields differ from cosign's:\n ferry:  %v\n cosign: %v", g, w)
			}
			if fp, err := KeyVerifier(pub)(index, files); err != nil || fp != Fingerprint(pub) {
				t.Errorf("ferry's own signature: %q, %v", fp, err)
			}
		})
	}
}

// keyHintOf computes cosign's public key hint independently of sign.go:
// base64 of the SHA-256 of the PKIX DER.
func keyHintOf(t *testing.T, pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(s[:])
}

func jsonPath(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// jsonKeys lists the paths of every leaf of v, sorted.
func jsonKeys(v any, prefix string) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return []string{prefix}
	}
	var out []string
	for k, c := range m {
		out = append(out, jsonKeys(c, prefix+"/"+k)...)
	}
	sort.Strings(out)
	return out
}

// ---- tampered bundles ----

// signedSample is a one-image bundle signed with key, written by Writer
// (one frame per entry, seek table).
type signedSample struct {
	s          sample
	key, other crypto.Signer
	files      map[string][]byte // the signature files
	data       []byte
}

func newSignedSample(t *testing.T, alg string) signedSample {
	t.Helper()
	ss := signedSample{s: newSample(bytes.Repeat([]byte("signed layer content "), 300))}
	var err error
	if ss.key, err = GenerateKey(alg); err != nil {
		t.Fatal(err)
	}
	if ss.other, err = GenerateKey(alg); err != nil {
		t.Fatal(err)
	}
	if ss.files, err = Signer(ss.key)(ss.s.index); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf, EncoderOptions{})
	for _, err := range []error{
		w.WriteFile(LayoutFile, []byte(layoutContent)),
		w.WriteFile(IndexFile, ss.s.index),
		w.WriteFile(SignatureFile, ss.files[SignatureFile]),
		w.WriteFile(SigstoreBundleFile, ss.files[SigstoreBundleFile]),
		w.WriteBlob(ss.s.mDesc, bytes.NewReader(ss.s.manifest)),
		w.WriteBlob(ss.s.cDesc, bytes.NewReader(ss.s.config)),
		w.WriteBlob(ss.s.lDesc, bytes.NewReader(ss.s.layer)),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ss.data = buf.Bytes()
	return ss
}

func without(t *testing.T, ents []archivetest.Entry, names ...string) []archivetest.Entry {
	t.Helper()
	out := append([]archivetest.Entry(nil), ents...)
	for _, n := range names {
		i := archivetest.Index(t, out, n)
		out = append(out[:i], out[i+1:]...)
	}
	return out
}

func insertAt(ents []archivetest.Entry, i int, e archivetest.Entry) []archivetest.Entry {
	out := append([]archivetest.Entry(nil), ents[:i]...)
	out = append(out, e)
	return append(out, ents[i:]...)
}

// consume reads every blob of an open bundle, in either mode.
func consume(r *Reader) error {
	if r.RandomAccess() {
		for _, b := range r.Blobs() {
			rc, err := r.OpenBlob(b)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	for {
		_, rd, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			return err
		}
	}
}

// tamperCase is one way of altering a signed bundle.
type tamperCase struct {
	name string
	// edit changes the entries; the result is written both as one zstd
	// stream and with per-entry frames and a seek table. raw, instead,
	// gives the bytes of the altered file directly.
	edit func(t *testing.T, ss signedSample, ents []archivetest.Entry) []archivetest.Entry
	raw  func(t *testing.T, ss signedSample) []byte
	want error
	// words the message must hold (besides what makes it distinct).
	words func(ss signedSample) []string
	// early: refused by Open or NewReader, before any blob is handed out
	// (so import sends nothing to the destination).
	early bool
	// sequentialOnly: not written with a seek table (the seek-table form
	// fails on a different, equally valid check).
	sequentialOnly bool
	// tableRefused: the seek table of the framed form is itself invalid
	// (a repeated or unsafe name), so Open warns and reads in order.
	tableRefused bool
}

func tamperCases() []tamperCase {
	digests := func(f func(ss signedSample) string) func(ss signedSample) []string {
		return func(ss signedSample) []string { return []string{f(ss)} }
	}
	words := func(w ...string) func(signedSample) []string { return func(signedSample) []string { return w } }
	return []tamperCase{
		{name: "flipped byte in a layer", want: ErrDigestMismatch,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return archivetest.Flipped(t, e, BlobPath(ss.s.lDesc.Digest))
			},
			words: digests(func(ss signedSample) string { return ss.s.lDesc.Digest.String() })},
		{name: "flipped byte in a config", want: ErrDigestMismatch,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return archivetest.Flipped(t, e, BlobPath(ss.s.cDesc.Digest))
			},
			words: digests(func(ss signedSample) string { return ss.s.cDesc.Digest.String() })},
		{name: "flipped byte in a manifest", want: ErrDigestMismatch, early: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return archivetest.Flipped(t, e, BlobPath(ss.s.mDesc.Digest))
			},
			words: digests(func(ss signedSample) string { return ss.s.mDesc.Digest.String() })},
		{name: "flipped byte in index.json", want: ErrSignatureInvalid, early: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return archivetest.WithBody(t, e, IndexFile, retag(t, ss.s.index))
			}, words: words("index.json")},
		{name: "signature replaced", want: ErrSignatureInvalid, early: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				sig, bundle := replacedSignature(t, ss)
				return archivetest.WithBody(t, archivetest.WithBody(t, e, SignatureFile, sig), SigstoreBundleFile, bundle)
			}, words: words("signature")},
		{name: "signature files disagree", want: ErrSignatureInvalid, early: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				_, bundle := replacedSignature(t, ss) // index.json.sig stays valid
				return archivetest.WithBody(t, e, SigstoreBundleFile, bundle)
			}, words: words("signature is invalid: index.json.sig and index.json.sigstore.json hold different signatures")},
		{name: "signed by another key", want: ErrUnknownKey, early: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				index := retag(t, ss.s.index)
				files, err := Signer(ss.other)(index)
				if err != nil {
					t.Fatal(err)
				}
				e = archivetest.WithBody(t, e, IndexFile, index)
				return archivetest.WithBody(t, archivetest.WithBody(t, e, SignatureFile, files[SignatureFile]), SigstoreBundleFile, files[SigstoreBundleFile])
			}, words: func(ss signedSample) []string { return []string{Fingerprint(ss.other.Public())} }},
		{name: "signature removed", want: ErrUnsigned, early: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return without(t, e, SignatureFile, SigstoreBundleFile)
			}, words: words("not signed", SignatureFile)},
		{name: "extra unreachable blob", want: ErrCorrupt,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				extra := []byte("a blob nothing references")
				return append(append([]archivetest.Entry(nil), e...), archivetest.File(BlobPath(digest.FromBytes(extra)), extra))
			}, words: words(digest.FromBytes([]byte("a blob nothing references")).Encoded(), "not referenced")},
		{name: "duplicated entry", want: ErrCorrupt, tableRefused: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				dup := e[archivetest.Index(t, e, BlobPath(ss.s.lDesc.Digest))]
				dup.Frame = nil
				return append(append([]archivetest.Entry(nil), e...), dup)
			}, words: func(ss signedSample) []string { return []string{"duplicate", ss.s.lDesc.Digest.Encoded()} }},
		{name: "truncated archive", want: ErrTruncated,
			raw: func(t *testing.T, ss signedSample) []byte {
				tbl, _, err := readSeekTable(bytes.NewReader(ss.data), int64(len(ss.data)))
				if err != nil {
					t.Fatal(err)
				}
				l := tbl.lookup()[BlobPath(ss.s.lDesc.Digest)]
				return ss.data[:l.Offset+l.Length/2]
			}, words: words("truncated")},
		{name: "entry named ../x", want: ErrCorrupt, tableRefused: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return append(append([]archivetest.Entry(nil), e...), archivetest.File("../x", []byte("escape")))
			}, words: words("unsafe", "../x")},
		{name: "entry named /etc/x", want: ErrCorrupt, early: true, tableRefused: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				return insertAt(e, archivetest.Index(t, e, SigstoreBundleFile)+1, archivetest.File("/etc/x", []byte("root:x:0:0")))
			}, words: words("unsafe", "/etc/x")},
		{name: "symlink entry", want: ErrCorrupt, sequentialOnly: true,
			edit: func(t *testing.T, ss signedSample, e []archivetest.Entry) []archivetest.Entry {
				out := append([]archivetest.Entry(nil), e...)
				i := archivetest.Index(t, out, BlobPath(ss.s.lDesc.Digest))
				out[i] = archivetest.Entry{Header: tar.Header{Name: out[i].Header.Name, Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777}}
				return out
			}, words: words("symbolic link")},
	}
}

// retag changes one byte of index.json: the tag of the image, as an
// attacker redirecting a tag would.
func retag(t *testing.T, index []byte) []byte {
	t.Helper()
	out := bytes.Replace(index, []byte("app:1.0"), []byte("app:1.1"), 1)
	if bytes.Equal(out, index) {
		t.Fatal("index.json does not hold app:1.0")
	}
	return out
}

// replacedSignature replaces the signature value, in both signature files,
// with a well-formed signature by the same key over other content. The
// Sigstore bundle keeps its messageDigest (the SHA-256 of the real
// index.json) and its key hint.
func replacedSignature(t *testing.T, ss signedSample) (sig, bundle []byte) {
	t.Helper()
	files, err := Signer(ss.key)([]byte("some other content"))
	if err != nil {
		t.Fatal(err)
	}
	sig = files[SignatureFile]
	bundle = bytes.Replace(ss.files[SigstoreBundleFile], ss.files[SignatureFile], sig, 1)
	if bytes.Equal(bundle, ss.files[SigstoreBundleFile]) {
		t.Fatal("the Sigstore bundle does not hold the signature")
	}
	return sig, bundle
}

// TestSignatureFilesDisagree: index.json.sig and the signature in
// index.json.sigstore.json must be the same. Whichever of the two is
// valid, a pair that disagrees is refused with its own message; a Sigstore
// bundle without a signature only names the key.
func TestSignatureFilesDisagree(t *testing.T) {
	t.Parallel()
	ss := newSignedSample(t, "ecdsa-p256")
	otherSig, otherBundle := replacedSignature(t, ss)
	v := KeyVerifier(ss.key.Public())
	const msg = "signature verification failed: signature is invalid: index.json.sig and index.json.sigstore.json hold different signatures"
	for name, files := range map[string]map[string][]byte{
		"valid .sig, other signature in the Sigstore bundle": {SignatureFile: ss.files[SignatureFile], SigstoreBundleFile: otherBundle},
		"other .sig, valid Sigstore bundle":                  {SignatureFile: otherSig, SigstoreBundleFile: ss.files[SigstoreBundleFile]},
	} {
		fp, err := v(ss.s.index, files)
		if !errors.Is(err, ErrSignatureInvalid) || err.Error() != msg {
			t.Errorf("%s: got %q, %v; want ErrSignatureInvalid: %s", name, fp, err, msg)
		}
	}
	var b map[string]any
	if err := json.Unmarshal(ss.files[SigstoreBundleFile], &b); err != nil {
		t.Fatal(err)
	}
	delete(b["messageSignature"].(map[string]any), "signature")
	noSig, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := v(ss.s.index, map[string][]byte{SignatureFile: ss.files[SignatureFile], SigstoreBundleFile: noSig})
	if err != nil || fp != Fingerprint(ss.key.Public()) {
		t.Errorf("Sigstore bundle without a signature: %q, %v; want verified by %s", fp, err, Fingerprint(ss.key.Public()))
	}
}

// TestSignedBundleVerifies is the control for the tamper cases: the
// untouched bundle, and its re-encodings, verify in every mode.
func TestSignedBundleVerifies(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ecdsa-p256", "ed25519"} {
		ss := newSignedSample(t, alg)
		ents, eoa := archivetest.Split(t, ss.data)
		fp := Fingerprint(ss.key.Public())
		v := WithVerifier(KeyVerifier(ss.other.Public(), ss.key.Public()))
		for name, data := range map[string][]byte{"original": ss.data, "stream": archivetest.Stream(t, ents), "reframed": archivetest.Framed(t, ents, eoa)} {
			path := filepath.Join(t.TempDir(), "b.tar.zst")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path, v)
			if err != nil {
				t.Fatalf("%s %s: Open: %v", alg, name, err)
			}
			if err := consume(r); err != nil {
				t.Errorf("%s %s: %v", alg, name, err)
			}
			if si := r.Signature(); !si.Signed || !si.Verified || si.KeyFingerprint != fp {
				t.Errorf("%s %s: Signature() = %+v, want signed and verified by %s", alg, name, si, fp)
			}
			if name != "stream" && !r.RandomAccess() {
				t.Errorf("%s %s: not read through the seek table", alg, name)
			}
			r.Close()
			rep, err := VerifyFile(path, nil, v)
			if err != nil || !rep.Signature.Verified || rep.Signature.KeyFingerprint != fp {
				t.Errorf("%s %s: VerifyFile: %+v, %v", alg, name, rep, err)
			}
			// Without a verifier, the signature is reported, not checked.
			r, err = NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s %s: NewReader: %v", alg, name, err)
			}
			if si := r.Signature(); !si.Signed || si.Verified || si.KeyFingerprint != fp {
				t.Errorf("%s %s: unverified Signature() = %+v, want signed by %s, not verified", alg, name, si, fp)
			}
			r.Close()
		}
	}
}

// Every tampered bundle is refused in every way of reading it, with its own
// sentinel and a message of its own.
func TestSignedBundleTampered(t *testing.T) {
	t.Parallel()
	type outcome struct{ mode, msg string }
	for _, alg := range []string{"ecdsa-p256", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			ss := newSignedSample(t, alg)
			ents, eoa := archivetest.Split(t, ss.data)
			v := WithVerifier(KeyVerifier(ss.key.Public()))
			msgs := map[string]map[string]string{} // mode -> message -> case
			same := map[[3]string][]string{}       // two cases and their message -> modes
			for _, tc := range tamperCases() {
				if alg != "ecdsa-p256" && !errors.Is(tc.want, ErrVerification) {
					continue // the structural cases do not depend on the key
				}
				forms := map[string][]byte{}
				if tc.raw != nil {
					forms["stream"] = tc.raw(t, ss)
				} else {
					e := tc.edit(t, ss, ents)
					forms["stream"] = archivetest.Stream(t, e)
					if !tc.sequentialOnly {
						forms["framed"] = archivetest.Framed(t, e, eoa)
					}
				}
				for form, data := range forms {
					path := filepath.Join(t.TempDir(), "b.tar.zst")
					if err := os.WriteFile(path, data, 0o644); err != nil {
						t.Fatal(err)
					}
					var results []outcome
					check := func(mode string, early bool, err error) {
						t.Helper()
						name := tc.name + " [" + form + ", " + mode + "]"
						if err == nil {
							t.Errorf("%s: accepted", name)
							return
						}
						t.Logf("%s: %v", name, err)
						if !errors.Is(err, tc.want) {
							t.Errorf("%s: got %v, want %v", name, err, tc.want)
						}
						if tc.early && !early {
							t.Errorf("%s: refused only after blobs were handed out: %v", name, err)
						}
						for _, w := range tc.words(ss) {
							if !strings.Contains(err.Error(), w) {
								t.Errorf("%s: message does not say %q: %v", name, w, err)
							}
						}
						results = append(results, outcome{form + " " + mode, err.Error()})
					}
					// Stream (standard input).
					r, err := NewReader(bytes.NewReader(data), v)
					if err == nil {
						err = consume(r)
						r.Close()
						check("NewReader", false, err)
					} else {
						check("NewReader", true, err)
					}
					// File: through the seek table when it has a valid one.
					r, err = Open(path, v)
					if err == nil {
						switch {
						case form != "framed":
						case tc.tableRefused:
							t.Errorf("%s [framed]: the seek table was not refused", tc.name)
						case !r.RandomAccess():
							t.Errorf("%s [framed]: not read through the seek table", tc.name)
						}
						err = consume(r)
						r.Close()
						check("Open", false, err)
					} else {
						check("Open", true, err)
					}
					// Full offline check (ferry verify, import --verify-first).
					_, err = VerifyFile(path, nil, v)
					check("VerifyFile", true, err)
					for _, o := range results {
						if msgs[o.mode] == nil {
							msgs[o.mode] = map[string]string{}
						}
						if prev, dup := msgs[o.mode][o.msg]; dup && prev != tc.name {
							k := [3]string{prev, tc.name, o.msg}
							same[k] = append(same[k], o.mode)
						}
						msgs[o.mode][o.msg] = tc.name
					}
				}
			}
			for k, modes := range same {
				t.Errorf("%q and %q give the same message (%s), so an operator cannot tell them apart:\n  %s", k[0], k[1], strings.Join(modes, "; "), k[2])
			}
		})
	}
}

// An index.json edited in place behind a seek table that still lists the
// original digest is refused before its signature is even looked at.
func TestTamperedIndexStaleSeekTable(t *testing.T) {
	t.Parallel()
	ss := newSignedSample(t, "ecdsa-p256")
	tbl, _, err := readSeekTable(bytes.NewReader(ss.data), int64(len(ss.data)))
	if err != nil {
		t.Fatal(err)
	}
	ents, eoa := archivetest.Split(t, ss.data)
	data := archivetest.Framed(t, archivetest.WithBody(t, ents, IndexFile, retag(t, ss.s.index)), eoa)
	// Put the original index.json digest back in the table.
	tbl2, end2, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	tbl2.Entries[1].Digest = tbl.Entries[1].Digest
	frame, err := encodeSeekFrame(tbl2, end2)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data[:end2:end2], frame...)
	_, err = OpenReaderAt(bytes.NewReader(data), int64(len(data)), WithVerifier(KeyVerifier(ss.key.Public())))
	t.Logf("index.json changed, seek table digest stale: %v", err)
	if !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, ErrVerification) {
		t.Errorf("got %v, want a verification failure", err)
	}
}

// FuzzVerifyIndex feeds arbitrary index.json, index.json.sig and Sigstore
// bundle bytes to the signature check, with cosign's two public keys
// trusted. It must never panic, must fail with exactly one of the
// signature sentinels, and may succeed only when the signature really
// verifies with the key it names. An empty sig or sigstore argument means
// the file is absent.
func FuzzVerifyIndex(f *testing.F) {
	limitMinimization(f, "2000x")
	index := fixture(f, "index.json")
	ecSig, edSig := fixture(f, "index.json.ecdsa.sig"), fixture(f, "index.json.ed25519.sig")
	ecBundle := fixture(f, "index.json.ecdsa.sigstore.json")
	keys := []crypto.PublicKey{fixturePub(f, "ecdsa.pub"), fixturePub(f, "ed25519.pub")}
	byFP := map[string]crypto.PublicKey{}
	for _, k := range keys {
		byFP[Fingerprint(k)] = k
	}
	f.Add(index, ecSig, ecBundle)
	f.Add(index, ecSig, []byte{})
	f.Add(index, edSig, []byte{})
	f.Add(index, edSig, ecBundle)
	f.Add(index, []byte{}, ecBundle)
	f.Add(index, append(bytes.Clone(ecSig), "\n"...), ecBundle)
	f.Add(bytes.Replace(index, []byte("1.27"), []byte("1.28"), 1), ecSig, ecBundle)
	f.Add(index, []byte("not base64!"), []byte(`{"messageSignature":{"signature":"x"}}`))
	f.Add([]byte{}, ecSig, []byte(`{"verificationMaterial":{"publicKey":{"hint":"AAAA"}}}`))
	f.Add(index, ecSig, []byte(`null`))
	f.Fuzz(func(t *testing.T, index, sig, sigstore []byte) {
		files := map[string][]byte{}
		if len(sig) > 0 {
			files[SignatureFile] = sig
		}
		if len(sigstore) > 0 {
			files[SigstoreBundleFile] = sigstore
		}
		fp, err := verifyIndex(index, files, keys)
		if err != nil {
			if fp != "" {
				t.Errorf("failure %v also returned a fingerprint %q", err, fp)
			}
			n := 0
			for _, s := range []error{ErrUnsigned, ErrSignatureInvalid, ErrUnknownKey} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 || !errors.Is(err, ErrVerification) {
				t.Fatalf("error %v wraps %d of the signature sentinels, want exactly 1", err, n)
			}
			if len(sig) == 0 && !errors.Is(err, ErrUnsigned) {
				t.Fatalf("no signature file: got %v, want ErrUnsigned", err)
			}
			return
		}
		key, ok := byFP[fp]
		if !ok {
			t.Fatalf("verified by %q, which is not a trusted key", fp)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
		if err != nil {
			t.Fatalf("accepted a signature that is not base64: %q", sig)
		}
		sum := sha256.Sum256(index)
		switch k := key.(type) {
		case *ecdsa.PublicKey:
			ok = ecdsa.VerifyASN1(k, sum[:], raw)
		case ed25519.PublicKey:
			ok = ed25519.Verify(k, index, raw)
		}
		if !ok {
			t.Fatalf("accepted a signature that does not verify with %s", fp)
		}
	})
}
