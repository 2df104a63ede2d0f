package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/termtext"
)

func newImportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "push the images of a bundle into a registry",
		ArgsUsage: "FILE|-",
		Description: `Reads the index and every manifest, checks the bundle is complete, then
pushes blobs, manifests and tags. Manifest bytes are pushed unchanged, so every
digest is preserved. Only the registry host and an optional path prefix change:
docker.io/library/nginx:1.27 with --to reg.local:5000/mirror becomes
reg.local:5000/mirror/library/nginx:1.27. With --to oci:DIR the images go into
an OCI image layout directory instead, under their full source names.

After the import, the destination's receipt (REGISTRY/[PREFIX/]ferry-receipts:latest,
or DIR/ferry-receipt.json) records the tags set and the signed index.json of the
bundle. A signed bundle older than the one that last set a tag may not move the tag
to another digest (exit 3) unless --allow-rollback is given.

--require-signature KEY (and the keyless flags, as for export) checks, before
anything is pushed, that every image carries a publisher signature among the
signature artifacts the bundle holds; otherwise nothing is pushed (exit 1).

Examples:
  ferry import images.tar.zst --key ferry.pub --to registry.local:5000/mirror
  cat images.tar.zst | ferry import - --key ferry.pub --to registry.local:5000
  ferry import images.tar.zst --key ferry.pub --to oci:/srv/images`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: flagTo, Usage: "push to `REGISTRY[/PREFIX]`, or write to the OCI layout oci:DIR (required)"},
			&cli.BoolFlag{Name: flagKeepSourceRegistry, Usage: "keep the source registry host as the first path element under the prefix"},
			&cli.StringFlag{Name: flagMappingOut, Usage: "write source=destination@digest lines to `FILE`"},
			mirrorConfigFlag(),
			&cli.StringFlag{Name: flagReceiptOut, Usage: "write the destination's receipt (JSON) to `FILE` after the import"},
			&cli.BoolFlag{Name: flagAllowRollback, Usage: "let an older signed bundle move tags a newer one set (prints a warning)"},
			keyFlag("trust the public key `FILE` (repeatable, for key rotation; also FERRY_PUBLIC_KEYS)"),
			&cli.BoolFlag{Name: flagInsecureSkipVerify, Usage: "import without checking the signature (prints a warning)"},
			&cli.BoolFlag{Name: flagVerifyFirst, Usage: "check every blob of the file before pushing anything"},
			jobsFlag("upload `N` blobs at once"),
			quietFlag(),
			jsonFlag(),
			logFormatFlag(),
		}, append(publisherFlags("carried in the bundle"), registryFlags()...)...),
		Action: func(c *cli.Context) error {
			o, err := setupOutput(c, e, "import")
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("import takes one bundle file (or - for standard input), got %d arguments", c.NArg())
			}
			if c.String(flagTo) == "" {
				return usagef("no destination given: use --to REGISTRY[/PREFIX], e.g. --to registry.local:5000/mirror")
			}
			j, err := jobs(c)
			if err != nil {
				return err
			}
			dest, err := bundle.ParseDestination(c.String(flagTo))
			if err != nil {
				return usageError{err}
			}
			if dest.Layout != "" && c.Bool(flagKeepSourceRegistry) {
				return usagef("--keep-source-registry has no meaning with --to oci:DIR: an OCI layout keeps every image under its full source name")
			}
			mapping, receiptOut := c.String(flagMappingOut), c.String(flagReceiptOut)
			for _, out := range []struct{ flag, path string }{{flagMappingOut, mapping}, {flagReceiptOut, receiptOut}} {
				if out.path == "" {
					continue
				}
				if st, err := os.Stat(filepath.Dir(out.path)); err != nil || !st.IsDir() {
					return usagef("--%s: directory %s does not exist", out.flag, filepath.Dir(out.path))
				}
				if err := replaceable(out.path); err != nil {
					return usagef("--%s: %v", out.flag, err)
				}
			}
			if err := distinctOutputs(outputFile{"--" + flagMappingOut, mapping}, outputFile{"--" + flagReceiptOut, receiptOut}); err != nil {
				return err
			}
			if err := checkMirrorConfigOut(c, dest); err != nil {
				return err
			}
			path := c.Args().First()
			if path == "-" && c.Bool(flagPasswordStdin) {
				return usagef("--password-stdin cannot be used with a bundle on standard input")
			}
			reg, err := registryOptions(c, e, func() (string, error) {
				if dest.Layout != "" {
					return "", usagef("--username has no registry to log in to with --to oci:DIR")
				}
				return dest.Registry, nil
			})
			if err != nil {
				return err
			}
			// Which scheme the mirror answered on, for --mirror-config-out.
			var traffic bundle.EgressLog
			reg.Egress = &traffic
			ropts, err := readOptions(c, e)
			if err != nil {
				return err
			}
			policy, err := signaturePolicy(c)
			if err != nil {
				return err
			}
			if policy != nil && path == "-" {
				return usagef("--%s needs a bundle file: the signatures are read before anything is pushed, and standard input can be read only once", flagRequireSignature)
			}
			if c.Bool(flagVerifyFirst) {
				if path == "-" {
					return usagef("--verify-first needs a file; standard input can be read only once")
				}
				if _, err := bundle.VerifyFile(path, nil, ropts...); err != nil {
					return fmt.Errorf("verifying %s before the import (nothing was pushed): %w", path, err)
				}
			}
			r, err := openBundle(e, path, ropts...)
			if err != nil {
				return err
			}
			defer r.Close()
			doc := &report.Import{Header: report.NewHeader("import"), Bundle: path, Destination: c.String(flagTo), Images: []report.ImportImage{}}
			o.setDoc(doc)
			prog := newProgress(e.stderr, "import", o.quiet, o.progressLog())
			res, err := bundle.Import(c.Context, r, c.String(flagTo), bundle.ImportOptions{
				Jobs:               j,
				KeepSourceRegistry: c.Bool(flagKeepSourceRegistry),
				Registry:           reg,
				Progress:           prog.Func(),
				AllowRollback:      c.Bool(flagAllowRollback),
				RequireSignature:   policy,
			})
			prog.Done()
			if res != nil {
				for _, w := range res.Warnings {
					o.warn(w)
				}
				fillImport(doc, res)
			}
			if err != nil {
				return err
			}
			if o.human() {
				printImportResult(e, res, o.summary(e.stderr))
			}
			if mapping != "" {
				if err := writeMapping(mapping, res); err != nil {
					return err
				}
			}
			if err := writeMirrorConfig(c, e, dest, res, doc, plainHTTP(traffic.Hosts(), dest.Registry)); err != nil {
				return err
			}
			if receiptOut != "" {
				if err := writeReceipt(receiptOut, res.Receipt); err != nil {
					return err
				}
			}
			if o.json {
				return emitJSON(e.stdout, doc)
			}
			return nil
		},
	}
}

