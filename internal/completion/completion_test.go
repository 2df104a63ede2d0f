package completion

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestScriptUnknownShell(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"tcsh", "", "Bash"} {
		_, err := Script(shell, "ferry")
		want := `unknown shell "` + shell + `": want bash, zsh, fish`
		if !errors.Is(err, ErrUnknownShell) || err.Error() != want {
			t.Errorf("%q: got %v, want %s", shell, err, want)
		}
	}
	for _, shell := range Shells {
		s, err := Script(shell, "ferry")
		if err != nil || strings.Contains(s, "PROG") || strings.Contains(s, "TRIGGER") || strings.Contains(s, "ENVFORMAT") {
			t.Errorf("%s: %v, or a placeholder left in:\n%s", shell, err, s)
		}
	}
}

var testApp = &cli.App{
	Name: "tool",
	Commands: []*cli.Command{
		{Name: "copy", Usage: "copy things", Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "copy to `HOST:PORT`"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "say nothing\nat all"},
			&cli.StringFlag{Name: "secret", Hidden: true},
		}},
		{Name: "hidden", Hidden: true},
	},
	HideVersion: true,
}

func TestRespondFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format Format
		words  []string
		want   string
	}{
		{Bash, []string{""}, "copy\n"},
		{Zsh, []string{""}, "copy:copy things\n"},
		{Fish, []string{""}, "copy\tcopy things\n"},
		{Bash, []string{"-"}, "--help\n-h\n"},
		{Zsh, []string{"copy", "--"}, "--to:copy to HOST:PORT\n--quiet:say nothing\n--help:show help\n"},
		{Fish, []string{"copy", "-"}, "--to\tcopy to HOST:PORT\n--quiet\tsay nothing\n-q\tsay nothing\n--help\tshow help\n-h\tshow help\n"},
		{Bash, []string{"copy", "--s"}, ""}, // hidden
		{Bash, []string{"hid"}, ""},         // hidden
	} {
		var b bytes.Buffer
		Respond(testApp, tc.words, tc.format, Options{}, &b)
		if b.String() != tc.want {
			t.Errorf("%d %q: got %q, want %q", tc.format, tc.words, b.String(), tc.want)
		}
	}
	if ParseFormat("zsh") != Zsh || ParseFormat("fish") != Fish || ParseFormat("") != Bash || ParseFormat("tcsh") != Bash {
		t.Error("ParseFormat")
	}
}

// TestZshEscapesColons: _describe splits name:description at the first
// unescaped colon.
func TestZshEscapesColons(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	app := &cli.App{Name: "tool", HideVersion: true, Commands: []*cli.Command{{Name: "a:b", Usage: "x"}}}
	Respond(app, []string{""}, Zsh, Options{}, &b)
	if b.String() != `a\:b:x`+"\n" {
		t.Errorf("got %q", b.String())
	}
}

// TestFishScript asks fish itself to complete command lines (complete -C)
// with the script loaded and a stand-in ferry on PATH that records what it
// was sent.
func TestFishScript(t *testing.T) {
	t.Parallel()
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish is not installed here, so the fish script cannot be run")
	}
	dir := t.TempDir()
	script, _ := Script("fish", "ferry")
	stub := "#!/bin/sh\nprintf '%s|%s\\n' \"$FERRY_COMPLETION\" \"$*\" >> " + filepath.Join(dir, "sent") + "\n" +
		"case \"$*\" in *--o' '" + Trigger + ") printf -- '--output\\twrite the bundle\\n--platform\\tkeep\\n' ;; esac\n"
	if err := os.WriteFile(filepath.Join(dir, "ferry"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ferry.fish"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fish, "--no-config", "-c", "source ferry.fish; complete -C 'ferry export --o'; complete -C 'ferry import fi'")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, want := string(out), "--output\twrite the bundle\nfile.txt\n"; got != want {
		t.Errorf("fish offered %q, want %q", got, want)
	}
	sent, _ := os.ReadFile(filepath.Join(dir, "sent"))
	if got, want := string(sent), "fish|export --o "+Trigger+"\nfish|import fi "+Trigger+"\n"; got != want {
		t.Errorf("the script sent %q, want %q", got, want)
	}
}

// TestZshScript runs the zsh script's function with zsh's completion
// helpers (_describe, _files, compdef) replaced by functions that print
// what they were given, and a stand-in ferry on PATH.
func TestZshScript(t *testing.T) {
	t.Parallel()
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh is not installed here, so the zsh script cannot be run")
	}
	dir := t.TempDir()
	script, _ := Script("zsh", "ferry")
	stub := "#!/bin/sh\nprintf '%s|%s\\n' \"$FERRY_COMPLETION\" \"$*\" >> " + filepath.Join(dir, "sent") + "\n" +
		"case \"$*\" in *--o' '" + Trigger + ") printf -- '--output:write the bundle\\n--platform:keep\\n' ;; esac\n"
	if err := os.WriteFile(filepath.Join(dir, "ferry"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ferry.zsh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := `compdef() { print -r -- "compdef $*" }
_describe() { print -rl -- "describe $1" "${(@P)2}" }
_files() { print -r -- files }
source ./ferry.zsh
words=(ferry export --o); CURRENT=3; _ferry
words=(ferry import ''); CURRENT=3; _ferry
`
	cmd := exec.Command(zsh, "-f", "-c", prog)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, want := string(out), "compdef _ferry ferry\ndescribe ferry\n--output:write the bundle\n--platform:keep\nfiles\n"; got != want {
		t.Errorf("zsh did %q, want %q", got, want)
	}
	sent, _ := os.ReadFile(filepath.Join(dir, "sent"))
	if got, want := string(sent), "zsh|export --o "+Trigger+"\nzsh|import  "+Trigger+"\n"; got != want {
		t.Errorf("the script sent %q, want %q", got, want)
	}
}
