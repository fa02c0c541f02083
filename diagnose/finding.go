package diagnose

import (
	"sort"

	"github.com/iptscope/iptscope/snapshot"
)

// Severity ranks a finding.
type Severity string

// Severities, worst first.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Rank orders severities: error 3, warning 2, info 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityError:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

// ParseSeverity accepts "error", "warning", "info"; ok is false otherwise.
func ParseSeverity(s string) (Severity, bool) {
	sev := Severity(s)
	return sev, sev.Rank() > 0
}

// Subject says what a finding is about; fields are empty when they do not
// apply.
type Subject struct {
	Table     string `json:"table,omitempty"`
	Chain     string `json:"chain,omitempty"`
	Network   string `json:"network,omitempty"`
	Container string `json:"container,omitempty"`
	// Port is "HOSTIP:HPORT/PROTO" or "HPORT/PROTO".
	Port string `json:"port,omitempty"`
	// Family is "ipv4" or "ipv6" for findings about iptables or
	// ip6tables rules; empty when the finding is not about one family.
	Family string `json:"family,omitempty"`
}

// Finding is one thing wrong (or worth knowing) on the host. The JSON
// field names are part of iptscope.doctor/v1 and stable.
type Finding struct {
	// ID is the check's stable ID (docs/checks/<id>.md).
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Title is one line.
	Title string `json:"title"`
	// Detail explains the consequence for traffic in plain words.
	Detail  string  `json:"detail"`
	Subject Subject `json:"subject"`
	// Evidence are the rule lines, links, sysctls or processes the
	// finding rests on.
	Evidence []string `json:"evidence,omitempty"`
	// Fix is the exact repair, or why it must not be automated.
	Fix string `json:"fix"`
}

// Check is one diagnosis. Run is pure and must return no finding when it
// cannot tell (missing data is docker-unreachable's business, not a
// false alarm).
type Check struct {
	ID       string
	Title    string
	Severity Severity // the usual severity; a finding may differ
	Run      func(*snapshot.Snapshot) []Finding
}

// All returns every check in the order findings are reported. IDs are
// stable and never reused.
func All() []Check {
	return []Check{
		dockerUnreachable,
		backendSplit,
		nftablesBackend,
		dockerIptablesDisabled,
		ipForwardDisabled,
		ipv6ForwardDisabled,
		dockerChainMissing,
		dockerJumpMissing,
		dnatMissing,
		dnatStale,
		forwardAcceptMissing,
		forwardBlocked,
		dockerUserDrop,
		masqueradeMissing,
		rawDropMissing,
		dockerRuleMissing,
		dockerRuleDuplicated,
		bridgeMissing,
		bridgeDown,
		vethDetached,
		brNetfilterDisabled,
		routeLocalnetDisabled,
		hairpinModeOff,
		proxyFallback,
		proxyMissing,
		proxyOverhead,
	}
}

// Options tune Run.
type Options struct {
	// Skip lists check IDs not to run.
	Skip []string
}

// Run runs every check not skipped and returns the findings, worst
// severity first, then in check order.
func Run(s *snapshot.Snapshot, o Options) []Finding {
	if dockerElsewhere(s) != "" {
		// The rules, links, sysctls and processes read are not the
		// daemon's: every comparison would be a false alarm (NewReport
		// says why and calls the report partial).
		return nil
	}
	defer memoize(s)() // one analysis for every check (memo.go)
	skip := map[string]bool{}
	for _, id := range o.Skip {
		skip[id] = true
	}
	var out []Finding
	for _, c := range All() {
		if skip[c.ID] {
			continue
		}
		out = append(out, c.Run(s)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity.Rank() > out[j].Severity.Rank() })
	return out
}
