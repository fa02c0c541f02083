package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// Root cause first: a check that reports missing rules makes one finding
// per cause (the subject its Claims returns), with every rule and subject
// the cause affects inside it, not one finding per rule. nat DOCKER
// flushed on a 1,000-port host is one dnat-missing error listing 1,000
// ports.

// claimedBy returns the missing rules of a that claims takes, grouped by
// cause, causes in first-seen order. Alternatives (ExpectedRule.Alt) count
// once: one of them is enough.
func claimedBy(a analysis, claims func(analysis, ExpectedRule) (Subject, bool)) ([]Subject, map[Subject][]ExpectedRule) {
	var causes []Subject
	groups := map[Subject][]ExpectedRule{}
	seenAlt := map[string]bool{}
	for _, er := range a.diff.Missing {
		cause, ok := claims(a, er)
		if !ok {
			continue
		}
		if er.Alt != "" {
			if seenAlt[er.Alt] {
				continue
			}
			seenAlt[er.Alt] = true
		}
		if _, seen := groups[cause]; !seen {
			causes = append(causes, cause)
		}
		groups[cause] = append(groups[cause], er)
	}
	return causes, groups
}

// subjectOfRule is what one expected rule is about.
func subjectOfRule(a analysis, er ExpectedRule) Subject {
	return Subject{Family: a.family(), Table: er.Table, Chain: er.Chain, Network: er.Network, Container: er.Container, Port: portName(er.Port)}
}

// affectedOf lists what each rule is about, once each.
func affectedOf(a analysis, ers []ExpectedRule) []Subject {
	var out []Subject
	seen := map[Subject]bool{}
	for _, er := range ers {
		s := subjectOfRule(a, er)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// missingRefs points at expected rules that are not in the dump.
func missingRefs(a analysis, ers []ExpectedRule) []RuleRef {
	out := make([]RuleRef, 0, len(ers))
	for _, er := range ers {
		out = append(out, RuleRef{Role: "missing", Family: a.family(), Table: er.Table, Chain: er.Chain, Rule: "-A " + string(er.Chain) + " " + er.Spec()})
	}
	return out
}

// ruleRef points at a rule of the dump.
func ruleRef(family, role string, r *parse.Rule) RuleRef {
	return RuleRef{Role: role, Family: family, Table: r.Table, Chain: r.Chain, Position: r.Position, Rule: r.SaveLine(false)}
}

// missingEvidence is the capped "missing: ..." lines of ers.
func missingEvidence(a analysis, ers []ExpectedRule, n int) []string {
	lines := make([]string, 0, min(len(ers), n)+1)
	for i, er := range ers {
		if i == n {
			lines = append(lines, fmt.Sprintf("... and %d more", len(ers)-n))
			break
		}
		lines = append(lines, "missing: "+a.evLine(er))
	}
	return lines
}

// restoreFix is the fix of findings whose missing rules `doctor --fix`
// restores: the command first, then a restart, then the first commands by
// hand (cmd renders one).
func restoreFix(a analysis, ers []ExpectedRule, cmd func(ExpectedRule) string) string {
	fix := "`sudo iptscope doctor --fix` puts back the rule" + plural(len(ers)) + " Docker wrote, at Docker's position" + plural(len(ers)) + ". Or " +
		lowerFirst(restartFix(a))
	var cmds []string
	for _, er := range ers[:min(len(ers), 3)] {
		cmds = append(cmds, "`"+cmd(er)+"`")
	}
	fix += " By hand: " + strings.Join(cmds, ", ")
	if len(ers) > 3 {
		fix += fmt.Sprintf(" and %d more", len(ers)-3)
	}
	return fix + "."
}

// addLine is the command that appends er: "iptables -t nat -A DOCKER ...".
func (a analysis) addLine(er ExpectedRule) string { return a.ipt() + " " + ruleLine(er) }

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// portsList renders the ports of subjects for a title: "8080/tcp,
// 7000/tcp and 4 more".
func portsList(subjects []Subject, n int) string {
	var ps []string
	for _, s := range subjects {
		if s.Port != "" {
			ps = append(ps, s.Port)
		}
	}
	if len(ps) <= n {
		return joinAnd(ps)
	}
	return strings.Join(ps[:n], ", ") + fmt.Sprintf(" and %d more", len(ps)-n)
}

func joinAnd(ss []string) string {
	switch len(ss) {
	case 0:
		return ""
	case 1:
		return ss[0]
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " and " + ss[len(ss)-1]
}

// thousands renders n with thousands separators: 1,000.
func thousands(n int) string {
	s := itoa(n)
	if n < 0 || len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
