package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/internal/registry"
)

func newLoginCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "check and store credentials for a registry (like docker login)",
		ArgsUsage: "REGISTRY",
		Description: `Reads the password from standard input, checks it against the registry,
then stores it in $DOCKER_CONFIG/config.json (or ~/.docker/config.json), where
export and import find it.

It takes the connection flags of export and import: --ca-file for a registry
with a private CA, --client-cert and --client-key, --insecure-registry, --debug.

Examples:
  printf '%s' "$TOKEN" | ferry login myreg.azsacr.local.azurestack.external -u mytoken --password-stdin
  printf '%s' "$TOKEN" | ferry login registry.local:5000 -u op --password-stdin --ca-file my-ca.pem`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: flagUsername, Aliases: []string{"u"}, Usage: "`USER` name (required)"},
			&cli.BoolFlag{Name: flagPasswordStdin, Usage: "read the password from standard input (required)"},
		}, connectionFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("login takes one registry host, got %d arguments", c.NArg())
			}
			user := c.String(flagUsername)
			if user == "" || !c.Bool(flagPasswordStdin) {
				return usagef("login needs --username USER and --password-stdin (passwords are never taken as arguments)")
			}
			host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(c.Args().First(), "https://"), "http://"), "/")
			conn, err := connectionOptions(c, e)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
			if err != nil {
				return fmt.Errorf("reading the password: %w", err)
			}
			pass := strings.TrimRight(string(b), "\r\n")
			if pass == "" {
				return usagef("--password-stdin: standard input is empty")
			}
			client := registry.New(registry.Options(conn))
			refresh, err := client.CheckLogin(c.Context, host, user, pass)
			if err != nil {
				return fmt.Errorf("logging in to %s: %w", host, err)
			}
			path, err := registry.SaveCredentials(host, user, pass, refresh)
			if err != nil {
				return fmt.Errorf("storing the credentials: %w", err)
			}
			what := "credentials"
			if refresh != "" {
				what = "a refresh token (not the password)"
			}
			fmt.Fprintf(e.stderr, "login succeeded; %s for %s stored in %s under %q\n", what, host, path, registry.CredentialKey(host))
			return nil
		},
	}
}
