package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
)

// Flag names.
const (
	flagOutput             = "output"
	flagImagesFile         = "images-file"
	flagPlatform           = "platform"
	flagJobs               = "jobs"
	flagInsecureRegistry   = "insecure-registry"
	flagTo                 = "to"
	flagKeepSourceRegistry = "keep-source-registry"
	flagMappingOut         = "mapping-out"
	flagJSON               = "json"
	flagQuiet              = "quiet"
	flagKey                = "key"
	flagSignatureOut       = "signature-out"
	flagInsecureSkipVerify = "insecure-skip-verify"
	flagVerifyFirst        = "verify-first"
	flagAlgorithm          = "algorithm"
	flagOutputPrefix       = "output-prefix"
)

func keyFlag(usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: flagKey, Usage: usage}
}

func jobsFlag(usage string) cli.Flag {
	return &cli.IntFlag{Name: flagJobs, Aliases: []string{"j"}, Value: 8, Usage: usage}
}

func insecureFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagInsecureRegistry, Usage: "allow plain HTTP or unverified TLS to `HOST` (repeatable; loopback is always allowed)"}
}

func quietFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Usage: "print no progress"}
}

func jobs(c *cli.Context) (int, error) {
	j := c.Int(flagJobs)
	if j <= 0 {
		return 0, usagef("--jobs must be at least 1, got %d", j)
	}
	return j, nil
}

func registryOptions(c *cli.Context) bundle.RegistryOptions {
	return bundle.RegistryOptions{Insecure: c.StringSlice(flagInsecureRegistry), UserAgent: "ferry/" + version}
}

// readImagesFile reads references from a list file: one per line, blank
// lines and '#' comments ignored.
func readImagesFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the images file: %w", err)
	}
	defer f.Close()
	var refs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			refs = append(refs, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return refs, nil
}
