package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/termtext"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// Exit codes, documented in README.md.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitVerify      = 3
	exitInterrupted = 130
)

// usageError marks an error in how ferry was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// env carries the process streams, so tests can run the CLI in process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// out is what the running command prints besides its result, once
	// it has read its output flags (setupOutput); nil before.
	out *output
}

// warn prints a warning through the command's output, or as text before
// the command set it up.
func (e *env) warn(msg string) {
	if e.out != nil {
		e.out.warn(msg)
		return
	}
	fmt.Fprintf(e.stderr, "ferry: WARNING: %s\n", termtext.Escape(msg))
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:      "ferry",
		Usage:     "carry container images into disconnected networks in one verified file",
		Version:   version,
		Reader:    e.stdin,
		Writer:    e.stdout,
		ErrWriter: e.stderr,
		Commands: []*cli.Command{
			newExportCommand(e),
			newImagesCommand(e),
			newImportCommand(e),
			newInspectCommand(e),
			newVerifyCommand(e),
			newKeygenCommand(e),
			newLoginCommand(e),
			newCompletionCommand(e),
			newVersionCommand(e),
			newDocsCommand(e),
		},
		OnUsageError:    func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		// A key path may contain a comma; FERRY_PUBLIC_KEYS is split by ferry.
		DisableSliceFlagSeparator: true,
		Action: func(c *cli.Context) error {
			cli.HelpPrinter(e.stderr, cli.AppHelpTemplate, c.App)
			return usagef("no command given")
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	return app
}

// run runs the CLI and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The progress display and the notes and warnings of the command
	// write standard error from different goroutines: one line at a time.
	stderr = &lockedWriter{w: stderr}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	app := newApp(e)
	if answerCompletion(app, args, e) {
		return exitOK
	}
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") && app.Command(args[1]) == nil {
		fmt.Fprintf(stderr, "ferry: unknown command %q; run 'ferry --help' for the list\n", args[1])
		return exitUsage
	}
	app.CommandNotFound = func(*cli.Context, string) {}
	err := app.RunContext(ctx, interspersed(app, args))
	if err == nil {
		return exitOK
	}
	var bp *brokenPipeError
	if errors.As(err, &bp) || errors.As(context.Cause(ctx), &bp) {
		// Said on standard error, which may be the broken one.
		fmt.Fprintf(stderr, "ferry: %s\n", bp.Error())
		return exitFailure
	}
	code := exitCode(ctx, err)
	out := e.out
	if out == nil {
		// The command did not start: --json still gets its document.
		command, json := jsonRequested(args)
		out = &output{command: command, json: json, format: logText}
		if logFormatRequested(args) == logJSON {
			out.format = logJSON
			out.log = slog.New(slog.NewJSONHandler(stderr, nil))
		}
	}
	out.failed(stdout, stderr, err, code)
	return code
}

func exitCode(ctx context.Context, err error) int {
	var u usageError
	switch {
	case errors.As(err, &u), strings.HasPrefix(err.Error(), "Required flag"):
		return exitUsage
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, bundle.ErrVerification), errors.Is(err, bundle.ErrDigestMismatch), errors.Is(err, bundle.ErrCorrupt),
		errors.Is(err, bundle.ErrTruncated), errors.Is(err, bundle.ErrMissingBlob), errors.Is(err, bundle.ErrRollback):
		return exitVerify
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitFailure
}

// message is the one-line (or, for several failures, one line each) text
// shown to the operator.
func message(err error) string {
	var u usageError
	if errors.As(err, &u) {
		return printable(u.err.Error() + " (see 'ferry --help')")
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted; no partial output was left under the final name"
	}
	return printable(strings.TrimSpace(err.Error()))
}

// printable makes msg safe for the terminal: control characters escaped on
// each line (see termtext), and every line after the first indented, as
// the list items of several failures are. Text a registry or a bundle
// supplied can then neither move the cursor nor start a line at the left
// margin, where ferry's own output (the export summary) is; the registry
// client already puts its errors on one line.
func printable(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = termtext.Escape(l)
		if i > 0 && !strings.HasPrefix(l, "  ") {
			l = "  " + l
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

func isTerminal(w io.Writer) bool {
	f, ok := osFile(w)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lockedWriter serialises the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// osFile is the file behind w, if there is one.
func osFile(w io.Writer) (*os.File, bool) {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	return f, ok
}

// interspersed moves a command's flags ahead of its arguments, so that
// "ferry export nginx -o x.tar.zst" works like "ferry export -o x.tar.zst
// nginx" (the CLI library stops parsing flags at the first argument).
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.HasName(args[1]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	head, rest := args[:2], args[2:]
	// A command with subcommands (ferry images scan): the flags are the
	// subcommand's.
	for _, sub := range cmd.Subcommands {
		if len(rest) > 0 && sub.HasName(rest[0]) {
			cmd, head, rest = sub, args[:3], rest[1:]
			break
		}
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	flags, positional := []string{}, []string{}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i+1:]...)
			i = len(rest)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				flags = append(flags, rest[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	out := append(append([]string{}, head...), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}
