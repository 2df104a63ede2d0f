package main

// In-process tests of import receipts and rollback protection from the
// command line: two import hosts (each its own HOME) share only the
// destination registry.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

func TestCLIReceiptsAndRollback(t *testing.T) {
	src := registrytest.New(t, registrytest.Options{})
	dst := registrytest.New(t, registrytest.Options{})
	key, err := bundle.GenerateKey("ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "ferry.pub")
	if err := os.WriteFile(pub, pubPEM(t, key.Public()), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := src.Host + "/team/app:1.0"
	push := func(seed string) digest.Digest {
		img, err := testimages.Image("linux/amd64", false, testimages.Layer(seed, 1000))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := name.ParseReference(ref)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return digest.Digest(d.String())
	}
	export := func(created time.Time, file string) (string, digest.Digest) {
		path := filepath.Join(dir, file)
		if _, err := bundle.ExportFile(context.Background(), []string{ref}, path, bundle.ExportOptions{Created: created, Sign: bundle.Signer(key)}); err != nil {
			t.Fatal(err)
		}
		r, err := bundle.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return path, digest.FromBytes(r.IndexBytes())
	}
	jan, feb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	d1 := push("app-1")
	p1, i1 := export(jan, "jan.tar.zst")
	d2 := push("app-2")
	p2, i2 := export(feb, "feb.tar.zst")
	host := func(t *testing.T) {
		t.Setenv("HOME", t.TempDir())
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		unsetenv(t, "FERRY_PUBLIC_KEYS")
	}
	to := dst.Host + "/m"
	tag := to + "/team/app:1.0"
	holds := func(t *testing.T) digest.Digest {
		t.Helper()
		r, _ := name.ParseReference(tag)
		d, err := remote.Head(r)
		if err != nil {
			t.Fatal(err)
		}
		return digest.Digest(d.Digest.String())
	}

	// Host A imports February's bundle and writes the receipt out.
	host(t)
	out := filepath.Join(t.TempDir(), "receipt.json")
	res := ferry(t, nil, "import", "--key", pub, "--to", to, "--receipt-out", out, p2)
	res.expect(t, exitOK)
	if want := fmt.Sprintf("receipt recorded at %s/ferry-receipts:latest (1 tags, 1 signed bundles)\n", to); !strings.HasSuffix(res.stderr, want) {
		t.Errorf("stderr %q does not end with %q", res.stderr, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rc bundle.Receipt
	if err := json.Unmarshal(b, &rc); err != nil {
		t.Fatal(err)
	}
	if tg := rc.Tags[tag]; tg.Digest != d2 || tg.Bundle != i2 || !tg.Created.Equal(feb) || tg.Key != bundle.Fingerprint(key.Public()) || len(rc.Bundles) != 1 {
		t.Errorf("receipt file: %s", b)
	}

	// Host B, sharing nothing with A, is refused January's bundle.
	host(t)
	uploads := dst.BlobUploads.Load()
	res = ferry(t, nil, "import", "--key", pub, "--to", to, p1)
	want := fmt.Sprintf("ferry: rollback refused: %s holds %s, set by bundle %s created 2026-02-01T00:00:00Z; this bundle (%s, created 2026-01-01T00:00:00Z) is older and would set it to %s; nothing was pushed (to accept this knowingly, import again with --allow-rollback)", tag, d2, i2, i1, d1)
	res.expect(t, exitVerify)
	if res.errMessage() != want {
		t.Errorf("message\n%s\nwant\n%s", res.errMessage(), want)
	}
	if n := dst.BlobUploads.Load() - uploads; n != 0 || holds(t) != d2 {
		t.Errorf("%d blobs uploaded, tag holds %s", n, holds(t))
	}

	// --allow-rollback moves it, with a warning.
	out2 := filepath.Join(t.TempDir(), "receipt.json")
	res = ferry(t, nil, "import", "--key", pub, "--to", to, "--allow-rollback", "--receipt-out", out2, p1)
	res.expect(t, exitOK)
	warn := fmt.Sprintf("ferry: WARNING: --allow-rollback: moving a tag back to an older bundle: %s holds %s, set by bundle %s created 2026-02-01T00:00:00Z; this bundle (%s, created 2026-01-01T00:00:00Z) is older and would set it to %s\n", tag, d2, i2, i1, d1)
	if !strings.HasPrefix(res.stderr, warn) {
		t.Errorf("stderr %q\ndoes not start with %q", res.stderr, warn)
	}
	if holds(t) != d1 {
		t.Errorf("tag holds %s, want %s", holds(t), d1)
	}
	if b, _ := os.ReadFile(out2); !strings.Contains(string(b), `"bundle": "`+i1.String()+`"`) {
		t.Errorf("second receipt file does not record the rollback: %s", b)
	}

	// Unsigned: no check, a warning.
	res = ferry(t, nil, "import", "--insecure-skip-verify", "--to", to, p2)
	res.expect(t, exitOK)
	if !strings.Contains(res.stderr, "ferry: WARNING: rollback protection is off for this import: the bundle's signature was not checked") {
		t.Errorf("stderr %q", res.stderr)
	}

	// A link at the --receipt-out name is refused before the import.
	link := filepath.Join(t.TempDir(), "link.json")
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	res = ferry(t, nil, "import", "--key", pub, "--to", to, "--receipt-out", link, p2)
	res.expect(t, exitUsage, "--receipt-out: "+link+" exists and is a symbolic link")
}
