package scan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

func mustParse(t *testing.T, refs ...string) []bundle.Reference {
	t.Helper()
	out := make([]bundle.Reference, len(refs))
	for i, s := range refs {
		r, err := bundle.ParseReference(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// fakeResolver answers from a table keyed by "name:tag" or "name@digest",
// and counts the requests in flight.
type fakeResolver struct {
	digests           map[string]digest.Digest
	inflight, maxSeen atomic.Int32
}

func (f *fakeResolver) Digest(ctx context.Context, r bundle.Reference) (digest.Digest, error) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	key := r.Name() + ":" + r.Tag
	if r.Digest != "" {
		key = r.Name() + "@" + r.Digest.String()
	}
	d, ok := f.digests[key]
	if !ok {
		return "", fmt.Errorf("%w: %s", registry.ErrNotFound, key)
	}
	return d, nil
}

var (
	dA = digest.FromString("a")
	dB = digest.FromString("b")
)

func TestPin(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{digests: map[string]digest.Digest{
		"docker.io/library/nginx:1.27":                   dA,
		"docker.io/library/nginx@" + dA.String():         dA,
		"quay.io/team/app@" + dB.String():                dB,
		"registry.example.com/team/lying@" + dA.String(): dB,
	}}
	got, err := Pin(context.Background(), mustParse(t,
		"quay.io/team/app@"+dB.String(),
		"nginx:1.27",
		"nginx:1.27@"+dA.String(), // the same once pinned: printed once
	), res, 0)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "pinned", refStrings(got), []string{
		"docker.io/library/nginx:1.27@" + dA.String(),
		"quay.io/team/app@" + dB.String(), // already pinned: as it was
	})

	// Every failure at once, sorted; a registry answering another digest
	// for a pinned reference is one.
	_, err = Pin(context.Background(), mustParse(t, "registry.example.com/team/missing:1", "registry.example.com/team/lying@"+dA.String(), "nginx:1.27"), res, 0)
	var re *bundle.ResolveError
	if !errors.As(err, &re) || !errors.Is(err, registry.ErrNotFound) || !errors.Is(err, registry.ErrDigestMismatch) {
		t.Fatalf("error %v, want a ResolveError of ErrNotFound and ErrDigestMismatch", err)
	}
	want := "2 of the images could not be resolved:\n" +
		"  registry.example.com/team/lying@" + dA.String() + ": digest mismatch: the registry answers " + dB.String() + " for it\n" +
		"  registry.example.com/team/missing:1: not found: registry.example.com/team/missing:1"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
}

// TestPinCancelled: an interrupted pin is context.Canceled, not a list of
// failed references.
func TestPinCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Pin(ctx, mustParse(t, "nginx:1.27"), cancelled{}, 0)
	if err != context.Canceled {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

type cancelled struct{}

func (cancelled) Digest(ctx context.Context, _ bundle.Reference) (digest.Digest, error) {
	return "", fmt.Errorf("asking: %w", ctx.Err())
}

// TestPinJobs: at most jobs references are resolved at once.
func TestPinJobs(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{digests: map[string]digest.Digest{}}
	var refs []string
	for i := range 20 {
		name := fmt.Sprintf("registry.example.com/app%d", i)
		res.digests[name+":1"] = dA
		refs = append(refs, name+":1")
	}
	got, err := Pin(context.Background(), mustParse(t, refs...), res, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Errorf("%d references pinned, want 20", len(got))
	}
	if m := res.maxSeen.Load(); m != 3 {
		t.Errorf("%d references were resolved at once, want 3", m)
	}
}

// TestPinRegistry pins against a real registry on 127.0.0.1 with ferry's
// registry client: each tag gets the digest the registry holds (the one
// its pusher computed), a multi-platform index included; a missing tag and
// a digest the registry does not hold fail.
func TestPinRegistry(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sample, err := testimages.Push(ctx, reg.Host, 1024)
	if err != nil {
		t.Fatal(err)
	}
	res := RegistryResolver{Client: registry.New(registry.Options{Retries: -1})}
	got, err := Pin(ctx, mustParse(t, sample.Refs...), res, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range sample.Refs {
		want = append(want, r+"@"+sample.Digests[r])
	}
	equal(t, "pinned sample", refStrings(got), refStrings(Refs(imagesOf(t, want))))
	// Pinning a pinned list changes nothing.
	again, err := Pin(ctx, got, res, 0)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "pinned twice", refStrings(again), refStrings(got))

	missing := reg.Host + "/team/app:9.9"
	absent := reg.Host + "/team/app@" + dA.String()
	_, err = Pin(ctx, mustParse(t, missing, absent), res, 0)
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("error %v, want ErrNotFound", err)
	}
	for _, ref := range []string{missing, absent} {
		if !strings.Contains(err.Error(), "\n  "+ref+": image not found in "+reg.Host+" (check the name and tag): not found: ") {
			t.Errorf("the error does not name %s:\n%s", ref, err)
		}
	}
}

func imagesOf(t *testing.T, refs []string) []Image {
	var out []Image
	for _, r := range mustParse(t, refs...) {
		out = append(out, Image{Ref: r})
	}
	return out
}

// TestDrifted: a lock line whose tag now points elsewhere is named (the
// lock list keeps its digest, and the import sets the tag to it); one
// whose tag agrees, a digest-only line and one that cannot be resolved
// are not.
func TestDrifted(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{digests: map[string]digest.Digest{
		"docker.io/library/nginx:1.27":  dB, // moved on since the lock
		"docker.io/library/redis:7":     dA,
		"docker.io/library/alpine:3.20": dA,
	}}
	got := Drifted(context.Background(), mustParse(t,
		"nginx:1.27@"+dA.String(),
		"redis:7@"+dA.String(),
		"quay.io/team/app@"+dB.String(),
		"registry.example.com/gone:1@"+dA.String(),
		"alpine:3.20",
	), res, 0)
	equal(t, "drifted", got, []string{
		"docker.io/library/nginx:1.27@" + dA.String() + ": the tag 1.27 now points at " + dB.String() + " at the registry; the lock list keeps " + dA.String() + ", and an import sets the tag to it (pin docker.io/library/nginx:1.27 again to follow the tag)",
	})
}
