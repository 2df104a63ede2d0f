package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// commit is set at build time with -ldflags "-X main.commit=..." (make
// build); otherwise the version control information the go command
// recorded, if any, is used.
var commit = ""

// versionInfo is what `ferry version` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`             // "unknown" when not recorded
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes (go's vcs.modified)
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// buildVersion puts together version and commit (from -ldflags) and the
// build information read returns: the module version of a `go install
// …@v1.2.3` build when version is the default, and the vcs.revision and
// vcs.modified the go command stamps when it builds in a git checkout.
func buildVersion(version, commit string, read func() (*debug.BuildInfo, bool)) versionInfo {
	v := versionInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok {
		if v.Version == "devel" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				v.Modified = true
			}
		}
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

func newVersionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print ferry's version, commit and Go version",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON object: version, commit, modified, goVersion, platform"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("version takes no arguments, got %d", c.NArg())
			}
			v := buildVersion(version, commit, debug.ReadBuildInfo)
			if c.Bool(flagJSON) {
				b, err := json.Marshal(v)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdout, "%s\n", b)
				return err
			}
			mod := ""
			if v.Modified {
				mod = " (modified)"
			}
			_, err := fmt.Fprintf(e.stdout, "ferry version %s\ncommit:   %s%s\ngo:       %s\nplatform: %s\n", v.Version, v.Commit, mod, v.GoVersion, v.Platform)
			return err
		},
	}
}
