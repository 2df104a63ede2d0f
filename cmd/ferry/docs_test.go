package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestCLIReferenceUpToDate fails when docs/cli.md is not what the CLI
// definition gives: a flag or command was added or changed without
// regenerating it.
func TestCLIReferenceUpToDate(t *testing.T) {
	runMu.Lock() // newApp's flags are read while no run touches urfave/cli's globals
	want := cliReference(&env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	runMu.Unlock()
	got, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatalf("%v; create it with `make docs`", err)
	}
	if string(got) == want {
		return
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(want, "\n")
	line := 0
	for line < len(g) && line < len(w) && g[line] == w[line] {
		line++
	}
	at := func(s []string) string {
		if line < len(s) {
			return s[line]
		}
		return "(end of file)"
	}
	t.Fatalf("docs/cli.md is stale: line %d is\n\t%s\nbut the CLI definition gives\n\t%s\nregenerate it with `make docs` (go run ./cmd/ferry __docs > docs/cli.md) and commit the result", line+1, at(g), at(w))
}

// TestDocsCommandHidden: `ferry __docs` prints the reference, and neither
// the help nor the reference lists it.
func TestDocsCommandHidden(t *testing.T) {
	t.Parallel()
	res := ferry(t, nil, "__docs")
	res.expect(t, exitOK)
	if !strings.HasPrefix(res.stdout, "# ferry command reference\n") || strings.Contains(res.stdout, "__docs\n") || strings.Contains(res.stdout, "## ferry __docs") {
		t.Errorf("__docs printed:\n%.300s", res.stdout)
	}
	help := ferry(t, nil, "--help")
	help.expect(t, exitOK)
	if strings.Contains(help.stdout+help.stderr, "__docs") || !strings.Contains(help.stdout, "completion") {
		t.Errorf("--help lists __docs, or not completion:\n%s", help.stdout)
	}
}
