package main

// In-process tests of signed bundles: keygen, export --key, verify, inspect
// and import --key, with ferry's own keys and with cosign's (the real cosign
// artifacts in testdata/cosign), and tampered bundles, each refused with
// exit code 3, its own message, and nothing at the destination.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// cosignDir holds keys and signatures made by the cosign CLI (password
// ferry-test); see its README.md.
const cosignDir = "../../testdata/cosign"

// unsetenv removes k for the duration of the test (t.Setenv restores it).
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "")
	os.Unsetenv(k)
}

func pubPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	b, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifySig checks a base64 signature over index independently of the
// bundle package: ASN.1 DER ECDSA over SHA-256, or pure Ed25519.
func verifySig(t *testing.T, pub crypto.PublicKey, index, b64 []byte) bool {
	t.Helper()
	sig, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil {
		t.Errorf("signature is not base64: %v", err)
		return false
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(index)
		return ecdsa.VerifyASN1(k, sum[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, index, sig)
	}
	t.Errorf("unexpected key type %T", pub)
	return false
}

// Not parallel: t.Setenv. Each algorithm: keygen, export --key with
// --signature-out, verify, inspect, import --key.
func TestSignedRoundTrip(t *testing.T) {
	_, sample := source(t)
	unsetenv(t, "COSIGN_PASSWORD")
	unsetenv(t, "FERRY_PUBLIC_KEYS")
	t.Setenv("FERRY_PASSWORD", "round trip password")
	other, err := bundle.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	otherPub := writeFile(t, "other.pub", pubPEM(t, other.Public()))

	for _, alg := range []string{"ecdsa-p256", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			prefix := filepath.Join(dir, "signing")
			res := ferry(t, nil, "keygen", "--algorithm", alg, "--output-prefix", prefix)
			res.expect(t, exitOK)

			keyFile, pubFile := prefix+".key", prefix+".pub"
			st, err := os.Stat(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", keyFile, st.Mode().Perm())
			}
			keyPEM, _ := os.ReadFile(keyFile)
			if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" {
				t.Errorf("%s is not a cosign encrypted key:\n%s", keyFile, keyPEM)
			}
			pubData, _ := os.ReadFile(pubFile)
			pub, err := bundle.LoadPublicKey(pubData)
			if err != nil {
				t.Fatalf("%s: %v", pubFile, err)
			}
			switch pub.(type) {
			case *ecdsa.PublicKey:
				if alg != "ecdsa-p256" {
					t.Errorf("keygen --algorithm %s made an ECDSA key", alg)
				}
			case ed25519.PublicKey:
				if alg != "ed25519" {
					t.Errorf("keygen --algorithm %s made an Ed25519 key", alg)
				}
			}
			fp := bundle.Fingerprint(pub)
			if !strings.Contains(res.stderr, "key fingerprint: "+fp) {
				t.Errorf("keygen does not print the fingerprint %s:\n%s", fp, res.stderr)
			}
			again := ferry(t, nil, "keygen", "--algorithm", alg, "--output-prefix", prefix)
			again.expect(t, exitFailure, "already exists")
			if b, _ := os.ReadFile(keyFile); !bytes.Equal(b, keyPEM) {
				t.Errorf("a second keygen overwrote %s", keyFile)
			}

			out := filepath.Join(dir, "images.tar.zst")
			sigOut := filepath.Join(dir, "images.tar.zst.sig")
			res = ferry(t, nil, append([]string{"export", "-q", "-o", out, "--key", keyFile, "--signature-out", sigOut}, sample.Refs...)...)
			res.expect(t, exitOK)

			r, err := bundle.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			sig, ok := r.File(bundle.SignatureFile)
			index := r.IndexBytes()
			si := r.Signature()
			r.Close()
			if !ok {
				t.Fatalf("the bundle has no %s", bundle.SignatureFile)
			}
			if !verifySig(t, pub, index, sig) {
				t.Errorf("%s in the archive does not verify over index.json with %s", bundle.SignatureFile, pubFile)
			}
			if !si.Signed || si.KeyFingerprint != fp {
				t.Errorf("reader reports %+v, want signed by %s", si, fp)
			}
			written, err := os.ReadFile(sigOut)
			if err != nil {
				t.Fatal(err)
			}
			if string(bytes.TrimSpace(written)) != string(sig) || len(written) > len(sig)+1 {
				t.Errorf("--signature-out wrote %q, the archive holds %q", written, sig)
			}

			res = ferry(t, nil, "verify", "--key", pubFile, out)
			res.expect(t, exitOK)
			for _, w := range []string{"signature:  valid, key " + fp, "result:     OK"} {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("verify output lacks %q:\n%s", w, res.stdout)
				}
			}
			res = ferry(t, nil, "verify", "--json", "--key", pubFile, out)
			res.expect(t, exitOK)
			var vj struct {
				Result, KeyFingerprint string
				Images, Blobs          int
			}
			if err := json.Unmarshal([]byte(res.stdout), &vj); err != nil || vj.Result != "ok" || vj.KeyFingerprint != fp || vj.Images != len(sample.Refs) || vj.Blobs == 0 {
				t.Errorf("verify --json: %+v, %v\n%s", vj, err, res.stdout)
			}

			res = ferry(t, nil, "inspect", out)
			res.expect(t, exitOK)
			if !strings.Contains(res.stdout, "signed:          yes, key "+fp) {
				t.Errorf("inspect does not show the signing key %s:\n%s", fp, res.stdout)
			}
			res = ferry(t, nil, "inspect", "--json", out)
			res.expect(t, exitOK)
			var ij struct {
				Signed   bool
				SignedBy string
			}
			if err := json.Unmarshal([]byte(res.stdout), &ij); err != nil || !ij.Signed || ij.SignedBy != fp {
				t.Errorf("inspect --json: %+v, %v", ij, err)
			}

			dst := registrytest.New(t, registrytest.Options{})
			to := dst.Host + "/signed"
			args := []string{"import", "-q", "--to", to, out}
			if alg == "ecdsa-p256" {
				// Key rotation: any of the trusted keys will do.
				args = append(args, "--key", otherPub, "--key", pubFile)
			} else {
				t.Setenv("FERRY_PUBLIC_KEYS", otherPub+","+pubFile)
			}
			res = ferry(t, nil, args...)
			res.expect(t, exitOK)
			assertTagged(t, to, false, sample)
			if strings.Contains(res.stdout, " NO\n") || strings.Contains(res.stderr, "WARNING") {
				t.Errorf("import:\n%s\n%s", res.stdout, res.stderr)
			}
		})
	}
}

