package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/termtext"
)

// Output flags: what export, import, inspect and verify print, and how.
const (
	flagLogFormat = "log-format"
	flagWide      = "wide"
)

// Log formats of --log-format.
const (
	logText = "text"
	logJSON = "json"
)

func logFormatFlag() cli.Flag {
	return &cli.StringFlag{Name: flagLogFormat, Value: logText, Usage: "print warnings, notes, progress lines (when not on a terminal) and errors on standard error as `FORMAT`: text or json (one JSON object a line)"}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagJSON, Usage: "print one JSON document on standard output, also on failure (schema: docs/json.md)"}
}

// jsonCommands are the commands that take --json.
var jsonCommands = []string{"export", "import", "inspect", "verify"}

// output is what one command prints besides its result: the logger of
// warnings and notes, quiet mode, and the --json document. A command
// sets it up first (setupOutput); run prints the error through it.
type output struct {
	command string
	quiet   bool
	json    bool
	format  string
	log     *slog.Logger
	// doc is the --json document so far; run adds the error to it when
	// the command fails.
	mu  sync.Mutex
	doc interface{ Fail(*report.Error) }
}

// setupOutput reads the output flags of command: --log-format (a usage
// error when neither text nor json), --quiet and --json when the command
// has them.
func setupOutput(c *cli.Context, e *env, command string) (*output, error) {
	o := &output{command: command, quiet: c.Bool(flagQuiet), json: c.Bool(flagJSON), format: c.String(flagLogFormat)}
	if o.format == "" {
		o.format = logText
	}
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelWarn
	}
	switch o.format {
	case logText:
		o.log = slog.New(&textHandler{w: e.stderr, level: level})
	case logJSON:
		o.log = slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	default:
		e.out = &output{command: command, json: o.json, format: logText, log: slog.New(&textHandler{w: e.stderr})}
		return nil, usagef("%w: --log-format %q: want text or json", errBadLogFormat, o.format)
	}
	e.out = o
	return o, nil
}

// errBadLogFormat is a --log-format that is neither text nor json.
var errBadLogFormat = errors.New("unknown log format")

// warn logs a warning (printed with --quiet too: warnings say what a
// switched-off check or a degraded step means).
func (o *output) warn(msg string, args ...any) { o.log.Warn(msg, args...) }

// note logs a note (nothing with --quiet).
func (o *output) note(msg string, args ...any) { o.log.Info(msg, args...) }

// progressLog is the logger of plain progress lines: nil (plain text)
// unless --log-format json.
func (o *output) progressLog() *slog.Logger {
	if o.format == logJSON {
		return o.log
	}
	return nil
}

// summary returns where the human summary goes: w, or with --log-format
// json the log, one record a line.
func (o *output) summary(w io.Writer) io.Writer {
	if o.format == logJSON {
		return &logWriter{log: o.log}
	}
	return w
}

// logWriter logs each line written to it as a record.
type logWriter struct {
	log  *slog.Logger
	part []byte
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.part = append(l.part, b...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.log.Info(string(l.part[:i]))
		l.part = l.part[i+1:]
	}
}

// human says whether to print the human summary: not with --quiet or
// --json.
func (o *output) human() bool { return !o.quiet && !o.json }

// setDoc records the --json document so far.
func (o *output) setDoc(doc interface{ Fail(*report.Error) }) {
	o.mu.Lock()
	o.doc = doc
	o.mu.Unlock()
}

// emitJSON prints doc as the one JSON document of the run.
func emitJSON(w io.Writer, doc any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// failed prints the end of a failed run: the error line (or JSON log
// record), and with --json the document with its error object.
func (o *output) failed(stdout, stderr io.Writer, err error, code int) {
	msg := message(err)
	if o.format == logJSON {
		o.log.Error(msg, "exitCode", code)
	} else {
		fmt.Fprintf(stderr, "ferry: %s\n", msg)
	}
	if !o.json {
		return
	}
	o.mu.Lock()
	doc := o.doc
	o.mu.Unlock()
	if doc == nil {
		doc = &report.Failed{Header: report.NewHeader(o.command)}
	}
	doc.Fail(errorReport(err, code))
	_ = emitJSON(stdout, doc)
}

// errorReport describes err for a --json document: the message, the exit
// code and, when the error says, the blob and images that failed.
func errorReport(err error, code int) *report.Error {
	re := &report.Error{Message: strings.TrimSpace(err.Error()), ExitCode: code}
	if errors.Is(err, context.Canceled) {
		re.Message = message(err)
	}
	var be *bundle.BlobError
	var rse *bundle.ResolveError
	var rfe *bundle.RefError
	switch {
	case errors.As(err, &be):
		re.Op, re.Blob, re.Images = be.Op, be.Digest.String(), slices.Clone(be.Images)
	case errors.As(err, &rse):
		for _, f := range rse.Failures {
			re.Images = append(re.Images, f.Ref)
		}
	case errors.As(err, &rfe):
		re.Images = []string{rfe.Ref}
	}
	return re
}

// jsonRequested says whether args (a command line) ask a command that
// takes --json for it: for a run that failed before its command could say
// (a flag the CLI library refused).
func jsonRequested(args []string) (command string, ok bool) {
	if len(args) < 2 || !slices.Contains(jsonCommands, args[1]) {
		return "", false
	}
	for _, a := range args[2:] {
		if a == "--" {
			break
		}
		if a == "--json" || a == "-json" {
			return args[1], true
		}
		for _, spelled := range []string{"--json=", "-json="} {
			// As the CLI library reads a bool flag's value.
			if v, ok := strings.CutPrefix(a, spelled); ok {
				if b, err := strconv.ParseBool(v); err == nil && b {
					return args[1], true
				}
			}
		}
	}
	return "", false
}

// logFormatRequested returns the --log-format that args (a command line)
// give a command that takes it, "" for none: for a run that failed before
// its command could say (a flag the CLI library refused), whose error is
// then a JSON record too.
func logFormatRequested(args []string) string {
	if len(args) < 2 || !slices.Contains(jsonCommands, args[1]) {
		return ""
	}
	format := ""
	for i, a := range args[2:] {
		if a == "--" {
			break
		}
		for _, spelled := range []string{"--" + flagLogFormat, "-" + flagLogFormat} {
			switch {
			case a == spelled && i+3 < len(args):
				format = args[i+3]
			case strings.HasPrefix(a, spelled+"="):
				format = strings.TrimPrefix(a, spelled+"=")
			}
		}
	}
	return format
}

// textHandler prints log records as ferry always has: "ferry: WARNING:
// msg", "ferry: note: msg", "ferry: msg", then any attributes as
// key=value. Text from a bundle or a registry is escaped (termtext).
type textHandler struct {
	mu    sync.Mutex
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("ferry: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("ferry: WARNING: ")
	case r.Level >= slog.LevelInfo:
		b.WriteString("ferry: note: ")
	default:
		b.WriteString("ferry: debug: ")
	}
	b.WriteString(termtext.Escape(r.Message))
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, termtext.Escape(a.Value.String()))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &textHandler{w: h.w, level: h.level, attrs: append(slices.Clone(h.attrs), attrs...)}
}

func (h *textHandler) WithGroup(string) slog.Handler { return h }
