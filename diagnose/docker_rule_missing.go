package diagnose

import (
	"fmt"
	"slices"
	"sort"

	"github.com/iptscope/iptscope/parse"
)

// dockerRuleMissing: one of Docker's rules that no other check covers is
// missing from a chain that exists. The other checks own the jumps, DNATs,
// port ACCEPTs, the per-network ACCEPTs and the MASQUERADE of a subnet;
// this one owns the rest, by what the rule does:
//
//   - protection: the isolation rules (DOCKER-ISOLATION-STAGE-1/2, an
//     --internal network's DROPs), icc=false's DROP, 28.x's
//     "DOCKER ! -i BR -o BR -j DROP". Without them traffic Docker blocks is
//     let through wherever the FORWARD policy or another rule accepts it.
//     Warning.
//   - nat DOCKER's "-i BR -j RETURN" (userland-proxy on): without it a
//     container's connection to another network's published port through
//     the host's address is DNAT'd across networks and dropped by the
//     isolation rules instead of reaching docker-proxy (seen on real 20.10:
//     times out; with the rule: 200 OK). Warning.
//   - hairpin MASQUERADEs (per port, and proxy-off's "-o BR --src-type
//     LOCAL"): with userland-proxy off the host's and a container's own
//     connections to a published port go through DNAT and need them for the
//     replies. Warning with the proxy off, info with it on (docker-proxy
//     carries that traffic).
//   - the RETURNs that end Docker's chains: evaluation falls off the end
//     of a user chain with the same result. Info.
//
// One finding per network (or chain) and class; --fix restores them all.
var dockerRuleMissing = Check{
	ID:       "docker-rule-missing",
	Title:    "One of Docker's other rules is missing",
	Severity: SeverityWarning,
	Run:      withNft(perFamily(dockerRuleMissingOf), nftRuleMissing),
	Repair:   Repair{Auto: true},
	Claims:   ruleMissingClaims,
}

// ruleMissingClaims: the rules of the classes below whose chains exist;
// one cause per network and class (per chain for the final RETURNs).
func ruleMissingClaims(a analysis, er ExpectedRule) (Subject, bool) {
	class, ok := classOf(er)
	if !ok || a.missingChain(er) {
		return Subject{}, false
	}
	fam := a.family()
	switch class {
	case classProtection:
		return Subject{Family: fam, Table: parse.TableFilter}, true
	case classNATReturn:
		return Subject{Family: fam, Table: parse.TableNAT, Chain: ChainDocker}, true
	case classHairpin:
		return Subject{Family: fam, Table: parse.TableNAT, Chain: parse.ChainPostrouting}, true
	}
	return Subject{Family: fam, Table: er.Table, Chain: er.Chain}, true
}

// ruleClass groups missing rules by consequence.
type ruleClass int

const (
	classProtection ruleClass = iota
	classNATReturn
	classHairpin
	classReturn
)

// classOf returns the class of a missing rule this check owns, or false.
func classOf(er ExpectedRule) (ruleClass, bool) {
	switch er.Kind {
	case KindIsolation:
		return classProtection, true
	case KindNetworkPath:
		if t := er.Target; t == parse.TargetDrop || t == parse.TargetReject {
			return classProtection, true
		}
	case KindNATReturn:
		return classNATReturn, true
	case KindHairpinMasq, KindPortMasq:
		return classHairpin, true
	case KindSkeleton:
		if !er.JumpsToChain() {
			return classReturn, true
		}
	}
	return 0, false
}

