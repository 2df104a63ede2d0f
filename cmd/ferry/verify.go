package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/report"
)

func newVerifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a bundle offline: signature, every blob, completeness",
		ArgsUsage: "FILE|-",
		Description: `A delta bundle (ferry export --base) leaves out blobs its bases hold:
verify says so and names the bases. With --base (repeatable) it also checks,
offline, that every blob left out is in the base the delta names for it.`,
		Flags: []cli.Flag{
			keyFlag("trust the public key `FILE` (repeatable; also FERRY_PUBLIC_KEYS)"),
			&cli.StringSliceFlag{Name: flagBase, Usage: "check a delta against the earlier bundle or receipt `BASE` (repeatable)"},
			jsonFlag(),
			logFormatFlag(),
		},
		Action: func(c *cli.Context) error {
			o, err := setupOutput(c, e, "verify")
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usagef("verify takes one bundle file (or - for standard input), got %d arguments", c.NArg())
			}
			keys, err := publicKeys(c)
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				return usagef("verify needs the public key: --key FILE.pub (or FERRY_PUBLIC_KEYS)")
			}
			bases, err := readBases(c)
			if err != nil {
				return err
			}
			path := c.Args().First()
			rep, err := bundle.VerifyFile(path, e.stdin, bundle.WithVerifier(bundle.KeyVerifier(keys...)))
			if rep == nil {
				rep = &bundle.VerifyReport{}
			}
			checked := false
			if err == nil && len(bases) > 0 {
				if err = bundle.CheckBases(rep.Delta, bases); err == nil {
					checked = true
				}
			}
			if o.json {
				// On failure run prints it, with the error.
				doc := &report.Verify{Header: report.NewHeader("verify"), Result: "ok", Images: rep.Images, Referrers: rep.Referrers, Blobs: rep.Blobs, Bytes: rep.Bytes,
					KeyFingerprint: rep.Signature.KeyFingerprint, Delta: newDeltaReport(rep.Delta, nil), BasesChecked: checked}
				if err != nil {
					doc.Result = "failed"
				}
				o.setDoc(doc)
				if err == nil {
					if jerr := emitJSON(e.stdout, doc); jerr != nil {
						return jerr
					}
				}
			} else {
				fmt.Fprintf(e.stdout, "images:     %d\n", rep.Images)
				if rep.Referrers > 0 {
					fmt.Fprintf(e.stdout, "referrers:  %d\n", rep.Referrers)
				}
				fmt.Fprintf(e.stdout, "blobs:      %d checked, %s\n", rep.Blobs, human.Bytes(rep.Bytes))
				if rep.Signature.Verified {
					fmt.Fprintf(e.stdout, "signature:  valid, key %s\n", rep.Signature.KeyFingerprint)
				}
				printDelta(e, newDeltaReport(rep.Delta, nil), false, true)
				switch {
				case checked:
					fmt.Fprintln(e.stdout, "bases:      every blob left out is in its base")
				case rep.Delta != nil && err == nil:
					fmt.Fprintln(e.stdout, "bases:      not checked (give them with --base to check the delta is complete)")
				}
				if err == nil {
					fmt.Fprintln(e.stdout, "result:     OK")
				} else {
					fmt.Fprintln(e.stdout, "result:     FAILED")
				}
			}
			if err != nil {
				return fmt.Errorf("verifying %s: %w", displayName(path), err)
			}
			return nil
		},
	}
}
