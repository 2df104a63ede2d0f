package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the layering: the public bundle package and the
// manifest scanner never pull in CLI code, and the ferry binary never links
// the registry server used by the tests and the demo, a TOML library, or
// the heavy sigstore clients.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed to list dependencies and is not on PATH")
	}
	for pkg, banned := range map[string][]string{
		"github.com/ferryproject/ferry/bundle":        {"github.com/urfave/cli", "github.com/distribution/distribution"},
		"github.com/ferryproject/ferry/internal/scan": {"github.com/urfave/cli", "github.com/distribution/distribution"},
		// The TOML parser is for the tests of internal/mirrorconfig, which
		// writes its files without it. (The YAML parser is linked: ferry
		// images scan reads manifests with it.) Publisher signatures are
		// checked with sigstore's cryptoutils and the standard library:
		// sigstore-go and sigstore's signature package would add 13 MB and
		// 3 MB (see internal/cosign).
		"github.com/ferryproject/ferry/cmd/ferry": {"github.com/distribution/distribution", "github.com/ferryproject/ferry/internal/registrytest", "github.com/BurntSushi/toml",
			"github.com/ferryproject/ferry/internal/cosign/cosigntest", "github.com/sigstore/sigstore-go", "github.com/sigstore/sigstore/pkg/signature", "google.golang.org/protobuf"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
