package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/registrytest"
	"github.com/ferryproject/ferry/internal/testimages"
)

// The CLI builds its own transport, so these tests use names the system
// resolves: the registry is 127.0.0.1, its token service localhost, and
// its CDN 127.0.0.2 (Linux routes all of 127.0.0.0/8 to loopback).

// newSplit starts a registry with its token service and CDN on other
// hosts, with the sample images.
func newSplit(t *testing.T) (*registrytest.Split, *testimages.Sample) {
	t.Helper()
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Skipf("the CDN needs a second loopback address, 127.0.0.2, which this system does not route: %v", err)
	} else {
		l.Close()
	}
	split := registrytest.NewSplit(t, "localhost", "127.0.0.2", registrytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sample, err := testimages.Push(ctx, split.Host, 2<<10)
	if err != nil {
		t.Fatal(err)
	}
	return split, sample
}

func readReport(t *testing.T, path string) (egressReport, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep egressReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, b)
	}
	return rep, string(b)
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// assertNoSecrets: the report names hosts, never a path, a query or the
// token of a request; nor a digest, unless the error names one.
func assertNoSecrets(t *testing.T, report string, digests bool) {
	t.Helper()
	secrets := []string{"S3CR3T", "AKIA", "X-Amz", "/v2/", "/auth/token", "Bearer", "redacted"}
	if !digests {
		secrets = append(secrets, "sha256:")
	}
	for _, s := range secrets {
		if strings.Contains(report, s) {
			t.Errorf("the egress report holds %q:\n%s", s, report)
		}
	}
}

