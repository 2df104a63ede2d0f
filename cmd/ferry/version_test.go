package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	info := func(mainVersion string, settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/ferryproject/ferry", Version: mainVersion}}
			for i := 0; i+1 < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name            string
		version, commit string
		read            func() (*debug.BuildInfo, bool)
		want            versionInfo
	}{
		{"make build: -ldflags win", "v1.2.0-3-gabc", "abc123", info("(devel)", "vcs.revision", "def456"),
			versionInfo{"v1.2.0-3-gabc", "abc123", false, "go1.99.1", platform}},
		{"go install @version", "devel", "", info("v1.2.0"), versionInfo{"v1.2.0", "unknown", false, "go1.99.1", platform}},
		{"go build in a checkout", "devel", "", info("(devel)", "vcs.revision", "def456", "vcs.modified", "true"),
			versionInfo{"devel", "def456", true, "go1.99.1", platform}},
		{"no build information", "devel", "", none, versionInfo{"devel", "unknown", false, runtime.Version(), platform}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildVersion(tc.version, tc.commit, tc.read); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	res := ferry(t, nil, "version")
	res.expect(t, exitOK)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 4 || lines[0] != "ferry version "+version || !strings.HasPrefix(lines[1], "commit:   ") ||
		!strings.HasPrefix(lines[2], "go:       go") || lines[3] != "platform: "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("ferry version printed:\n%s", res.stdout)
	}

	res = ferry(t, nil, "version", "--json")
	res.expect(t, exitOK)
	var v map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &v); err != nil {
		t.Fatalf("%v: %s", err, res.stdout)
	}
	for _, k := range []string{"version", "commit", "goVersion", "platform"} {
		if s, _ := v[k].(string); s == "" {
			t.Errorf("--json: %s missing in %s", k, res.stdout)
		}
	}

	res = ferry(t, nil, "version", "extra")
	res.expect(t, exitUsage)
	if got, want := res.errMessage(), "ferry: version takes no arguments, got 1 (see 'ferry --help')"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
