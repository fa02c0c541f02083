package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// forwardAcceptMissing: filter rules on the path of published ports (the
// per-port ACCEPT, or the network's conntrack ACCEPT / jump to DOCKER /
// outbound ACCEPT) are missing, so the FORWARD policy drops the traffic.
// One finding per chain: filter DOCKER flushed is one cause.
var forwardAcceptMissing = Check{
	ID:       "forward-accept-missing",
	Title:    "A filter rule that admits traffic to a container is missing",
	Severity: SeverityError,
	Run:      perFamily(forwardAcceptMissingOf),
	Repair:   Repair{Auto: true},
	Claims:   forwardAcceptClaims,
}

// forwardAcceptClaims: the port ACCEPTs and the network path rules that
// admit traffic (the DROPs and REJECTs are docker-rule-missing's), whose
// chains exist; one cause per chain.
func forwardAcceptClaims(a analysis, er ExpectedRule) (Subject, bool) {
	if er.Kind != KindPortAccept && er.Kind != KindNetworkPath || a.missingChain(er) {
		return Subject{}, false
	}
	if t := er.Target; t == parse.TargetDrop || t == parse.TargetReject {
		return Subject{}, false
	}
	return Subject{Family: a.family(), Table: er.Table, Chain: er.Chain}, true
}

// forwardAcceptMissingOf is forward-accept-missing for one family.
func forwardAcceptMissingOf(_ *Env, a analysis) []Finding {
	policy := "ACCEPT"
	if c := a.rs.Table(parse.TableFilter).Chain(parse.ChainForward); c != nil && c.Policy != "" {
		policy = string(c.Policy)
	}
	causes, groups := claimedBy(a, forwardAcceptClaims)
	var out []Finding
	for _, cause := range causes {
		ers := groups[cause]
		f := Finding{
			ID:       "forward-accept-missing",
			Key:      KeyOf("forward-accept-missing", cause),
			Severity: SeverityError,
			Subject:  cause,
			Affected: affectedOf(a, ers),
			Evidence: append(missingEvidence(a, ers, 10), a.evSave("filter FORWARD policy: "+policy)),
			Rules:    missingRefs(a, ers),
			Fix:      restoreFix(a, ers, func(er ExpectedRule) string { return a.ipt() + " " + insertLine(a, er) }),
		}
		ports, nets := 0, 0
		for _, er := range ers {
			if er.Kind == KindPortAccept {
				ports++
			} else {
				nets++
			}
		}
		switch {
		case len(ers) == 1 && ports == 1:
			er := ers[0]
			f.Subject = subjectOfRule(a, er)
			f.Title = fmt.Sprintf("Port %s of container %s is not admitted by filter %s%s", portName(er.Port), er.Container, er.Chain, a.famTitle())
		case len(ers) == 1:
			er := ers[0]
			f.Subject = subjectOfRule(a, er)
			f.Title = fmt.Sprintf("Network %s (%s) lost a forwarding rule in %s%s", er.Network, er.Bridge, er.Chain, a.famTitle())
		case nets == 0:
			f.Title = fmt.Sprintf("filter %s lost the ACCEPTs of %s published ports%s", cause.Chain, thousands(ports), a.famTitle())
		default:
			f.Title = fmt.Sprintf("filter %s lost %s of Docker's forwarding rules%s", cause.Chain, thousands(len(ers)), a.famTitle())
		}
		if ports > 0 {
			f.Detail = "Connections from other machines to " + portsList(f.Affected, 6) + " are translated to the container but then meet no ACCEPT in the filter table and fall through to the FORWARD policy (" + policy + ")."
		}
		if nets > 0 {
			f.Detail = strings.TrimSpace(f.Detail + " Docker's per-network forwarding rules are incomplete: packets covered by them fall through to the FORWARD policy (" + policy + "); published ports, replies or container egress may stop working.")
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
	t, c := er.Table, er.Chain
	pos := 1
	for _, x := range a.exp.RulesOf(t, c) {
		if x.id == er.id {
			break
		}
		if got := a.diff.Got(x); got != nil && mustPrecede(x, er) && got.Position >= pos {
			pos = got.Position + 1
		}
	}
	return fmt.Sprintf("-t %s -I %s %d %s", t, c, pos, er.Spec())
}
