package termtext_test

import (
	"testing"

	"github.com/ferryproject/ferry/internal/termtext"
)

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain", "MANIFEST_UNKNOWN: manifest unknown", "MANIFEST_UNKNOWN: manifest unknown"},
		{"unicode kept", "dépôt introuvable", "dépôt introuvable"},
		{"escape sequence", "bad\x1b[2K\x1b[1Gexported", `bad\x1b[2K\x1b[1Gexported`},
		{"carriage return", "bad\rexported", `bad\rexported`},
		{"newlines and tab", "a\nb\r\nc\td", `a\nb\r\nc\td`},
		{"DEL and NUL", "a\x7fb\x00c", `a\x7fb\x00c`},
		{"C1 CSI", "a\u009b2Kb", `a\u009b2Kb`},
		{"bidi override", "a\u202eb", `a\u202eb`},
		{"invalid UTF-8", "a\xffb", `a\xffb`},
		{"backslash unchanged", `a\nb`, `a\nb`},
	}
	for _, tc := range tests {
		if got := termtext.Escape(tc.in); got != tc.want {
			t.Errorf("%s: Escape(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	if got, want := termtext.Line("abc\ndef", 100), `abc\ndef`; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if got, want := termtext.Line("abcdefgh\x1b", 4), "abcd... (5 more bytes)"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if got, want := termtext.Line("aé", 2), "a... (2 more bytes)"; got != want {
		t.Errorf("Line cut inside a rune = %q, want %q", got, want)
	}
}
