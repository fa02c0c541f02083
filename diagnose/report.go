package diagnose

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/iptscope/iptscope/parse"

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
	// env is the analysis the report was made from (Plan reuses it).
	env *Env

	Schema string `json:"schema"`
	// ToolVersion is the iptscope build (set by the command).
	ToolVersion string     `json:"tool_version,omitempty"`
	Status      Status     `json:"status"`
	FailOn      Severity   `json:"fail_on"`
	Host        ReportHost `json:"host"`
	// Partial is true when some checks could not run (see Notes).
	Partial  bool         `json:"partial"`
	Findings []Finding    `json:"findings"`
	Ports    []PortReport `json:"ports"`
	// NotChecked lists the checks that could not run on this input and
	// what each needs (a raw dump: the sysctls, links, processes).
	NotChecked []NotChecked `json:"not_checked,omitempty"`
	// Notes say what was guessed, skipped or not inspected.
	Notes []string `json:"notes"`
	// Next is one line that says what to do next: what `doctor --fix`
	// repairs and the command, what needs a person.
	Next string `json:"next"`
}

// NotChecked is a check that did not run on the input.
type NotChecked struct {
	ID    string `json:"id"`
	Needs string `json:"needs"`
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
	// Ports and Containers narrow the report to findings and port rows
	// about these host ports ("8080", "8080/tcp", "127.0.0.1:9090/tcp")
	// and containers (name or address); host-wide findings stay.
	Ports      []string
	Containers []string
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
	var inf *RuleInference
	if o.RulesOnly {
		r.Partial = true
		var note string
		s, inf, note = withRulesInferredDocker(s)
		r.Notes = append(r.Notes, note)
		for _, c := range All() {
			if c.Needs != "" && !slices.Contains(o.Skip, c.ID) {
				r.NotChecked = append(r.NotChecked, NotChecked{ID: c.ID, Needs: c.Needs})
			}
		}
	} else {
		// Why: with the API unreachable, what the host shows (bridges,
		// neighbours, docker-proxy arguments, the rules' shape) still
		// tells enough to run the rule checks on part of the host.
		var note string
		if s, note = withInferredDocker(s); note != "" {
			r.Partial = true
			r.Notes = append(r.Notes, note)
		}
	}
	env := &Env{S: s, RulesOnly: o.RulesOnly, Inference: inf}
	r.env = env
	if why := dockerElsewhere(s); why != "" {
		r.Partial = true
		r.Notes = append(r.Notes, "partial: "+why)
	}
	if s.Docker != nil && s.Docker.Version != "" {
		if e, err := env.expected(snapshot.FamilyIPv4); err == nil {
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
	if _, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); err != nil && !o.RulesOnly && !nftJudged(s) {
		r.Partial = true
		r.Notes = append(r.Notes, "partial: "+err.Error())
	}
	// The ports are traced before the checks run (on every core): why not
	// beside them, at 33,000 ports the Tracer's indices and the checks'
	// garbage together lifted the memory budget (188 -> 262 MiB).
	env.judgements()
	// The ports table needs no finding: it is made while the checks run.
	portsDone := make(chan []PortReport, 1)
	go func() { portsDone <- portsOf(env) }()
	for _, f := range RunEnv(env, Options{Skip: o.Skip}) {
		if f.ID == dockerUnreachable.ID {
			r.Partial = true
			if o.RulesOnly {
				f = rulesOnlyFinding(f)
			}
		}
		r.Findings = append(r.Findings, f)
	}
	// The raw dump's docker-unreachable became an info: keep worst first.
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Severity.Rank() > r.Findings[j].Severity.Rank() })
	relate(env, r.Findings)
	// A finding that follows only from repairable ones is repaired with
	// them (proxy-fallback once the DNATs are back).
	repairable := map[string]bool{}
	for _, f := range r.Findings {
		repairable[f.Key] = f.Repairable
	}
	for i := range r.Findings {
		if f := &r.Findings[i]; len(f.CausedBy) > 0 && !f.Repairable && allIn(f.CausedBy, repairable) {
			f.Repairable = true
		}
	}
	if ps := <-portsDone; ps != nil {
		r.Ports = ps
	}
	if o.RulesOnly && !hasTable(s, parse.TableFilter) {
		// Why: the layouts differ in the filter table; nat alone does
		// not tell them apart.
		r.Host.Layout = ""
		unjudged(r.Ports)
	}
	if len(o.Ports) > 0 || len(o.Containers) > 0 {
		narrow(r, o.Ports, o.Containers)
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
	// Why: --skip hides a check, never a dead port. A broken port that no
	// remaining finding is about counts as an error when checks were
	// skipped (without --skip the findings decide: a deliberate
	// DOCKER-USER drop is info).
	if len(o.Skip) > 0 && SeverityError.Rank() >= o.FailOn.Rank() {
		broken := 0
		for _, p := range r.Ports {
			if p.Path == PathBroken && !aboutPort(r.Findings, p.HostAddr()) {
				broken++
			}
		}
		if broken > 0 {
			r.Status = StatusProblems
			r.Notes = append(r.Notes, fmt.Sprintf("%d published port%s broken (see the ports table) although the checks that would say why were skipped", broken, plural(broken)))
		}
	}
	r.Next = nextStep(r, o)
	return r
}

