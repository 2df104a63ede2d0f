package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
)

// Flag names.
const (
	flagOutput             = "output"
	flagImagesFile         = "images-file"
	flagFromManifests      = "from-manifests"
	flagPin                = "pin"
	flagPlatform           = "platform"
	flagJobs               = "jobs"
	flagInsecureRegistry   = "insecure-registry"
	flagTo                 = "to"
	flagKeepSourceRegistry = "keep-source-registry"
	flagMappingOut         = "mapping-out"
	flagReceiptOut         = "receipt-out"
	flagAllowRollback      = "allow-rollback"
	flagJSON               = "json"
	flagQuiet              = "quiet"
	flagKey                = "key"
	flagSignatureOut       = "signature-out"
	flagInsecureSkipVerify = "insecure-skip-verify"
	flagVerifyFirst        = "verify-first"
	flagAlgorithm          = "algorithm"
	flagOutputPrefix       = "output-prefix"
	flagCAFile             = "ca-file"
	flagClientCert         = "client-cert"
	flagClientKey          = "client-key"
	flagUsername           = "username"
	flagPasswordStdin      = "password-stdin"
	flagRetries            = "retries"
	flagStallTimeout       = "stall-timeout"
	flagDebug              = "debug"
	flagRegistry           = "registry"
	flagBase               = "base"
	flagEgressReport       = "egress-report"
	flagDryRun             = "dry-run"
	flagNoReferrers        = "no-referrers"
	flagReferrersType      = "referrers-type"
)

// readBases reads the --base files: earlier bundles or receipts.
func readBases(c *cli.Context) ([]*bundle.Base, error) {
	var bases []*bundle.Base
	for _, p := range c.StringSlice(flagBase) {
		b, err := bundle.ReadBase(p)
		if err != nil {
			return nil, err
		}
		bases = append(bases, b)
	}
	return bases, nil
}

// registryFlags are the connection and credential flags of export and
// import.
func registryFlags() []cli.Flag {
	return append(connectionFlags(),
		&cli.StringFlag{Name: flagUsername, Aliases: []string{"u"}, Usage: "log in to the registry as `USER` (password from --password-stdin); other registries get stored credentials only"},
		&cli.BoolFlag{Name: flagPasswordStdin, Usage: "read the registry password from standard input"},
	)
}

// connectionFlags say how to reach registries (TLS, plain HTTP, retries,
// debug log): shared by export, import and login. See connectionOptions.
func connectionFlags() []cli.Flag {
	return []cli.Flag{
		insecureFlag(),
		&cli.StringSliceFlag{Name: flagCAFile, Usage: "trust the CA certificates in PEM `FILE` besides the system roots (repeatable)"},
		&cli.StringFlag{Name: flagClientCert, Usage: "present the client certificate in PEM `FILE` (with --client-key)"},
		&cli.StringFlag{Name: flagClientKey, Usage: "private key in PEM `FILE` of --client-cert"},
		&cli.BoolFlag{Name: flagDebug, Usage: "log every registry request and response to standard error (headers only; credentials redacted)"},
		&cli.IntFlag{Name: flagRetries, Value: 5, Usage: "retry a failed request or blob transfer `N` times (connection resets, timeouts, 408, 429, 5xx), with exponential backoff; a manifest or config fetch makes at most N+1 requests in all"},
		&cli.DurationFlag{Name: flagStallTimeout, Value: bundle.DefaultStallTimeout, Usage: "abandon, and retry, a request or blob transfer that sends or receives nothing for `DURATION` (0 waits forever)"},
	}
}

func keyFlag(usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: flagKey, Usage: usage}
}

func jobsFlag(usage string) cli.Flag {
	return &cli.IntFlag{Name: flagJobs, Aliases: []string{"j"}, Value: 8, Usage: usage}
}

func insecureFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagInsecureRegistry, Usage: "accept plain HTTP, credentials in clear included, or an unverified certificate from `HOST` (repeatable; a loopback or private address that does not speak TLS gets plain HTTP anyway, but credentials in clear only on loopback)"}
}

func quietFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Usage: "print errors and warnings only: no progress, notes or summary (--json still prints its document)"}
}

func jobs(c *cli.Context) (int, error) {
	j := c.Int(flagJobs)
	if j <= 0 {
		return 0, usagef("--jobs must be at least 1, got %d", j)
	}
	return j, nil
}