// TestEgressReportExport: an export from a registry whose token service and
// blob CDN are on other hosts writes a report naming all three, with the
// requests and bytes each server counted, the allowlist and the Azure
// Firewall rules (application rule by name, network rules by IP address),
// and no secret; stderr has the same in short.
func TestEgressReportExport(t *testing.T) {
	t.Parallel()
	split, sample := newSplit(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "egress.json")
	reg0, regBytes0 := split.Requests.Load(), split.BodyBytes.Load()
	tok0, tokBytes0 := split.Token.Requests.Load(), split.Token.Bytes.Load()
	cdn0, cdnBytes0 := split.CDN.Requests.Load(), split.CDN.Bytes.Load()
	r := ferry(t, nil, append([]string{"export", "--retries", "0", "--egress-report", report, "-o", filepath.Join(dir, "images.tar.zst")}, sample.Refs...)...)
	r.expect(t, exitOK)
	rep, raw := readReport(t, report)
	assertNoSecrets(t, raw, false)
	if !rep.Complete || rep.Error != "" || rep.DryRun || rep.SchemaVersion != 1 {
		t.Errorf("report: complete %v, error %q, dry run %v, schema %d; want a complete export, schema 1", rep.Complete, rep.Error, rep.DryRun, rep.SchemaVersion)
	}
	rport, tport, cport := port(t, split.Host), port(t, split.TokenHost), port(t, split.CDNHost)
	want := []egressHost{
		{
			// One request more than the registry saw: the HTTPS attempt that
			// found it speaks plain HTTP.
			Host: "127.0.0.1", Roles: []string{"registry"}, Endpoints: []bundle.Endpoint{{Scheme: "http", Port: rport}},
			Requests: split.Requests.Load() - reg0 + 1, Failed: 1, Failures: []string{"not TLS"}, BytesReceived: split.BodyBytes.Load() - regBytes0,
		},
		{
			Host: "127.0.0.2", Roles: []string{"redirect"}, Endpoints: []bundle.Endpoint{{Scheme: "http", Port: cport}},
			Requests: split.CDN.Requests.Load() - cdn0, BytesReceived: split.CDN.Bytes.Load() - cdnBytes0,
		},
		{
			Host: "localhost", Roles: []string{"token"}, Endpoints: []bundle.Endpoint{{Scheme: "http", Port: tport}},
			Requests: split.Token.Requests.Load() - tok0, BytesReceived: split.Token.Bytes.Load() - tokBytes0,
		},
	}
	if !reflect.DeepEqual(rep.Hosts, want) {
		t.Errorf("hosts:\n got %+v\nwant %+v", rep.Hosts, want)
	}
	// Every blob but the manifests came from the CDN, once.
	bf, err := bundle.Open(filepath.Join(dir, "images.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	var blobBytes int64
	for _, b := range bf.Blobs() { // configs and layers
		blobBytes += b.Size
	}
	if want[1].BytesReceived != blobBytes {
		t.Errorf("the CDN served %d bytes; the bundle's configs and layers are %d", want[1].BytesReceived, blobBytes)
	}
	if want := []string{"127.0.0.1", "127.0.0.2", "localhost"}; !reflect.DeepEqual(rep.Allowlist, want) {
		t.Errorf("allowlist %q, want %q", rep.Allowlist, want)
	}
	const env = `--resource-group "${RG:?set RG to the firewall's resource group}" --firewall-name "${FW:?set FW to the firewall's name}"`
	const src = `--source-addresses "${SOURCE:?set SOURCE to the exporting host's address}"`
	az := []string{
		"az network firewall network-rule create " + env + " --collection-name ferry-egress-ip --priority 210 --action Allow --name ferry-ip-tcp-" + strconv.Itoa(rport) + " " + src +
			" --protocols TCP --destination-addresses 127.0.0.1 --destination-ports " + strconv.Itoa(rport),
		"az network firewall network-rule create " + env + " --collection-name ferry-egress-ip --name ferry-ip-tcp-" + strconv.Itoa(cport) + " " + src +
			" --protocols TCP --destination-addresses 127.0.0.2 --destination-ports " + strconv.Itoa(cport),
		"az network firewall application-rule create " + env + " --collection-name ferry-egress --priority 200 --action Allow --name ferry-http-" + strconv.Itoa(tport) + " " + src +
			" --protocols Http=" + strconv.Itoa(tport) + " --target-fqdns localhost",
	}
	if !reflect.DeepEqual(rep.Azure.AzCLI, az) {
		t.Errorf("az commands:\n got %q\nwant %q", rep.Azure.AzCLI, az)
	}
	for _, w := range []string{"egress: 3 hosts contacted (complete)", "allowlist: 127.0.0.1 127.0.0.2 localhost", az[2], "egress report: " + report} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
		}
	}
	assertNoSecrets(t, r.stderr, false)
	// -q: errors and warnings only; the report is written all the same.
	quiet := filepath.Join(dir, "quiet.json")
	r = ferry(t, nil, append([]string{"export", "-q", "--egress-report", quiet, "-o", filepath.Join(dir, "q.tar.zst")}, sample.Refs...)...)
	r.expect(t, exitOK)
	if r.stderr != "" {
		t.Errorf("-q printed:\n%s", r.stderr)
	}
	if rep, _ := readReport(t, quiet); !rep.Complete || len(rep.Hosts) != 3 {
		t.Errorf("-q report: complete %v, %d hosts", rep.Complete, len(rep.Hosts))
	}
}

