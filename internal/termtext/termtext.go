package termtext

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Escape returns s on one line with every control character escaped:
// \n, \r and \t as such, other C0 and C1 controls, DEL and the Unicode
// bidirectional overrides as \xNN or \uNNNN, and bytes that are not UTF-8
// as \xNN. Other text, backslashes included, is unchanged.
func Escape(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Line is Escape, cut to at most max bytes of s; a cut text ends with
// "... (N more bytes)".
func Line(s string, max int) string {
	if len(s) <= max {
		return Escape(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d more bytes)", Escape(s[:cut]), len(s)-cut)
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return !hasUnsafe(s)
		}
	}
	return true
}

// hasUnsafe reports whether s, which holds a control or non-ASCII byte,
// needs escaping.
func hasUnsafe(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return true
			}
		}
		if r < 0x20 || r == 0x7f || unsafe(r) {
			return true
		}
	}
	return false
}

// unsafe reports the non-ASCII runes a terminal acts on: C1 controls
// (U+0080-U+009F; U+009B is CSI on some terminals) and the bidirectional
// marks and overrides that reorder the text shown.
func unsafe(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
