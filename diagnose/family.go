package diagnose

import (
	"github.com/iptscope/iptscope/snapshot"
)

// perFamily makes a check's Run from its per-family part: of runs on the
// IPv4 analysis, then the IPv6 one when Docker writes ip6tables rules
// here, and the findings are joined in that order.
func perFamily(of func(env *Env, a analysis) []Finding) func(*Env) []Finding {
	return func(env *Env) []Finding {
		var out []Finding
		for _, a := range env.analyses() {
			out = append(out, of(env, a)...)
		}
		return out
	}
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
