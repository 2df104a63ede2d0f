package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferryproject/ferry/internal/registry"
	"github.com/ferryproject/ferry/internal/registrytest"
)

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEgressCountsEveryHost: a registry whose token service and blob
// storage are on other hosts (registry.test, auth.test, cdn.test, all
// dialled on loopback) shows up in the egress log as three hosts with the
// roles, endpoints, request counts (a retried request twice) and body
// bytes each server saw; the log holds none of the signed storage query,
// the token or the password.
func TestEgressCountsEveryHost(t *testing.T) {
	t.Parallel()
	split := registrytest.NewSplit(t, "auth.test", "cdn.test", registrytest.Options{Username: "u", Password: "pa55word"})
	regHost := "registry.test:" + strconv.Itoa(portOf(t, split.Host))
	var log registry.EgressLog
	c := registry.New(registry.Options{
		Keychain:  staticKeychain{Username: "u", Password: "pa55word"},
		Transport: redirectTo127(),
		// Plain HTTP to names that are not loopback, credentials included.
		Insecure:  []string{regHost, split.TokenHost},
		Retries:   1,
		RetryBase: time.Millisecond,
		Egress:    &log,
	})
	// The first upload request gets a 503 and is sent again: both count.
	retried := &registrytest.Fault{Method: http.MethodPost, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable, Times: 1}
	split.InjectFaults(retried)
	repo, err := c.ParseRepository(regHost + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	blob := bytes.Repeat([]byte("ferry egress "), 1000)
	d := digest.FromBytes(blob)
	regBefore, regBytesBefore := split.Requests.Load(), split.BodyBytes.Load()
	if err := c.PushBlob(ctx, repo, d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	rc, err := c.GetBlob(ctx, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GetBlob: %d bytes, %v", len(got), err)
	}
	if retried.Hits() != 1 {
		t.Fatalf("the 503 was served %d times, want 1: no retry was tested", retried.Hits())
	}
	if split.CDN.Requests.Load() != 1 {
		t.Fatalf("the CDN served %d requests, want 1: the blob was not redirected, nothing was tested", split.CDN.Requests.Load())
	}

	hosts := log.Hosts()
	want := []registry.HostTraffic{
		{
			Host: "auth.test", Endpoints: []registry.Endpoint{{Scheme: "http", Port: portOf(t, split.TokenHost)}},
			Roles: []string{registry.RoleToken}, Requests: split.Token.Requests.Load(), BytesReceived: split.Token.Bytes.Load(),
		},
		{
			Host: "cdn.test", Endpoints: []registry.Endpoint{{Scheme: "http", Port: portOf(t, split.CDNHost)}},
			Roles: []string{registry.RoleRedirect}, Requests: 1, BytesReceived: int64(len(blob)),
		},
		{
			Host: "registry.test", Endpoints: []registry.Endpoint{{Scheme: "http", Port: portOf(t, split.Host)}},
			// One more request than the registry saw: the HTTPS attempt that
			// found it speaks plain HTTP.
			Roles: []string{registry.RoleRegistry}, Requests: split.Requests.Load() - regBefore + 1, Failed: 1, Failures: []string{"not TLS"},
			BytesReceived: split.BodyBytes.Load() - regBytesBefore, BytesSent: int64(len(blob)),
		},
	}
	if !reflect.DeepEqual(hosts, want) {
		t.Errorf("egress log:\n got %+v\nwant %+v", hosts, want)
	}
	if want[0].Requests < 2 {
		t.Errorf("the token service saw %d requests; a pull and a push token were expected", want[0].Requests)
	}
	b, err := json.Marshal(hosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"S3CR3T", "AKIA", "pa55word", "Bearer", "/v2/", "/auth/token", "sha256:"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the egress log holds %q: %s", secret, b)
		}
	}
}

// TestEgressRecordsFailedHosts: a host that refuses the connection is in
// the log all the same, with the request counted as failed and why, so an
// operator behind a firewall learns it from a failed run.
func TestEgressRecordsFailedHosts(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, l.Addr().String())
	l.Close()
	var log registry.EgressLog
	c := registry.New(registry.Options{Transport: redirectTo127(), Retries: -1, Egress: &log})
	host := "blocked.test:" + strconv.Itoa(port)
	repo, err := c.ParseRepository(host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetManifest(context.Background(), repo, "latest", 1<<20); err == nil {
		t.Fatal("GetManifest from a closed port succeeded")
	}
	want := []registry.HostTraffic{{
		Host: "blocked.test", Endpoints: []registry.Endpoint{{Scheme: "https", Port: port}},
		Roles: []string{registry.RoleRegistry}, Requests: 1, Failed: 1, Failures: []string{"connection refused"},
	}}
	if got := log.Hosts(); !reflect.DeepEqual(got, want) {
		t.Errorf("egress log:\n got %+v\nwant %+v", got, want)
	}
}
