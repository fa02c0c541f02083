package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// dockerJumpMissing: Docker's chain exists but the jump that sends
// packets into it is gone, so its rules are never evaluated. One finding
// per chain the jumps are missing from.
var dockerJumpMissing = Check{
	ID:       "docker-jump-missing",
	Title:    "A jump into Docker's chains is missing",
	Severity: SeverityError,
	Run:      withNft(perFamily(jumpMissing), nftJumpMissing),
	Repair:   Repair{Auto: true},
	Claims:   jumpMissingClaims,
}

// jumpMissingClaims: a jump (from a built-in chain, or inside Docker's
// skeleton) whose chains exist; one cause per chain it jumps from.
func jumpMissingClaims(a analysis, er ExpectedRule) (Subject, bool) {
	if (er.Kind != KindJump && er.Kind != KindSkeleton) || !er.JumpsToChain() || a.missingChain(er) {
		return Subject{}, false
	}
	return Subject{Family: a.family(), Table: er.Table, Chain: er.Chain}, true
}

// jumpMissing is docker-jump-missing for one family.
func jumpMissing(_ *Env, a analysis) []Finding {
	causes, groups := claimedBy(a, jumpMissingClaims)
	var out []Finding
	for _, cause := range causes {
		ers := groups[cause]
		t, from := cause.Table, cause.Chain
		var tos, details, fixes []string
		f := Finding{
			ID:       "docker-jump-missing",
			Key:      KeyOf("docker-jump-missing", cause),
			Severity: SeverityError,
			Subject:  cause,
			Evidence: missingEvidence(a, ers, 10),
			Rules:    missingRefs(a, ers),
		}
		for _, er := range ers {
			to := parse.ChainName(er.Target)
			tos = append(tos, string(to))
			if d := jumpMissingDetail(a, t, from, to); !slices.Contains(details, d) {
				details = append(details, d)
			}
			fixes = append(fixes, jumpFix(a, er))
			if c := a.rs.Table(t).Chain(to); c != nil {
				f.Evidence = append(f.Evidence, fmt.Sprintf("chain %s exists with %d rules that nothing reaches from %s", to, len(c.Rules), from))
			}
		}
		f.Title = fmt.Sprintf("%s %s no longer jumps to %s%s", t, from, joinAnd(tos), a.famTitle())
		f.Detail = strings.Join(details, " ")
		f.Fix = "`sudo iptscope doctor --fix` restores " + count(len(ers), "the jump", "the %d jumps") + " at Docker's position. Or " +
			lowerFirst(restartFix(a)) + " By hand: " + strings.Join(fixes, ", ") + "."
		out = append(out, f)
	}
	return out
}

// jumpFix is the iptables command that puts the jump back where Docker
// keeps it.
func jumpFix(a analysis, er ExpectedRule) string {
	t, c := er.Table, er.Chain
	pos := 1
	for _, x := range a.exp.RulesOf(t, c) {
		if x.id == er.id {
			break
		}
		if a.diff.Got(x) != nil {
			pos++
		}
	}
	if c.IsBuiltin(t) && t == parse.TableNAT {
		// Why: Docker appends its nat jumps; other tools' rules may sit
		// above them, so append too.
		return fmt.Sprintf("`%s -t %s -A %s %s`", a.ipt(), t, c, er.Spec())
	}
	return fmt.Sprintf("`%s -t %s -I %s %d %s`", a.ipt(), t, c, pos, er.Spec())
}

func jumpMissingDetail(a analysis, t parse.TableName, from, to parse.ChainName) string {
	switch {
	case t == parse.TableNAT && from == parse.ChainPrerouting:
		if a.exp.Proxy.On() {
			return "Packets from other machines to published ports skip Docker's DNAT rules. With userland-proxy on they still reach docker-proxy on the host, which relays them: clients' addresses are lost and throughput drops. With the proxy off they would not answer at all."
		}
		return "Packets from other machines to published ports skip Docker's DNAT rules, and userland-proxy is off: published ports do not answer from outside."
	case t == parse.TableNAT && from == parse.ChainOutput:
		return "Connections from the host itself to its own addresses on published ports skip DNAT; they only work through docker-proxy (if it is on)."
	case to == ChainDockerUser:
		return "Administrators' rules in DOCKER-USER are no longer applied to forwarded traffic: any restriction kept there (allow-lists, drops) is silently off."
	case to == ChainDockerFwd || from == ChainDockerFwd:
		return "Forwarded traffic to and from containers never reaches Docker's accept rules and falls through to the FORWARD policy (typically DROP): published ports and container egress stop working."
	case to == ChainIsolation1:
		return "Traffic between Docker networks is no longer isolated."
	}
	return "Docker's rules in " + string(to) + " are never evaluated."
}
