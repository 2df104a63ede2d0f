package bundle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/archivetest"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// Artifact types of the test referrers.
const (
	sbomType   = "application/spdx+json"
	sigType    = "application/vnd.dev.sigstore.bundle.v0.3+json"
	cosignType = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// startGGCR starts go-containerregistry's registry, with or without the
// Referrers API, behind handler wrap (nil: none).
func startGGCR(t *testing.T, referrers bool, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.WithReferrersSupport(referrers), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// signed is an image with an SBOM (a referrer), a signature on the SBOM
// (a referrer of the referrer) and a cosign signature tag.
type signed struct {
	ref                   string // host/app/signed:1.0
	repo                  string
	image, sbom, sbomSig  v1.Descriptor
	cosignSig             v1.Descriptor
	cosignTag             string
	unrelated             string // an image without referrers
	unrelatedImageDigest  string
	sbomBytes, cosignBody []byte
}

// pushArtifact pushes a manifest of artifactType with one layer of payload,
// referring to subject when not nil, under tag (or by digest when tag is
// empty); ggcr keeps the fallback tag where the registry has no Referrers
// API. configType empty means the empty config and an artifactType field.
func pushArtifact(t *testing.T, repo string, subject *v1.Descriptor, artifactType, configType, payload, tag string) (v1.Descriptor, []byte) {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	cfgBody := []byte("{}")
	cfgType := "application/vnd.oci.empty.v1+json"
	if configType != "" {
		cfgType = configType
		cfgBody = []byte(`{"architecture":"","os":""}`)
	}
	cfg := static.NewLayer(cfgBody, types.MediaType(cfgType))
	layer := static.NewLayer([]byte(payload), types.MediaType(artifactType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
	}
	cd, _ := cfg.Digest()
	ld, _ := layer.Digest()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        map[string]any{"mediaType": cfgType, "digest": cd.String(), "size": len(cfgBody)},
		"layers":        []any{map[string]any{"mediaType": artifactType, "digest": ld.String(), "size": len(payload)}},
		"annotations":   map[string]string{"org.example.note": payload},
	}
	if configType == "" {
		m["artifactType"] = artifactType
	}
	if subject != nil {
		m["subject"] = map[string]any{"mediaType": subject.MediaType, "digest": subject.Digest.String(), "size": subject.Size}
	}
	b, _ := json.Marshal(m)
	h, n, _ := v1.SHA256(strings.NewReader(string(b)))
	var ref name.Reference = r.Digest(h.String())
	if tag != "" {
		ref = r.Tag(tag)
	}
	if err := remote.Put(ref, testimages.Raw{Bytes: b, Type: types.OCIManifestSchema1}); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n}, b
}

// pushSigned pushes the signed image and its referrers to host.
func pushSigned(t *testing.T, host string) *signed {
	t.Helper()
	s := &signed{repo: host + "/app/signed", ref: host + "/app/signed:1.0", unrelated: host + "/app/plain:1.0"}
	img, err := testimages.Image("linux/amd64", false, testimages.Layer("signed", 4096))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(s.ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	sz, _ := img.Size()
	s.image = v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: sz}
	s.sbom, s.sbomBytes = pushArtifact(t, s.repo, &s.image, sbomType, "", `{"spdxVersion":"SPDX-2.3"}`, "")
	s.sbomSig, _ = pushArtifact(t, s.repo, &s.sbom, sigType, "", "signature over the sbom", "")
	s.cosignTag = "sha256-" + d.Hex + ".sig"
	s.cosignSig, s.cosignBody = pushArtifact(t, s.repo, nil, cosignType, ocispec.MediaTypeImageConfig, `{"critical":{}}`, s.cosignTag)
	plain, err := testimages.Image("linux/amd64", false, testimages.Layer("plain", 4096))
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := name.ParseReference(s.unrelated)
	if err := remote.Write(pr, plain); err != nil {
		t.Fatal(err)
	}
	pd, _ := plain.Digest()
	s.unrelatedImageDigest = pd.String()
	return s
}

func exportRefs(t *testing.T, refs []string, opts bundle.ExportOptions) (string, *bundle.ExportSummary, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "images.tar.zst")
	if opts.Created.IsZero() {
		opts.Created = created
	}
	sum, err := bundle.ExportFile(context.Background(), refs, path, opts)
	return path, sum, err
}

