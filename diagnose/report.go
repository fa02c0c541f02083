package diagnose

import (
	"time"

	"github.com/iptscope/iptscope/snapshot"
)

// ReportSchema is the "schema" value of `iptscope doctor -o json`.
const ReportSchema = "iptscope.doctor/v1"

// Status is the overall verdict of a report.
type Status string

const (
	// StatusOK: no finding at or above the failure threshold, and the
	// check was complete.
	StatusOK Status = "ok"
	// StatusProblems: at least one finding at or above the threshold.
	StatusProblems Status = "problems"
	// StatusUnknown: nothing at or above the threshold, but the check was
	// partial (no Docker view, a raw dump, a layout not modelled), so
	// "ok" cannot be claimed.
	StatusUnknown Status = "unknown"
)

// ReportHost says what was inspected. Empty strings mean unknown.
type ReportHost struct {
	// DockerVersion is the server version as the daemon reports it.
	DockerVersion string `json:"docker_version"`
	// Layout is the iptables layout Docker writes: "classic" (20.10-27),
	// "28", "29", "28.0.0-ipset" or "".
	Layout string `json:"layout"`
	// UserlandProxy is "on" or "off" and UserlandProxySource how that was
	// found (the daemon, docker-proxy processes, the nat OUTPUT jump).
	UserlandProxy       string `json:"userland_proxy"`
	UserlandProxySource string `json:"userland_proxy_source"`
	// DockerBackend is the iptables backend holding Docker's chains
	// ("nft", "legacy", "both", "none"); IptablesBackend the one
	// `iptables` on the host uses.
	DockerBackend   string `json:"docker_backend"`
	IptablesBackend string `json:"iptables_backend"`
	Hostname        string `json:"hostname"`
	// NetNS is the network namespace (a name or path; "" for the
	// collector's own).
	NetNS string `json:"netns"`
	// CollectedAt is RFC 3339, "" for a raw dump.
	CollectedAt string `json:"collected_at"`
	// Source is "live" or the file given with --from.
	Source string `json:"source"`
}

// Report is the whole answer of `iptscope doctor`. The JSON field names
// are iptscope.doctor/v1 (docs/doctor.md) and stable.
type Report struct {
	Schema string     `json:"schema"`
	Status Status     `json:"status"`
	FailOn Severity   `json:"fail_on"`
	Host   ReportHost `json:"host"`
	// Partial is true when some checks could not run (see Notes).
	Partial  bool         `json:"partial"`
	Findings []Finding    `json:"findings"`
	Ports    []PortReport `json:"ports"`
	// Notes say what was guessed, skipped or not inspected.
	Notes []string `json:"notes"`
}

// ReportOptions tune NewReport.
type ReportOptions struct {
	// Skip lists check IDs not to run (the caller validates them).
	Skip []string
	// FailOn is the lowest severity that makes the status "problems";
	// "" means warning.
	FailOn Severity
	// RulesOnly: the snapshot was built from a raw iptables dump, with no
	// Docker view, sysctls or links. Only rule-based checks can say
	// anything; docker-unreachable becomes an info finding saying so.
	RulesOnly bool
	// Source is "live" or the input file name.
	Source string
}

// NewReport runs the checks and judges the published ports of s. It is
// pure and never fails: what cannot be judged is a note and makes the
// report partial.
func NewReport(s *snapshot.Snapshot, o ReportOptions) *Report {
	if o.FailOn == "" {
		o.FailOn = SeverityWarning
	}
	r := &Report{Schema: ReportSchema, FailOn: o.FailOn, Findings: []Finding{}, Ports: []PortReport{}, Notes: []string{}}
	r.Host = ReportHost{
		DockerBackend:   s.DockerBackend,
		IptablesBackend: s.IptablesBackend,
		Hostname:        s.Host.Hostname,
		NetNS:           s.Host.NetNS,
		Source:          o.Source,
	}
	if !s.CollectedAt.IsZero() {
		r.Host.CollectedAt = s.CollectedAt.UTC().Format(time.RFC3339)
	}
	if s.Docker != nil {
		r.Host.DockerVersion = s.Docker.Version
	}
	if o.RulesOnly {
		r.Partial = true
		r.Notes = append(r.Notes, "partial: the input is a raw iptables dump: only checks that need nothing but the rules ran; pass a bundle from `iptscope collect` for the full diagnosis")
	}
	// Why: with the API unreachable, what the host shows (bridges,
	// neighbours, docker-proxy arguments, the rules' shape) still tells
	// enough to run the rule checks on part of the host (see Infer).
	if !o.RulesOnly {
		var note string
		if s, note = withInferredDocker(s); note != "" {
			r.Partial = true
			r.Notes = append(r.Notes, note)
		}
	}
	if why := dockerElsewhere(s); why != "" {
		r.Partial = true
		r.Notes = append(r.Notes, "partial: "+why)
	}
	// One analysis for the checks and the ports (memo.go).
	defer memoize(s)()
	if s.Docker != nil && s.Docker.Version != "" {
		if e, err := Expect(s, snapshot.FamilyIPv4); err == nil {
			r.Host.Layout = string(e.Era)
			if e.Modelled {
				r.Host.UserlandProxy, r.Host.UserlandProxySource = e.Proxy.State, e.Proxy.Source
			} else {
				r.Partial = true
			}
			for _, n := range e.Notes {
				if !e.Modelled {
					n = "partial: " + n
				}
				r.Notes = append(r.Notes, n)
			}
		}
	}
	if _, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); err != nil {
		r.Partial = true
		r.Notes = append(r.Notes, "partial: "+err.Error())
	}
	for _, f := range Run(s, Options{Skip: o.Skip}) {
		if f.ID == dockerUnreachable.ID {
			r.Partial = true
			if o.RulesOnly {
				f = rulesOnlyFinding(f)
			}
		}
		r.Findings = append(r.Findings, f)
	}
	if ps := Ports(s); ps != nil {
		r.Ports = ps
	}
	if len(o.Skip) > 0 {
		r.Notes = append(r.Notes, "skipped checks: "+joinComma(o.Skip))
	}
	r.Status = StatusOK
	if r.Partial {
		r.Status = StatusUnknown
	}
	for _, f := range r.Findings {
		if f.Severity.Rank() >= o.FailOn.Rank() {
			r.Status = StatusProblems
		}
	}
	return r
}

// rulesOnlyFinding rewrites docker-unreachable for a raw dump: Docker was
// not unreachable, the input simply has no Docker view. Info, not a
// warning: the user chose the input.
func rulesOnlyFinding(f Finding) Finding {
	f.Severity = SeverityInfo
	f.Title = "The input is a raw iptables dump: no Docker view, the diagnosis is partial"
	f.Detail = "A plain iptables-save or iptables -L text says nothing about Docker's networks, containers, published " +
		"ports, sysctls or links: the checks that compare the rules with Docker's view did not run, and no port can be judged."
	f.Evidence = []string{"input: iptables rules only"}
	f.Fix = "On the host run `sudo iptscope collect -o host.json` and pass `--from host.json`, or run `sudo iptscope doctor` there."
	return f
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// Count returns how many findings have severity sev.
func (r *Report) Count(sev Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == sev {
			n++
		}
	}
	return n
}