// TestExportDryRun: --dry-run lists every image with its digest, platforms
// and exact size, and the deduplicated total, as the export then writes
// them; it writes the report (with the CDN, reached by a one-byte probe)
// and no bundle: the -o path does not exist afterwards.
func TestExportDryRun(t *testing.T) {
	t.Parallel()
	_, sample := newSplit(t)
	dir := t.TempDir()
	out, report := filepath.Join(dir, "images.tar.zst"), filepath.Join(dir, "egress.json")
	r := ferry(t, nil, append([]string{"export", "--dry-run", "--egress-report", report, "-o", out}, sample.Refs...)...)
	r.expect(t, exitOK)
	if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run made %s: %v", out, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "egress.json" {
		t.Errorf("the dry run left %v; want egress.json alone", ents)
	}
	rep, raw := readReport(t, report)
	assertNoSecrets(t, raw, false)
	if !rep.Complete || !rep.DryRun || !reflect.DeepEqual(rep.Allowlist, []string{"127.0.0.1", "127.0.0.2", "localhost"}) {
		t.Errorf("report: complete %v, dry run %v, allowlist %q", rep.Complete, rep.DryRun, rep.Allowlist)
	}

	// What the export writes, for comparison.
	sum, err := bundle.ExportFile(context.Background(), sample.Refs, out, bundle.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bf, err := bundle.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	images := bf.Images()
	if len(lines) != len(images)+2 {
		t.Fatalf("stdout has %d lines, want a header, %d images and the total:\n%s", len(lines), len(images), r.stdout)
	}
	if f := strings.Fields(lines[0]); !reflect.DeepEqual(f, []string{"REFERENCE", "DIGEST", "PLATFORMS", "BYTES"}) {
		t.Errorf("header %q", lines[0])
	}
	for i, img := range images {
		var ps []string
		for _, p := range img.Platforms {
			ps = append(ps, bundle.FormatPlatform(p))
		}
		if len(ps) == 0 {
			ps = []string{"-"}
		}
		want := []string{img.Ref, img.Descriptor.Digest.String(), strings.Join(ps, ","), strconv.FormatInt(img.Size, 10)}
		if got := strings.Fields(lines[i+1]); !reflect.DeepEqual(got, want) {
			t.Errorf("line %d: %q, want %q", i+2, got, want)
		}
	}
	total := "dry run: would export " + strconv.Itoa(len(images)) + " images, " + strconv.Itoa(sum.Blobs) + " blobs, " + strconv.FormatInt(sum.UniqueBytes, 10) + " bytes ("
	if !strings.HasPrefix(lines[len(lines)-1], total) || !strings.Contains(lines[len(lines)-1], "deduplicated from "+strconv.FormatInt(sum.ReferencedBytes, 10)+" bytes (") {
		t.Errorf("total line %q, want it to start %q and name %d referenced bytes", lines[len(lines)-1], total, sum.ReferencedBytes)
	}
	if !strings.Contains(r.stderr, "egress: 3 hosts contacted (dry run: blob downloads were started, not completed)") {
		t.Errorf("stderr has no dry-run egress summary:\n%s", r.stderr)
	}
}

// closedPort returns a port on ip where nothing listens.
func closedPort(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return p
}

// TestEgressReportFailedExport: an export that fails because the CDN
// cannot be reached (as behind a firewall that does not allow it) writes
// the report all the same, marked incomplete with the error, URLs cut to
// their host, and names the CDN with its refused connections; no bundle.
func TestEgressReportFailedExport(t *testing.T) {
	t.Parallel()
	split, _ := newSplit(t)
	cdn := "127.0.0.2:" + closedPort(t, "127.0.0.2")
	split.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/blobs/sha256:", Redirect: registrytest.StorageQuery, RedirectTo: "http://" + cdn, Times: 1 << 40})
	dir := t.TempDir()
	out, report := filepath.Join(dir, "images.tar.zst"), filepath.Join(dir, "egress.json")
	ref := split.Host + "/multi/tool:1.0"
	r := ferry(t, nil, "export", "--retries", "0", "--platform", "linux/arm64", "--egress-report", report, "-o", out, ref)
	r.expect(t, exitFailure, "registry unreachable", cdn)
	if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left %s: %v", out, err)
	}
	rep, raw := readReport(t, report)
	assertNoSecrets(t, raw, true)
	if rep.Complete {
		t.Error("the report of a failed export says complete")
	}
	if want := hostsOnly(strings.TrimPrefix(r.errMessage(), "ferry: ")); rep.Error != want || !strings.Contains(rep.Error, `"http://`+cdn+`"`) {
		t.Errorf("report error\n %q\nwant\n %q", rep.Error, want)
	}
	var cdnHost *egressHost
	for i, h := range rep.Hosts {
		if h.Host == "127.0.0.2" {
			cdnHost = &rep.Hosts[i]
		}
	}
	// Downloads running beside the refused one are canceled by ferry: in
	// Requests, but not failures.
	if cdnHost == nil || cdnHost.Failed == 0 || cdnHost.Failed > cdnHost.Requests || !reflect.DeepEqual(cdnHost.Failures, []string{"connection refused"}) ||
		!reflect.DeepEqual(cdnHost.Roles, []string{"redirect"}) {
		t.Errorf("the CDN in the report: %+v; want every request refused", cdnHost)
	}
	if !strings.Contains(r.stderr, "egress: 3 hosts contacted (incomplete: the export failed; the hosts contacted until then)") {
		t.Errorf("stderr has no incomplete egress summary:\n%s", r.stderr)
	}

	// The same failure, and the report's name taken by a directory while
	// the export runs: both are said, the export's error first, and the
	// exit code is the export's.
	late := filepath.Join(dir, "late.json")
	before := split.Requests.Load()
	done := make(chan error, 1)
	go func() {
		for split.Requests.Load() == before {
			time.Sleep(5 * time.Millisecond)
		}
		done <- os.Mkdir(late, 0o755)
	}()
	split.InjectFaults(
		&registrytest.Fault{Method: http.MethodGet, Path: "/manifests/", Delay: 300 * time.Millisecond, Times: 1},
		&registrytest.Fault{Method: http.MethodGet, Path: "/blobs/sha256:", Redirect: registrytest.StorageQuery, RedirectTo: "http://" + cdn, Times: 1 << 40})
	r = ferry(t, nil, "export", "--retries", "0", "--platform", "linux/arm64", "--egress-report", late, "-o", out, ref)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.expect(t, exitFailure, "registry unreachable", cdn)
	lines := strings.Split(r.errMessage(), "\n")
	if want := "  egress report not written: " + late + " exists and is a directory; ferry writes this file by replacing a regular file only: remove it, or choose another name"; len(lines) != 2 || lines[1] != want ||
		!strings.HasPrefix(lines[0], "ferry: fetch blob ") {
		t.Errorf("message\n %s\nwant the export's error, then\n%s", r.errMessage(), want)
	}
}

