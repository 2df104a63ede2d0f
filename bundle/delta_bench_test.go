package bundle_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/benchset"
	"github.com/ferryproject/ferry/internal/registrytest"
)

// TestDeltaMonthlyBenchset measures a delta on a generated company set
// (internal/benchset, real files from this machine): release 1 holds the
// base images and each application at its second newest version, release
// 2 the same base images and each application at its newest version. It
// reports the full bundle of release 2 against its delta on release 1,
// then imports release 1 and the delta and checks every digest. It
// generates about 150 MiB, so it runs only when asked:
//
//	FERRY_DELTA_BENCH=1 go test ./bundle/ -run TestDeltaMonthlyBenchset -count=1 -v
func TestDeltaMonthlyBenchset(t *testing.T) {
	if os.Getenv("FERRY_DELTA_BENCH") == "" {
		t.Skip("set FERRY_DELTA_BENCH=1 to generate the set and measure")
	}
	src := registrytest.New(t, registrytest.Options{})
	set, err := benchset.Generate(context.Background(), benchset.Spec{Seed: 1, Size: 150 << 20}, src.Host)
	if err != nil {
		t.Fatal(err)
	}
	// Versions of each application repository, in order.
	versions := map[string][]string{}
	var order []string
	var r1, r2 []string
	for _, img := range set.Images {
		repo, tag, _ := strings.Cut(img, ":")
		switch {
		case tag == "latest":
		case strings.HasPrefix(repo, "team/"):
			if versions[repo] == nil {
				order = append(order, repo)
			}
			versions[repo] = append(versions[repo], img)
		default:
			r1 = append(r1, src.Host+"/"+img)
			r2 = append(r2, src.Host+"/"+img)
		}
	}
	for _, repo := range order {
		v := versions[repo]
		r1 = append(r1, src.Host+"/"+v[len(v)-2])
		r2 = append(r2, src.Host+"/"+v[len(v)-1])
	}
	dir := t.TempDir()
	full1, full2, delta2 := filepath.Join(dir, "release-1.tar.zst"), filepath.Join(dir, "release-2.tar.zst"), filepath.Join(dir, "release-2-delta.tar.zst")
	exportTo(t, r1, full1, bundle.ExportOptions{})
	s2 := exportTo(t, r2, full2, bundle.ExportOptions{})
	sd := exportTo(t, r2, delta2, bundle.ExportOptions{Bases: []*bundle.Base{readBase(t, full1)}})
	t.Logf("set: %d images, %d unique blobs, %d bytes; release 1: %d images, release 2: %d images", len(set.Images), set.UniqueBlobs, set.UniqueBytes, len(r1), len(r2))
	t.Logf("release 1 full bundle: %d bytes", fileSize(t, full1))
	t.Logf("release 2 full bundle: %d bytes (%d blobs, manifests included)", fileSize(t, full2), s2.Blobs)
	t.Logf("release 2 delta:       %d bytes (%d blobs carried, manifests included; %d configs and layers, %d bytes, left out): %.1f%% of the full bundle",
		fileSize(t, delta2), sd.Blobs, sd.LeftOut, sd.LeftOutBytes, 100*float64(fileSize(t, delta2))/float64(fileSize(t, full2)))

	dst := registrytest.New(t, registrytest.Options{})
	to := dst.Host + "/mirror"
	if _, err := bundle.ImportFile(context.Background(), full1, to, bundle.ImportOptions{}); err != nil {
		t.Fatalf("import release 1: %v", err)
	}
	res, err := bundle.ImportFile(context.Background(), delta2, to, bundle.ImportOptions{})
	if err != nil {
		t.Fatalf("import of the delta: %v", err)
	}
	for _, img := range res.Images {
		if img.Digest != img.DestinationDigest {
			t.Errorf("%s: %s at the destination, want %s", img.Destination, img.DestinationDigest, img.Digest)
		}
	}
}