// referrersAt lists the referrers of subject at repo (through the API or
// the fallback tag, as ggcr does).
func referrersAt(t *testing.T, repo string, subject v1.Hash) []string {
	t.Helper()
	r, _ := name.NewRepository(repo)
	idx, err := remote.Referrers(r.Digest(subject.String()))
	if err != nil {
		t.Fatalf("listing the referrers of %s in %s: %v", subject, repo, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range im.Manifests {
		out = append(out, d.Digest.String()+" "+d.ArtifactType)
	}
	slices.Sort(out)
	return out
}

// checkReferrersImported asserts the referrers of s resolve at dst, as the
// source had them. ggcr's registry answers the config's media type as
// artifactType, whatever the manifest says (api): there only the digests
// are compared.
func checkReferrersImported(t *testing.T, s *signed, dstRepo string, api bool) {
	t.Helper()
	sbom, sig := " "+sbomType, " "+sigType
	if api {
		sbom, sig = " "+ocispec.MediaTypeEmptyJSON, " "+ocispec.MediaTypeEmptyJSON
	}
	if got, want := referrersAt(t, dstRepo, s.image.Digest), []string{s.sbom.Digest.String() + sbom}; !slices.Equal(got, want) {
		t.Errorf("referrers of the image at the destination: %v, want %v", got, want)
	}
	if got, want := referrersAt(t, dstRepo, s.sbom.Digest), []string{s.sbomSig.Digest.String() + sig}; !slices.Equal(got, want) {
		t.Errorf("referrers of the SBOM at the destination: %v, want %v", got, want)
	}
	if got := destDigest(t, dstRepo+":"+s.cosignTag); got != s.cosignSig.Digest.String() {
		t.Errorf("cosign tag %s at the destination: %s, want %s", s.cosignTag, got, s.cosignSig.Digest)
	}
}

// checkBundleReferrers asserts what every reader of the bundle lists.
func checkBundleReferrers(t *testing.T, r *bundle.Reader, s *signed) {
	t.Helper()
	imgs := r.Images()
	if len(imgs) != 2 {
		t.Fatalf("Images: %d, want the 2 images (referrers are listed under their image)", len(imgs))
	}
	var got []string
	for _, ref := range imgs[0].Referrers {
		got = append(got, fmt.Sprintf("%s %s %s %d", strings.TrimPrefix(ref.Ref, s.repo), ref.Subject, ref.ArtifactType, ref.Size))
	}
	want := []string{
		fmt.Sprintf(":%s %s %s %d", s.cosignTag, s.image.Digest, cosignType, s.cosignSig.Size+int64(len(`{"architecture":"","os":""}`))+int64(len(`{"critical":{}}`))),
		fmt.Sprintf("@%s %s %s %d", s.sbom.Digest, s.image.Digest, sbomType, s.sbom.Size+2+int64(len(`{"spdxVersion":"SPDX-2.3"}`))),
		fmt.Sprintf("@%s %s %s %d", s.sbomSig.Digest, s.sbom.Digest, sigType, s.sbomSig.Size+2+int64(len("signature over the sbom"))),
	}
	if !slices.Equal(got, want) {
		t.Errorf("referrers of %s:\n%s\nwant\n%s", imgs[0].Ref, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(imgs[1].Referrers) != 0 {
		t.Errorf("the image without referrers lists %v", imgs[1].Referrers)
	}
}

// TestReferrersRoundTrip exports a signed image with an SBOM and a
// signature on the SBOM from a registry with and without the Referrers
// API, and imports it into registries with and without it: every referrer
// resolves at the destination as it did at the source.
func TestReferrersRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		srcAPI, dstAPI bool
		distribution   bool // the destination is distribution (no Referrers API)
	}{
		{name: "api to api", srcAPI: true, dstAPI: true},
		{name: "api to fallback tag", srcAPI: true},
		{name: "fallback tag to api", dstAPI: true},
		{name: "api to distribution, from a stream", srcAPI: true, distribution: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := startGGCR(t, tc.srcAPI, nil)
			s := pushSigned(t, src)
			path, sum, err := exportRefs(t, []string{s.ref, s.unrelated}, bundle.ExportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Images != 2 || sum.Referrers != 3 {
				t.Errorf("summary: %d images, %d referrers; want 2 and 3", sum.Images, sum.Referrers)
			}
			// Every reader sees the same referrers.
			r, err := bundle.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			checkBundleReferrers(t, r, s)
			r.Close()
			f, _ := os.Open(path)
			sr, err := bundle.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			checkBundleReferrers(t, sr, s)
			f.Close()
			if rep, err := bundle.VerifyFile(path, nil); err != nil || rep.Images != 2 || rep.Referrers != 3 {
				t.Errorf("verify: %v: %d images, %d referrers; want 2 and 3", err, rep.Images, rep.Referrers)
			}

			var dst string
			if tc.distribution {
				dst = registrytest.New(t, registrytest.Options{}).Host
			} else {
				dst = startGGCR(t, tc.dstAPI, nil)
			}
			// From a file, or (into distribution) from a stream.
			var res *bundle.ImportResult
			if tc.distribution {
				f, _ := os.Open(path)
				defer f.Close()
				r, err := bundle.NewReader(f)
				if err != nil {
					t.Fatal(err)
				}
				res, err = bundle.Import(context.Background(), r, dst+"/mirror", bundle.ImportOptions{})
			} else {
				res, err = bundle.ImportFile(context.Background(), path, dst+"/mirror", bundle.ImportOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			wantTags := 2 // the fallback tags of the image and of the SBOM
			if tc.dstAPI {
				wantTags = 0
			}
			if res.ReferrerTags != wantTags {
				t.Errorf("fallback tags written: %d, want %d", res.ReferrerTags, wantTags)
			}
			checkReferrersImported(t, s, dst+"/mirror/app/signed", tc.dstAPI)
		})
	}
}

// lies answers some requests in place of the registry: path → content type
// and body.
type lies map[string][2]string

func (l lies) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := l[r.URL.Path]; ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", a[0])
			w.Header().Set("Docker-Content-Digest", digest.FromString(a[1]).String())
			w.Header().Set("Content-Length", strconv.Itoa(len(a[1])))
			if r.Method == http.MethodGet {
				io.WriteString(w, a[1])
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// liarSigned starts a registry with the Referrers API (or without, noAPI)
// behind the lies that make(s) returns, and pushes the signed image to it.
func liarSigned(t *testing.T, noAPI bool, make func(s *signed) lies) *signed {
	t.Helper()
	l := lies{}
	host := startGGCR(t, !noAPI, l.wrap)
	s := pushSigned(t, host)
	for k, v := range make(s) {
		l[k] = v
	}
	return s
}

func referrersPath(s *signed, d v1.Hash) string {
	return "/v2/app/signed/referrers/" + d.String()
}

func indexOf(descs ...string) string {
	return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + strings.Join(descs, ",") + `]}`
}

func descJSON(d v1.Descriptor) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, d.MediaType, d.Digest, d.Size)
}

// TestReferrersHostileRegistry: a registry that lies in its lists of
// referrers makes the export fail, naming the image, what is wrong and how
// to go on, and writes nothing; a cycle of cosign tags ends.
func TestReferrersHostileRegistry(t *testing.T) {
	t.Parallel()
	descs := make([]string, 10001)
	for i := range descs {
		descs[i] = fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%064x","size":100}`, i)
	}
	huge := func(s *signed) lies {
		return lies{referrersPath(s, s.image.Digest): {ocispec.MediaTypeImageIndex, indexOf(descs...)}}
	}
	hugeTag := func(s *signed) lies {
		return lies{"/v2/app/signed/manifests/sha256-" + s.image.Digest.Hex: {ocispec.MediaTypeImageIndex, indexOf(descs...)}}
	}
	for _, tc := range []struct {
		name    string
		noAPI   bool
		lies    func(s *signed) lies
		wantErr error
		want    func(s *signed) string
	}{{
		name: "wrong subject",
		lies: func(s *signed) lies {
			return lies{referrersPath(s, s.image.Digest): {ocispec.MediaTypeImageIndex, indexOf(descJSON(s.sbomSig))}}
		},
		wantErr: bundle.ErrReferrer,
		want: func(s *signed) string {
			return fmt.Sprintf("invalid referrer: %s lists %s as a referrer of %s, but its subject is %s: the registry's list of referrers is wrong; leave referrers out with --no-referrers",
				s.repo, s.sbomSig.Digest, s.image.Digest, s.sbom.Digest)
		},
	}, {
		name:    "huge list",
		lies:    huge,
		wantErr: bundle.ErrTooLarge,
		want: func(s *signed) string {
			return fmt.Sprintf("content exceeds size limit: %s lists more than 10000 referrers of %s, the most ferry carries; leave them out with --no-referrers", s.repo, s.image.Digest)
		},
	}, {
		name:    "huge fallback tag",
		noAPI:   true,
		lies:    hugeTag,
		wantErr: bundle.ErrTooLarge,
		want: func(s *signed) string {
			return fmt.Sprintf("content exceeds size limit: %s lists more than 10000 referrers of %s, the most ferry carries; leave them out with --no-referrers", s.repo, s.image.Digest)
		},
	}, {
		name:  "fallback tag not an index",
		noAPI: true,
		lies: func(s *signed) lies {
			return lies{"/v2/app/signed/manifests/sha256-" + s.image.Digest.Hex: {ocispec.MediaTypeImageIndex, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`}}
		},
		wantErr: bundle.ErrReferrer,
		want: func(s *signed) string {
			return fmt.Sprintf("invalid referrer: the referrers tag sha256-%s in %s is not an OCI image index", s.image.Digest.Hex, s.repo)
		},
	}, {
		name: "size lie",
		lies: func(s *signed) lies {
			d := s.sbom
			d.Size = 10
			return lies{referrersPath(s, s.image.Digest): {ocispec.MediaTypeImageIndex, indexOf(descJSON(d))}}
		},
		wantErr: bundle.ErrDigestMismatch,
		want: func(s *signed) string {
			return fmt.Sprintf("referrer %s of %s: digest mismatch: registry served %d bytes, its list of referrers says 10", s.sbom.Digest, s.image.Digest, s.sbom.Size)
		},
	}, {
		name: "not an index",
		lies: func(s *signed) lies {
			return lies{referrersPath(s, s.image.Digest): {ocispec.MediaTypeImageIndex, `{"schemaVersion":1}`}}
		},
		wantErr: bundle.ErrReferrer,
		want: func(s *signed) string {
			return fmt.Sprintf("invalid referrer: the list of referrers of %s in %s is not an OCI image index", s.image.Digest, s.repo)
		},
	}, {
		name: "bad digest",
		lies: func(s *signed) lies {
			return lies{referrersPath(s, s.image.Digest): {ocispec.MediaTypeImageIndex, indexOf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"md5:0123","size":2}`)}}
		},
		wantErr: bundle.ErrUnsupported,
		want: func(s *signed) string {
			return fmt.Sprintf(`invalid referrer: the list of referrers of %s in %s: unsupported content: digest "md5:0123" (only sha256 and sha512 are accepted)`, s.image.Digest, s.repo)
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := liarSigned(t, tc.noAPI, tc.lies)
			path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{Registry: bundle.RegistryOptions{Retries: -1}})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("export: %v, want %v", err, tc.wantErr)
			}
			want := s.ref + ": finding its referrers (--no-referrers leaves them out): " + tc.want(s)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("export: %v\nwant it to say %s", err, want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a bundle was written: %v", err)
			}
			// --no-referrers is the way on.
			if _, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{NoReferrers: true}); err != nil {
				t.Errorf("export --no-referrers: %v", err)
			}
		})
	}

	t.Run("cosign tags in a cycle", func(t *testing.T) {
		t.Parallel()
		// The SBOM's cosign tag names the image, whose referrers name the
		// SBOM: discovery stops at what it has seen.
		var imgManifest string
		s := liarSigned(t, false, func(s *signed) lies {
			r, _ := name.ParseReference(s.ref)
			d, err := remote.Get(r)
			if err != nil {
				t.Fatal(err)
			}
			imgManifest = string(d.Manifest)
			return lies{"/v2/app/signed/manifests/sha256-" + s.sbom.Digest.Hex + ".sig": {string(d.MediaType), imgManifest}}
		})
		_, sum, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Referrers != 4 {
			t.Errorf("referrers: %d, want the 3 and the cosign tag of the SBOM", sum.Referrers)
		}
	})

	t.Run("too deep", func(t *testing.T) {
		t.Parallel()
		host := startGGCR(t, true, nil)
		s := pushSigned(t, host)
		subject := s.sbomSig
		for i := range 3 { // the SBOM's signature is level 2
			subject, _ = pushArtifact(t, s.repo, &subject, sigType, "", fmt.Sprintf("level %d", i+3), "")
		}
		if _, sum, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{}); err != nil || sum.Referrers != 6 {
			t.Fatalf("export of 5 levels: %v, %d referrers (want 6)", err, sum.Referrers)
		}
		last := subject
		pushArtifact(t, s.repo, &last, sigType, "", "level 6", "")
		_, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
		if !errors.Is(err, bundle.ErrReferrer) {
			t.Fatalf("export: %v, want %v", err, bundle.ErrReferrer)
		}
		want := fmt.Sprintf("%s: finding its referrers (--no-referrers leaves them out): invalid referrer: referrers nest deeper than 5 levels below the image (%s has 1); keep some with --referrers-type", s.ref, last.Digest)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("export: %v\nwant it to say %s", err, want)
		}
	})
}

