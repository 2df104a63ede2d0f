package main

import (
	"path/filepath"
	"testing"

	"github.com/ferryproject/ferry/internal/registrytest"
)

// From the CLI: a bundle into an OCI layout directory, the layout back into
// a bundle, that bundle into a registry, with the same digests.
func TestLayoutCLI(t *testing.T) {
	t.Parallel()
	_, sample := source(t)
	orig, key, _ := signedSample(t)
	pub := writeFile(t, "trusted.pub", pubPEM(t, key.Public()))
	path := writeFile(t, "images.tar.zst", orig)
	dir := filepath.Join(t.TempDir(), "layout")

	res := ferry(t, nil, "import", "-q", "--key", pub, "--to", "oci:"+dir, path)
	res.expect(t, exitOK)

	again := filepath.Join(t.TempDir(), "again.tar.zst")
	res = ferry(t, nil, "export", "-q", "-o", again, "oci:"+dir)
	res.expect(t, exitOK)

	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	res = ferry(t, nil, "import", "-q", "--insecure-skip-verify", "--to", to, again)
	res.expect(t, exitOK)
	assertTagged(t, to, false, sample)

	res = ferry(t, nil, "import", "--key", pub, "--keep-source-registry", "--to", "oci:"+dir, path)
	res.expect(t, exitUsage, "--keep-source-registry has no meaning with --to oci:DIR")
	res = ferry(t, nil, "import", "--key", pub, "--to", "oci:", path)
	res.expect(t, exitUsage, `destination "oci:": want oci:DIR`)
}
