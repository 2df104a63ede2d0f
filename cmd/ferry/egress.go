package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/human"
	"github.com/ferryproject/ferry/internal/report"
	"github.com/ferryproject/ferry/internal/termtext"
)

// errEgressReport: the --egress-report file could not be written. The
// summary on standard error still names every host.
var errEgressReport = errors.New("egress report not written")

// egressReportVersion is the schemaVersion of the --egress-report JSON
// (docs/user-guide.md, "Egress report").
const egressReportVersion = 1

// Names and priorities of the Azure Firewall rule collections the report
// suggests; the operator may change them before pasting.
const (
	azureAppCollection = "ferry-egress"
	azureNetCollection = "ferry-egress-ip"
	azureAppPriority   = 200
	azureNetPriority   = 210
)

func egressFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagEgressReport, Usage: "write every host contacted (registries, token services, redirect targets), with request and byte counts, an allowlist and Azure Firewall rules, as JSON to `FILE`; written also when the export fails"},
		&cli.BoolFlag{Name: flagDryRun, Usage: "resolve everything and list what would be exported, with sizes, on standard output; download no layer and write no bundle (-o is not needed)"},
	}
}

// egressRecorder records the hosts an export contacts, for --egress-report
// and --dry-run; nil when neither is given.
type egressRecorder struct {
	path   string // the report file, "" for none
	dryRun bool
	// print: print the readable summary on standard error (not for
	// --json alone, whose document carries the hosts)
	print bool
	log   bundle.EgressLog
}

// newEgressRecorder checks --egress-report before any work: the name must
// be replaceable (not a symbolic link, a directory, a device) and its
// directory must take a new file, so that an export of an hour does not
// end without its report.
func newEgressRecorder(c *cli.Context, asJSON bool) (*egressRecorder, error) {
	path, dry := c.String(flagEgressReport), c.Bool(flagDryRun)
	if path == "" && !dry && !asJSON {
		return nil, nil
	}
	if path != "" {
		if err := replaceable(path); err != nil {
			return nil, usagef("--%s: %v", flagEgressReport, err)
		}
		dir := filepath.Dir(path)
		tmp, err := writeTemp(path, nil, 0o644)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%w: cannot create a file in %s (%v); choose another --%s", errEgressReport, dir, err, flagEgressReport)
		}
		os.Remove(tmp)
	}
	return &egressRecorder{path: path, dryRun: dry, print: path != "" || dry}, nil
}

// summary is what the --json document of the export says of the hosts
// contacted so far (nil without a recorder).
func (r *egressRecorder) summary() *report.EgressSummary {
	if r == nil {
		return nil
	}
	rep := buildEgressReport(r.log.Hosts(), r.dryRun, nil)
	s := &report.EgressSummary{Report: r.path, Hosts: []report.EgressHost{}, Allowlist: rep.Allowlist}
	for _, h := range rep.Hosts {
		s.Hosts = append(s.Hosts, report.EgressHost{Host: h.Host, Roles: h.Roles, Requests: h.Requests, BytesReceived: h.BytesReceived, BytesSent: h.BytesSent})
	}
	return s
}

// attach makes the registry client record into r.
func (r *egressRecorder) attach(o *bundle.RegistryOptions) {
	if r != nil {
		o.Egress = &r.log
	}
}

// finish prints the egress summary on standard error and writes the
// report, complete when runErr is nil, marked incomplete with runErr
// otherwise. It returns runErr, joined with why the report could not be
// written if it could not.
func (r *egressRecorder) finish(e *env, runErr error) error {
	if r == nil {
		return runErr
	}
	rep := buildEgressReport(r.log.Hosts(), r.dryRun, runErr)
	var werr error
	if r.path != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = replaceFile(r.path, append(b, '\n'), 0o644)
		}
		if err != nil {
			werr = fmt.Errorf("%w: %w", errEgressReport, err)
		}
	}
	// With --log-format json the summary is log records, as the export's
	// own summary is.
	w := e.stderr
	if e.out != nil {
		w = e.out.summary(e.stderr)
	}
	// -q prints errors and warnings only: the report file says it all.
	quiet := e.out != nil && e.out.quiet
	if r.print && !quiet {
		printEgressSummary(w, rep)
	}
	switch {
	case werr != nil && runErr != nil:
		return fmt.Errorf("%w\n%w", runErr, werr)
	case werr != nil:
		return werr
	case r.path != "" && !quiet:
		fmt.Fprintf(w, "egress report: %s\n", termtext.Escape(r.path))
	}
	return runErr
}

// egressReport is the --egress-report document. The --json output of export
// carries it too (as "egress").
type egressReport struct {
	SchemaVersion int  `json:"schemaVersion"`
	DryRun        bool `json:"dryRun"`
	// Complete is false when the export failed or was interrupted; Error
	// says why (URLs cut to scheme://host). The hosts are those contacted
	// until then.
	Complete  bool            `json:"complete"`
	Error     string          `json:"error,omitempty"`
	Hosts     []egressHost    `json:"hosts"`
	Allowlist []string        `json:"allowlist"`
	Azure     azureFirewall   `json:"azureFirewall"`
	Refused   []egressRefused `json:"refusedHosts,omitempty"`
}

