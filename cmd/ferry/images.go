package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/scan"
)

func newImagesCommand(e *env) *cli.Command {
	cmd := &cli.Command{
		Name:            "images",
		HideHelpCommand: true,
		Usage:           "make image lists: find the images that deployment manifests name",
		Subcommands: []*cli.Command{
			newImagesScanCommand(e),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command 'images %s'; the images commands are: scan", c.Args().First())
			}
			cli.HelpPrinter(e.stderr, cli.SubcommandHelpTemplate, c.Command)
			return usagef("no images command given: ferry images scan PATH...")
		},
	}
	for _, s := range cmd.Subcommands {
		s.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	}
	return cmd
}

func newImagesScanCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "print the images that Kubernetes manifests, helm template or kustomize build output, or compose files name",
		ArgsUsage: "PATH... ('-' for standard input)",
		Description: `Reads YAML and JSON: Kubernetes objects of every workload kind (Pod,
Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
CronJob, PodTemplate, and custom resources with a pod template at
spec.template), their containers, init and ephemeral containers, List
objects, multi-document files, and docker-compose files (services.*.image).
A directory is walked for *.yaml, *.yml and *.json files. Other documents
are skipped. Prints each image once, normalised as export records it,
sorted, one per line; nothing if any value is not an image reference.

--pin resolves each tag at its registry and prints NAME:TAG@sha256:…, a lock
list that makes the next export reproducible (ferry export -f LIST).

Examples:
  ferry images scan deploy/ > images.txt
  helm template shop ./charts/shop | ferry images scan -
  kustomize build overlays/prod | ferry images scan --pin - > images.lock
  ferry export -f images.lock --key ferry.key -o images.tar.zst`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: flagPin, Usage: "resolve each tag to the digest its registry holds now: print NAME:TAG@sha256:…"},
			&cli.StringFlag{Name: flagRegistry, Usage: "send the credentials of --username to `HOST` only (required with --username when the images name several registries)"},
			jobsFlag("with --pin, resolve `N` references at once"),
		}, registryFlags()...),
		Action: func(c *cli.Context) error {
			paths := c.Args().Slice()
			if len(paths) == 0 {
				return usagef("no manifests to scan: give files, directories, or - for standard input")
			}
			if err := stdinOnce(c, paths, ""); err != nil {
				return err
			}
			pin := c.Bool(flagPin)
			if !pin {
				for _, f := range []string{flagUsername, flagPasswordStdin, flagRegistry} {
					if c.IsSet(f) {
						return usagef("--%s is for --pin, which asks registries; scanning alone reads files only", f)
					}
				}
			}
			j, err := jobs(c)
			if err != nil {
				return err
			}
			images, err := scan.Paths(paths, e.stdin)
			if err != nil {
				return err
			}
			refs := scan.Refs(images)
			if len(refs) == 0 {
				fmt.Fprintln(e.stderr, "ferry: note: no image references found")
				return nil
			}
			if pin {
				if c.String(flagRegistry) != "" && c.String(flagUsername) == "" {
					return usagef("--registry says which registry --username logs in to; give it with --username USER --password-stdin")
				}
				names := make([]string, len(refs))
				for i, r := range refs {
					names[i] = r.String()
				}
				reg, err := registryOptions(c, e, func() (string, error) { return exportCredentialRegistry(c, names) })
				if err != nil {
					return err
				}
				res := scan.RegistryResolver{Client: registry.New(registry.Options(reg))}
				drifted := scan.Drifted(c.Context, refs, res, j)
				if refs, err = scan.Pin(c.Context, refs, res, j); err != nil {
					return err
				}
				for _, w := range drifted {
					e.warn(w)
				}
			}
			// One write, checked: a lock list cut short by a full disk
			// must not end with exit 0.
			var b strings.Builder
			for _, r := range refs {
				b.WriteString(r.String() + "\n")
			}
			if _, err := io.WriteString(e.stdout, b.String()); err != nil {
				return fmt.Errorf("writing the image list to standard output: %w", err)
			}
			return nil
		},
	}
}

// fromManifestsFlag is export's --from-manifests.
func fromManifestsFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagFromManifests, Usage: "export the images that the Kubernetes manifests, helm template or kustomize build output, or compose files at `PATH` name, as 'ferry images scan' finds them (a file, a directory, or '-' for standard input; repeatable)"}
}

// manifestRefs returns the references that export's --from-manifests
// paths name; stdinTaken says whether --images-file already reads
// standard input.
func manifestRefs(c *cli.Context, e *env, stdinTaken bool) ([]string, error) {
	paths := c.StringSlice(flagFromManifests)
	if len(paths) == 0 {
		return nil, nil
	}
	for _, p := range paths {
		if p == scan.Stdin && stdinTaken {
			return nil, usagef("--from-manifests - and --images-file - both read standard input; put one of them in a file")
		}
	}
	if err := stdinOnce(c, paths, "--from-manifests "); err != nil {
		return nil, err
	}
	images, err := scan.Paths(paths, e.stdin)
	if err != nil {
		return nil, fmt.Errorf("--from-manifests: %w", err)
	}
	refs := scan.Refs(images)
	if len(refs) == 0 {
		return nil, fmt.Errorf("--from-manifests: no image references found in %s", joinPaths(paths))
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out, nil
}

// stdinOnce refuses "-" twice, or beside --password-stdin; flag is how
// the paths were given ("" for arguments).
func stdinOnce(c *cli.Context, paths []string, flag string) error {
	n := 0
	for _, p := range paths {
		if p == scan.Stdin {
			n++
		}
	}
	switch {
	case n > 1:
		return usagef("%s- given twice: standard input can be read only once", flag)
	case n == 1 && c.Bool(flagPasswordStdin):
		return usagef("%s- and --password-stdin both read standard input; put the manifests in a file", flag)
	}
	return nil
}

func joinPaths(paths []string) string {
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = displayName(p)
	}
	return strings.Join(names, ", ")
}
