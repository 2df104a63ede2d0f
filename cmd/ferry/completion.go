package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/internal/completion"
)

func newCompletionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: strings.Join(completion.Shells, "|"),
		Description: `Prints a script that completes ferry's commands and options in the shell;
file names are completed where a file is expected.

Examples:
  source <(ferry completion bash)             # this bash session; or save it as /etc/bash_completion.d/ferry
  ferry completion zsh > "${fpath[1]}/_ferry"   # zsh, with compinit
  ferry completion fish > ~/.config/fish/completions/ferry.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion takes one shell (%s), got %d arguments", strings.Join(completion.Shells, ", "), c.NArg())
			}
			s, err := completion.Script(c.Args().First(), "ferry")
			if err != nil {
				return usageError{err}
			}
			_, err = fmt.Fprint(e.stdout, s)
			return err
		},
	}
}

// answerCompletion answers a completion script's request (a command line
// ending in completion.Trigger) and reports whether args was one. No
// command runs.
func answerCompletion(app *cli.App, args []string, e *env) bool {
	n := len(args)
	if n < 2 || args[n-1] != completion.Trigger {
		return false
	}
	completion.Respond(app, args[1:n-1], completion.ParseFormat(os.Getenv(completion.EnvFormat)),
		completion.Options{Args: map[string][]string{"completion": completion.Shells}}, e.stdout)
	return true
}