// TestEgressReportPath: a report path that cannot be written fails before
// any registry is contacted (a planted symbolic link is not written
// through, a missing directory is named); one that becomes unwritable
// during the export fails the command after the export, which is kept,
// with the hosts on stderr.
func TestEgressReportPath(t *testing.T) {
	t.Parallel()
	split, sample := newSplit(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "images.tar.zst")
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "egress.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	before := split.Requests.Load()
	r := ferry(t, nil, "export", "--egress-report", link, "-o", out, sample.Refs[0])
	r.expect(t, exitUsage)
	if want := "ferry: --egress-report: " + link + " exists and is a symbolic link; ferry writes this file by replacing a regular file only: remove it, or choose another name (see 'ferry --help')"; r.errMessage() != want {
		t.Errorf("message\n %s\nwant\n %s", r.errMessage(), want)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symbolic link was written through: %q", b)
	}

	missing := filepath.Join(dir, "no", "egress.json")
	r = ferry(t, nil, "export", "--egress-report", missing, "-o", out, sample.Refs[0])
	r.expect(t, exitFailure)
	if want := "ferry: egress report not written: cannot create a file in " + filepath.Dir(missing) + " (no such file or directory); choose another --egress-report"; r.errMessage() != want {
		t.Errorf("message\n %s\nwant\n %s", r.errMessage(), want)
	}
	if n := split.Requests.Load() - before; n != 0 {
		t.Errorf("the registry got %d requests before the report path was refused", n)
	}
	if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused export left %s: %v", out, err)
	}

	// The report name becomes a directory while the export runs.
	late := filepath.Join(dir, "late.json")
	split.InjectFaults(&registrytest.Fault{Method: http.MethodGet, Path: "/manifests/", Delay: 300 * time.Millisecond, Times: 1})
	done := make(chan error, 1)
	go func() {
		for split.Requests.Load() == before {
			time.Sleep(5 * time.Millisecond)
		}
		done <- os.Mkdir(late, 0o755)
	}()
	r = ferry(t, nil, "export", "--egress-report", late, "-o", out, sample.Refs[0])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.expect(t, exitFailure)
	if want := "ferry: egress report not written: " + late + " exists and is a directory; ferry writes this file by replacing a regular file only: remove it, or choose another name"; r.errMessage() != want {
		t.Errorf("message\n %s\nwant\n %s", r.errMessage(), want)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the export itself succeeded and its bundle must stay: %v", err)
	}
	if !strings.Contains(r.stderr, "egress: 3 hosts contacted (complete)") || !strings.Contains(r.stderr, "allowlist: 127.0.0.1 127.0.0.2 localhost") {
		t.Errorf("stderr does not name the hosts:\n%s", r.stderr)
	}
}