func displayName(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

func printImportResult(e *env, res *bundle.ImportResult, summary io.Writer) {
	// BUNDLE DIGEST is what the bundle holds and the destination must
	// answer; after an export with --platform it is the rewritten index,
	// and UPSTREAM DIGEST says what the source registry had.
	rewritten := slices.ContainsFunc(res.Images, func(img bundle.ImportedImage) bool { return img.Upstream != "" })
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	header := "SOURCE\tDESTINATION\tBUNDLE DIGEST\tDESTINATION DIGEST\tOK"
	if rewritten {
		header += "\tUPSTREAM DIGEST (BEFORE --platform)"
	}
	fmt.Fprintln(tw, header)
	for _, img := range res.Images {
		ok := "yes"
		if img.Digest != img.DestinationDigest {
			ok = "NO"
		}
		// Names come from the bundle: escaped, as any text it carries.
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", termtext.Escape(img.Source), termtext.Escape(img.Destination), img.Digest, img.DestinationDigest, ok)
		if rewritten {
			up := "same"
			if img.Upstream != "" {
				up = img.Upstream.String()
			}
			line += "\t" + up
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	referrers := 0
	for _, img := range res.Images {
		if img.Subject != "" {
			referrers++
		}
	}
	what := fmt.Sprintf("%d images", len(res.Images)-referrers)
	if referrers > 0 {
		what += fmt.Sprintf(" and %d referrers", referrers)
		if res.ReferrerTags > 0 {
			what += fmt.Sprintf(" (%d fallback tags written: no Referrers API)", res.ReferrerTags)
		}
	}
	fmt.Fprintf(summary, "imported %s: %d blobs uploaded (%s), %d mounted, %d already present, %d manifests, %.2fs\n",
		what, res.BlobsUploaded, human.Bytes(res.BytesUploaded), res.BlobsMounted, res.BlobsSkipped, res.Manifests, res.Duration.Seconds())
	if len(res.PublisherSignatures) > 0 {
		fmt.Fprintf(summary, "checked before the push: %s\n", termtext.Escape(signersLine(res.PublisherSignatures)))
	}
	if res.Receipt != nil {
		fmt.Fprintf(summary, "receipt recorded at %s (%d tags, %d signed bundles)\n", termtext.Escape(res.ReceiptAt), len(res.Receipt.Tags), len(res.Receipt.Bundles))
	}
}

// writeMapping writes the mapping file under a temporary name, then renames
// it (see replaceFile).
func writeMapping(path string, res *bundle.ImportResult) error {
	var b strings.Builder
	for _, img := range res.Images {
		dst := img.Destination
		if i := strings.LastIndex(dst, "@"); i >= 0 {
			dst = dst[:i]
		}
		fmt.Fprintf(&b, "%s=%s@%s\n", img.Source, dst, img.DestinationDigest)
	}
	if err := replaceFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing the mapping file: %w", err)
	}
	return nil
}

// writeReceipt writes the receipt as indented JSON, the way writeMapping
// writes the mapping file.
func writeReceipt(path string, rc *bundle.Receipt) error {
	b, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		return err
	}
	if err := replaceFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the receipt file: %w", err)
	}
	return nil
}

