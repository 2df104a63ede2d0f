package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/termtext"
)

// errDryRunProbe: a dry run could not start a blob download, which the
// export would need.
var errDryRunProbe = errors.New("a blob download could not start")

// dryRunListing is what export --dry-run prints: what the bundle would
// hold. Its JSON form is meant for export --json (one document per run).
type dryRunListing struct {
	Images []dryRunImage `json:"images"`
	// Blobs and UniqueBytes: what the bundle would carry, every blob once.
	Blobs           int   `json:"blobs"`
	UniqueBytes     int64 `json:"uniqueBytes"`
	ReferencedBytes int64 `json:"referencedBytes"`
	LeftOut         int   `json:"leftOut,omitempty"`
	LeftOutBytes    int64 `json:"leftOutBytes,omitempty"`
}

type dryRunImage struct {
	Ref       string   `json:"ref"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	// Bytes is the total of the distinct blobs the image uses, manifests
	// included.
	Bytes int64 `json:"bytes"`
	// Upstream is the source's digest of an index --platform rewrote.
	Upstream string `json:"upstream,omitempty"`
}

// dryRun resolves refs and prints what export would write, on standard
// output, after progressDone; it writes no bundle. A failed blob probe (a redirect target that
// cannot be reached) fails the dry run after the listing: the export would
// fail there.
func dryRun(c *cli.Context, e *env, refs []string, opts bundle.ExportOptions, progressDone func(), asJSON bool, doc *report.Export) error {
	plan, err := bundle.PlanExport(c.Context, refs, opts)
	progressDone()
	if err != nil {
		return err
	}
	l := newDryRunListing(plan)
	if asJSON {
		// The export document, with what the bundle would hold: the
		// caller prints it, on failure with its error.
		doc.DryRun = true
		for i, img := range l.Images {
			doc.Images = append(doc.Images, report.ExportImage{Ref: img.Ref, Digest: img.Digest, MediaType: plan.Images[i].Descriptor.MediaType, Platforms: img.Platforms, Size: img.Bytes, UpstreamDigest: img.Upstream})
			doc.Platforms += len(img.Platforms)
		}
		doc.Blobs, doc.UniqueBytes, doc.ReferencedBytes = l.Blobs, l.UniqueBytes, l.ReferencedBytes
		doc.LeftOutBlobs, doc.LeftOutBytes = l.LeftOut, l.LeftOutBytes
	} else if err := l.print(e.stdout); err != nil {
		return fmt.Errorf("writing the list to standard output: %w", err)
	}
	var failed []string
	for _, p := range plan.Probes {
		if p.Err != nil {
			failed = append(failed, p.Err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w (%d of %d repositories); the export would fail:\n%s",
			errDryRunProbe, len(failed), len(plan.Probes), strings.Join(failed, "\n"))
	}
	return nil
}

func newDryRunListing(p *bundle.ExportPlan) dryRunListing {
	l := dryRunListing{Images: []dryRunImage{}, Blobs: p.Blobs, UniqueBytes: p.UniqueBytes, ReferencedBytes: p.ReferencedBytes, LeftOut: p.LeftOut, LeftOutBytes: p.LeftOutBytes}
	upstream := map[string]string{}
	for _, r := range p.Rewritten {
		upstream[r.Ref] = r.Original.String()
	}
	for _, img := range p.Images {
		ps := []string{}
		for _, pl := range img.Platforms {
			ps = append(ps, bundle.FormatPlatform(pl))
		}
		l.Images = append(l.Images, dryRunImage{Ref: img.Ref, Digest: img.Descriptor.Digest.String(), Platforms: ps, Bytes: img.Size, Upstream: upstream[img.Ref]})
	}
	return l
}

func (l dryRunListing) print(out io.Writer) error {
	w := &stickyWriter{w: out}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tDIGEST\tPLATFORMS\tBYTES")
	for _, img := range l.Images {
		ps := strings.Join(img.Platforms, ",")
		if ps == "" {
			ps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", termtext.Escape(img.Ref), img.Digest, ps, img.Bytes)
	}
	tw.Flush()
	fmt.Fprintf(w, "dry run: would export %d images, %d blobs, %d bytes (%s) in the bundle, deduplicated from %d bytes (%s) referenced by the images\n",
		len(l.Images), l.Blobs, l.UniqueBytes, human.Bytes(l.UniqueBytes), l.ReferencedBytes, human.Bytes(l.ReferencedBytes))
	if l.LeftOut > 0 {
		fmt.Fprintf(w, "delta: %d blobs, %d bytes (%s) left out, held by the bases\n", l.LeftOut, l.LeftOutBytes, human.Bytes(l.LeftOutBytes))
	}
	return w.err
}

// stickyWriter writes to w until a write fails, and keeps that error.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}
