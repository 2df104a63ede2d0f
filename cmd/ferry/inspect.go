package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/termtext"
)

// inspectReport is the --json output of inspect.
type inspectReport struct {
	FormatVersion string            `json:"formatVersion"`
	Created       string            `json:"created,omitempty"`
	FerryVersion  string            `json:"ferryVersion,omitempty"`
	Platforms     string            `json:"platformFilter,omitempty"`
	Signed        bool              `json:"signed"`
	SignedBy      string            `json:"signedBy,omitempty"`
	SeekTable     bool              `json:"seekTable"`
	Images        []inspectImage    `json:"images"`
	Blobs         int               `json:"blobs"`
	UniqueBytes   int64             `json:"uniqueBytes"`
	ArchiveBytes  int64             `json:"archiveBytes,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Delta         *deltaReport      `json:"delta,omitempty"`
}

// deltaReport says what a delta bundle leaves out, and of which base.
type deltaReport struct {
	LeftOutBlobs int          `json:"leftOutBlobs"`
	LeftOutBytes int64        `json:"leftOutBytes"`
	Bases        []baseReport `json:"bases"`
}

type baseReport struct {
	Kind         string `json:"kind"`
	Digest       string `json:"digest"`
	Name         string `json:"name,omitempty"`
	LeftOutBlobs int    `json:"leftOutBlobs"`
	LeftOutBytes int64  `json:"leftOutBytes,omitempty"`
}

// newDeltaReport describes delta d; sizes come from the descriptors of
// the blobs left out, when known (nil for verify, which counts only).
func newDeltaReport(d *bundle.Delta, leftOut []ocispec.Descriptor) *deltaReport {
	if d == nil {
		return nil
	}
	size := map[digest.Digest]int64{}
	for _, desc := range leftOut {
		size[desc.Digest] = desc.Size
	}
	rep := &deltaReport{}
	for _, b := range d.Bases {
		br := baseReport{Kind: b.Kind, Digest: b.Digest.String(), Name: b.Name, LeftOutBlobs: len(b.LeftOut)}
		for _, dg := range b.LeftOut {
			br.LeftOutBytes += size[dg]
		}
		rep.LeftOutBlobs += br.LeftOutBlobs
		rep.LeftOutBytes += br.LeftOutBytes
		rep.Bases = append(rep.Bases, br)
	}
	return rep
}

// printDelta prints what a delta leaves out and the bases it needs. Base
// names come from the bundle: escaped.
func printDelta(e *env, d *deltaReport, sizes bool) {
	if d == nil {
		return
	}
	if sizes {
		fmt.Fprintf(e.stdout, "delta:           yes, %d blobs (%s) left out; import it only where its bases were imported\n", d.LeftOutBlobs, human.Bytes(d.LeftOutBytes))
	} else {
		fmt.Fprintf(e.stdout, "delta:           yes, %d blobs left out; import it only where its bases were imported\n", d.LeftOutBlobs)
	}
	for _, b := range d.Bases {
		name := ""
		if b.Name != "" {
			name = " (" + termtext.Escape(b.Name) + ")"
		}
		if sizes {
			fmt.Fprintf(e.stdout, "  base:          %s %s%s: %d blobs, %s\n", b.Kind, b.Digest, name, b.LeftOutBlobs, human.Bytes(b.LeftOutBytes))
		} else {
			fmt.Fprintf(e.stdout, "  base:          %s %s%s: %d blobs\n", b.Kind, b.Digest, name, b.LeftOutBlobs)
		}
	}
}

type inspectImage struct {
	Ref       string            `json:"ref"`
	Digest    string            `json:"digest"`
	MediaType string            `json:"mediaType"`
	Platforms []string          `json:"platforms,omitempty"`
	Size      int64             `json:"size"`
	Referrers []inspectReferrer `json:"referrers,omitempty"`
}

// inspectReferrer is a signature, SBOM or attestation carried for an image.
type inspectReferrer struct {
	Ref          string `json:"ref"`
	Digest       string `json:"digest"`
	Subject      string `json:"subject"`
	ArtifactType string `json:"artifactType"`
	MediaType    string `json:"mediaType"`
	Size         int64  `json:"size"`
}

// refName is a reference without its tag or digest.
func refName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func newInspectCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "list the images and metadata of a bundle",
		ArgsUsage: "FILE|-",
		Description: `Reads index.json and the manifests only (through the seek table when
present); layers are not decompressed.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: flagJSON, Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect takes one bundle file (or - for standard input), got %d arguments", c.NArg())
			}
			path := c.Args().First()
			r, err := openBundle(e, path)
			if err != nil {
				return err
			}
			defer r.Close()
			rep := report(r)
			if path != "-" {
				if st, err := os.Stat(path); err == nil {
					rep.ArchiveBytes = st.Size()
				}
			}
			if c.Bool(flagJSON) {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printReport(e, rep)
			return nil
		},
	}
}

