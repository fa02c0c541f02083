package diagnose

import (
	"github.com/iptscope/iptscope/snapshot"
)

// analyses returns the comparisons the rule checks run over: IPv4 (the
// memoised analyze) and IPv6 when Docker writes ip6tables rules here (see
// ip6tablesOn). A family with nothing to compare is left out, so a check
// that loops over the result stays silent for it.
func analyses(s *snapshot.Snapshot) []analysis {
	var out []analysis
	if a, ok := analyze(s); ok {
		out = append(out, a)
	}
	if a, ok := analyzeIPv6(s); ok {
		out = append(out, a)
	}
	return out
}

// perFamily makes a check's Run from its per-family part: of runs on the
// IPv4 analysis, then the IPv6 one when Docker writes ip6tables rules
// here, and the findings are joined in that order.
func perFamily(of func(s *snapshot.Snapshot, a analysis) []Finding) func(*snapshot.Snapshot) []Finding {
	return func(s *snapshot.Snapshot) []Finding {
		var out []Finding
		for _, a := range analyses(s) {
			out = append(out, of(s, a)...)
		}
		return out
	}
}

// analyzeIPv6 is analyze for the ip6tables dump of the backend Docker
// writes to. ok is false when there is nothing to compare: no Docker
// view, the era is not modelled, Docker writes no ip6tables rules, or no
// usable IPv6 dump.
func analyzeIPv6(s *snapshot.Snapshot) (analysis, bool) {
	if a, ok, found := memoized(s, snapshot.FamilyIPv6, analyzeIPv6Uncached); found {
		return a, ok
	}
	return analyzeIPv6Uncached(s)
}

func analyzeIPv6Uncached(s *snapshot.Snapshot) (analysis, bool) {
	if s == nil || s.Docker == nil || s.Docker.Error != "" && len(s.Docker.Networks) == 0 {
		return analysis{}, false
	}
	e, err := Expect(s, snapshot.FamilyIPv6)
	if err != nil || !e.Modelled {
		return analysis{}, false
	}
	d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv6)
	if err != nil {
		return analysis{}, false
	}
	return analysis{exp: e, rs: d.Ruleset, diff: Compare(e, d.Ruleset), dump: d, idx: &analysisIndex{}}, true
}

// family is the analysis' address family (snapshot.FamilyIPv4 or IPv6).
func (a analysis) family() string {
	if a.exp != nil && a.exp.Family == snapshot.FamilyIPv6 {
		return snapshot.FamilyIPv6
	}
	return snapshot.FamilyIPv4
}

// ipt is the command of the family: "iptables" or "ip6tables".
func (a analysis) ipt() string {
	if a.family() == snapshot.FamilyIPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// famTitle is what a finding's title adds for the family: nothing for
// IPv4 (titles stay as they always were), " (IPv6)" for IPv6 so that the
// two families' findings about one port or chain differ.
func (a analysis) famTitle() string {
	if a.family() == snapshot.FamilyIPv6 {
		return " (IPv6)"
	}
	return ""
}

// evLine renders an expected rule for a finding's evidence: "-t nat -A
// DOCKER ..." for IPv4 (as always), "ip6tables -t nat -A DOCKER ..." for
// IPv6.
func (a analysis) evLine(er ExpectedRule) string {
	if a.family() == snapshot.FamilyIPv6 {
		return "ip6tables " + ruleLine(er)
	}
	return ruleLine(er)
}

// evSave is evLine for a rule of the dump.
func (a analysis) evSave(line string) string {
	if a.family() == snapshot.FamilyIPv6 {
		return "ip6tables " + line
	}
	return line
}

// ipVer is "4" or "6".
func (a analysis) ipVer() string {
	if a.family() == snapshot.FamilyIPv6 {
		return "6"
	}
	return "4"
}