// bundleReferrers lists the referrer entries of a bundle's index.json.
func bundleReferrers(t *testing.T, path string) []string {
	t.Helper()
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for _, d := range r.Index().Manifests {
		if bundle.IsReferrer(d) {
			out = append(out, d.Digest.String()+" "+d.ArtifactType)
		}
	}
	return out
}

// TestReferrersOptions: --referrers-type keeps only the types named, at
// every level; --no-referrers leaves them all out.
func TestReferrersOptions(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	for _, tc := range []struct {
		name string
		opts bundle.ExportOptions
		want []string
	}{
		{"sbom only", bundle.ExportOptions{ReferrerTypes: []string{sbomType}}, []string{s.sbom.Digest.String() + " " + sbomType}},
		{"sbom and its signature", bundle.ExportOptions{ReferrerTypes: []string{sbomType, sigType}}, []string{s.sbom.Digest.String() + " " + sbomType, s.sbomSig.Digest.String() + " " + sigType}},
		{"cosign signature", bundle.ExportOptions{ReferrerTypes: []string{cosignType}}, []string{s.cosignSig.Digest.String() + " " + cosignType}},
		{"a type nobody has", bundle.ExportOptions{ReferrerTypes: []string{"application/x-none"}}, nil},
		{"none", bundle.ExportOptions{NoReferrers: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, sum, err := exportRefs(t, []string{s.ref}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := bundleReferrers(t, path); !slices.Equal(got, tc.want) {
				t.Errorf("referrers carried: %v, want %v", got, tc.want)
			}
			if sum.Referrers != len(tc.want) {
				t.Errorf("summary: %d referrers, want %d", sum.Referrers, len(tc.want))
			}
		})
	}
}

// TestReferrersMergeFallbackTag: at a registry without the Referrers API,
// import adds its referrers to the fallback tag another tool wrote, keeping
// what it lists; an import of the same bundle again writes nothing.
func TestReferrersMergeFallbackTag(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := startGGCR(t, false, nil)
	dstRepo := dst + "/app/signed"
	// Another tool attaches a referrer to the image first (ggcr's client
	// writes the fallback tag). The image must be there for that.
	img, _ := name.ParseReference(s.ref)
	desc, err := remote.Get(img)
	if err != nil {
		t.Fatal(err)
	}
	di, _ := desc.Image()
	dr, _ := name.ParseReference(dstRepo + ":1.0")
	if err := remote.Write(dr, di); err != nil {
		t.Fatal(err)
	}
	other, _ := pushArtifact(t, dstRepo, &s.image, "application/vnd.example.scan+json", "", `{"findings":[]}`, "")
	res, err := bundle.ImportFile(context.Background(), path, dst, bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReferrerTags != 2 {
		t.Errorf("fallback tags written: %d, want 2", res.ReferrerTags)
	}
	want := []string{other.Digest.String() + " application/vnd.example.scan+json", s.sbom.Digest.String() + " " + sbomType}
	slices.Sort(want)
	if got := referrersAt(t, dstRepo, s.image.Digest); !slices.Equal(got, want) {
		t.Errorf("referrers of the image: %v, want %v (the other tool's kept)", got, want)
	}
	res, err = bundle.ImportFile(context.Background(), path, dst, bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReferrerTags != 0 {
		t.Errorf("importing again wrote %d fallback tags, want 0", res.ReferrerTags)
	}
}

// TestReferrersImportFallbackTagRefused: a destination whose fallback tag
// holds something else than an image index is left as it is, and the
// import fails saying so.
func TestReferrersImportFallbackTagRefused(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{ReferrerTypes: []string{sbomType}})
	if err != nil {
		t.Fatal(err)
	}
	dst := startGGCR(t, false, nil)
	// The tag sha256-<image> holds an artifact manifest, not an index.
	pushArtifact(t, dst+"/app/signed", nil, "application/x-other", "", "x", "sha256-"+s.image.Digest.Hex)
	_, err = bundle.ImportFile(context.Background(), path, dst, bundle.ImportOptions{})
	if !errors.Is(err, bundle.ErrConflict) {
		t.Fatalf("import: %v, want %v", err, bundle.ErrConflict)
	}
	want := fmt.Sprintf(`listing the referrers of %s at %s/app/signed:sha256-%s, before pushing anything: destination conflict: the tag holds "application/vnd.oci.image.manifest.v1+json", not the OCI image index of the referrers tag scheme; ferry leaves it as it is: move it away, then import again`, s.image.Digest, dst, s.image.Digest.Hex)
	if err.Error() != want {
		t.Errorf("import: %v\nwant %s", err, want)
	}
}

// TestReferrersAPIThatDoesNotList: a registry whose Referrers API does not
// list what was pushed with a subject gets the fallback tag too, so that
// the referrers resolve.
func TestReferrersAPIThatDoesNotList(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{ReferrerTypes: []string{sbomType}})
	if err != nil {
		t.Fatal(err)
	}
	l := lies{}
	dst := startGGCR(t, true, l.wrap)
	l["/v2/app/signed/referrers/"+s.image.Digest.String()] = [2]string{ocispec.MediaTypeImageIndex, indexOf()}
	res, err := bundle.ImportFile(context.Background(), path, dst, bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReferrerTags != 1 {
		t.Errorf("fallback tags written: %d, want 1", res.ReferrerTags)
	}
	if got := destDigest(t, dst+"/app/signed:sha256-"+s.image.Digest.Hex); got == "" {
		t.Error("no fallback tag")
	}
}

// TestReferrersTamperedIndex: an index.json entry marked as a referrer
// that is not one is refused the same way by the random-access reader and
// the stream reader (exit code 3).
func TestReferrersTamperedIndex(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref, s.unrelated}, bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, eoa := archivetest.Split(t, good)
	var idx ocispec.Index
	if err := json.Unmarshal(entries[archivetest.Index(t, entries, "index.json")].Body, &idx); err != nil {
		t.Fatal(err)
	}
	entryOf := func(d v1.Hash) int {
		for i, m := range idx.Manifests {
			if m.Digest.String() == d.String() && !strings.Contains(m.Annotations[bundle.AnnotationRefName], ":sha256-") {
				return i
			}
		}
		t.Fatalf("no index.json entry for %s", d)
		return -1
	}
	sbom := entryOf(s.sbom.Digest)
	plain := -1 // the image without referrers
	for i, m := range idx.Manifests {
		if m.Annotations[bundle.AnnotationRefName] == s.unrelated {
			plain = i
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(x *ocispec.Index)
		wantErr error
		want    string
	}{{
		name:    "subject not a digest",
		edit:    func(x *ocispec.Index) { x.Manifests[sbom].Annotations[bundle.AnnotationSubject] = "md5:0" },
		wantErr: bundle.ErrUnsupported,
		want:    fmt.Sprintf(`archive is corrupt: invalid referrer: index.json entry %d (%s@%s): annotation %s: unsupported content: digest "md5:0" (only sha256 and sha512 are accepted)`, sbom, s.repo, s.sbom.Digest, bundle.AnnotationSubject),
	}, {
		name: "subject not in the bundle",
		edit: func(x *ocispec.Index) {
			x.Manifests[sbom].Annotations[bundle.AnnotationSubject] = "sha256:" + strings.Repeat("0", 64)
		},
		wantErr: bundle.ErrReferrer,
		want:    fmt.Sprintf(`archive is corrupt: invalid referrer: index.json entry %d (%s@%s) is a referrer of sha256:%s, which the bundle does not hold`, sbom, s.repo, s.sbom.Digest, strings.Repeat("0", 64)),
	}, {
		name: "another subject",
		edit: func(x *ocispec.Index) {
			x.Manifests[sbom].Annotations[bundle.AnnotationSubject] = s.unrelatedImageDigest
		},
		wantErr: bundle.ErrReferrer,
		want:    fmt.Sprintf(`archive is corrupt: invalid referrer: index.json entry %d (%s@%s) is marked as a referrer of %s, but neither its manifest's subject nor a cosign tag names it`, sbom, s.repo, s.sbom.Digest, s.unrelatedImageDigest),
	}, {
		name: "an image marked as a referrer",
		edit: func(x *ocispec.Index) {
			x.Manifests[plain].Annotations[bundle.AnnotationSubject] = s.image.Digest.String()
		},
		wantErr: bundle.ErrReferrer,
		want:    fmt.Sprintf(`archive is corrupt: invalid referrer: index.json entry %d (%s) is marked as a referrer of %s, but neither its manifest's subject nor a cosign tag names it`, plain, s.unrelated, s.image.Digest),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var x ocispec.Index
			_ = json.Unmarshal(entries[archivetest.Index(t, entries, "index.json")].Body, &x)
			tc.edit(&x)
			b, _ := json.MarshalIndent(x, "", "  ")
			bad := archivetest.WithBody(t, entries, "index.json", b)
			file := filepath.Join(t.TempDir(), "bad.tar.zst")
			if err := os.WriteFile(file, archivetest.Framed(t, bad, eoa), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errFile := bundle.Open(file)
			_, errStream := bundle.NewReader(strings.NewReader(string(archivetest.Stream(t, bad))))
			for how, err := range map[string]error{"file": errFile, "stream": errStream} {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, bundle.ErrCorrupt) {
					t.Fatalf("%s: %v, want %v and %v", how, err, tc.wantErr, bundle.ErrCorrupt)
				}
				if !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("%s: %v\nwant %s", how, err, tc.want)
				}
			}
		})
	}
}

