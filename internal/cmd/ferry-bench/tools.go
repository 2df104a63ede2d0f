package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Peer tool versions, installed with `go install` at these exact versions.
const (
	craneModule  = "github.com/google/go-containerregistry/cmd/crane@v0.22.1"
	regctlModule = "github.com/regclient/regclient/cmd/regctl@v0.11.7"
)

// job is what a tool run needs to know: where the images come from and go
// to, and where it keeps its files.
type job struct {
	src, dst string // registry host:port
	images   []image
	dir      string // the tool's own work directory for this set
}

func (j job) archive() string { return filepath.Join(j.dir, "archive.tar.zst") }
func (j job) layout() string  { return filepath.Join(j.dir, "layout") }
func (j job) unpack() string  { return filepath.Join(j.dir, "unpacked") }

// tool is one way of doing EXPORT (every image to one archive file) and
// IMPORT (that archive into an empty registry). Each returns a bash script;
// prep scripts run before the measured one and are not timed.
type tool struct {
	name       string
	exportPrep func(j job) string
	export     func(j job) string
	importPrep func(j job) string
	imp        func(j job) string
}

// layoutName is the name an image gets inside a peer's OCI layout (the
// org.opencontainers.image.ref.name annotation): the reference with '/'
// and ':' made '_', which every tool accepts as a tag.
func layoutName(img image) string {
	return strings.NewReplacer("/", "_", ":", "_").Replace(img.ref())
}

func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// packLayout is the peers' second half of EXPORT: the layout as one
// zstd-compressed tar, as an operator would do it.
func packLayout(j job) string {
	return fmt.Sprintf("tar -C %s -cf - . | zstd -T0 -3 -q -f -o %s\n", q(j.layout()), q(j.archive()))
}

// unpackArchive is the peers' first half of IMPORT.
func unpackArchive(j job) string {
	return fmt.Sprintf("mkdir -p %s\nzstd -d -q -c %s | tar -C %s -xf -\n", q(j.unpack()), q(j.archive()), q(j.unpack()))
}

func clean(paths ...string) string {
	var b strings.Builder
	b.WriteString("rm -rf")
	for _, p := range paths {
		b.WriteString(" " + q(p))
	}
	b.WriteString("\n")
	return b.String()
}

var tools = []tool{
	{
		name:       "ferry",
		exportPrep: func(j job) string { return clean(j.archive()) + "mkdir -p " + q(j.dir) + "\n" },
		export: func(j job) string {
			return fmt.Sprintf("ferry export -q -f %s -o %s\n", q(filepath.Join(j.dir, "..", "images.txt")), q(j.archive()))
		},
		importPrep: func(j job) string { return "" },
		imp: func(j job) string {
			return fmt.Sprintf("ferry import -q --insecure-skip-verify %s --to %s 2>/dev/null\n", q(j.archive()), j.dst)
		},
	},
	{
		name:       "crane",
		exportPrep: func(j job) string { return clean(j.archive(), j.layout()) + "mkdir -p " + q(j.dir) + "\n" },
		export: func(j job) string {
			var b strings.Builder
			b.WriteString("crane pull --insecure --format oci --annotate-ref")
			for _, img := range j.images {
				b.WriteString(" " + q(j.src+"/"+img.ref()))
			}
			b.WriteString(" " + q(j.layout()) + "\n")
			b.WriteString(packLayout(j))
			return b.String()
		},
		importPrep: func(j job) string { return clean(j.unpack()) },
		imp: func(j job) string {
			// crane push takes a layout of one image (or pushes the whole
			// layout as one index), so each image gets a one-entry layout
			// that links to the shared blobs.
			var b strings.Builder
			b.WriteString(unpackArchive(j))
			for i, img := range j.images {
				d := filepath.Join(j.unpack(), ".one", fmt.Sprint(i))
				desc, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
					"mediaType": img.MediaType, "digest": img.Digest, "size": img.Size,
				}}})
				fmt.Fprintf(&b, "mkdir -p %s && ln -s ../../blobs %s/blobs && cp %s/oci-layout %s/ && printf '%%s' %s > %s/index.json\n",
					q(d), q(d), q(j.unpack()), q(d), q(string(desc)), q(d))
				fmt.Fprintf(&b, "crane push --insecure %s %s >/dev/null\n", q(d), q(j.dst+"/"+img.ref()))
			}
			return b.String()
		},
	},
	{
		name:       "regctl",
		exportPrep: func(j job) string { return clean(j.archive(), j.layout()) + "mkdir -p " + q(j.dir) + "\n" },
		export: func(j job) string {
			var b strings.Builder
			for _, img := range j.images {
				fmt.Fprintf(&b, "regctl --host reg=%s,tls=disabled image copy %s %s >/dev/null\n",
					j.src, q(j.src+"/"+img.ref()), q("ocidir://"+j.layout()+":"+layoutName(img)))
			}
			b.WriteString(packLayout(j))
			return b.String()
		},
		importPrep: func(j job) string { return clean(j.unpack()) },
		imp: func(j job) string {
			var b strings.Builder
			b.WriteString(unpackArchive(j))
			for _, img := range j.images {
				fmt.Fprintf(&b, "regctl --host reg=%s,tls=disabled image copy %s %s >/dev/null\n",
					j.dst, q("ocidir://"+j.unpack()+":"+layoutName(img)), q(j.dst+"/"+img.ref()))
			}
			return b.String()
		},
	},
	{
		name: "skopeo",
		exportPrep: func(j job) string {
			return clean(j.archive(), j.layout()) + "mkdir -p " + q(filepath.Join(j.layout(), "docker")) + "\n"
		},
		export: func(j job) string {
			var b strings.Builder
			for _, img := range j.images {
				fmt.Fprintf(&b, "skopeo --insecure-policy copy -q --all --preserve-digests --src-tls-verify=false %s %s\n",
					q("docker://"+j.src+"/"+img.ref()), q(skopeoLocal(j.layout(), img)))
			}
			b.WriteString(packLayout(j))
			return b.String()
		},
		importPrep: func(j job) string { return clean(j.unpack()) },
		imp: func(j job) string {
			var b strings.Builder
			b.WriteString(unpackArchive(j))
			for _, img := range j.images {
				fmt.Fprintf(&b, "skopeo --insecure-policy copy -q --all --preserve-digests --dest-tls-verify=false %s %s\n",
					q(skopeoLocal(j.unpack(), img)), q("docker://"+j.dst+"/"+img.ref()))
			}
			return b.String()
		},
	},
}

// skopeoLocal is where skopeo keeps an image on disk. Its oci: transport
// cannot hold Docker v2 manifests without converting them (which changes
// the digest), so Docker-typed images go to a dir: directory of their own
// beside the OCI layout (blobs shared between them are then stored twice).
func skopeoLocal(layout string, img image) string {
	if strings.HasPrefix(img.MediaType, "application/vnd.docker.") {
		return "dir:" + filepath.Join(layout, "docker", layoutName(img))
	}
	return "oci:" + layout + ":" + layoutName(img)
}