// registryOptions maps registryFlags: connectionOptions, plus the
// credentials of --username and --password-stdin, bound to the one
// registry that bind names (called only when they are given): no other
// registry, and no token endpoint another registry names, receives them.
// Stored credentials (docker and podman login) answer for the others.
func registryOptions(c *cli.Context, e *env, bind func() (string, error)) (bundle.RegistryOptions, error) {
	o, err := connectionOptions(c, e)
	if err != nil {
		return o, err
	}
	user := c.String(flagUsername)
	if c.Bool(flagPasswordStdin) != (user != "") {
		return o, usagef("--username and --password-stdin go together")
	}
	if user == "" {
		return o, nil
	}
	host, err := bind()
	if err != nil {
		return o, err
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
	if err != nil {
		return o, fmt.Errorf("reading the password from standard input: %w", err)
	}
	pass := strings.TrimRight(string(b), "\r\n")
	if pass == "" {
		return o, usagef("--password-stdin: standard input is empty")
	}
	bound, err := registry.BoundKeychain(host, authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}))
	if err != nil {
		return o, usageError{err}
	}
	o.Keychain = authn.NewMultiKeychain(bound, authn.DefaultKeychain)
	return o, nil
}

// exportCredentialRegistry is the registry the --username of an export
// logs in to: the one --registry names, which must be a registry of the
// references, or else the only registry they name.
func exportCredentialRegistry(c *cli.Context, refs []string) (string, error) {
	var hosts []string // as the references spell them, once each
	seen := map[string]bool{}
	for _, s := range refs {
		if strings.HasPrefix(s, bundle.LayoutScheme) {
			continue
		}
		r, err := bundle.ParseReference(s)
		if err != nil {
			continue // the export reports it
		}
		canon, err := registry.RegistryHost(r.Domain)
		if err != nil || seen[canon] {
			continue
		}
		seen[canon] = true
		hosts = append(hosts, r.Domain)
	}
	if flag := c.String(flagRegistry); flag != "" {
		host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(flag, "https://"), "http://"), "/")
		canon, err := registry.RegistryHost(host)
		if err != nil {
			return "", usagef("--registry %s: %v", flag, err)
		}
		if !seen[canon] {
			return "", usagef("--registry %s is none of the registries of the references (%s)", flag, listOrNone(hosts))
		}
		return host, nil
	}
	switch len(hosts) {
	case 0:
		return "", usagef("--username has no registry to log in to: the references name none (only OCI layouts)")
	case 1:
		return hosts[0], nil
	}
	return "", usagef("the references name %d registries (%s): say which one --username logs in to with --registry HOST; the others use stored credentials (ferry login)", len(hosts), strings.Join(hosts, ", "))
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none: only OCI layouts"
	}
	return strings.Join(s, ", ")
}

// connectionOptions maps connectionFlags.
func connectionOptions(c *cli.Context, e *env) (bundle.RegistryOptions, error) {
	o := bundle.RegistryOptions{Insecure: c.StringSlice(flagInsecureRegistry), UserAgent: "ferry/" + version}
	if c.Bool(flagDebug) {
		o.Debug = e.stderr
	}
	switch r := c.Int(flagRetries); {
	case r < 0:
		return o, usagef("--retries must be 0 or more, got %d", r)
	case r == 0:
		o.Retries = -1
	default:
		o.Retries = r
	}
	switch d := c.Duration(flagStallTimeout); {
	case d < 0:
		return o, usagef("--stall-timeout must be 0 or more, got %s", d)
	case d == 0:
		o.StallTimeout = -1
	default:
		o.StallTimeout = d
	}
	cas, cert, key := c.StringSlice(flagCAFile), c.String(flagClientCert), c.String(flagClientKey)
	if (cert == "") != (key == "") {
		return o, usagef("--client-cert and --client-key go together")
	}
	if len(cas) > 0 || cert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range cas {
			b, err := os.ReadFile(f)
			if err != nil {
				return o, usagef("--ca-file: %v", err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return o, usagef("--ca-file %s holds no PEM certificate", f)
			}
		}
		o.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return o, usagef("--client-cert/--client-key: %v", err)
			}
			o.TLS.Certificates = []tls.Certificate{kp}
		}
	}
	return o, nil
}

// readImagesFile reads references from a list file, or standard input for
// "-": one per line, blank lines and '#' comments ignored.
func readImagesFile(e *env, path string) ([]string, error) {
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading the images file: %w", err)
		}
		defer f.Close()
		r = f
	}
	var refs []string
	sc := bufio.NewScanner(r)
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
		return nil, fmt.Errorf("reading %s: %w", displayName(path), err)
	}
	return refs, nil
}
