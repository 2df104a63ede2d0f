package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/internal/clidoc"
)

// docsCommand is the hidden command behind `make docs`: it prints
// docs/cli.md.
const docsCommand = "__docs"

func newDocsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:   docsCommand,
		Usage:  "print the command reference (docs/cli.md) as Markdown",
		Hidden: true,
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprint(e.stdout, cliReference(e))
			return err
		},
	}
}

// cliReference renders docs/cli.md from a new App, whose flags no run has
// touched.
func cliReference(e *env) string {
	return clidoc.Markdown(newApp(e), "`make docs` (go run ./cmd/ferry "+docsCommand+")")
}