// TestReferrersDelta: a delta bundle (--base) carries the referrers as a
// full one does; what the base holds is left out, and after importing the
// base and the delta every referrer resolves.
func TestReferrersDelta(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	full, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A month later the image has an attestation too.
	att, _ := pushArtifact(t, s.repo, &s.image, "application/vnd.in-toto+json", "", `{"predicateType":"https://slsa.dev/provenance/v1"}`, "")
	delta, sum, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{Bases: []*bundle.Base{readBase(t, full)}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Referrers != 4 || sum.LeftOut == 0 {
		t.Errorf("delta: %d referrers (want 4), %d blobs left out (want some)", sum.Referrers, sum.LeftOut)
	}
	dst := startGGCR(t, false, nil)
	for _, p := range []string{full, delta} {
		if _, err := bundle.ImportFile(context.Background(), p, dst, bundle.ImportOptions{}); err != nil {
			t.Fatalf("importing %s: %v", filepath.Base(p), err)
		}
	}
	want := []string{s.sbom.Digest.String() + " " + sbomType, att.Digest.String() + " application/vnd.in-toto+json"}
	slices.Sort(want)
	if got := referrersAt(t, dst+"/app/signed", s.image.Digest); !slices.Equal(got, want) {
		t.Errorf("referrers of the image after the delta: %v, want %v", got, want)
	}
}

// startDockerRegistry runs Debian's docker-registry (distribution 2.8, no
// Referrers API) on loopback for the test, or skips the test saying why.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry (Debian package docker-registry, distribution 2.8) is not installed: the test against a registry without the Referrers API of another implementation does not run")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReferrersDockerRegistry imports into distribution 2.8, which has no
// Referrers API: the referrers resolve through the fallback tags, and
// regctl (when installed) lists the SBOM there.
func TestReferrersDockerRegistry(t *testing.T) {
	t.Parallel()
	dst := startDockerRegistry(t)
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := bundle.ImportFile(context.Background(), path, dst+"/mirror", bundle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ReferrerTags != 2 {
		t.Errorf("fallback tags written: %d, want 2", res.ReferrerTags)
	}
	checkReferrersImported(t, s, dst+"/mirror/app/signed", false)

	regctl, err := exec.LookPath("regctl")
	if err != nil {
		t.Skip("regctl is not installed (go install github.com/regclient/regclient/cmd/regctl@v0.11.7): the check that a stock client lists the SBOM does not run")
	}
	cmd := exec.Command(regctl, "--host", "reg="+dst+",tls=disabled", "artifact", "list", dst+"/mirror/app/signed:1.0", "--format", "{{jsonPretty .}}")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("regctl artifact list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), s.sbom.Digest.String()) || !strings.Contains(string(out), sbomType) {
		t.Errorf("regctl artifact list does not list the SBOM %s (%s):\n%s", s.sbom.Digest, sbomType, out)
	}
}

// TestReferrersTotalLimit: referrers found across several subjects count
// against one limit per export (each list here is within it). Not
// parallel: it lowers the limit.
func TestReferrersTotalLimit(t *testing.T) {
	s := pushSigned(t, startGGCR(t, true, nil))
	restore := bundle.SetMaxReferrers(3)
	defer restore()
	if _, sum, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{}); err != nil || sum.Referrers != 3 {
		t.Fatalf("export of 3 referrers with a limit of 3: %v", err)
	}
	bundle.SetMaxReferrers(2)
	_, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
	if !errors.Is(err, bundle.ErrTooLarge) {
		t.Fatalf("export: %v, want %v", err, bundle.ErrTooLarge)
	}
	want := s.ref + ": finding its referrers (--no-referrers leaves them out): content exceeds size limit: more than 2 referrers in all; leave some out with --referrers-type, or all with --no-referrers"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("export: %v\nwant it to say %s", err, want)
	}
}

