// Package testimages builds small deterministic images and pushes them to a
// registry, for tests and the demo: several images sharing base layers, a
// multi-platform index, Docker v2 and OCI media types, and an OCI artifact
// of a media type no tool knows.
package testimages

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer returns a gzip layer holding files of pseudo-random text made from
// seed, about size bytes uncompressed. The same seed and size give the same
// bytes.
func Layer(seed string, size int) v1.Layer {
	return static.NewLayer(LayerBytes(seed, size), types.OCILayer)
}

// LayerBytes is the compressed content of Layer.
func LayerBytes(seed string, size int) []byte {
	rng := rand.New(rand.NewSource(int64(hash(seed))))
	words := []string{"ferry", "image", "layer", "registry", "bundle", "digest", "manifest", "config", "cluster", "offline", "mirror", "the", "a", "of", "and", "to"}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	remaining := size
	for i := 0; remaining > 0 || i == 0; i++ {
		n := min(remaining, 64<<10)
		var sb strings.Builder
		for sb.Len() < n {
			if rng.Intn(4) == 0 {
				fmt.Fprintf(&sb, "%08x ", rng.Uint32())
			} else {
				sb.WriteString(words[rng.Intn(len(words))])
				sb.WriteByte(' ')
			}
		}
		content := sb.String()
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/file-%03d.txt", seed, i), Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(content))
		remaining -= n
	}
	_ = tw.Close()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Header.ModTime = zw.Header.ModTime.UTC()
	_, _ = zw.Write(tb.Bytes())
	_ = zw.Close()
	return gz.Bytes()
}

func hash(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Image builds an image of the given layers for os/arch. docker selects
// Docker v2 media types instead of OCI.
func Image(platform string, docker bool, layers ...v1.Layer) (v1.Image, error) {
	osName, arch, _ := strings.Cut(platform, "/")
	img := empty.Image
	mt, cmt := types.OCIManifestSchema1, types.OCIConfigJSON
	if docker {
		mt, cmt = types.DockerManifestSchema2, types.DockerConfigJSON
	}
	img = mutate.MediaType(img, mt)
	img = mutate.ConfigMediaType(img, cmt)
	for _, l := range layers {
		if docker {
			b, _ := l.Compressed()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(b)
			l = static.NewLayer(buf.Bytes(), types.DockerLayer)
		}
		var err error
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "testimages"}}); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Config.Env = []string{"PATH=/usr/bin:/bin"}
	return mutate.ConfigFile(img, cf)
}

// Index builds an OCI index of images, one per platform.
func Index(images map[string]v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range sortedKeys(images) {
		osName, arch, _ := strings.Cut(p, "/")
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        images[p],
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	return idx, nil
}

func sortedKeys(m map[string]v1.Image) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// Raw is a manifest pushed byte for byte.
type Raw struct {
	Bytes []byte
	Type  types.MediaType
}

// RawManifest implements remote.Taggable.
func (r Raw) RawManifest() ([]byte, error) { return r.Bytes, nil }

// MediaType implements remote.Describable.
func (r Raw) MediaType() (types.MediaType, error) { return r.Type, nil }

// Artifact pushes an OCI artifact of an unknown media type (config is the
// empty descriptor, one layer of an unknown type) to ref and returns its
// manifest bytes.
func Artifact(ctx context.Context, ref string, payload []byte) ([]byte, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	emptyCfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	blob := static.NewLayer(payload, "application/vnd.example.unknown.layer.v1+bin")
	for _, l := range []v1.Layer{emptyCfg, blob} {
		if err := remote.WriteLayer(r.Context(), l, remote.WithContext(ctx)); err != nil {
			return nil, err
		}
	}
	bd, _ := blob.Digest()
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.unknown.artifact.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/vnd.example.unknown.layer.v1+bin","digest":"%s","size":%d,"annotations":{"org.opencontainers.image.title":"payload.bin"}}]}`, bd, len(payload))
	if err := remote.Put(r, Raw{Bytes: []byte(m), Type: types.OCIManifestSchema1}, remote.WithContext(ctx)); err != nil {
		return nil, err
	}
	return []byte(m), nil
}

// Sample is the standard image set pushed by Push.
type Sample struct {
	// Refs are the references pushed, in a stable order (host included).
	Refs []string
	// Digests maps each reference to its manifest digest.
	Digests map[string]string
	// SharedLayer is the digest of the base layer used by most images.
	SharedLayer string
}

// Push pushes the sample set to the registry at host. layerSize scales the
// layers (bytes of uncompressed text per layer; the base layer is 4×).
func Push(ctx context.Context, host string, layerSize int) (*Sample, error) {
	base := Layer("base", 4*layerSize)
	baseArm := Layer("base-arm64", 4*layerSize)
	s := &Sample{Digests: map[string]string{}}
	bd, _ := base.Digest()
	s.SharedLayer = bd.String()
	type spec struct {
		ref    string
		docker bool
		layers []v1.Layer
	}
	specs := []spec{
		{"library/alpine:3.20", false, []v1.Layer{base}},
		{"team/app:1.0", false, []v1.Layer{base, Layer("app-1.0", layerSize)}},
		{"team/app:1.1", false, []v1.Layer{base, Layer("app-1.1", layerSize)}},
		{"team/web:2.0", true, []v1.Layer{base, Layer("web-common", layerSize), Layer("web-2.0", layerSize)}},
	}
	push := func(ref string, w func(name.Reference) error, d func() (v1.Hash, error)) error {
		r, err := name.ParseReference(host + "/" + ref)
		if err != nil {
			return err
		}
		if err := w(r); err != nil {
			return fmt.Errorf("pushing %s: %w", r, err)
		}
		h, err := d()
		if err != nil {
			return err
		}
		s.Refs = append(s.Refs, r.String())
		s.Digests[r.String()] = h.String()
		return nil
	}
	for _, sp := range specs {
		img, err := Image("linux/amd64", sp.docker, sp.layers...)
		if err != nil {
			return nil, err
		}
		if err := push(sp.ref, func(r name.Reference) error { return remote.Write(r, img, remote.WithContext(ctx)) }, img.Digest); err != nil {
			return nil, err
		}
	}
	amd, err := Image("linux/amd64", false, base, Layer("tool-amd64", layerSize))
	if err != nil {
		return nil, err
	}
	arm, err := Image("linux/arm64", false, baseArm, Layer("tool-arm64", layerSize))
	if err != nil {
		return nil, err
	}
	idx, err := Index(map[string]v1.Image{"linux/amd64": amd, "linux/arm64": arm})
	if err != nil {
		return nil, err
	}
	if err := push("multi/tool:1.0", func(r name.Reference) error { return remote.WriteIndex(r, idx, remote.WithContext(ctx)) }, idx.Digest); err != nil {
		return nil, err
	}
	var am []byte
	if err := push("team/chart:0.1", func(r name.Reference) error {
		var err error
		am, err = Artifact(ctx, r.String(), LayerBytes("chart", layerSize/4+1))
		return err
	}, func() (v1.Hash, error) { h, _, err := v1.SHA256(bytes.NewReader(am)); return h, err }); err != nil {
		return nil, err
	}
	return s, nil
}
