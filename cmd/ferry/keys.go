package main

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ferryproject/ferry/bundle"
)

// password returns the key password from FERRY_PASSWORD or COSIGN_PASSWORD,
// or asks on the terminal.
func password(e *env, confirm bool) ([]byte, error) {
	p, _, err := passwordFrom(e, confirm)
	return p, err
}

// passwordFrom is password, also saying where the password came from: the
// name of the variable, or "the terminal".
func passwordFrom(e *env, confirm bool) ([]byte, string, error) {
	for _, v := range []string{"FERRY_PASSWORD", "COSIGN_PASSWORD"} {
		if p, ok := os.LookupEnv(v); ok {
			return []byte(p), v, nil
		}
	}
	p, err := askPassword(e, confirm)
	return p, "the terminal", err
}

func askPassword(e *env, confirm bool) ([]byte, error) {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, usagef("no password: set FERRY_PASSWORD (or COSIGN_PASSWORD), or run on a terminal to be asked")
	}
	fmt.Fprint(e.stderr, "Password for the private key: ")
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(e.stderr, "Repeat the password: ")
		q, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, err
		}
		if string(p) != string(q) {
			return nil, usagef("the passwords differ")
		}
	}
	return p, nil
}

func loadSigner(e *env, path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the private key: %w", err)
	}
	var pw []byte
	var from string
	if strings.Contains(string(data), "ENCRYPTED") {
		if pw, from, err = passwordFrom(e, false); err != nil {
			return nil, err
		}
	}
	k, err := bundle.LoadPrivateKey(data, pw)
	if errors.Is(err, bundle.ErrWrongPassword) {
		return nil, fmt.Errorf("loading private key %s: %w: the password from %s does not decrypt it%s", path, bundle.ErrWrongPassword, from, passwordHint(from))
	}
	if err != nil {
		return nil, fmt.Errorf("loading private key %s: %w", path, err)
	}
	return k, nil
}

// passwordHint points out that FERRY_PASSWORD hides COSIGN_PASSWORD.
func passwordHint(from string) string {
	if _, both := os.LookupEnv("COSIGN_PASSWORD"); both && from == "FERRY_PASSWORD" {
		return " (FERRY_PASSWORD is used before COSIGN_PASSWORD, which is also set)"
	}
	return ""
}

// publicKeys loads --key files and the files listed in FERRY_PUBLIC_KEYS
// (separated by the OS path list separator or commas).
func publicKeys(c *cli.Context) ([]crypto.PublicKey, error) {
	paths := c.StringSlice(flagKey)
	if env := os.Getenv("FERRY_PUBLIC_KEYS"); env != "" {
		for _, p := range strings.FieldsFunc(env, func(r rune) bool { return r == ',' || r == filepath.ListSeparator }) {
			paths = append(paths, strings.TrimSpace(p))
		}
	}
	var keys []crypto.PublicKey
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, usagef("reading public key: %v", err)
		}
		k, err := bundle.LoadPublicKey(data)
		if err != nil {
			return nil, usagef("public key %s: %v", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readOptions returns the reader options for --key / --insecure-skip-verify.
func readOptions(c *cli.Context, e *env) ([]bundle.ReadOption, error) {
	keys, err := publicKeys(c)
	if err != nil {
		return nil, err
	}
	if c.Bool(flagInsecureSkipVerify) {
		if len(keys) > 0 {
			return nil, usagef("--insecure-skip-verify and --key contradict each other")
		}
		e.warn("--insecure-skip-verify: the bundle's signature is NOT checked; anyone who could alter the file could alter the images")
		return nil, nil
	}
	if len(keys) == 0 {
		return nil, usagef("no public key to verify the bundle with: pass --key FILE.pub (or set FERRY_PUBLIC_KEYS); to import an unsigned bundle anyway use --insecure-skip-verify")
	}
	return []bundle.ReadOption{bundle.WithVerifier(bundle.KeyVerifier(keys...))}, nil
}

func newKeygenCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "make a key pair for signing bundles (cosign-compatible)",
		Description: `Writes P.key (encrypted with the password from FERRY_PASSWORD or
COSIGN_PASSWORD, or asked on the terminal; cosign's format) and P.pub (PKIX PEM).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagAlgorithm, Value: "ecdsa-p256", Usage: "`ALG`: ecdsa-p256 or ed25519"},
			&cli.StringFlag{Name: flagOutputPrefix, Value: "ferry", Usage: "write `P`.key and P.pub"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("keygen takes no arguments")
			}
			alg := c.String(flagAlgorithm)
			if alg != "ecdsa-p256" && alg != "ed25519" {
				return usagef("unknown --algorithm %q: use ecdsa-p256 or ed25519", alg)
			}
			prefix := c.String(flagOutputPrefix)
			if dir := filepath.Dir(prefix); dir != "." {
				if st, err := os.Stat(dir); err != nil || !st.IsDir() {
					return usagef("--output-prefix: directory %s does not exist; create it first (mkdir -p %s)", dir, dir)
				}
			}
			for _, p := range []string{prefix + ".key", prefix + ".pub"} {
				if err := notExists(p); err != nil {
					return err
				}
			}
			pw, err := password(e, true)
			if err != nil {
				return err
			}
			k, err := bundle.GenerateKey(alg)
			if err != nil {
				return err
			}
			priv, err := bundle.MarshalPrivateKey(k, pw)
			if err != nil {
				return err
			}
			pub, err := bundle.MarshalPublicKey(k.Public())
			if err != nil {
				return err
			}
			// Created, never overwritten, and never through a symbolic
			// link planted at either name (see createFile).
			if err := createFile(prefix+".key", priv, 0o600); err != nil {
				return keyWriteError(prefix+".key", "private", err)
			}
			if err := createFile(prefix+".pub", pub, 0o644); err != nil {
				os.Remove(prefix + ".key")
				return keyWriteError(prefix+".pub", "public", err)
			}
			fmt.Fprintf(e.stderr, "wrote %s.key (private, keep it on the export side) and %s.pub (public, carry it to the import side)\nkey fingerprint: %s\n", prefix, prefix, bundle.Fingerprint(k.Public()))
			return nil
		},
	}
}

// notExists reports, as the error keygen prints, that something already
// has the name p: a file, or a symbolic link (wherever it points, even
// nowhere).
func notExists(p string) error {
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s already exists as a symbolic link; ferry does not write through links: remove it or choose another --output-prefix", p)
	}
	return fmt.Errorf("%s already exists; remove it or choose another --output-prefix", p)
}

func keyWriteError(p, which string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		// Made between the check and now.
		if e := notExists(p); e != nil {
			return e
		}
	}
	return fmt.Errorf("writing the %s key: %w", which, err)
}
