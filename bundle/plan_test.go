package bundle_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// dialLoopback reaches every host name on 127.0.0.1, at the port asked
// for: cdn.test is a loopback server.
func dialLoopback() *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
	}}
}

// TestPlanExportMatchesExport: a dry run reports the images, digests,
// platforms and sizes the export then writes, byte for byte, and the
// deduplicated total; it downloads no layer, but starts one download per
// repository, which reaches the CDN the registry redirects blobs to, so
// the egress log names it.
func TestPlanExportMatchesExport(t *testing.T) {
	t.Parallel()
	const layerSize = 8 << 10
	split := registrytest.NewSplit(t, "localhost", "cdn.test", registrytest.Options{})
	ctx := context.Background()
	sample, err := testimages.Push(ctx, split.Host, layerSize)
	if err != nil {
		t.Fatal(err)
	}
	var log bundle.EgressLog
	opts := bundle.ExportOptions{Registry: bundle.RegistryOptions{Transport: dialLoopback(), Egress: &log, Retries: -1}}
	cdnBefore, cdnBytesBefore := split.CDN.Requests.Load(), split.CDN.Bytes.Load()
	plan, err := bundle.PlanExport(ctx, sample.Refs, opts)
	if err != nil {
		t.Fatal(err)
	}
	cdnRequests, cdnBytes := split.CDN.Requests.Load()-cdnBefore, split.CDN.Bytes.Load()-cdnBytesBefore
	if cdnBytes >= layerSize {
		t.Errorf("the dry run downloaded %d bytes from the CDN: a layer (%d bytes or more) was downloaded", cdnBytes, layerSize)
	}
	repos := []string{"library/alpine", "multi/tool", "team/app", "team/chart", "team/web"}
	if len(plan.Probes) != len(repos) {
		t.Fatalf("%d probes, want one per repository (%d): %+v", len(plan.Probes), len(repos), plan.Probes)
	}
	for i, p := range plan.Probes {
		if want := split.Host + "/" + repos[i]; p.Repository != want || p.Err != nil || p.Digest == "" {
			t.Errorf("probe %d: %+v, want one of %s without error", i, p, want)
		}
	}
	var cdn *bundle.HostTraffic
	for _, h := range log.Hosts() {
		if h.Host == "cdn.test" {
			cdn = &h
		}
	}
	if cdn == nil || cdn.Requests != cdnRequests || !reflect.DeepEqual(cdn.Roles, []string{bundle.RoleRedirect}) {
		t.Errorf("the egress log has cdn.test as %+v; want %d requests as a redirect target", cdn, cdnRequests)
	}

	path := filepath.Join(t.TempDir(), "images.tar.zst")
	opts.Registry.Egress = nil
	sum, err := bundle.ExportFile(ctx, sample.Refs, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := plan.Images, r.Images(); !reflect.DeepEqual(got, want) {
		t.Errorf("dry run images:\n got %+v\nwant %+v", got, want)
	}
	if plan.Blobs != sum.Blobs || plan.UniqueBytes != sum.UniqueBytes || plan.ReferencedBytes != sum.ReferencedBytes || plan.Platforms != sum.Platforms {
		t.Errorf("dry run: %d blobs, %d bytes unique, %d referenced, %d platforms; the export: %d, %d, %d, %d",
			plan.Blobs, plan.UniqueBytes, plan.ReferencedBytes, plan.Platforms, sum.Blobs, sum.UniqueBytes, sum.ReferencedBytes, sum.Platforms)
	}
	if plan.UniqueBytes >= plan.ReferencedBytes {
		t.Errorf("nothing deduplicated (%d unique of %d referenced): the sample shares its base layer", plan.UniqueBytes, plan.ReferencedBytes)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// TestPlanExportReportsAFailedProbe: a CDN that cannot be reached fails
// the probe of every repository it serves, with the reason, and the plan
// is still returned: the operator sees what to export and what to allow.
func TestPlanExportReportsAFailedProbe(t *testing.T) {
	t.Parallel()
	split := registrytest.NewSplit(t, "localhost", "cdn.test", registrytest.Options{})
	ctx := context.Background()
	if _, err := testimages.Push(ctx, split.Host, 1<<10); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closed, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	// Blob downloads go to a port where nothing listens.
	split.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/blobs/sha256:", Redirect: registrytest.StorageQuery, RedirectTo: "http://cdn.test:" + closed, Times: 1 << 40})
	var log bundle.EgressLog
	// An index of one platform: no config is fetched to learn a platform,
	// so only the probe goes to the CDN.
	plan, err := bundle.PlanExport(ctx, []string{split.Host + "/multi/tool:1.0"}, bundle.ExportOptions{
		Platforms: []string{"linux/arm64"},
		Registry:  bundle.RegistryOptions{Transport: dialLoopback(), Egress: &log, Retries: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Probes) != 1 || plan.Probes[0].Err == nil {
		t.Fatalf("probes %+v: want one, failed", plan.Probes)
	}
	d := plan.Probes[0].Digest.String()
	want := "starting the download of blob " + d + " from " + split.Host + "/multi/tool: registry unreachable: " + split.Host +
		" sent ferry to cdn.test:" + closed + ", which cannot be reached (a firewall must allow it too: see export --egress-report)" +
		`: Get "http://cdn.test:` + closed + "/v2/multi/tool/blobs/" + d + `?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>": dial tcp 127.0.0.1:` + closed + ": connect: connection refused"
	if got := plan.Probes[0].Err.Error(); got != want {
		t.Errorf("probe error\n %s\nwant\n %s", got, want)
	}
	if !errors.Is(plan.Probes[0].Err, registry.ErrUnreachable) {
		t.Errorf("probe error %v is not registry.ErrUnreachable", plan.Probes[0].Err)
	}
	var cdn *bundle.HostTraffic
	for _, h := range log.Hosts() {
		if h.Host == "cdn.test" {
			cdn = &h
		}
	}
	if cdn == nil || cdn.Failed != 1 || !reflect.DeepEqual(cdn.Failures, []string{"connection refused"}) {
		t.Errorf("cdn.test in the egress log: %+v, want one failed request, connection refused", cdn)
	}
}
