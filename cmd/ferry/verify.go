package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
)

type verifyJSON struct {
	Result         string `json:"result"`
	Error          string `json:"error,omitempty"`
	Images         int    `json:"images"`
	Blobs          int    `json:"blobs"`
	Bytes          int64  `json:"bytes"`
	KeyFingerprint string `json:"keyFingerprint,omitempty"`
}

func newVerifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a bundle offline: signature, every blob, completeness",
		ArgsUsage: "FILE|-",
		Flags: []cli.Flag{
			keyFlag("trust the public key `FILE` (repeatable; also FERRY_PUBLIC_KEYS)"),
			&cli.BoolFlag{Name: flagJSON, Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
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
			path := c.Args().First()
			rep, err := bundle.VerifyFile(path, e.stdin, bundle.WithVerifier(bundle.KeyVerifier(keys...)))
			if rep == nil {
				rep = &bundle.VerifyReport{}
			}
			if c.Bool(flagJSON) {
				out := verifyJSON{Result: "ok", Images: rep.Images, Blobs: rep.Blobs, Bytes: rep.Bytes, KeyFingerprint: rep.Signature.KeyFingerprint}
				if err != nil {
					out.Result, out.Error = "failed", err.Error()
				}
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(out); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(e.stdout, "images:     %d\nblobs:      %d checked, %s\n", rep.Images, rep.Blobs, humanBytes(rep.Bytes))
				if rep.Signature.Verified {
					fmt.Fprintf(e.stdout, "signature:  valid, key %s\n", rep.Signature.KeyFingerprint)
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