// hasTable reports whether one of the snapshot's dumps holds table t.
func hasTable(s *snapshot.Snapshot, t parse.TableName) bool {
	for _, d := range s.Rules {
		if d.Ruleset != nil && d.Ruleset.Table(t) != nil {
			return true
		}
	}
	return false
}

// unjudged: on a raw dump without the filter table (a pasted
// `iptables -t nat -L`), a port whose DNAT is in place may still be
// dropped in FORWARD; the dump cannot tell, so the row says so instead of
// "nat". Rows the nat table already proves broken stay broken.
func unjudged(ps []PortReport) {
	for i := range ps {
		if ps[i].Path == PathNAT {
			ps[i].Path = PathUnknown
			ps[i].Reason = "its DNAT is in place; the filter table is not in the input, so forwarding was not checked (add `iptables -t filter -L -n -v`)"
		}
	}
}

// aboutPort reports whether a finding's subject, or one it affects, is
// the host port.
func aboutPort(fs []Finding, port string) bool {
	port = strings.TrimPrefix(strings.TrimPrefix(port, "0.0.0.0:"), "[::]:")
	for _, f := range fs {
		if portIs(f.Subject.Port, port) {
			return true
		}
		for _, a := range f.Affected {
			if portIs(a.Port, port) {
				return true
			}
		}
	}
	return false
}

// withRulesInferredDocker returns a copy of a raw dump's snapshot with
// the Docker view InferFromRules reads from its rules, the inference, and
// a note saying what was inferred.
func withRulesInferredDocker(s *snapshot.Snapshot) (*snapshot.Snapshot, *RuleInference, string) {
	const base = "partial: the input is a raw iptables dump: only the checks the rules alone decide ran"
	if len(s.Rules) == 0 || s.Rules[0].Ruleset == nil {
		return s, nil, base
	}
	d := s.Rules[0]
	inf, why := InferFromRules(d.Ruleset, d.Family)
	if inf == nil {
		return s, nil, base + "; " + why
	}
	c := *s
	c.Docker = inf.Docker
	return &c, inf, base + ". " + strings.Join(inf.Notes, "; ")
}

// relate marks findings that follow from another one (CausedBy): when a
// family lost every one of Docker's chains (a firewall reload), the rules
// that lived in built-in chains went with them.
func relate(env *Env, fs []Finding) {
	for _, a := range env.analyses() {
		total := 0
		for _, t := range parse.KnownTables {
			total += len(a.exp.Chains[t])
		}
		if total == 0 || len(a.missingChains()) != total {
			continue
		}
		root := KeyOf(dockerChainMissing.ID, Subject{Family: a.family()})
		for i := range fs {
			f := &fs[i]
			if c, ok := CheckByID(f.ID); ok && c.Claims != nil && f.Key != root && f.Subject.Family == a.family() && !slices.Contains(f.CausedBy, root) {
				f.CausedBy = append(f.CausedBy, root)
			}
		}
	}
}

