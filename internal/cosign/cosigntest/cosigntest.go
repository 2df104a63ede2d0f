// Package cosigntest builds the test images that testdata/publisher holds
// cosign signatures of, records what cosign pushed next to them, and
// replays it into a loopback registry. It is never linked into the ferry
// binary.
package cosigntest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/internal/testimages"
)

// Images are the test images, by repository (below the registry host),
// all tagged 1.0. The same code gives the same digests.
var Images = []string{"team/signed", "team/bundled", "team/keyless", "team/multi", "team/attested", "team/unsigned"}

// Build returns the image (or, for team/multi, the index) of repo.
func Build(repo string) (remote.Taggable, error) {
	if repo == "team/multi" {
		amd, err := testimages.Image("linux/amd64", false, testimages.Layer("multi-amd64", 200))
		if err != nil {
			return nil, err
		}
		arm, err := testimages.Image("linux/arm64", false, testimages.Layer("multi-arm64", 200))
		if err != nil {
			return nil, err
		}
		return testimages.Index(map[string]v1.Image{"linux/amd64": amd, "linux/arm64": arm})
	}
	return testimages.Image("linux/amd64", false, testimages.Layer(repo, 200))
}

// PushImages pushes every test image to host and returns their digests
// by repository.
func PushImages(ctx context.Context, host string) (map[string]digest.Digest, error) {
	out := map[string]digest.Digest{}
	for _, repo := range Images {
		t, err := Build(repo)
		if err != nil {
			return nil, err
		}
		ref, err := name.ParseReference(host + "/" + repo + ":1.0")
		if err != nil {
			return nil, err
		}
		var d v1.Hash
		switch x := t.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(ref, x, remote.WithContext(ctx))
			d, _ = x.Digest()
		case v1.Image:
			err = remote.Write(ref, x, remote.WithContext(ctx))
			d, _ = x.Digest()
		}
		if err != nil {
			return nil, fmt.Errorf("pushing %s: %w", ref, err)
		}
		out[repo] = digest.Digest(d.String())
	}
	return out, nil
}

