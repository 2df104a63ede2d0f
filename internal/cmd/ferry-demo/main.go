// Command ferry-demo shows ferry end to end on one machine, with no docker
// and no network: it starts two real registries (distribution v3, in
// process, on loopback), pushes a sample image set into the first, runs the
// ferry binary to export it to a bundle, inspect the bundle and import it
// into the second registry, and then checks on its own that every image has
// the same digest on both sides.
//
// Run it with `make demo`, or:
//
//	go build -o bin/ferry ./cmd/ferry && go run ./internal/cmd/ferry-demo -ferry bin/ferry
//
// It exits 0 only when every step succeeded and every digest matches.
// Everything it creates lives in one temporary directory, removed on exit,
// on failure and on Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// prefix is the path under which the second registry receives the images.
const prefix = "mirror"

type config struct {
	ferry     string
	layerSize int
	keep      bool
	timeout   time.Duration
	out       io.Writer
}

func main() {
	var cfg config
	flag.StringVar(&cfg.ferry, "ferry", "./bin/ferry", "path of the ferry `binary` to run")
	flag.IntVar(&cfg.layerSize, "layer-size", 256<<10, "uncompressed `bytes` per sample layer (base layers are 4x)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (bundle and registry storage) for a look afterwards")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "give up after this `duration`")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "ferry-demo: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	cfg.out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err == nil:
		return
	case interrupted:
		fmt.Fprintln(os.Stderr, "\nferry-demo: interrupted; registries stopped, temporary files removed")
		os.Exit(130)
	default:
		fmt.Fprintf(os.Stderr, "\nferry-demo: FAILED: %v\n", err)
		os.Exit(1)
	}
}

// run does the whole demo. Every resource it creates is released by its
// deferred calls, whatever the outcome, so main may exit right after it.
func run(ctx context.Context, cfg config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	ferry, err := findFerry(cfg.ferry)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ferry-demo-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(cfg.out, "\nkept %s\n", tmp)
			return
		}
		if err := os.RemoveAll(tmp); err != nil {
			fmt.Fprintf(os.Stderr, "ferry-demo: removing %s: %v\n", tmp, err)
		}
	}()
	// ferry reads docker and podman credential files; point it at an empty
	// configuration so that no credential helper of this machine is asked
	// about the loopback registries.
	dockerConfig := filepath.Join(tmp, "docker-config")
	if err := os.Mkdir(dockerConfig, 0o700); err != nil {
		return err
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+dockerConfig, "REGISTRY_AUTH_FILE="+filepath.Join(dockerConfig, "auth.json"),
		"FERRY_PASSWORD=demo-password")

	heading(cfg.out, "1. Starting two registries on loopback")
	src, err := registrytest.Start(registrytest.Options{Dir: filepath.Join(tmp, "registry-source")})
	if err != nil {
		return fmt.Errorf("starting the source registry: %w", err)
	}
	defer src.Close()
	dst, err := registrytest.Start(registrytest.Options{Dir: filepath.Join(tmp, "registry-destination")})
	if err != nil {
		return fmt.Errorf("starting the destination registry: %w", err)
	}
	defer dst.Close()
	fmt.Fprintf(cfg.out, "source:      %s\ndestination: %s\nwork dir:    %s\n", src.Host, dst.Host, tmp)

	heading(cfg.out, "2. Pushing the sample images into the source registry")
	sample, err := testimages.Push(ctx, src.Host, cfg.layerSize)
	if err != nil {
		return fmt.Errorf("pushing the sample images: %w", err)
	}
	blobs, unique, err := uniqueBytes(ctx, sample.Refs)
	if err != nil {
		return fmt.Errorf("measuring the sample images: %w", err)
	}
	tw := tabwriter.NewWriter(cfg.out, 0, 4, 2, ' ', 0)
	for _, r := range sample.Refs {
		fmt.Fprintf(tw, "%s\t%s\n", r, sample.Digests[r])
	}
	tw.Flush()
	fmt.Fprintf(cfg.out, "%d images, %d distinct blobs and manifests, %s\n", len(sample.Refs), blobs, human.Bytes(unique))

	archive := filepath.Join(tmp, "demo.tar.zst")
	keys := filepath.Join(tmp, "demo")
	heading(cfg.out, "3. ferry keygen, then ferry export: source registry -> one signed bundle file")
	if _, err := ferryRun(ctx, cfg.out, env, ferry, "keygen", "--output-prefix", keys); err != nil {
		return err
	}
	exportTime, err := ferryRun(ctx, cfg.out, env, ferry, append(append([]string{"export", "--key", keys + ".key"}, sample.Refs...), "-o", archive)...)
	if err != nil {
		return err
	}
	st, err := os.Stat(archive)
	if err != nil {
		return fmt.Errorf("ferry export exited 0 but wrote no bundle: %w", err)
	}

	heading(cfg.out, "4. ferry inspect: what is in the bundle")
	if _, err := ferryRun(ctx, cfg.out, env, ferry, "inspect", archive); err != nil {
		return err
	}

	heading(cfg.out, "4b. ferry verify: signature and every blob, offline")
	if _, err := ferryRun(ctx, cfg.out, env, ferry, "verify", "--key", keys+".pub", archive); err != nil {
		return err
	}

	heading(cfg.out, "5. ferry import: verify the signature, then bundle -> destination registry")
	importTime, err := ferryRun(ctx, cfg.out, env, ferry, "import", "--key", keys+".pub", archive, "--to", dst.Host+"/"+prefix)
	if err != nil {
		return err
	}

	heading(cfg.out, "6. Checking digests in the destination registry (independently of ferry)")
	mismatches, err := compare(ctx, cfg.out, sample, src.Host, dst.Host+"/"+prefix)
	if err != nil {
		return err
	}

	heading(cfg.out, "Summary")
	ratio := float64(st.Size()) / float64(max(unique, 1))
	fmt.Fprintf(cfg.out, "export:   %s wall time (process start to exit)\n", exportTime.Round(time.Millisecond))
	fmt.Fprintf(cfg.out, "import:   %s wall time\n", importTime.Round(time.Millisecond))
	fmt.Fprintf(cfg.out, "archive:  %s for %s of unique blobs and manifests (ratio %.3f)\n", human.Bytes(st.Size()), human.Bytes(unique), ratio)
	if mismatches > 0 {
		fmt.Fprintf(cfg.out, "digests:  %d of %d images DIFFER or are missing in the destination\n", mismatches, len(sample.Refs))
		return fmt.Errorf("%d of %d images do not have their source digest in the destination", mismatches, len(sample.Refs))
	}
	fmt.Fprintf(cfg.out, "digests:  all %d images match, byte for byte\n", len(sample.Refs))
	return nil
}

