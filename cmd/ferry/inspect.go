package main

import (
	"slices"
	"unicode/utf8"

	"fmt"
	"github.com/ferryproject/ferry/internal/report"
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

// newDeltaReport describes delta d; sizes come from the descriptors of
// the blobs left out, when known (nil for verify, which counts only).
func newDeltaReport(d *bundle.Delta, leftOut []ocispec.Descriptor) *report.Delta {
	if d == nil {
		return nil
	}
	size := map[digest.Digest]int64{}
	for _, desc := range leftOut {
		size[desc.Digest] = desc.Size
	}
	rep := &report.Delta{}
	for _, b := range d.Bases {
		br := report.Base{Kind: b.Kind, Digest: b.Digest.String(), Name: b.Name, LeftOutBlobs: len(b.LeftOut)}
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
// names come from the bundle: escaped. Unless wide, digests are short and
// names cut, to fit 100 columns.
func printDelta(e *env, d *report.Delta, sizes, wide bool) {
	if d == nil {
		return
	}
	if sizes {
		fmt.Fprintf(e.stdout, "delta:           yes, %d blobs (%s) left out; import it only where its bases were imported\n", d.LeftOutBlobs, human.Bytes(d.LeftOutBytes))
	} else {
		fmt.Fprintf(e.stdout, "delta:           yes, %d blobs left out; import it only where its bases were imported\n", d.LeftOutBlobs)
	}
	for _, b := range d.Bases {
		name, dg := "", b.Digest
		if b.Name != "" {
			if wide {
				name = " (" + termtext.Escape(b.Name) + ")"
			} else {
				name = " (" + elide(termtext.Escape(b.Name), 24) + ")"
			}
		}
		if !wide {
			dg = shortDigest(dg)
		}
		if sizes {
			fmt.Fprintf(e.stdout, "  base:          %s %s%s: %d blobs, %s\n", b.Kind, dg, name, b.LeftOutBlobs, human.Bytes(b.LeftOutBytes))
		} else {
			fmt.Fprintf(e.stdout, "  base:          %s %s%s: %d blobs\n", b.Kind, dg, name, b.LeftOutBlobs)
		}
	}
}

// inspectRow is one row of the image table: all columns with wide, else
// no media type and short digests, the reference needing the room more.
func inspectRow(wide bool, ref, dg, mediaType, pl string, platforms []string, size int64) []string {
	if wide {
		return []string{ref, dg, mediaType, pl, human.Bytes(size)}
	}
	if platforms != nil {
		pl = elidePlatforms(platforms, 24)
	}
	return []string{ref, shortDigest(dg), pl, human.Bytes(size)}
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
present); layers are not decompressed. The table fits 100 columns: short
digests and cut names; --wide prints them in full.`,
		Flags: []cli.Flag{
			jsonFlag(),
			&cli.BoolFlag{Name: flagWide, Usage: "print full digests, names and media types, however wide"},
			logFormatFlag(),
		},
		Action: func(c *cli.Context) error {
			if _, err := setupOutput(c, e, "inspect"); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("inspect takes one bundle file (or - for standard input), got %d arguments", c.NArg())
			}
			path := c.Args().First()
			r, err := openBundle(e, path)
			if err != nil {
				return err
			}
			defer r.Close()
			rep := inspectDoc(r)
			if path != "-" {
				if st, err := os.Stat(path); err == nil {
					rep.ArchiveBytes = st.Size()
				}
			}
			if c.Bool(flagJSON) {
				return emitJSON(e.stdout, rep)
			}
			// Checked: a report cut short by a full disk must not end
			// with exit 0.
			sw := &stickyWriter{w: e.stdout}
			pe := *e
			pe.stdout = sw
			printReport(&pe, rep, c.Bool(flagWide))
			if sw.err != nil {
				return fmt.Errorf("writing to standard output: %w", sw.err)
			}
			return nil
		},
	}
}

func inspectDoc(r *bundle.Reader) report.Inspect {
	idx := r.Index()
	rep := report.Inspect{
		Header:        report.NewHeader("inspect"),
		FormatVersion: idx.Annotations[bundle.AnnotationFormatVersion],
		Created:       idx.Annotations[bundle.AnnotationCreated],
		FerryVersion:  idx.Annotations[bundle.AnnotationFerryVersion],
		Platforms:     idx.Annotations[bundle.AnnotationPlatforms],
		SeekTable:     r.SeekTable() != nil,
		Annotations:   idx.Annotations,
	}
	rep.Signed, rep.SignedBy = r.Signature().Signed, r.Signature().KeyFingerprint
	for _, img := range r.Images() {
		ii := report.InspectImage{Ref: img.Ref, Digest: img.Descriptor.Digest.String(), MediaType: img.Descriptor.MediaType, Size: img.Size}
		for _, p := range img.Platforms {
			ii.Platforms = append(ii.Platforms, bundle.FormatPlatform(p))
		}
		for _, r := range img.Referrers {
			ii.Referrers = append(ii.Referrers, report.InspectReferrer{Ref: r.Ref, Digest: r.Descriptor.Digest.String(), Subject: r.Subject.String(),
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
// Unless wide, every line fits inspectWidth columns: short digests, short
// media types, cut names and platform lists.
func printReport(e *env, rep report.Inspect, wide bool) {
	w := e.stdout
	esc := termtext.Escape
	cut := func(s string, n int) string {
		if wide {
			return esc(s)
		}
		return elide(esc(s), n)
	}
	fmt.Fprintf(w, "format version:  %s\n", cut(rep.FormatVersion, 40))
	fmt.Fprintf(w, "created:         %s by ferry %s\n", cut(rep.Created, 30), cut(rep.FerryVersion, 40))
	if rep.Platforms != "" {
		fmt.Fprintf(w, "platform filter: %s\n", cut(rep.Platforms, inspectWidth-17))
	}
	signed := "no"
	if rep.Signed {
		// The fingerprint in full: it is what the operator compares.
		signed = "yes (not verified here; use ferry verify)"
		if rep.SignedBy != "" {
			signed = "yes, key " + rep.SignedBy + "\n                 (not verified here; use ferry verify)"
		}
	}
	fmt.Fprintf(w, "signed:          %s\n", signed)
	fmt.Fprintf(w, "blobs:           %d unique, %s\n", rep.Blobs, human.Bytes(rep.UniqueBytes))
	printDelta(e, rep.Delta, true, wide)
	if rep.ArchiveBytes > 0 {
		fmt.Fprintf(w, "archive:         %s\n", human.Bytes(rep.ArchiveBytes))
	}
	seek := "yes (random access)"
	if !rep.SeekTable {
		seek = "no (sequential read; a file written by ferry that lost its seek table may be truncated:\n                 check with zstd -t or ferry import)"
		if wide {
			seek = "no (sequential read; a file written by ferry that lost its seek table may be truncated: check with zstd -t or ferry import)"
		}
	}
	fmt.Fprintf(w, "seek table:      %s\n\n", seek)
	rows := [][]string{{"REFERENCE", "DIGEST", "MEDIA TYPE", "PLATFORMS", "SIZE"}}
	for _, img := range rep.Images {
		pl := strings.Join(img.Platforms, ",")
		if pl == "" {
			pl = "-"
		}
		rows = append(rows, inspectRow(wide, esc(img.Ref), img.Digest, esc(img.MediaType), esc(pl), img.Platforms, img.Size))
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
			if !wide {
				// The artifact type is what tells a signature from an SBOM.
				name += " " + at
			}
			rows = append(rows, inspectRow(wide, "  referrer"+esc(name), r.Digest, esc(at), "-", nil, r.Size))
		}
	}
	if !wide {
		rows[0] = slices.Delete(rows[0], 2, 3)
		// The reference gets what the other columns leave.
		other := 0
		for col := 1; col < len(rows[0]); col++ {
			n := 0
			for _, r := range rows {
				n = max(n, utf8.RuneCountInString(r[col]))
			}
			other += n + 2
		}
		refWidth := max(inspectWidth-other, 24)
		for _, r := range rows[1:] {
			r[0] = elideMiddle(r[0], refWidth)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}