type egressHost struct {
	Host          string            `json:"host"`
	Roles         []string          `json:"roles"`
	Endpoints     []bundle.Endpoint `json:"endpoints"`
	Requests      int64             `json:"requests"`
	Failed        int64             `json:"failed"`
	Failures      []string          `json:"failures,omitempty"`
	BytesReceived int64             `json:"bytesReceived"`
	BytesSent     int64             `json:"bytesSent"`
}

// egressRefused is a host left out of the allowlist and the rules because
// its name is not a plain DNS name or IP address (a registry can redirect
// to any name; such a name must not reach a shell command).
type egressRefused struct {
	Host   string `json:"host"`
	Reason string `json:"reason"`
}

// azureFirewall holds the rules for an Azure Firewall: az CLI commands
// for classic rules (AzCLI, one command a line), and the same rules as one
// Firewall Policy rule collection (RuleCollection, the JSON of one element
// of a ruleCollectionGroups resource's properties.ruleCollections, for ARM
// or Bicep). Hosts by name become application rules; hosts by IP address
// network rules, which application rules cannot express.
type azureFirewall struct {
	AzCLI             []string        `json:"azCli"`
	RuleCollection    *azureRuleColl  `json:"ruleCollection,omitempty"`
	NetRuleCollection *azureRuleColl  `json:"networkRuleCollection,omitempty"`
	Rules             []azureRuleSpec `json:"-"`
}

type azureRuleColl struct {
	Name               string         `json:"name"`
	Priority           int            `json:"priority"`
	RuleCollectionType string         `json:"ruleCollectionType"`
	Action             map[string]any `json:"action"`
	Rules              []azureRule    `json:"rules"`
}

type azureRule struct {
	RuleType             string          `json:"ruleType"`
	Name                 string          `json:"name"`
	Protocols            []azureProtocol `json:"protocols,omitempty"`
	IPProtocols          []string        `json:"ipProtocols,omitempty"`
	SourceAddresses      []string        `json:"sourceAddresses"`
	TargetFqdns          []string        `json:"targetFqdns,omitempty"`
	DestinationAddresses []string        `json:"destinationAddresses,omitempty"`
	DestinationPorts     []string        `json:"destinationPorts,omitempty"`
}

type azureProtocol struct {
	ProtocolType string `json:"protocolType"`
	Port         int    `json:"port"`
}

// azureRuleSpec is one rule: the hosts that share a set of endpoints.
type azureRuleSpec struct {
	ip        bool
	endpoints []bundle.Endpoint
	hosts     []string
}

// sourcePlaceholder stands for the address of the exporting host in the
// JSON rules: an ARM deployment refuses it until it is replaced, rather
// than allowing every source.
const sourcePlaceholder = "SOURCE-ADDRESS"

var dnsName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// validHost reports whether h is a plain DNS name or an IP address, and
// which.
func validHost(h string) (ok, ip bool) {
	if net.ParseIP(h) != nil {
		return true, true
	}
	return len(h) <= 253 && dnsName.MatchString(h), false
}

func buildEgressReport(hosts []bundle.HostTraffic, dryRun bool, runErr error) egressReport {
	rep := egressReport{SchemaVersion: egressReportVersion, DryRun: dryRun, Complete: runErr == nil, Hosts: []egressHost{}, Allowlist: []string{}, Azure: azureFirewall{AzCLI: []string{}}}
	if runErr != nil {
		rep.Error = hostsOnly(message(runErr))
	}
	groups := map[string]*azureRuleSpec{}
	var keys []string
	for _, h := range hosts {
		rep.Hosts = append(rep.Hosts, egressHost{
			Host: h.Host, Roles: h.Roles, Endpoints: h.Endpoints, Requests: h.Requests, Failed: h.Failed, Failures: h.Failures,
			BytesReceived: h.BytesReceived, BytesSent: h.BytesSent,
		})
		ok, ip := validHost(h.Host)
		if !ok {
			rep.Refused = append(rep.Refused, egressRefused{Host: h.Host, Reason: "not a DNS name or IP address"})
			continue
		}
		rep.Allowlist = append(rep.Allowlist, h.Host)
		key := fmt.Sprint(ip, h.Endpoints)
		if groups[key] == nil {
			groups[key] = &azureRuleSpec{ip: ip, endpoints: h.Endpoints}
			keys = append(keys, key)
		}
		groups[key].hosts = append(groups[key].hosts, h.Host)
	}
	for _, k := range keys {
		rep.Azure.Rules = append(rep.Azure.Rules, *groups[k])
	}
	rep.Azure.build()
	return rep
}

