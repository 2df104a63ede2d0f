package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/internal/completion"
)

// TestCompletionScripts: each script is printed, and parses in its shell
// where that shell is installed (bash -n, zsh -n, fish --no-execute).
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, marker := range map[string]string{
		"bash": "complete -o bashdefault -o default -F _ferry_complete ferry\n",
		"zsh":  "compdef _ferry ferry\n",
		"fish": "complete -c ferry -f -a '(__ferry_complete)'\n",
	} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			res := ferry(t, nil, "completion", shell)
			res.expect(t, exitOK)
			if !strings.Contains(res.stdout, marker) || !strings.Contains(res.stdout, completion.Trigger) {
				t.Fatalf("the %s script lacks %q:\n%s", shell, marker, res.stdout)
			}
			path, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed here, so its parser cannot check the script (the script was printed and checked above)", shell)
			}
			check := "-n"
			if shell == "fish" {
				check = "--no-execute"
			}
			script := filepath.Join(t.TempDir(), "ferry."+shell)
			if err := os.WriteFile(script, []byte(res.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(path, check, script).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", shell, check, err, out)
			}
		})
	}
}

func TestCompletionUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "tcsh"}, `ferry: unknown shell "tcsh": want bash, zsh, fish (see 'ferry --help')`},
		{[]string{"completion"}, "ferry: completion takes one shell (bash, zsh, fish), got 0 arguments (see 'ferry --help')"},
		{[]string{"completion", "bash", "zsh"}, "ferry: completion takes one shell (bash, zsh, fish), got 2 arguments (see 'ferry --help')"},
	} {
		res := ferry(t, nil, tc.args...)
		res.expect(t, exitUsage)
		if res.errMessage() != tc.want || res.stdout != "" {
			t.Errorf("%v: got %q (stdout %q), want %q", tc.args, res.errMessage(), res.stdout, tc.want)
		}
	}
}

// TestCompletionAnswers runs the requests the scripts send (the words
// before the cursor, the word at the cursor when it starts with '-', then
// the trigger) through the whole CLI.
func TestCompletionAnswers(t *testing.T) {
	t.Parallel()
	commands := []string{"export", "images", "import", "inspect", "verify", "keygen", "login", "completion", "version"}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{""}, commands},
		{nil, commands},
		{[]string{"ex"}, []string{"export"}},
		{[]string{"--"}, []string{"--version", "--help"}},
		{[]string{"-"}, []string{"--version", "-v", "--help", "-h"}},
		{[]string{"export", "--o"}, []string{"--output"}},
		{[]string{"import", "--mi"}, []string{"--mirror-config-out"}},
		{[]string{"import", "--to", "r.local", "--t"}, []string{"--trusted-root"}},                  // --to is given already
		{[]string{"import", "--to=r.local", "--t"}, []string{"--trusted-root"}},                     // given as --to=
		{[]string{"import", "--key", "a.pub", "--ke"}, []string{"--keep-source-registry", "--key"}}, // --key is repeatable
		{[]string{"import", "-j", "2", "--jobs"}, nil},                                              // given as -j
		{[]string{"import", "--to", ""}, nil},                                                       // the value of --to: files
		{[]string{"import", "--to", "-"}, nil},                                                      // the value of --to, even "-"
		{[]string{"import", ""}, nil},                                                               // the bundle: files
		{[]string{"export", "nginx", "--", "--o"}, nil},                                             // after --, arguments only
		{[]string{"images", ""}, []string{"scan"}},                                                  // the subcommands
		{[]string{"images", "s"}, []string{"scan"}},
		{[]string{"images", "scan", "--p"}, []string{"--pin", "--password-stdin"}}, // the subcommand's flags
		{[]string{"images", "scan", "--pin", ""}, nil},                             // the manifests: files
		{[]string{"images", "nosuch", "--p"}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"completion", "z"}, []string{"zsh"}},
		{[]string{"version", "-"}, []string{"--json", "--help", "-h"}},
		{[]string{"nosuch", "--o"}, nil},
		{[]string{"nosuch", ""}, nil},
	} {
		args := append(append([]string{}, tc.words...), completion.Trigger)
		res := ferry(t, nil, args...)
		var got []string
		if s := strings.TrimSpace(res.stdout); s != "" {
			got = strings.Split(s, "\n")
		}
		if res.code != exitOK || res.stderr != "" || !slices.Equal(got, tc.want) {
			t.Errorf("%q: exit %d, candidates %q (stderr %q), want %q", tc.words, res.code, got, res.stderr, tc.want)
		}
	}
}

// TestCompletionRunsNothing: a request whose words would be a whole
// command (an export of nginx to a file) answers and runs nothing.
func TestCompletionRunsNothing(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "x.tar.zst")
	res := ferry(t, nil, "export", "127.0.0.1:1/nginx:1", "-o", out, "", completion.Trigger)
	if res.code != exitOK || res.stdout != "" || res.stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("the completion request wrote %s", out)
	}
}

// TestBashCompletionFunction runs the bash script's function with a stand-in
// ferry (a shell function) to check what it sends and what it offers.
func TestBashCompletionFunction(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed here, so the bash script cannot be run")
	}
	script, err := completion.Script("bash", "ferry")
	if err != nil {
		t.Fatal(err)
	}
	prog := script + `
ferry() { printf '%s\n' "$*" > "$ARGS_FILE"; printf '%s\n' --output --output-prefix --platform; }
COMP_WORDS=(ferry export nginx --o); COMP_CWORD=3
_ferry_complete
printf '%s\n' "${COMPREPLY[@]}"
`
	argsFile := filepath.Join(t.TempDir(), "args")
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog)
	cmd.Env = append(os.Environ(), "ARGS_FILE="+argsFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := string(out); got != "--output\n--output-prefix\n" {
		t.Errorf("COMPREPLY %q", got)
	}
	if sent, _ := os.ReadFile(argsFile); string(sent) != "export nginx --o "+completion.Trigger+"\n" {
		t.Errorf("the script sent %q", sent)
	}
}