// TestReferrersFallbackTagFull: a fallback tag that would outgrow the 4 MiB
// a manifest may have is not written, and the import says why.
func TestReferrersFallbackTagFull(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{ReferrerTypes: []string{sbomType}})
	if err != nil {
		t.Fatal(err)
	}
	dst := startGGCR(t, false, nil)
	// The registry wants what an index lists to be there: the tag lists
	// the image itself, many times over.
	src, _ := name.ParseReference(s.ref)
	desc, err := remote.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := desc.Image()
	dr, _ := name.ParseReference(dst + "/app/signed:1.0")
	if err := remote.Write(dr, img); err != nil {
		t.Fatal(err)
	}
	descs := make([]string, 25000)
	for i := range descs {
		descs[i] = descJSON(s.image)
	}
	full := indexOf(descs...)
	pad := bundle.MaxManifestBytes - 100 - len(full) - len(`,"annotations":{"pad":""}`)
	if pad < 0 {
		t.Fatalf("the index is already %d bytes", len(full))
	}
	full = strings.TrimSuffix(full, "}") + `,"annotations":{"pad":"` + strings.Repeat("x", pad) + `"}}`
	r, _ := name.ParseReference(dst + "/app/signed:sha256-" + s.image.Digest.Hex)
	if err := remote.Put(r, testimages.Raw{Bytes: []byte(full), Type: types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.ImportFile(context.Background(), path, dst, bundle.ImportOptions{})
	if !errors.Is(err, bundle.ErrTooLarge) {
		t.Fatalf("import: %v, want %v", err, bundle.ErrTooLarge)
	}
	want := fmt.Sprintf("listing the referrers of %s at %s/app/signed:sha256-%s: content exceeds size limit: the tag would list 25001 referrers in ", s.image.Digest, dst, s.image.Digest.Hex)
	if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), " bytes, more than the 4194304 a manifest may have") {
		t.Errorf("import: %v\nwant %s… bytes, more than the 4194304 a manifest may have", err, want)
	}
}