// TestEgressRulesRefuseOddNames: a host name that is not a plain DNS name
// (a registry may redirect anywhere) stays out of the allowlist and the az
// commands, which an operator pastes into a shell; IP addresses become
// network rules, hosts sharing endpoints one rule, HTTP and HTTPS
// protocols of one rule.
func TestEgressRulesRefuseOddNames(t *testing.T) {
	t.Parallel()
	https := []bundle.Endpoint{{Scheme: "https", Port: 443}}
	rep := buildEgressReport([]bundle.HostTraffic{
		{Host: "auth.docker.io", Endpoints: https, Roles: []string{"token"}, Requests: 2},
		{Host: "evil$(touch pwned).example", Endpoints: https, Roles: []string{"redirect"}, Requests: 1},
		{Host: "mirror.example", Endpoints: []bundle.Endpoint{{Scheme: "http", Port: 80}, {Scheme: "https", Port: 443}}, Requests: 1},
		{Host: "production.cloudflare.docker.com", Endpoints: https, Roles: []string{"redirect"}, Requests: 5},
		{Host: "10.1.2.3", Endpoints: []bundle.Endpoint{{Scheme: "https", Port: 5000}}, Requests: 1},
	}, false, nil)
	if want := []string{"auth.docker.io", "mirror.example", "production.cloudflare.docker.com", "10.1.2.3"}; !reflect.DeepEqual(rep.Allowlist, want) {
		t.Errorf("allowlist %q, want %q", rep.Allowlist, want)
	}
	if want := []egressRefused{{Host: "evil$(touch pwned).example", Reason: "not a DNS name or IP address"}}; !reflect.DeepEqual(rep.Refused, want) {
		t.Errorf("refused %+v, want %+v", rep.Refused, want)
	}
	const env = `--resource-group "${RG:?set RG to the firewall's resource group}" --firewall-name "${FW:?set FW to the firewall's name}"`
	const src = `--source-addresses "${SOURCE:?set SOURCE to the exporting host's address}"`
	want := []string{
		"az network firewall application-rule create " + env + " --collection-name ferry-egress --priority 200 --action Allow --name ferry-https-443 " + src + " --protocols Https=443 --target-fqdns auth.docker.io production.cloudflare.docker.com",
		"az network firewall application-rule create " + env + " --collection-name ferry-egress --name ferry-http-80-https-443 " + src + " --protocols Http=80 Https=443 --target-fqdns mirror.example",
		"az network firewall network-rule create " + env + " --collection-name ferry-egress-ip --priority 210 --action Allow --name ferry-ip-tcp-5000 " + src + " --protocols TCP --destination-addresses 10.1.2.3 --destination-ports 5000",
	}
	if !reflect.DeepEqual(rep.Azure.AzCLI, want) {
		t.Errorf("az commands:\n got %q\nwant %q", rep.Azure.AzCLI, want)
	}
	b, err := json.Marshal(rep.Azure.RuleCollection)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"name":"ferry-egress","priority":200,"ruleCollectionType":"FirewallPolicyFilterRuleCollection","action":{"type":"Allow"},"rules":[` +
		`{"ruleType":"ApplicationRule","name":"ferry-https-443","protocols":[{"protocolType":"Https","port":443}],"sourceAddresses":["SOURCE-ADDRESS"],"targetFqdns":["auth.docker.io","production.cloudflare.docker.com"]},` +
		`{"ruleType":"ApplicationRule","name":"ferry-http-80-https-443","protocols":[{"protocolType":"Http","port":80},{"protocolType":"Https","port":443}],"sourceAddresses":["SOURCE-ADDRESS"],"targetFqdns":["mirror.example"]}]}`
	if string(b) != wantJSON {
		t.Errorf("rule collection:\n got %s\nwant %s", b, wantJSON)
	}
	for _, l := range rep.Azure.AzCLI {
		if strings.Contains(l, "pwned") {
			t.Errorf("an odd host name reached an az command: %s", l)
		}
	}
}

// TestHostsOnly: URLs in an error keep their scheme and host only.
func TestHostsOnly(t *testing.T) {
	t.Parallel()
	in := `fetch blob: Get "https://cdn.example:8443/v2/team/app/blobs/sha256:ab?X-Amz-Signature=S3CR3T": dial tcp: refused; see http://registry.example/v2/`
	want := `fetch blob: Get "https://cdn.example:8443": dial tcp: refused; see http://registry.example`
	if got := hostsOnly(in); got != want {
		t.Errorf("hostsOnly:\n got %s\nwant %s", got, want)
	}
}
