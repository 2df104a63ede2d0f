package registry

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferryproject/ferry/internal/termtext"
)

// maxErrorText bounds the text of an error that carries what a registry
// sent: transport.Error holds up to 64 KiB of the response body, which may
// be a whole HTML page.
const maxErrorText = 2048

// textError is err with its text made safe to print: one line, control
// characters escaped (see termtext), at most maxErrorText bytes, and the
// query of a URL the HTTP client names redacted as in the --debug log.
// errors.Is and errors.As see err.
type textError struct {
	err error
	msg string
}

func (e *textError) Error() string { return e.msg }
func (e *textError) Unwrap() error { return e.err }

// safeText returns err, or a *textError when its text needs changing. The
// text of a registry's error body reaches the operator's terminal: escape
// sequences in it could rewrite the lines above, and a newline start a line
// that looks like ferry's own.
func safeText(err error) error {
	if err == nil {
		return nil
	}
	var te *textError
	if errors.As(err, &te) {
		return err
	}
	msg := err.Error()
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if u, perr := url.Parse(uerr.URL); perr == nil {
			// url.Error quotes the URL (%q): a query holding a quote or a
			// backslash is spelled escaped in msg.
			red := redactQuery(u)
			msg = strings.ReplaceAll(msg, strconv.Quote(uerr.URL), strconv.Quote(red))
			msg = strings.ReplaceAll(msg, uerr.URL, red)
		}
	}
	// A body's final newline is not part of the message.
	msg = strings.TrimSpace(msg)
	if clean := termtext.Line(msg, maxErrorText); clean != err.Error() {
		return &textError{err: err, msg: clean}
	}
	return err
}