// Not parallel: t.Setenv. cosign's own keys work with ferry's CLI.
func TestCosignKeysCLI(t *testing.T) {
	_, sample := source(t)
	unsetenv(t, "FERRY_PASSWORD")
	unsetenv(t, "FERRY_PUBLIC_KEYS")
	t.Setenv("COSIGN_PASSWORD", "ferry-test")
	ref := sample.Refs[0]
	ecKey, ecPub := filepath.Join(cosignDir, "ecdsa.key"), filepath.Join(cosignDir, "ecdsa.pub")
	pubData, err := os.ReadFile(ecPub)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.LoadPublicKey(pubData)
	if err != nil {
		t.Fatal(err)
	}
	fp := bundle.Fingerprint(pub)

	t.Run("COSIGN_PASSWORD", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "images.tar.zst")
		ferry(t, nil, "export", "-q", "-o", out, "--key", ecKey, ref).expect(t, exitOK)
		res := ferry(t, nil, "verify", "--key", ecPub, out)
		res.expect(t, exitOK)
		if !strings.Contains(res.stdout, "signature:  valid, key "+fp) {
			t.Errorf("verify output lacks cosign's key %s:\n%s", fp, res.stdout)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		// FERRY_PASSWORD comes first; COSIGN_PASSWORD holds the right one.
		t.Setenv("FERRY_PASSWORD", "not-ferry-test")
		dir := t.TempDir()
		res := ferry(t, nil, "export", "-q", "-o", filepath.Join(dir, "images.tar.zst"), "--key", ecKey, ref)
		res.expect(t, exitFailure, "wrong password", "ecdsa.key")
		assertDirEmpty(t, dir)
	})
	t.Run("no password", func(t *testing.T) {
		unsetenv(t, "COSIGN_PASSWORD")
		dir := t.TempDir()
		res := ferry(t, nil, "export", "-q", "-o", filepath.Join(dir, "images.tar.zst"), "--key", ecKey, ref)
		res.expect(t, exitUsage, "FERRY_PASSWORD", "COSIGN_PASSWORD")
		assertDirEmpty(t, dir)
	})
	t.Run("unencrypted PKCS#8 key needs no password", func(t *testing.T) {
		unsetenv(t, "COSIGN_PASSWORD")
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := writeFile(t, "plain.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		pubFile := writeFile(t, "plain.pub", pubPEM(t, k.Public()))
		out := filepath.Join(t.TempDir(), "images.tar.zst")
		ferry(t, nil, "export", "-q", "-o", out, "--key", keyFile, ref).expect(t, exitOK)
		res := ferry(t, nil, "verify", "--key", pubFile, out)
		res.expect(t, exitOK)
		if want := "signature:  valid, key " + bundle.Fingerprint(k.Public()); !strings.Contains(res.stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, res.stdout)
		}
	})
}

