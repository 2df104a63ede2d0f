package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/termtext"
)

func newExportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "pull images from registries into one bundle file",
		ArgsUsage: "[REF|oci:DIR[:REF]...]",
		Description: `Resolves every reference (arguments and --images-file), then writes one
zstd-compressed tar of an OCI image layout holding every manifest, config and
layer once. Nothing is written if any reference fails to resolve.

oci:DIR takes every named image of an OCI image layout directory (as buildkit,
ko or jib write them), oci:DIR:REF one of them; each needs a full name in
io.containerd.image.name or org.opencontainers.image.ref.name.

Without --key the bundle is unsigned, and importing it needs
--insecure-skip-verify; make a key pair once with 'ferry keygen'.

Examples:
  ferry export nginx:1.27 alpine:3.20 --key ferry.key -o images.tar.zst
  ferry export oci:./build/layout --key ferry.key -o app.tar.zst
  ferry export --from-manifests deploy/ --key ferry.key -o images.tar.zst
  ferry export -f images.txt --key ferry.key -o - | ssh diode 'cat > images.tar.zst'
  grep -v '^#' images.txt | ferry export -f - --key ferry.key -o images.tar.zst
  ferry export -f images.txt --key ferry.key --base 2026-10.tar.zst -o 2026-11-delta.tar.zst

--base BASE (repeatable) makes a delta bundle: the configs and layers that BASE
holds are left out, and the signed index.json names BASE. BASE is an earlier
bundle (only its seek table and index.json are read) or an import receipt
(JSON). Importing a delta needs a destination that holds what was left out.

The referrers of each image and of each of its platform manifests (cosign
signatures, SBOMs, attestations: the OCI Referrers API or its fallback tag
sha256-<hex>, and cosign's sha256-<hex>.sig, .att and .sbom tags) travel with
it, with their own referrers; --referrers-type keeps some artifact types,
--no-referrers none.

--require-signature KEY (repeatable) checks, before anything is written, that
every image carries a cosign signature by one of the keys (the .sig tag, or a
Sigstore bundle referrer); --certificate-identity, --certificate-oidc-issuer
and --trusted-root accept keyless signatures too, checked offline. Export fails
naming each image that has none (exit 1).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Usage: "write the bundle to `FILE` ('-' for standard output; required)"},
			&cli.StringSliceFlag{Name: flagImagesFile, Aliases: []string{"f"}, Usage: "read references from `FILE` ('-' for standard input), one per line, '#' comments (repeatable)"},
			fromManifestsFlag(),
			&cli.StringSliceFlag{Name: flagPlatform, Usage: "keep only `OS/ARCH[/VARIANT]` of multi-platform images (repeatable; changes the index digest)"},
			&cli.StringFlag{Name: flagKey, Usage: "sign index.json with the private key `FILE` (password from FERRY_PASSWORD or COSIGN_PASSWORD)"},
			&cli.StringFlag{Name: flagSignatureOut, Usage: "also write the signature (base64, as cosign sign-blob) to `FILE`"},
			&cli.StringSliceFlag{Name: flagBase, Usage: "make a delta: leave out the blobs that the earlier bundle or receipt `BASE` holds (repeatable)"},
			&cli.BoolFlag{Name: flagNoReferrers, Usage: "leave out the signatures, SBOMs and attestations attached to the images (carried by default)"},
			&cli.StringSliceFlag{Name: flagReferrersType, Usage: "carry only the referrers of artifact type `TYPE` (repeatable), e.g. application/spdx+json"},
			&cli.StringFlag{Name: flagRegistry, Usage: "send the credentials of --username to `HOST` only (required with --username when the references name several registries)"},
			jobsFlag("download and compress `N` blobs at once"),
			quietFlag(),
			jsonFlag(),
			logFormatFlag(),
		}, append(append(publisherFlags("in its source repository"), registryFlags()...), egressFlags()...)...),
		Action: func(c *cli.Context) (err error) {
			o, err := setupOutput(c, e, "export")
			if err != nil {
				return err
			}
			refs := c.Args().Slice()
			stdinList := false
			for _, f := range c.StringSlice(flagImagesFile) {
				if f == "-" {
					if stdinList {
						return usagef("--images-file - given twice: standard input can be read only once")
					}
					if c.Bool(flagPasswordStdin) {
						return usagef("--images-file - and --password-stdin both read standard input; put the references in a file")
					}
					stdinList = true
				}
				more, err := readImagesFile(e, f)
				if err != nil {
					return err
				}
				refs = append(refs, more...)
			}
			more, err := manifestRefs(c, e, stdinList)
			if err != nil {
				return err
			}
			refs = append(refs, more...)
			if len(refs) == 0 {
				return usagef("no images to export: give references as arguments, with --images-file or with --from-manifests")
			}
			j, err := jobs(c)
			if err != nil {
				return err
			}
			for _, p := range c.StringSlice(flagPlatform) {
				if _, err := bundle.ParsePlatform(p); err != nil {
					return usageError{err}
				}
			}
			types := c.StringSlice(flagReferrersType)
			if c.Bool(flagNoReferrers) && len(types) > 0 {
				return usagef("--no-referrers leaves every referrer out; --referrers-type keeps some: give one or the other")
			}
			for _, t := range types {
				if strings.TrimSpace(t) == "" || strings.ContainsAny(t, " \t") {
					return usagef("--referrers-type %q: want one artifact type (a media type such as application/spdx+json), the flag repeated for several", t)
				}
			}
			out := c.String(flagOutput)
			if out == "" && !c.Bool(flagDryRun) {
				return usagef("no output given: use -o FILE, or -o - for standard output")
			}
			if out == "-" && o.json {
				return usagef("--json prints its document on standard output, where -o - writes the bundle; write the bundle to a file")
			}
			if out == "-" && isTerminal(e.stdout) {
				return usagef("refusing to write a bundle to a terminal; redirect standard output or use -o FILE")
			}
			if c.String(flagRegistry) != "" && c.String(flagUsername) == "" {
				return usagef("--registry says which registry --username logs in to; give it with --username USER --password-stdin")
			}
			reg, err := registryOptions(c, e, func() (string, error) { return exportCredentialRegistry(c, refs) })
			if err != nil {
				return err
			}
			if !c.Bool(flagDryRun) {
				if err := distinctOutputs(outputFile{"-o", out}, outputFile{"--" + flagEgressReport, c.String(flagEgressReport)}, outputFile{"--" + flagSignatureOut, c.String(flagSignatureOut)}); err != nil {
					return err
				}
			}
			egress, err := newEgressRecorder(c, o.json)
			if err != nil {
				return err
			}
			egress.attach(&reg)
			bases, err := readBases(c)
			if err != nil {
				return err
			}
			doc := &report.Export{Header: report.NewHeader("export"), Output: out, Images: []report.ExportImage{}}
			o.setDoc(doc)
			prog := newProgress(e.stderr, "export", o.quiet, o.progressLog())
			policy, err := signaturePolicy(c)
			if err != nil {
				return err
			}
			opts := bundle.ExportOptions{
				Jobs:      j,
				Platforms: c.StringSlice(flagPlatform),
				Registry:  reg,
				Version:   version,
				Progress:  prog.Func(),
				Bases:     bases,

				NoReferrers:   c.Bool(flagNoReferrers),
				ReferrerTypes: types,

				RequireSignature: policy,
			}
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				sec, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
				}
				opts.Created = time.Unix(sec, 0)
			}
			if c.Bool(flagDryRun) {
				err := dryRun(c, e, refs, opts, prog.Done, o.json, doc)
				doc.Egress = egress.summary()
				// The report is written before the --json document: a
				// failure to write it must not follow a document that
				// says ok.
				if err = egress.finish(e, err); err == nil && o.json {
					err = emitJSON(e.stdout, doc)
				}
				return err
			}
			var sigs map[string][]byte
			signature := "unsigned (no --key)"
			if kf := c.String(flagKey); kf != "" {
				k, err := loadSigner(e, kf)
				if err != nil {
					return err
				}
				signature = "key " + bundle.Fingerprint(k.Public())
				sign := bundle.Signer(k)
				opts.Sign = func(index []byte) (map[string][]byte, error) {
					s, err := sign(index)
					sigs = s
					return s, err
				}
			} else if c.String(flagSignatureOut) != "" {
				return usagef("--signature-out needs --key")
			} else {
				o.note("no --key: the bundle will be unsigned, and importing it will need --insecure-skip-verify (make a key with 'ferry keygen')")
			}
			if so := c.String(flagSignatureOut); so != "" {
				if st, err := os.Stat(filepath.Dir(so)); err != nil || !st.IsDir() {
					return usagef("--signature-out: directory %s does not exist", filepath.Dir(so))
				}
				if err := replaceable(so); err != nil {
					return usagef("--signature-out: %v", err)
				}
			}
			finished := false
			defer func() {
				if !finished {
					doc.Egress = egress.summary()
					err = egress.finish(e, err)
				}
			}()
			var sum *bundle.ExportSummary
			if out == "-" {
				sum, err = bundle.Export(c.Context, refs, e.stdout, opts)
				var bp *brokenPipeError
				if errors.Is(err, syscall.EPIPE) || (errors.As(context.Cause(c.Context), &bp) && bp.stream == "standard output") {
					err = &brokenPipeError{stream: "standard output", what: "the bundle"}
				}
			} else {
				sum, err = bundle.ExportFile(c.Context, refs, out, opts)
			}
			prog.Done()
			if err != nil {
				return err
			}
			// The signature and the egress report are written before the
			// --json document: a failure after it would print a second
			// document, one that says the run failed after one that says ok.
			if so := c.String(flagSignatureOut); so != "" {
				if err := replaceFile(so, append(sigs[bundle.SignatureFile], '\n'), 0o644); err != nil {
					return fmt.Errorf("writing the signature: %w", err)
				}
			}
			fillExport(doc, sum, signature)
			if o.human() {
				printExportSummary(o.summary(e.stderr), out, sum, signature)
			}
			finished = true
			doc.Egress = egress.summary()
			if err := egress.finish(e, nil); err != nil {
				return err
			}
			if o.json {
				return emitJSON(e.stdout, doc)
			}
			return nil
		},
	}
}

func printExportSummary(w io.Writer, out string, s *bundle.ExportSummary, signature string) {
	if out == "-" {
		out = "standard output"
	}
	secs := s.Duration.Seconds()
	fmt.Fprintf(w, "exported %d images (%d platforms) to %s\n", s.Images, s.Platforms, out)
	if s.Referrers > 0 {
		fmt.Fprintf(w, "  referrers:      %d (signatures, SBOMs, attestations)\n", s.Referrers)
	}
	fmt.Fprintf(w, "  blobs:          %d unique, %s\n", s.Blobs, human.Bytes(s.UniqueBytes))
	fmt.Fprintf(w, "  deduplication:  %s saved (%s referenced by the images)\n", human.Bytes(s.ReferencedBytes-s.UniqueBytes-s.LeftOutBytes), human.Bytes(s.ReferencedBytes))
	if bases := s.Index.Annotations[bundle.AnnotationDeltaBases]; bases != "" {
		fmt.Fprintf(w, "  delta:          %d blobs (%s) left out, held by the bases\n", s.LeftOut, human.Bytes(s.LeftOutBytes))
	}
	ratio := 0.0
	if s.UniqueBytes > 0 {
		ratio = float64(s.ArchiveBytes) / float64(s.UniqueBytes)
	}
	fmt.Fprintf(w, "  archive:        %s (%.3f of unique bytes)\n", human.Bytes(s.ArchiveBytes), ratio)
	fmt.Fprintf(w, "  time:           %.2fs, %s/s\n", secs, human.Bytes(int64(float64(s.UniqueBytes)/max(secs, 0.001))))
	fmt.Fprintf(w, "  signature:      %s\n", signature)
	if len(s.PublisherSignatures) > 0 {
		fmt.Fprintf(w, "  publishers:     %s\n", termtext.Escape(signersLine(s.PublisherSignatures)))
	}
	for _, r := range s.Rewritten {
		fmt.Fprintf(w, "  note: %s: --platform rewrote the index, digest %s (source %s)\n", r.Ref, r.Rewritten, r.Original)
		if len(r.LeftBehind) > 0 {
			fmt.Fprintf(w, "  note: %s: what refers to the source index (%s) refers to no index the bundle holds and is not carried: a signature of it does not verify the rewritten one; sign the platform manifests (cosign sign --recursive) so that their signatures travel\n",
				r.Ref, termtext.Escape(firstOf(r.LeftBehind, 3)))
		}
	}
}

// fillExport completes the --json document of an export from its summary.
func fillExport(doc *report.Export, s *bundle.ExportSummary, signature string) {
	upstream := map[string]string{}
	for _, r := range s.Rewritten {
		upstream[r.Ref] = r.Original.String()
	}
	signedBy := map[string]string{}
	for _, p := range s.PublisherSignatures {
		signedBy[p.Ref] = p.SignedBy
	}
	doc.Images = []report.ExportImage{}
	for _, img := range s.Exported {
		ei := report.ExportImage{Ref: img.Ref, Digest: img.Descriptor.Digest.String(), MediaType: img.Descriptor.MediaType, Size: img.Size, UpstreamDigest: upstream[img.Ref],
			PublisherSignedBy: signedBy[img.Ref]}
		for _, p := range img.Platforms {
			ei.Platforms = append(ei.Platforms, bundle.FormatPlatform(p))
		}
		doc.Images = append(doc.Images, ei)
	}
	doc.Platforms, doc.Blobs, doc.UniqueBytes, doc.ReferencedBytes = s.Platforms, s.Blobs, s.UniqueBytes, s.ReferencedBytes
	doc.LeftOutBlobs, doc.LeftOutBytes, doc.ArchiveBytes = s.LeftOut, s.LeftOutBytes, s.ArchiveBytes
	doc.DurationSeconds = s.Duration.Seconds()
	if fp, ok := strings.CutPrefix(signature, "key "); ok {
		doc.SignedBy = fp
	}
}

// firstOf lists the first n of s, and counts the rest.
func firstOf(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(s[:n], ", "), len(s)-n)
}
