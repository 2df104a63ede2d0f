package clidoc

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestMarkdown(t *testing.T) {
	t.Parallel()
	app := &cli.App{
		Name:  "tool",
		Usage: "do things",
		Commands: []*cli.Command{
			{Name: "copy", Usage: "copy a | b", ArgsUsage: "SRC DST", Description: "Copies.\n\n  tool copy a b",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE`"},
					&cli.IntFlag{Name: "jobs", Value: 8, Usage: "run `N` at once"},
					&cli.StringSliceFlag{Name: "key", Usage: "trust `FILE`", EnvVars: []string{"TOOL_KEYS"}},
					&cli.BoolFlag{Name: "quiet", Usage: "say nothing"},
					&cli.StringFlag{Name: "secret", Hidden: true},
				}},
			{Name: "internal", Hidden: true},
		},
	}
	got := Markdown(app, "`make docs`")
	want := "# tool command reference\n\n" +
		"<!-- Generated from the CLI definition by `make docs`; do not edit by hand. -->\n\n" +
		"tool: do things.\n\n" +
		"```text\ntool COMMAND [options] [arguments]\ntool --help | --version\n```\n\n" +
		"| command | what it does |\n|---------|--------------|\n" +
		"| [`tool copy`](#tool-copy) | copy a \\| b |\n" +
		"\nEvery command takes `-h`, `--help`. `tool COMMAND --help` prints the same reference.\n" +
		"\n## tool copy\n\nCopy a | b.\n\n" +
		"```text\ntool copy [options] SRC DST\n```\n" +
		"\n```text\nCopies.\n\n  tool copy a b\n```\n" +
		"\n| option | default | meaning |\n|--------|---------|---------|\n" +
		"| `--output FILE`, `-o` |  | write to FILE |\n" +
		"| `--jobs N` | `8` | run N at once |\n" +
		"| `--key FILE` |  | trust FILE (environment: TOOL_KEYS) |\n" +
		"| `--quiet` |  | say nothing |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "internal") || strings.Contains(got, "secret") {
		t.Error("hidden commands and flags are documented")
	}
}

// TestMarkdownSubcommands: a command with subcommands (ferry images scan)
// lists them, and each has its own section with its usage and flags.
func TestMarkdownSubcommands(t *testing.T) {
	t.Parallel()
	app := &cli.App{
		Name:  "tool",
		Usage: "do things",
		Commands: []*cli.Command{
			{Name: "images", Usage: "work on images", Subcommands: []*cli.Command{
				{Name: "scan", Usage: "find images", ArgsUsage: "PATH...", Flags: []cli.Flag{&cli.BoolFlag{Name: "pin", Usage: "resolve tags"}}},
				{Name: "hidden", Hidden: true},
			}},
		},
	}
	got := Markdown(app, "`make docs`")
	want := "# tool command reference\n\n" +
		"<!-- Generated from the CLI definition by `make docs`; do not edit by hand. -->\n\n" +
		"tool: do things.\n\n" +
		"```text\ntool COMMAND [options] [arguments]\ntool --help | --version\n```\n\n" +
		"| command | what it does |\n|---------|--------------|\n" +
		"| [`tool images`](#tool-images) | work on images |\n" +
		"| [`tool images scan`](#tool-images-scan) | find images |\n" +
		"\nEvery command takes `-h`, `--help`. `tool COMMAND --help` prints the same reference.\n" +
		"\n## tool images\n\nWork on images.\n\n" +
		"```text\ntool images COMMAND\n```\n" +
		"\n## tool images scan\n\nFind images.\n\n" +
		"```text\ntool images scan [options] PATH...\n```\n" +
		"\n| option | default | meaning |\n|--------|---------|---------|\n" +
		"| `--pin` |  | resolve tags |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