// ---- tampered bundles ----

// signedSet is the sample bundle signed with key, made once for the package.
var signedSet struct {
	once   sync.Once
	err    error
	key    crypto.Signer
	other  crypto.Signer
	bundle []byte
}

func signedSample(t *testing.T) ([]byte, crypto.Signer, crypto.Signer) {
	t.Helper()
	_, sample := source(t)
	s := &signedSet
	s.once.Do(func() {
		if s.key, s.err = bundle.GenerateKey(""); s.err != nil {
			return
		}
		if s.other, s.err = bundle.GenerateKey(""); s.err != nil {
			return
		}
		dir, err := os.MkdirTemp("", "ferry-sign-test-")
		if err != nil {
			s.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "signed.tar.zst")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, s.err = bundle.ExportFile(ctx, sample.Refs, path, bundle.ExportOptions{Created: time.Unix(1700000000, 0), Sign: bundle.Signer(s.key)}); s.err != nil {
			return
		}
		s.bundle, s.err = os.ReadFile(path)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return bytes.Clone(s.bundle), s.key, s.other
}

func blobName(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }

// assertNothingAt checks that no sample image, by tag or by digest, is at
// the destination.
func assertNothingAt(t *testing.T, dst *registrytest.Registry, to string, sample *testimages.Sample) {
	t.Helper()
	assertNoTags(t, dst.Host, to, sample, basicAuth{})
	for _, ref := range sample.Refs {
		r, err := name.ParseReference(destRef(t, ref, to, false))
		if err != nil {
			t.Fatal(err)
		}
		byDigest := r.Context().Digest(sample.Digests[ref])
		_, err = remote.Head(byDigest)
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD %s after a refused import: %v (want 404)", byDigest, err)
		}
	}
}

// Each tampered bundle is refused by import (from a file, from standard
// input, with --verify-first) and by verify, with exit code 3 and a message
// of its own, and nothing is tagged at the destination. Signature failures
// and --verify-first send nothing at all to the destination.
func TestImportTamperedSigned(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	orig, key, other := signedSample(t)
	ents, eoa := archivetest.Split(t, orig)
	pubData := pubPEM(t, key.Public())

	alpine := sample.Refs[0]
	manifest := sample.Digests[alpine]
	var m struct{ Config struct{ Digest string } }
	if err := json.Unmarshal(ents[archivetest.Index(t, ents, blobName(manifest))].Body, &m); err != nil || m.Config.Digest == "" {
		t.Fatalf("manifest of %s: %v", alpine, err)
	}
	config := m.Config.Digest
	layer := sample.SharedLayer
	index := ents[archivetest.Index(t, ents, bundle.IndexFile)].Body
	sigstore := ents[archivetest.Index(t, ents, bundle.SigstoreBundleFile)].Body
	sig := ents[archivetest.Index(t, ents, bundle.SignatureFile)].Body

	retagged := bytes.Replace(index, []byte("library/alpine:3.20"), []byte("library/alpine:3.21"), 1)
	if bytes.Equal(retagged, index) {
		t.Fatal("index.json does not name library/alpine:3.20")
	}
	otherFiles, err := bundle.Signer(other)(retagged)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := bundle.Signer(key)([]byte("some other content"))
	if err != nil {
		t.Fatal(err)
	}
	replacedBundle := bytes.Replace(sigstore, sig, foreign[bundle.SignatureFile], 1)
	if bytes.Equal(replacedBundle, sigstore) {
		t.Fatal("the Sigstore bundle does not hold the signature")
	}
	extra := []byte("a blob nothing references")
	tbl, err := bundle.ReadSeekTable(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	lastBlob := tbl.Entries[len(tbl.Entries)-1]

	without := func(names ...string) []archivetest.Entry {
		var out []archivetest.Entry
		for _, e := range ents {
			if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+e.Header.Name+" ") {
				out = append(out, e)
			}
		}
		return out
	}
	appended := func(e archivetest.Entry) []archivetest.Entry {
		return append(append([]archivetest.Entry(nil), ents...), e)
	}
	dupLayer := ents[archivetest.Index(t, ents, blobName(layer))]
	dupLayer.Frame = nil
	afterSigs := archivetest.Index(t, ents, bundle.SigstoreBundleFile) + 1
	etc := append(append(append([]archivetest.Entry(nil), ents[:afterSigs]...), archivetest.File("/etc/x", []byte("root:x:0:0"))), ents[afterSigs:]...)
	symlink := append([]archivetest.Entry(nil), ents...)
	i := archivetest.Index(t, symlink, blobName(layer))
	symlink[i] = archivetest.Entry{Header: tar.Header{Name: symlink[i].Header.Name, Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777}}

	cases := []struct {
		name  string
		data  []byte
		words []string
		// early: refused before anything is sent to the destination, even
		// without --verify-first.
		early bool
	}{
		{"flipped byte in a layer", archivetest.Stream(t, archivetest.Flipped(t, ents, blobName(layer))), []string{layer, "digest mismatch"}, false},
		{"flipped byte in a layer (seek table)", archivetest.Framed(t, archivetest.Flipped(t, ents, blobName(layer)), eoa), []string{layer, "digest mismatch"}, false},
		{"flipped byte in a config", archivetest.Stream(t, archivetest.Flipped(t, ents, blobName(config))), []string{config, "digest mismatch"}, false},
		{"flipped byte in a manifest", archivetest.Stream(t, archivetest.Flipped(t, ents, blobName(manifest))), []string{manifest, "digest mismatch"}, true},
		{"flipped byte in index.json", archivetest.Stream(t, archivetest.WithBody(t, ents, bundle.IndexFile, retagged)), []string{"signature", "index.json"}, true},
		{"signature replaced", archivetest.Stream(t, archivetest.WithBody(t, archivetest.WithBody(t, ents, bundle.SignatureFile, foreign[bundle.SignatureFile]), bundle.SigstoreBundleFile, replacedBundle)), []string{"signature"}, true},
		{"signed by another key", archivetest.Stream(t, archivetest.WithBody(t, archivetest.WithBody(t, archivetest.WithBody(t, ents, bundle.IndexFile, retagged), bundle.SignatureFile, otherFiles[bundle.SignatureFile]), bundle.SigstoreBundleFile, otherFiles[bundle.SigstoreBundleFile])), []string{"unknown key", bundle.Fingerprint(other.Public())}, true},
		{"signature removed", archivetest.Stream(t, without(bundle.SignatureFile, bundle.SigstoreBundleFile)), []string{"not signed", "--insecure-skip-verify"}, true},
		{"extra blob nothing references", archivetest.Stream(t, appended(archivetest.File(blobName(digest.FromBytes(extra).String()), extra))), []string{digest.FromBytes(extra).Encoded(), "not referenced"}, false},
		{"duplicated entry", archivetest.Stream(t, appended(dupLayer)), []string{"duplicate entry", blobName(layer)}, false},
		{"truncated archive", orig[:lastBlob.Offset+lastBlob.Length/2], []string{"truncated"}, false},
		{"entry named ../x", archivetest.Stream(t, appended(archivetest.File("../x", []byte("escape")))), []string{"unsafe", "../x"}, false},
		{"entry named /etc/x", archivetest.Stream(t, etc), []string{"unsafe", "/etc/x"}, true},
		{"symlink entry", archivetest.Stream(t, symlink), []string{"symbolic link", blobName(layer)}, false},
	}

	// The seek-table variant is read through the seek table.
	r, err := bundle.OpenReaderAt(bytes.NewReader(cases[1].data), int64(len(cases[1].data)))
	if err != nil || !r.RandomAccess() {
		t.Fatalf("the re-framed bundle is not read through its seek table: %v", err)
	}
	r.Close()

	var mu sync.Mutex
	messages := map[string]string{} // normalised import message -> case
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				path := writeFile(t, "images.tar.zst", c.data)
				pub := writeFile(t, "trusted.pub", pubData)

				// import FILE
				dst := registrytest.New(t, registrytest.Options{})
				to := dst.Host + "/mirror"
				res := ferry(t, nil, "import", "-q", "--key", pub, "--to", to, path)
				if c.early {
					res.expect(t, exitVerify, append([]string{"reading " + path}, c.words...)...)
					if n := dst.Requests.Load(); n != 0 {
						t.Errorf("import sent %d requests to the destination", n)
					}
				} else {
					res.expect(t, exitVerify, c.words...)
				}
				if strings.Contains(res.stderr, "warning") {
					t.Errorf("import warns:\n%s", res.stderr)
				}
				assertNothingAt(t, dst, to, sample)
				// Every case has a message of its own (the seek-table
				// variant is the same alteration as the plain layer flip).
				if !strings.HasSuffix(c.name, "(seek table)") {
					msg := strings.ReplaceAll(strings.ReplaceAll(res.errMessage(), path, "FILE"), dst.Host, "DEST")
					mu.Lock()
					if prev, dup := messages[msg]; dup {
						t.Errorf("%q and %q give the same message, so an operator cannot tell them apart:\n  %s", prev, c.name, msg)
					}
					messages[msg] = c.name
					mu.Unlock()
				}

				// import - (standard input), for the cases found before any
				// push (late ones read from a pipe are covered by
				// TestImportDigestMismatch and TestImportTruncated).
				if c.early {
					dst := registrytest.New(t, registrytest.Options{})
					to := dst.Host + "/mirror"
					res := ferry(t, bytes.NewReader(c.data), "import", "-q", "--key", pub, "--to", to, "-")
					res.expect(t, exitVerify, append([]string{"reading standard input"}, c.words...)...)
					if n := dst.Requests.Load(); n != 0 {
						t.Errorf("import - sent %d requests to the destination", n)
					}
					assertNothingAt(t, dst, to, sample)
				}

				// import --verify-first FILE
				dst = registrytest.New(t, registrytest.Options{})
				to = dst.Host + "/mirror"
				res = ferry(t, nil, "import", "-q", "--verify-first", "--key", pub, "--to", to, path)
				res.expect(t, exitVerify, append([]string{"nothing was pushed"}, c.words...)...)
				if n := dst.Requests.Load(); n != 0 {
					t.Errorf("import --verify-first sent %d requests to the destination", n)
				}
				assertNothingAt(t, dst, to, sample)

				// verify FILE
				res = ferry(t, nil, "verify", "--key", pub, path)
				res.expect(t, exitVerify, c.words...)
				if !strings.Contains(res.stdout, "result:     FAILED") {
					t.Errorf("verify output:\n%s", res.stdout)
				}
			})
		}
	})
	for msg, c := range messages {
		t.Logf("%-40s ferry: %s", c+":", strings.TrimPrefix(msg, "ferry: "))
	}
}

// The control for TestImportTamperedSigned: the same signed bundle,
// re-encoded both ways without change, imports.
func TestImportSignedReencoded(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	orig, key, _ := signedSample(t)
	ents, eoa := archivetest.Split(t, orig)
	pub := writeFile(t, "trusted.pub", pubPEM(t, key.Public()))
	for name, data := range map[string][]byte{"one stream": archivetest.Stream(t, ents), "frames": archivetest.Framed(t, ents, eoa)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dst := registrytest.New(t, registrytest.Options{})
			to := dst.Host + "/mirror"
			path := writeFile(t, "images.tar.zst", data)
			res := ferry(t, nil, "import", "-q", "--verify-first", "--key", pub, "--to", to, path)
			res.expect(t, exitOK)
			assertTagged(t, to, false, sample)
			if strings.Contains(res.stderr, "warning") {
				t.Errorf("import warns:\n%s", res.stderr)
			}
		})
	}
}
