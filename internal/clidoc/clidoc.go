package clidoc

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Markdown renders app. regenerate is the command that writes the file,
// named in its header.
func Markdown(app *cli.App, regenerate string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s command reference\n\n", app.Name)
	fmt.Fprintf(&b, "<!-- Generated from the CLI definition by %s; do not edit by hand. -->\n\n", regenerate)
	fmt.Fprintf(&b, "%s: %s.\n\n", app.Name, app.Usage)
	fmt.Fprintf(&b, "```text\n%s COMMAND [options] [arguments]\n%s --help | --version\n```\n\n", app.Name, app.Name)
	b.WriteString("| command | what it does |\n|---------|--------------|\n")
	commands := visible(app.Name, app.VisibleCommands())
	for _, c := range commands {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", c.path, strings.ReplaceAll(c.path, " ", "-"), cell(c.Usage))
	}
	fmt.Fprintf(&b, "\nEvery command takes `-h`, `--help`. `%s COMMAND --help` prints the same reference.\n", app.Name)
	for _, c := range commands {
		fmt.Fprintf(&b, "\n## %s\n\n%s.\n\n", c.path, capitalize(c.Usage))
		usage := c.path
		if len(c.VisibleCommands()) > 0 {
			usage += " COMMAND"
		}
		if len(c.VisibleFlags()) > 0 {
			usage += " [options]"
		}
		if c.ArgsUsage != "" {
			usage += " " + c.ArgsUsage
		}
		fmt.Fprintf(&b, "```text\n%s\n```\n", usage)
		if d := strings.TrimSpace(c.Description); d != "" {
			fmt.Fprintf(&b, "\n```text\n%s\n```\n", d)
		}
		if flags := c.VisibleFlags(); len(flags) > 0 {
			b.WriteString("\n| option | default | meaning |\n|--------|---------|---------|\n")
			for _, f := range flags {
				b.WriteString(row(f))
			}
		}
	}
	return b.String()
}

// row is one flag's table row.
func row(f cli.Flag) string {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return fmt.Sprintf("| `%s` | | |\n", strings.Join(f.Names(), "`, `"))
	}
	placeholder, usage := unquote(d.GetUsage())
	if d.TakesValue() && placeholder == "" {
		placeholder = "VALUE"
	}
	var names []string
	for _, n := range f.Names() {
		s := "--" + n
		if len(n) == 1 {
			s = "-" + n
		}
		names = append(names, s)
	}
	if d.TakesValue() {
		names[0] += " " + placeholder
	}
	// The long name first: --output FILE, -o.
	spelled := "`" + strings.Join(names, "`, `") + "`"
	def := ""
	if d.TakesValue() {
		if v := d.GetDefaultText(); v != "" {
			def = "`" + v + "`"
		}
	}
	if env := d.GetEnvVars(); len(env) > 0 {
		usage += " (environment: " + strings.Join(env, ", ") + ")"
	}
	return fmt.Sprintf("| %s | %s | %s |\n", spelled, def, cell(usage))
}

// unquote takes the `PLACEHOLDER` out of a usage string, as urfave/cli's
// help does: it names the value, and the usage keeps the word.
func unquote(usage string) (placeholder, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	placeholder = usage[i+1 : i+1+j]
	return placeholder, usage[:i] + placeholder + usage[i+2+j:]
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// command is a command with its full name: "ferry images scan".
type command struct {
	*cli.Command
	path string
}

// visible lists cmds and, after each, its visible subcommands, depth
// first.
func visible(prefix string, cmds []*cli.Command) []command {
	var out []command
	for _, c := range cmds {
		path := prefix + " " + c.Name
		out = append(out, command{c, path})
		out = append(out, visible(path, c.VisibleCommands())...)
	}
	return out
}