// openBundle opens a bundle file, or standard input for "-".
func openBundle(e *env, path string, opts ...bundle.ReadOption) (*bundle.Reader, error) {
	var r *bundle.Reader
	var err error
	if path == "-" {
		r, err = bundle.NewReader(e.stdin, opts...)
	} else {
		r, err = bundle.Open(path, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", displayName(path), err)
	}
	return r, nil
}

// fillImport fills the --json document of an import from its result (a
// partial one when the import failed).
func fillImport(doc *report.Import, res *bundle.ImportResult) {
	signedBy := map[string]string{}
	for _, p := range res.PublisherSignatures {
		signedBy[p.Ref] = p.SignedBy
	}
	doc.Images = []report.ImportImage{}
	for _, img := range res.Images {
		ii := report.ImportImage{Source: img.Source, Destination: img.Destination, Digest: img.Digest.String(), DestinationDigest: img.DestinationDigest.String(),
			Confirmed: img.Confirmed, BlobsUploaded: img.BlobsUploaded, BlobsMounted: img.BlobsMounted, BlobsPresent: img.BlobsPresent, BytesUploaded: img.BytesUploaded,
			PublisherSignedBy: signedBy[img.Source]}
		if img.Upstream != "" {
			ii.UpstreamDigest = img.Upstream.String()
		}
		doc.Images = append(doc.Images, ii)
	}
	doc.BlobsUploaded, doc.BlobsMounted, doc.BlobsPresent, doc.BytesUploaded = res.BlobsUploaded, res.BlobsMounted, res.BlobsSkipped, res.BytesUploaded
	doc.Manifests, doc.DurationSeconds, doc.Receipt, doc.Warnings = res.Manifests, res.Duration.Seconds(), res.ReceiptAt, res.Warnings
}