// findFerry checks the binary exists before anything is started.
func findFerry(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("ferry binary %s: %w (build it with 'make build' or pass -ferry PATH)", path, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("ferry binary %s is not an executable file", path)
	}
	return abs, nil
}

// ferryRun runs the ferry binary with its output shown and returns its
// wall time. On cancellation ferry gets an interrupt, as from Ctrl-C, and a
// few seconds to clean up.
func ferryRun(ctx context.Context, out io.Writer, env []string, ferry string, args ...string) (time.Duration, error) {
	fmt.Fprintf(out, "$ ferry %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, ferry, args...)
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return took, fmt.Errorf("ferry %s: %w", args[0], ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return took, fmt.Errorf("ferry %s exited with status %d", args[0], ee.ExitCode())
		}
		return took, fmt.Errorf("running ferry %s: %w", args[0], err)
	}
	fmt.Fprintf(out, "(ferry %s took %s)\n", args[0], took.Round(time.Millisecond))
	return took, nil
}

// compare resolves every sample image in the destination and prints it next
// to its source digest. It returns how many differ or are missing.
func compare(ctx context.Context, out io.Writer, sample *testimages.Sample, srcHost, dest string) (int, error) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSOURCE DIGEST\tDESTINATION DIGEST\tMATCH")
	bad := 0
	var detail []string
	for _, s := range sample.Refs {
		rest, ok := strings.CutPrefix(s, srcHost+"/")
		if !ok {
			return 0, fmt.Errorf("sample reference %s is not on the source registry %s", s, srcHost)
		}
		d := dest + "/" + rest
		ref, err := name.ParseReference(d, name.StrictValidation)
		if err != nil {
			return 0, fmt.Errorf("destination reference %q: %w", d, err)
		}
		want := sample.Digests[s]
		shown, match := "", "yes"
		desc, err := remote.Head(ref, remote.WithContext(ctx))
		switch {
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case err != nil:
			shown, match = "(missing)", "NO"
			bad++
			detail = append(detail, fmt.Sprintf("%s\n  source:      %s\n  destination: %v", d, want, err))
		case desc.Digest.String() != want:
			shown, match = short(desc.Digest.String()), "NO"
			bad++
			detail = append(detail, fmt.Sprintf("%s\n  source:      %s\n  destination: %s", d, want, desc.Digest))
		default:
			shown = short(desc.Digest.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d, short(want), shown, match)
	}
	tw.Flush()
	fmt.Fprintln(out, "(digests shortened to 12 hex digits; the comparison uses them in full)")
	for _, l := range detail {
		fmt.Fprintln(out, "MISMATCH "+l)
	}
	return bad, nil
}

// uniqueBytes walks the images in the registry and adds up the sizes of
// the distinct manifests and blobs they use: what a bundle has to hold.
func uniqueBytes(ctx context.Context, refs []string) (count int, total int64, err error) {
	seen := map[string]bool{}
	var walk func(ref name.Reference, depth int) error
	walk = func(ref name.Reference, depth int) error {
		if depth > 4 {
			return fmt.Errorf("%s: manifests nested too deep", ref)
		}
		d, err := remote.Get(ref, remote.WithContext(ctx))
		if err != nil {
			return err
		}
		if !seen[d.Digest.String()] {
			seen[d.Digest.String()] = true
			count++
			total += int64(len(d.Manifest))
		}
		var m struct {
			Manifests []descriptor `json:"manifests"`
			Config    *descriptor  `json:"config"`
			Layers    []descriptor `json:"layers"`
		}
		if err := json.Unmarshal(d.Manifest, &m); err != nil {
			return fmt.Errorf("%s: parsing the manifest: %w", ref, err)
		}
		blobs := m.Layers
		if m.Config != nil {
			blobs = append(blobs, *m.Config)
		}
		for _, b := range blobs {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				count++
				total += b.Size
			}
		}
		for _, c := range m.Manifests {
			if seen[c.Digest] {
				continue
			}
			if err := walk(ref.Context().Digest(c.Digest), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range refs {
		ref, err := name.ParseReference(r)
		if err != nil {
			return 0, 0, err
		}
		if err := walk(ref, 0); err != nil {
			return 0, 0, err
		}
	}
	return count, total, nil
}

type descriptor struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

func heading(w io.Writer, s string) {
	fmt.Fprintf(w, "\n== %s\n", s)
}

func short(d string) string {
	if algo, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return d
}