// nextStep is the report's last line.
func nextStep(r *Report, o ReportOptions) string {
	var fix, person []string
	nfix := 0
	for _, f := range r.Findings {
		if f.Severity.Rank() < SeverityWarning.Rank() {
			continue
		}
		if f.Repairable {
			nfix++
			if !slices.Contains(fix, f.ID) {
				fix = append(fix, f.ID)
			}
		} else if !slices.Contains(person, f.ID) {
			person = append(person, f.ID)
		}
	}
	var parts []string
	switch {
	case o.RulesOnly && len(person) > 0:
		parts = append(parts, fmt.Sprintf("the rules show %d problem%s (%s)", len(r.Findings)-countBelow(r, SeverityWarning), plural(len(r.Findings)-countBelow(r, SeverityWarning)), joinComma(person)),
			"on the host, `sudo iptscope doctor --fix` repairs what Docker's own view proves; `sudo iptscope collect -o host.json` gathers what a dump lacks ("+itoa(len(r.NotChecked))+" checks need it)")
	case o.RulesOnly:
		parts = append(parts, "nothing wrong in the rules given; `sudo iptscope collect -o host.json` on the host gathers what a dump lacks ("+itoa(len(r.NotChecked))+" checks need it)")
	case nfix > 0:
		parts = append(parts, fmt.Sprintf("`sudo iptscope doctor --fix` repairs %d finding%s (%s)", nfix, plural(nfix), joinComma(fix)))
		if len(person) > 0 {
			parts = append(parts, "then "+joinComma(person)+" need"+map[bool]string{true: "s", false: ""}[len(person) == 1]+" a person (see each fix)")
		}
	case len(person) > 0:
		parts = append(parts, joinComma(person)+" need"+map[bool]string{true: "s", false: ""}[len(person) == 1]+" a person: `doctor --fix` repairs none of them (see each fix)")
	case r.Partial:
		parts = append(parts, "nothing found, but the check was partial (see the notes)")
	default:
		parts = append(parts, "nothing to do")
	}
	return "next: " + strings.Join(parts, "; ")
}

func countBelow(r *Report, sev Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity.Rank() < sev.Rank() {
			n++
		}
	}
	return n
}

// narrow keeps the findings and port rows about the ports and containers
// asked for. A finding about no port or container at all (ip_forward, a
// missing chain) concerns every port and stays; a grouped finding keeps
// only the affected subjects asked for.
func narrow(r *Report, ports, containers []string) {
	match := func(sb Subject) bool {
		for _, p := range ports {
			if portIs(sb.Port, p) || portIs(sb.ContainerPort, p) {
				return true
			}
		}
		for _, c := range containers {
			if sb.Container != "" && (sb.Container == c || strings.Trim(sb.Container, "<>") == c) {
				return true
			}
		}
		return false
	}
	general := func(sb Subject) bool { return sb.Port == "" && sb.ContainerPort == "" && sb.Container == "" }
	var keep []Finding
	for _, f := range r.Findings {
		switch {
		case len(f.Affected) > 0:
			var aff []Subject
			for _, sb := range f.Affected {
				if match(sb) || general(sb) {
					aff = append(aff, sb)
				}
			}
			if len(aff) == 0 {
				continue
			}
			f.Affected = aff
		case !general(f.Subject) && !match(f.Subject):
			continue
		}
		keep = append(keep, f)
	}
	r.Findings = append([]Finding{}, keep...)
	var rows []PortReport
	for _, p := range r.Ports {
		sb := Subject{Port: p.HostAddr(), Container: p.Container}
		if match(sb) || len(ports) == 0 && len(containers) == 0 {
			rows = append(rows, p)
			continue
		}
		for _, c := range containers {
			if p.ContainerIP == c {
				rows = append(rows, p)
			}
		}
	}
	r.Ports = append([]PortReport{}, rows...)
	r.Notes = append(r.Notes, "narrowed to "+joinComma(append(append([]string{}, ports...), containers...)))
}

// portIs reports whether a subject's port ("127.0.0.1:9090/tcp",
// "8080/tcp", "172.17.0.2:80/tcp") is the one asked for ("8080",
// "8080/tcp", "127.0.0.1:9090", "127.0.0.1:9090/tcp").
func portIs(have, want string) bool {
	if have == "" || want == "" {
		return false
	}
	if have == want {
		return true
	}
	hp, hproto, _ := strings.Cut(have, "/")
	wp, wproto, _ := strings.Cut(want, "/")
	if wproto != "" && wproto != hproto {
		return false
	}
	if hp == wp {
		return true
	}
	if !strings.Contains(wp, ":") {
		if i := strings.LastIndexByte(hp, ':'); i >= 0 {
			return hp[i+1:] == wp
		}
	}
	return false
}

// rulesOnlyFinding rewrites docker-unreachable for a raw dump: Docker was
// not unreachable, the input simply has no Docker view. Info, not a
// warning: the user chose the input.
func rulesOnlyFinding(f Finding) Finding {
	f.Severity = SeverityInfo
	f.Title = "The input is a raw iptables dump: Docker's view was inferred from the rules, the diagnosis is partial"
	f.Detail = "A plain iptables-save or iptables -L text says nothing of Docker's own state, the sysctls, links or " +
		"docker-proxy: iptscope inferred Docker's networks, containers and published ports from the rules Docker keeps for " +
		"them and ran the checks the rules alone decide. Ports whose rules are all gone, and everything outside the rules, " +
		"were not checked (see \"not checked\")."
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