// Object is a manifest of a recorded repository: pushed by digest, and
// under Tag when set.
type Object struct {
	Repo      string        `json:"repo"`
	Tag       string        `json:"tag,omitempty"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
}

// Record is what cosign pushed: manifests in push order (children first)
// and, under blobs/, every blob and manifest.
type Record struct {
	Images  map[string]digest.Digest `json:"images"`
	Objects []Object                 `json:"objects"`
}

// Dump reads from host the cosign artifacts of every test image (the
// .sig, .att and .sbom tags, the referrers fallback tag and the manifests
// it lists), and writes them with their blobs to dir.
func Dump(ctx context.Context, host string, images map[string]digest.Digest, dir string) error {
	rec := Record{Images: images}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	save := func(d digest.Digest, b []byte) error {
		return os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644)
	}
	var repos []string
	for r := range images {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	subjects := map[string][]digest.Digest{}
	for _, repo := range repos {
		subjects[repo] = []digest.Digest{images[repo]}
		if repo == "team/multi" {
			t, _ := Build(repo)
			idx, _ := t.(v1.ImageIndex).IndexManifest()
			for _, m := range idx.Manifests {
				subjects[repo] = append(subjects[repo], digest.Digest(m.Digest.String()))
			}
		}
	}
	for _, repo := range repos {
		for _, d := range subjects[repo] {
			base := d.Algorithm().String() + "-" + d.Encoded()
			for _, tag := range []string{base + ".sig", base + ".att", base + ".sbom", base} {
				ref, _ := name.ParseReference(host + "/" + repo + ":" + tag)
				desc, err := remote.Get(ref, remote.WithContext(ctx))
				if err != nil {
					continue // not there
				}
				children, err := manifestChildren(desc.Manifest)
				if err != nil {
					return err
				}
				// The fallback tag's index lists the referrer manifests.
				for _, c := range children.manifests {
					cref, _ := name.ParseReference(host + "/" + repo + "@" + c.String())
					cd, err := remote.Get(cref, remote.WithContext(ctx))
					if err != nil {
						return err
					}
					sub, err := manifestChildren(cd.Manifest)
					if err != nil {
						return err
					}
					if err := dumpBlobs(ctx, host, repo, sub.blobs, save); err != nil {
						return err
					}
					if err := save(c, cd.Manifest); err != nil {
						return err
					}
					rec.Objects = append(rec.Objects, Object{Repo: repo, Digest: c, MediaType: string(cd.MediaType)})
				}
				if err := dumpBlobs(ctx, host, repo, children.blobs, save); err != nil {
					return err
				}
				md := digest.FromBytes(desc.Manifest)
				if err := save(md, desc.Manifest); err != nil {
					return err
				}
				rec.Objects = append(rec.Objects, Object{Repo: repo, Tag: tag, Digest: md, MediaType: string(desc.MediaType)})
			}
		}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "record.json"), append(b, '\n'), 0o644)
}

type kids struct{ manifests, blobs []digest.Digest }

func manifestChildren(b []byte) (kids, error) {
	var m struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return kids{}, err
	}
	var k kids
	if m.Config != nil {
		k.blobs = append(k.blobs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		k.blobs = append(k.blobs, l.Digest)
	}
	for _, c := range m.Manifests {
		k.manifests = append(k.manifests, c.Digest)
	}
	return k, nil
}

func dumpBlobs(ctx context.Context, host, repo string, ds []digest.Digest, save func(digest.Digest, []byte) error) error {
	for _, d := range ds {
		ref, _ := name.NewDigest(host + "/" + repo + "@" + d.String())
		l, err := remote.Layer(ref, remote.WithContext(ctx))
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := save(d, b); err != nil {
			return err
		}
	}
	return nil
}

// Load reads the record of dir.
func Load(dir string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, "record.json"))
	if err != nil {
		return nil, err
	}
	var rec Record
	return &rec, json.Unmarshal(b, &rec)
}

// ReadBlob reads a recorded blob or manifest.
func ReadBlob(dir string, d digest.Digest) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()))
}

// Replay pushes the test images and, for the repositories listed (every
// one when none is), what cosign pushed for them, to host.
func Replay(ctx context.Context, host, dir string, repos ...string) (*Record, error) {
	rec, err := Load(dir)
	if err != nil {
		return nil, err
	}
	got, err := PushImages(ctx, host)
	if err != nil {
		return nil, err
	}
	for repo, d := range rec.Images {
		if got[repo] != d {
			return nil, fmt.Errorf("test image %s is %s, the fixtures were made for %s: regenerate them (see testdata/publisher/README.md)", repo, got[repo], d)
		}
	}
	want := map[string]bool{}
	for _, r := range repos {
		want[r] = true
	}
	for _, o := range rec.Objects {
		if len(repos) > 0 && !want[o.Repo] {
			continue
		}
		b, err := ReadBlob(dir, o.Digest)
		if err != nil {
			return nil, err
		}
		k, err := manifestChildren(b)
		if err != nil {
			return nil, err
		}
		for _, d := range k.blobs {
			blob, err := ReadBlob(dir, d)
			if err != nil {
				return nil, err
			}
			if err := PushBlob(ctx, host+"/"+o.Repo, blob); err != nil {
				return nil, err
			}
		}
		ref := host + "/" + o.Repo + "@" + o.Digest.String()
		if o.Tag != "" {
			ref = host + "/" + o.Repo + ":" + o.Tag
		}
		if err := PushManifest(ctx, ref, b, o.MediaType); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// PushBlob uploads b to repo.
func PushBlob(ctx context.Context, repo string, b []byte) error {
	r, err := name.NewRepository(repo)
	if err != nil {
		return err
	}
	return remote.WriteLayer(r, static.NewLayer(b, types.MediaType("application/octet-stream")), remote.WithContext(ctx))
}

// PushManifest puts manifest bytes under ref (a tag or a digest).
func PushManifest(ctx context.Context, ref string, b []byte, mediaType string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	return remote.Put(r, testimages.Raw{Bytes: bytes.Clone(b), Type: types.MediaType(mediaType)}, remote.WithContext(ctx))
}