// hostsOnly cuts every URL in s to scheme://host: an error names the
// request that failed, whose path and query (a signed storage URL) stay
// out of the report.
var urlInText = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s"?#]*)[^\s"]*`)

func hostsOnly(s string) string { return urlInText.ReplaceAllString(s, "$1$2") }

// ruleName names a rule by its endpoints: ferry-https-443, ferry-ip-tcp-5000.
func (s azureRuleSpec) ruleName() string {
	var parts []string
	if s.ip {
		parts = append(parts, "ip-tcp")
		for _, p := range s.ports() {
			parts = append(parts, p)
		}
	} else {
		for _, e := range s.endpoints {
			parts = append(parts, e.Scheme+"-"+strconv.Itoa(e.Port))
		}
	}
	return "ferry-" + strings.Join(parts, "-")
}

func (s azureRuleSpec) ports() []string {
	var ps []string
	for _, e := range s.endpoints {
		p := strconv.Itoa(e.Port)
		if !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return ps
}

func azureProtocolType(scheme string) string {
	if scheme == "http" {
		return "Http"
	}
	return "Https"
}

func (a *azureFirewall) build() {
	app := &azureRuleColl{Name: azureAppCollection, Priority: azureAppPriority, RuleCollectionType: "FirewallPolicyFilterRuleCollection", Action: map[string]any{"type": "Allow"}}
	nw := &azureRuleColl{Name: azureNetCollection, Priority: azureNetPriority, RuleCollectionType: "FirewallPolicyFilterRuleCollection", Action: map[string]any{"type": "Allow"}}
	const env = `--resource-group "${RG:?set RG to the firewall's resource group}" --firewall-name "${FW:?set FW to the firewall's name}"`
	const src = `--source-addresses "${SOURCE:?set SOURCE to the exporting host's address}"`
	appFirst, netFirst := true, true
	for _, r := range a.Rules {
		if r.ip {
			nw.Rules = append(nw.Rules, azureRule{RuleType: "NetworkRule", Name: r.ruleName(), IPProtocols: []string{"TCP"}, SourceAddresses: []string{sourcePlaceholder},
				DestinationAddresses: r.hosts, DestinationPorts: r.ports()})
			create := ""
			if netFirst {
				create = fmt.Sprintf(" --priority %d --action Allow", azureNetPriority)
				netFirst = false
			}
			a.AzCLI = append(a.AzCLI, fmt.Sprintf("az network firewall network-rule create %s --collection-name %s%s --name %s %s --protocols TCP --destination-addresses %s --destination-ports %s",
				env, azureNetCollection, create, r.ruleName(), src, strings.Join(r.hosts, " "), strings.Join(r.ports(), " ")))
			continue
		}
		rule := azureRule{RuleType: "ApplicationRule", Name: r.ruleName(), SourceAddresses: []string{sourcePlaceholder}, TargetFqdns: r.hosts}
		var protos []string
		for _, e := range r.endpoints {
			rule.Protocols = append(rule.Protocols, azureProtocol{ProtocolType: azureProtocolType(e.Scheme), Port: e.Port})
			protos = append(protos, azureProtocolType(e.Scheme)+"="+strconv.Itoa(e.Port))
		}
		app.Rules = append(app.Rules, rule)
		create := ""
		if appFirst {
			create = fmt.Sprintf(" --priority %d --action Allow", azureAppPriority)
			appFirst = false
		}
		a.AzCLI = append(a.AzCLI, fmt.Sprintf("az network firewall application-rule create %s --collection-name %s%s --name %s %s --protocols %s --target-fqdns %s",
			env, azureAppCollection, create, rule.Name, src, strings.Join(protos, " "), strings.Join(r.hosts, " ")))
	}
	if len(app.Rules) > 0 {
		a.RuleCollection = app
	}
	if len(nw.Rules) > 0 {
		a.NetRuleCollection = nw
	}
}

// printEgressSummary writes the readable form of rep: a table of hosts,
// the allowlist and the az commands.
func printEgressSummary(w io.Writer, rep egressReport) {
	state := "complete"
	switch {
	case !rep.Complete:
		state = "incomplete: the export failed; the hosts contacted until then"
	case rep.DryRun:
		state = "dry run: blob downloads were started, not completed"
	}
	fmt.Fprintf(w, "egress: %d hosts contacted (%s)\n", len(rep.Hosts), state)
	if len(rep.Hosts) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOST\tROLES\tENDPOINTS\tREQUESTS\tFAILED\tRECEIVED\tSENT")
		for _, h := range rep.Hosts {
			var eps []string
			for _, e := range h.Endpoints {
				eps = append(eps, e.Scheme+":"+strconv.Itoa(e.Port))
			}
			failed := strconv.FormatInt(h.Failed, 10)
			if len(h.Failures) > 0 {
				failed += " (" + strings.Join(h.Failures, ", ") + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\n", termtext.Escape(h.Host), strings.Join(h.Roles, ","), strings.Join(eps, ","), h.Requests, failed,
				human.Bytes(h.BytesReceived), human.Bytes(h.BytesSent))
		}
		tw.Flush()
	}
	for _, r := range rep.Refused {
		fmt.Fprintf(w, "  left out of the rules: %s: %s\n", termtext.Escape(r.Host), r.Reason)
	}
	if len(rep.Allowlist) > 0 {
		fmt.Fprintf(w, "allowlist: %s\n", strings.Join(rep.Allowlist, " "))
		fmt.Fprintln(w, "Azure Firewall (classic rules; set RG, FW and SOURCE, then paste):")
		for _, l := range rep.Azure.AzCLI {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}