func dockerRuleMissingOf(_ *Env, a analysis) []Finding {
	causes, groups := claimedBy(a, ruleMissingClaims)
	sort.SliceStable(causes, func(i, j int) bool {
		ci, _ := classOf(groups[causes[i]][0])
		cj, _ := classOf(groups[causes[j]][0])
		if ci != cj {
			return ci < cj
		}
		if causes[i].Network != causes[j].Network {
			return causes[i].Network < causes[j].Network
		}
		return causes[i].Chain < causes[j].Chain
	})
	proxyOn := a.exp.Proxy.On()
	var out []Finding
	for _, cause := range causes {
		ers := groups[cause]
		first := ers[0]
		class, _ := classOf(first)
		var nets []string
		for _, er := range ers {
			if n := fmt.Sprintf("%s (%s)", er.Network, er.Bridge); er.Network != "" && !slices.Contains(nets, n) {
				nets = append(nets, n)
			}
		}
		net := "Network " + capList(nets, 3)
		if len(nets) > 1 {
			net = fmt.Sprintf("%d networks", len(nets))
		}
		f := Finding{
			ID:       "docker-rule-missing",
			Key:      KeyOf("docker-rule-missing", cause),
			Subject:  cause,
			Affected: affectedOf(a, ers),
			Rules:    missingRefs(a, ers),
		}
		if len(nets) == 1 {
			f.Subject.Network = first.Network
		}
		switch class {
		case classProtection:
			f.Severity = SeverityWarning
			f.Title = fmt.Sprintf("%s lost %s of Docker's isolation DROPs%s", net, count(len(ers), "one", "%d"), a.famTitle())
			f.Detail = "Docker's DROP rules keep this network's containers from reaching containers of other Docker networks " +
				"(isolation), an --internal network's traffic inside its bridge, containers of an icc=false network from " +
				"each other, and (28+) other machines from ports that are not published. Without them that traffic is let " +
				"through wherever the FORWARD policy or another rule accepts it. Published ports still work."
		case classNATReturn:
			if proxyOn {
				f.Severity = SeverityWarning
				f.Detail = "With userland-proxy on, nat DOCKER returns early for packets from the bridge so that a container's " +
					"connection to a published port on the host's address goes to docker-proxy. Without this rule the packet " +
					"is DNAT'd straight to the target container: to another network's container it is then dropped by the " +
					"isolation rules (the connection times out), and to its own network's it arrives without the hairpin " +
					"translation it needs."
			} else {
				f.Severity = SeverityInfo
				f.Detail = "nat DOCKER's early RETURN for packets from the bridge is missing; with userland-proxy off Docker's " +
					"DNAT rules match packets from the bridge anyway, so nothing changes for traffic."
			}
			f.Title = fmt.Sprintf("%s lost %s early RETURN in nat DOCKER%s", net, map[bool]string{true: "its", false: "their"}[len(nets) == 1], a.famTitle())
		case classHairpin:
			f.Title = fmt.Sprintf("%s lost %s hairpin MASQUERADE rule%s%s", net, count(len(ers), "a", "%d"), plural(len(ers)), a.famTitle())
			if proxyOn {
				f.Severity = SeverityInfo
				f.Detail = "These MASQUERADEs make replies to connections that go through DNAT from the host itself or from a " +
					"container to its own published port come back the same way. With userland-proxy on docker-proxy carries " +
					"that traffic, so nothing breaks until the proxy is turned off."
			} else {
				f.Severity = SeverityWarning
				f.Detail = "With userland-proxy off, the host's own connections to published ports and a container's connections " +
					"to its own published port go through DNAT; these MASQUERADEs make the replies come back the same way. " +
					"Without them such connections hang. Connections from other machines are not affected."
			}
		case classReturn:
			f.Severity = SeverityInfo
			f.Title = fmt.Sprintf("Docker's final RETURN is missing from %s %s%s", cause.Table, cause.Chain, a.famTitle())
			f.Detail = "Evaluation falls off the end of a user-defined chain with the same result as this RETURN, so nothing " +
				"changes for traffic; the chain differs from what Docker wrote."
		}
		f.Evidence = missingEvidence(a, ers, 10)
		f.Fix = restoreFix(a, ers, func(er ExpectedRule) string { return a.ipt() + " " + insertLine(a, er) })
		out = append(out, f)
	}
	return out
}

// capped keeps the first n lines of evidence and says how many more there
// are.
func capped(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(lines[:n:n], fmt.Sprintf("... and %d more", len(lines)-n))
}

// count renders n as one (n == 1) or with format many.
func count(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf(many, n)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
