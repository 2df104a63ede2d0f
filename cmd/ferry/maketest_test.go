package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeTestWithoutCCompiler: on a machine with Go but no C compiler for
// cgo, `make test` runs the tests without -race and says so, instead of
// failing; with one, it uses -race. Checked with make -n (what make would
// run), from the repository root.
func TestMakeTestWithoutCCompiler(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: the Makefile cannot be checked here")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) string {
		t.Helper()
		cmd := exec.Command("make", "-n", "test")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n test %v: %v\n%s", env, err, out)
		}
		return string(out)
	}
	testLine := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "test") && strings.Contains(l, "-count=1 -timeout 9m ./...") {
				return l
			}
		}
		t.Fatalf("no go test line in:\n%s", out)
		return ""
	}
	for _, env := range [][]string{{"CC=/nonexistent/cc"}, {"CGO_ENABLED=0"}} {
		out := run(env...)
		if l := testLine(out); strings.Contains(l, "-race") {
			t.Errorf("%v: %q uses -race without a C compiler", env, l)
		}
		// make -n prints the recipe: the note is printed when RACE is
		// empty, which the recipe's test shows.
		if !strings.Contains(out, `if [ -z "" ]; then echo "make test: no C compiler for cgo`) || !strings.Contains(out, "running the tests without -race") {
			t.Errorf("%v: make test does not say it runs without -race:\n%s", env, out)
		}
	}
	// With a C compiler (when this machine has one): -race.
	if cc, err := exec.LookPath("cc"); err == nil {
		out := run("CC="+cc, "CGO_ENABLED=1")
		if l := testLine(out); !strings.Contains(l, "-race") {
			t.Errorf("with %s: %q lacks -race", cc, l)
		}
	}
}
