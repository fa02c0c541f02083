package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// forwardAcceptMissing: a filter rule on the path of a published port (the
// per-port ACCEPT, or the network's conntrack ACCEPT / jump to DOCKER /
// outbound ACCEPT) is missing, so the FORWARD policy drops the traffic.
var forwardAcceptMissing = Check{
	ID:       "forward-accept-missing",
	Title:    "A filter rule that admits traffic to a container is missing",
	Severity: SeverityError,
	Run:      perFamily(forwardAcceptMissingOf),
}

// forwardAcceptMissingOf is forward-accept-missing for one family.
func forwardAcceptMissingOf(_ *snapshot.Snapshot, a analysis) []Finding {
	policy := "ACCEPT"
	if c := a.rs.Table(parse.TableFilter).Chain(parse.ChainForward); c != nil && c.Policy != "" {
		policy = string(c.Policy)
	}
	var out []Finding
	seenAlt := map[string]bool{}
	for _, er := range a.diff.MissingOf(KindPortAccept, KindNetworkPath) {
		if a.missingChain(er) || er.Rule.Target == parse.TargetDrop || (er.Alt != "" && seenAlt[er.Alt]) {
			continue
		}
		seenAlt[er.Alt] = true
		f := Finding{
			ID:       "forward-accept-missing",
			Severity: SeverityError,
			Subject:  Subject{Table: "filter", Chain: string(er.Rule.Chain), Network: er.Network, Container: er.Container, Port: portName(er.Port), Family: a.family()},
			Evidence: []string{"missing: " + a.evLine(er), a.evSave("filter FORWARD policy: " + policy)},
			Fix:      restartFix(a) + " Or add the rule Docker would have written: `" + a.ipt() + " " + insertLine(a, er) + "`.",
		}
		if er.Kind == KindPortAccept {
			f.Title = fmt.Sprintf("Port %s of container %s is not admitted by filter DOCKER%s", portName(er.Port), er.Container, a.famTitle())
			f.Detail = "Connections from other machines are translated to the container but then meet no ACCEPT in the filter table and fall through to the FORWARD policy (" + policy + ")."
		} else {
			f.Title = fmt.Sprintf("Network %s (%s) lost a forwarding rule in %s%s", er.Network, er.Bridge, er.Rule.Chain, a.famTitle())
			f.Detail = "Docker's per-network forwarding rules are incomplete: packets covered by this rule fall through to the FORWARD policy (" + policy + "); published ports, replies or container egress on this network may stop working."
		}
		if policy == "ACCEPT" {
			f.Severity = SeverityWarning
			f.Detail += " The FORWARD policy is ACCEPT, so traffic still passes today, but not through Docker's rules."
		}
		out = append(out, f)
	}
	return out
}

// insertLine renders the command that puts er back: -I at Docker's
// position counting the expected rules present above it, -A for rules
// Docker appends last.
func insertLine(a analysis, er ExpectedRule) string {
	t, c := er.Rule.Table, er.Rule.Chain
	pos := 1
	for _, x := range a.exp.RulesOf(t, c) {
		if x.Rule == er.Rule {
			break
		}
		if got := a.diff.Found[x.Rule]; got != nil && mustPrecede(x, er) && got.Position >= pos {
			pos = got.Position + 1
		}
	}
	return fmt.Sprintf("-t %s -I %s %d %s", t, c, pos, er.Spec())
}