func report(r *bundle.Reader) inspectReport {
	idx := r.Index()
	rep := inspectReport{
		FormatVersion: idx.Annotations[bundle.AnnotationFormatVersion],
		Created:       idx.Annotations[bundle.AnnotationCreated],
		FerryVersion:  idx.Annotations[bundle.AnnotationFerryVersion],
		Platforms:     idx.Annotations[bundle.AnnotationPlatforms],
		SeekTable:     r.SeekTable() != nil,
		Annotations:   idx.Annotations,
	}
	rep.Signed, rep.SignedBy = r.Signature().Signed, r.Signature().KeyFingerprint
	for _, img := range r.Images() {
		ii := inspectImage{Ref: img.Ref, Digest: img.Descriptor.Digest.String(), MediaType: img.Descriptor.MediaType, Size: img.Size}
		for _, p := range img.Platforms {
			ii.Platforms = append(ii.Platforms, bundle.FormatPlatform(p))
		}
		for _, r := range img.Referrers {
			ii.Referrers = append(ii.Referrers, inspectReferrer{Ref: r.Ref, Digest: r.Descriptor.Digest.String(), Subject: r.Subject.String(),
				ArtifactType: r.ArtifactType, MediaType: r.Descriptor.MediaType, Size: r.Size})
		}
		rep.Images = append(rep.Images, ii)
	}
	rep.Blobs, rep.UniqueBytes = r.UniqueBytes()
	rep.Delta = newDeltaReport(r.Delta(), r.LeftOut())
	return rep
}

// printReport prints rep for a terminal. Everything but the counts and
// the key fingerprint is what index.json and the manifests of a bundle not
// verified here say: escaped (see termtext), so that a hostile bundle can
// neither move the cursor (rewriting the "signed:" line) nor start a line.
func printReport(e *env, rep inspectReport) {
	w := e.stdout
	esc := termtext.Escape
	fmt.Fprintf(w, "format version:  %s\n", esc(rep.FormatVersion))
	fmt.Fprintf(w, "created:         %s by ferry %s\n", esc(rep.Created), esc(rep.FerryVersion))
	if rep.Platforms != "" {
		fmt.Fprintf(w, "platform filter: %s\n", esc(rep.Platforms))
	}
	signed := "no"
	if rep.Signed {
		signed = "yes (not verified here; use ferry verify)"
		if rep.SignedBy != "" {
			signed = "yes, key " + rep.SignedBy + " (not verified here; use ferry verify)"
		}
	}
	fmt.Fprintf(w, "signed:          %s\n", signed)
	fmt.Fprintf(w, "blobs:           %d unique, %s\n", rep.Blobs, human.Bytes(rep.UniqueBytes))
	printDelta(e, rep.Delta, true)
	if rep.ArchiveBytes > 0 {
		fmt.Fprintf(w, "archive:         %s\n", human.Bytes(rep.ArchiveBytes))
	}
	seek := "yes (random access)"
	if !rep.SeekTable {
		seek = "no (sequential read; a file written by ferry that lost its seek table may be truncated: check with zstd -t or ferry import)"
	}
	fmt.Fprintf(w, "seek table:      %s\n\n", seek)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tDIGEST\tMEDIA TYPE\tPLATFORMS\tSIZE")
	for _, img := range rep.Images {
		pl := strings.Join(img.Platforms, ",")
		if pl == "" {
			pl = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", esc(img.Ref), img.Digest, esc(img.MediaType), esc(pl), human.Bytes(img.Size))
		// Referrers under their image: the cosign tag they are pushed by,
		// if any, and their artifact type in the media type column.
		for _, r := range img.Referrers {
			name := strings.TrimPrefix(r.Ref, refName(img.Ref))
			if strings.HasPrefix(name, "@") {
				name = ""
			} else {
				name = " " + name
			}
			at := r.ArtifactType
			if at == "" {
				at = r.MediaType
			}
			fmt.Fprintf(tw, "  referrer%s\t%s\t%s\t-\t%s\n", esc(name), r.Digest, esc(at), human.Bytes(r.Size))
		}
	}
	tw.Flush()
}
