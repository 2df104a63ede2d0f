package completion

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Trigger, appended to a command line, asks for the completions of its last
// word instead of running it (urfave/cli's name for it).
const Trigger = "--generate-bash-completion"

// EnvFormat names the environment variable in which the zsh and fish
// scripts ask for descriptions with each candidate.
const EnvFormat = "FERRY_COMPLETION"

// Shells are the shells Script knows.
var Shells = []string{"bash", "zsh", "fish"}

// ErrUnknownShell is returned by Script for a shell it has no script for.
var ErrUnknownShell = errors.New("unknown shell")

// Format is how Respond prints each candidate.
type Format int

const (
	Bash Format = iota // the name alone
	Zsh                // name:description (for _describe)
	Fish               // name<TAB>description
)

// ParseFormat reads the value of EnvFormat; anything but zsh and fish is
// Bash.
func ParseFormat(s string) Format {
	switch s {
	case "zsh":
		return Zsh
	case "fish":
		return Fish
	}
	return Bash
}

// Script returns the completion script for shell, for the program prog.
func Script(shell, prog string) (string, error) {
	var s string
	switch shell {
	case "bash":
		s = bashScript
	case "zsh":
		s = zshScript
	case "fish":
		s = fishScript
	default:
		return "", fmt.Errorf("%w %q: want %s", ErrUnknownShell, shell, strings.Join(Shells, ", "))
	}
	return strings.NewReplacer("PROG", prog, "TRIGGER", Trigger, "ENVFORMAT", EnvFormat).Replace(s), nil
}

// Options tune Respond.
type Options struct {
	// Args lists, per command name, the words its positional arguments
	// may be (completion: bash, zsh, fish). Commands not listed take file
	// names.
	Args map[string][]string
}

// Respond prints the candidates for the last word of words, the word at
// the cursor (possibly empty); the words before it are the command line
// typed so far, without the program name and without Trigger. It only reads
// app's definition.
func Respond(app *cli.App, words []string, format Format, opts Options, w io.Writer) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	out := &printer{w: w, format: format, prefix: cur}
	var cmd *cli.Command
	rest := before
	for i, word := range before {
		if !strings.HasPrefix(word, "-") {
			cmd = app.Command(word)
			rest = before[i+1:]
			break
		}
	}
	if cmd == nil {
		if len(before) > 0 && !strings.HasPrefix(before[len(before)-1], "-") {
			return // an unknown command
		}
		if strings.HasPrefix(cur, "-") {
			flags := app.VisibleFlags()
			if !app.HideVersion && app.Version != "" {
				flags = append(slices.Clip(flags), &cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version"})
			}
			out.flags(flags, !app.HideHelp, before)
			return
		}
		for _, c := range app.VisibleCommands() {
			out.candidate(c.Name, c.Usage)
		}
		return
	}
	// A command with subcommands (ferry images scan): the subcommand is
	// its first word that is not a flag.
	for len(cmd.Subcommands) > 0 {
		var sub *cli.Command
		for i, word := range rest {
			if !strings.HasPrefix(word, "-") {
				if sub = subcommand(cmd, word); sub == nil {
					return // an unknown subcommand
				}
				rest = rest[i+1:]
				break
			}
		}
		if sub == nil {
			if strings.HasPrefix(cur, "-") {
				out.flags(cmd.VisibleFlags(), !cmd.HideHelp, rest)
				return
			}
			for _, c := range cmd.VisibleCommands() {
				out.candidate(c.Name, c.Usage)
			}
			return
		}
		cmd = sub
	}
	if slices.Contains(rest, "--") {
		return // only arguments after "--": file names
	}
	if n := len(rest); n > 0 && takesValue(cmd, rest[n-1]) {
		return // the flag's value: a file name, or nothing to offer
	}
	if strings.HasPrefix(cur, "-") {
		out.flags(cmd.VisibleFlags(), !cmd.HideHelp, rest)
		return
	}
	for _, a := range opts.Args[cmd.Name] {
		out.candidate(a, "")
	}
}

// takesValue says whether word is a flag of cmd that takes a value
// (--to, not --to=x and not a bool flag).
func takesValue(cmd *cli.Command, word string) bool {
	name := strings.TrimLeft(word, "-")
	if !strings.HasPrefix(word, "-") || strings.Contains(name, "=") {
		return false
	}
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			d, ok := f.(cli.DocGenerationFlag)
			return ok && d.TakesValue()
		}
	}
	return false
}

type printer struct {
	w      io.Writer
	format Format
	prefix string // the word at the cursor: only candidates that start with it
}

// flags prints the flags: long names (--output) always, short ones (-o)
// unless the word at the cursor starts with "--". A flag already on the
// line is left out, unless it may be repeated.
func (p *printer) flags(flags []cli.Flag, help bool, typed []string) {
	if help {
		flags = append(slices.Clip(flags), &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help"})
	}
	for _, f := range flags {
		names := f.Names()
		if _, repeatable := f.(cli.DocGenerationSliceFlag); !repeatable && slices.ContainsFunc(names, func(n string) bool {
			return slices.ContainsFunc(typed, func(t string) bool { return spelled(n) == t || strings.HasPrefix(t, spelled(n)+"=") })
		}) {
			continue
		}
		usage := ""
		if d, ok := f.(cli.DocGenerationFlag); ok {
			usage = strings.ReplaceAll(d.GetUsage(), "`", "")
		}
		for _, n := range names {
			s := spelled(n)
			if len(n) == 1 && strings.HasPrefix(p.prefix, "--") {
				continue
			}
			p.candidate(s, usage)
		}
	}
}

// spelled is a flag's name as typed: -o, --output.
func spelled(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func (p *printer) candidate(name, usage string) {
	if !strings.HasPrefix(name, p.prefix) {
		return
	}
	usage, _, _ = strings.Cut(usage, "\n")
	switch {
	case p.format == Zsh && usage != "":
		fmt.Fprintf(p.w, "%s:%s\n", strings.ReplaceAll(name, ":", `\:`), usage)
	case p.format == Fish && usage != "":
		fmt.Fprintf(p.w, "%s\t%s\n", name, usage)
	default:
		fmt.Fprintln(p.w, name)
	}
}

// subcommand returns the subcommand of cmd named name (or one of its
// aliases), nil if there is none.
func subcommand(cmd *cli.Command, name string) *cli.Command {
	for _, c := range cmd.Subcommands {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
