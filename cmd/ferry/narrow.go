package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// inspectWidth is the terminal width ferry inspect fits by default.
const inspectWidth = 100

// shortDigest is algorithm:first 12 hex digits, as docker and crane show
// image IDs; a string that is not a digest is returned as is.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// elide cuts s to at most n runes, ending in "…" when cut.
func elide(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}

// elideMiddle cuts s to at most n runes by taking out its middle, so a
// reference keeps its registry and its tag.
func elideMiddle(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 3 {
		return string(r[:n])
	}
	tail := (n - 1) / 2
	head := n - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// elidePlatforms lists platforms in at most n runes: as many as fit, then
// "+K" for the K left out.
func elidePlatforms(platforms []string, n int) string {
	if len(platforms) == 0 {
		return "-"
	}
	all := strings.Join(platforms, ",")
	if utf8.RuneCountInString(all) <= n {
		return all
	}
	out := ""
	for i, p := range platforms {
		more := fmt.Sprintf(",+%d", len(platforms)-i)
		next := p
		if out != "" {
			next = out + "," + p
		}
		if utf8.RuneCountInString(next)+len(more) > n {
			if out == "" {
				more = fmt.Sprintf(",+%d", len(platforms)-1)
				return elide(p, n-len(more)) + more
			}
			return out + more
		}
		out = next
	}
	return out
}
