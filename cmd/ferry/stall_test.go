package main

import (
	"testing"
	"time"

	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestStallTimeoutFlag: --stall-timeout reaches the client (an unanswered
// request is abandoned and retried after it, not after the default minute),
// and a negative value is a usage error.
func TestStallTimeoutFlag(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "images.tar.zst", sampleBundle(t))
	dst := registrytest.New(t, registrytest.Options{})
	silent := &registrytest.Fault{Method: "POST", Path: "/blobs/uploads/", Delay: 20 * time.Second, Times: 1}
	dst.InjectFaults(silent)
	start := time.Now()
	ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--stall-timeout", "200ms", "--to", dst.Host+"/m", path).expect(t, exitOK)
	if took := time.Since(start); silent.Abandoned() != 1 || took > 10*time.Second {
		t.Errorf("import took %s and abandoned %d unanswered requests; want 1, quickly", took, silent.Abandoned())
	}
	ferry(t, nil, "import", "--insecure-skip-verify", "--stall-timeout", "-1s", "--to", dst.Host+"/m", path).expect(t, exitUsage, "--stall-timeout")
}