// TestReferrersIntoLayout: imported into an OCI layout, referrers are
// listed in its index.json (by digest; cosign tags by name), as images
// imported by digest are.
func TestReferrersIntoLayout(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, true, nil))
	path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := bundle.ImportFile(context.Background(), path, "oci:"+dir, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range idx.Manifests {
		got = append(got, d.Digest.String()+" "+d.Annotations[ocispec.AnnotationRefName])
	}
	for _, want := range []string{
		s.sbom.Digest.String() + " " + s.repo + "@" + s.sbom.Digest.String(),
		s.sbomSig.Digest.String() + " " + s.repo + "@" + s.sbomSig.Digest.String(),
		s.cosignSig.Digest.String() + " " + s.repo + ":" + s.cosignTag,
	} {
		if !slices.Contains(got, want) {
			t.Errorf("the layout's index.json does not list %s:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// TestReferrersOneRequestAtATime: with Jobs 1 discovery asks for one list
// or tag at a time; by default it overlaps them.
func TestReferrersOneRequestAtATime(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	inFlight, most := 0, 0
	host := startGGCR(t, false, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/referrers/") && !strings.Contains(r.URL.Path, "/manifests/sha256-") {
				next.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			next.ServeHTTP(w, r)
			mu.Lock()
			inFlight--
			mu.Unlock()
		})
	})
	s := pushSigned(t, host)
	for _, tc := range []struct {
		jobs      int
		atMostOne bool
	}{{1, true}, {0, false}} {
		mu.Lock()
		most = 0
		mu.Unlock()
		if _, sum, err := exportRefs(t, []string{s.ref, s.unrelated}, bundle.ExportOptions{Jobs: tc.jobs}); err != nil || sum.Referrers != 3 {
			t.Fatalf("export with %d jobs: %v", tc.jobs, err)
		}
		mu.Lock()
		if got := most == 1; got != tc.atMostOne {
			t.Errorf("export with %d jobs: at most %d requests at once", tc.jobs, most)
		}
		mu.Unlock()
	}
}

// TestReferrersSameImageTwoRepositories: one image in two repositories,
// each with its own SBOM: each repository's referrers travel to it, and
// are listed under the image of that repository only.
func TestReferrersSameImageTwoRepositories(t *testing.T) {
	t.Parallel()
	host := startGGCR(t, true, nil)
	s := pushSigned(t, host)
	src, _ := name.ParseReference(s.ref)
	desc, err := remote.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := desc.Image()
	copyRef, _ := name.ParseReference(host + "/app/copy:1.0")
	if err := remote.Write(copyRef, img); err != nil {
		t.Fatal(err)
	}
	copySBOM, _ := pushArtifact(t, host+"/app/copy", &s.image, sbomType, "", `{"spdxVersion":"SPDX-2.3","name":"copy"}`, "")
	path, _, err := exportRefs(t, []string{s.ref, copyRef.String()}, bundle.ExportOptions{ReferrerTypes: []string{sbomType}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	imgs := r.Images()
	want := map[string]string{s.ref: s.repo + "@" + s.sbom.Digest.String(), copyRef.String(): host + "/app/copy@" + copySBOM.Digest.String()}
	for _, im := range imgs {
		if len(im.Referrers) != 1 || im.Referrers[0].Ref != want[im.Ref] {
			t.Errorf("referrers of %s: %+v, want only %s", im.Ref, im.Referrers, want[im.Ref])
		}
	}
	dst := startGGCR(t, false, nil)
	if _, err := bundle.ImportFile(context.Background(), path, dst, bundle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for repo, sbom := range map[string]v1.Hash{"/app/signed": s.sbom.Digest, "/app/copy": copySBOM.Digest} {
		if got := referrersAt(t, dst+repo, s.image.Digest); !slices.Equal(got, []string{sbom.String() + " " + sbomType}) {
			t.Errorf("referrers in %s: %v, want %s", repo, got, sbom)
		}
	}
}

// TestReferrersDeterministic: the same content with its referrers gives
// the same bundle, byte for byte, however the lookups interleave.
func TestReferrersDeterministic(t *testing.T) {
	t.Parallel()
	s := pushSigned(t, startGGCR(t, false, nil))
	var first []byte
	for i := range 3 {
		path, _, err := exportRefs(t, []string{s.ref, s.unrelated}, bundle.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if i == 0 {
			first = b
		} else if string(b) != string(first) {
			t.Fatalf("export %d differs from the first", i+1)
		}
	}
}

// TestReferrersPages: a list of referrers given over several pages (Link
// rel="next") is read whole; endless pages, or a next page on another
// host, make the export fail.
func TestReferrersPages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		next    func(path string) string // the Link of every page but the last
		wantErr error
		want    func(s *signed, host string) string
	}{
		{name: "two pages", next: func(path string) string { return path + "?page=2" }},
		{name: "endless", next: func(path string) string { return path + "?page=again" }, wantErr: bundle.ErrTooLarge,
			want: func(s *signed, host string) string {
				return fmt.Sprintf("content exceeds size limit: %s gives more than 64 pages of referrers of %s; leave them out with --no-referrers", s.repo, s.image.Digest)
			}},
		{name: "another host", next: func(path string) string { return "http://elsewhere.example" + path + "?page=2" }, wantErr: registry.ErrForeignLink,
			want: func(s *signed, host string) string {
				return fmt.Sprintf("list of referrers from %s: link to another host refused: the Link header's next page is on http://elsewhere.example, not on the registry", host)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex // the handler reads s and att once they are pushed
			var s *signed
			var att v1.Descriptor
			again := 0
			host := startGGCR(t, true, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					s, att := s, att
					mu.Unlock()
					if s == nil || r.URL.Path != referrersPath(s, s.image.Digest) {
						next.ServeHTTP(w, r)
						return
					}
					w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
					if r.URL.Query().Get("page") == "2" {
						io.WriteString(w, indexOf(descJSON(att)))
						return
					}
					w.Header().Set("Link", "<"+tc.next(r.URL.Path)+`>; rel="next"`)
					if r.URL.Query().Get("page") == "again" {
						// Each page lists one more (a next page that
						// lists nothing new is refused before the 64th).
						mu.Lock()
						again++
						n := again
						mu.Unlock()
						io.WriteString(w, indexOf(descJSON(s.sbom), fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%064x","size":100}`, n)))
						return
					}
					io.WriteString(w, indexOf(descJSON(s.sbom)))
				})
			})
			signedImg := pushSigned(t, host)
			a, _ := pushArtifact(t, signedImg.repo, &signedImg.image, "application/vnd.in-toto+json", "", "provenance", "")
			mu.Lock()
			s, att = signedImg, a
			mu.Unlock()
			path, _, err := exportRefs(t, []string{s.ref}, bundle.ExportOptions{ReferrerTypes: []string{sbomType, "application/vnd.in-toto+json"}})
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				want := []string{s.sbom.Digest.String() + " " + sbomType, att.Digest.String() + " application/vnd.in-toto+json"}
				slices.Sort(want) // by reference name: REPO@DIGEST
				if got := bundleReferrers(t, path); !slices.Equal(got, want) {
					t.Errorf("referrers carried: %v, want %v", got, want)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("export: %v, want %v", err, tc.wantErr)
			}
			want := s.ref + ": finding its referrers (--no-referrers leaves them out): " + tc.want(s, host)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("export: %v\nwant it to say %s", err, want)
			}
		})
	}
}
