package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// dockerChainMissing: chains Docker's layout needs are gone, typically
// after a firewall reload or `iptables -X`. One finding per family, listing
// every missing chain: a reload that deleted all 16 of Docker's chains is
// one cause, not 16.
var dockerChainMissing = Check{
	ID:       "docker-chain-missing",
	Title:    "A chain Docker needs is missing",
	Severity: SeverityError,
	Run:      withNft(perFamily(chainMissing), nftChainMissing),
	Repair:   Repair{Auto: true},
	Claims:   chainMissingClaims,
}

// chainMissingClaims: every expected rule whose chain (or jump target) is
// missing; one cause per family.
func chainMissingClaims(a analysis, er ExpectedRule) (Subject, bool) {
	if !a.missingChain(er) {
		return Subject{}, false
	}
	return Subject{Family: a.family()}, true
}

// missingChains lists Docker's chains that the dump lacks, table by table.
func (a analysis) missingChains() []Subject {
	var out []Subject
	for _, t := range parse.KnownTables {
		for _, c := range a.exp.Chains[t] {
			if !a.chainExists(t, c) {
				out = append(out, Subject{Family: a.family(), Table: t, Chain: c})
			}
		}
	}
	return out
}

// chainMissing is docker-chain-missing for one family.
func chainMissing(_ *Env, a analysis) []Finding {
	missing := a.missingChains()
	if len(missing) == 0 {
		return nil
	}
	cause := Subject{Family: a.family()}
	f := Finding{
		ID:       "docker-chain-missing",
		Key:      KeyOf("docker-chain-missing", cause),
		Severity: SeverityError,
		Subject:  cause,
		Affected: missing,
		Fix: "`sudo iptscope doctor --fix` creates the chains and puts back Docker's rules in them. Or " + lowerFirst(restartFix(a)) +
			" Until then `docker run -p` and network changes fail with " +
			"\"No chain/target/match by that name\". Stop whatever flushed the rules from doing it again " +
			"(a firewall service that restores a saved ruleset, `iptables -X`, `nft flush ruleset`).",
	}
	var names []string
	var details []string
	nexp := 0
	for _, m := range missing {
		names = append(names, string(m.Table)+" "+string(m.Chain))
		if d := chainMissingDetail(a, m.Table, m.Chain); !slices.Contains(details, d) {
			details = append(details, d)
		}
		f.Evidence = append(f.Evidence, fmt.Sprintf("%s -t %s -S %s: no such chain (Docker %s, %s layout)", a.ipt(), m.Table, m.Chain, a.exp.Version, a.exp.Era))
		for _, r := range tableRules(a.rs.Table(m.Table)) {
			if r.Target == parse.Target(m.Chain) {
				f.Evidence = append(f.Evidence, "dangling jump: "+a.evSave(saveLine(r)))
				f.Rules = append(f.Rules, ruleRef(a.family(), "dangling-jump", r))
			}
		}
		ers := a.exp.RulesOf(m.Table, m.Chain)
		nexp += len(ers)
		for i, er := range ers {
			if i < 3 && len(missing) <= 2 {
				f.Evidence = append(f.Evidence, "expected in it: "+a.evLine(er))
			}
		}
		f.Rules = append(f.Rules, missingRefs(a, ers)...)
	}
	f.Evidence = capped(f.Evidence, 12)
	total := 0
	for _, t := range parse.KnownTables {
		total += len(a.exp.Chains[t])
	}
	switch {
	case len(missing) == 1:
		f.Subject = missing[0]
		f.Title = fmt.Sprintf("Chain %s of table %s is missing%s", missing[0].Chain, missing[0].Table, a.famTitle())
	case len(missing) == total:
		f.Title = fmt.Sprintf("All %d of Docker's chains are missing%s: the firewall was flushed", total, a.famTitle())
	default:
		f.Title = fmt.Sprintf("%d of Docker's %d chains are missing%s: %s", len(missing), total, a.famTitle(), capList(names, 4))
	}
	f.Detail = strings.Join(details, " ")
	if nexp > 0 {
		f.Detail += fmt.Sprintf(" %s of Docker's rules lived in them.", thousands(nexp))
	}
	return []Finding{f}
}

// capList joins the first n names and says how many more there are.
func capList(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

func chainMissingDetail(a analysis, t parse.TableName, c parse.ChainName) string {
	switch {
	case t == parse.TableNAT && c == ChainDocker:
		if a.exp.Proxy.On() {
			return "Published ports have no DNAT rule. With userland-proxy on (" + a.exp.Proxy.Source + ") they still " +
				"answer through docker-proxy on the host, but containers see the bridge gateway instead of the client's " +
				"address and every connection is copied through a userspace process; published ports bound to a " +
				"specific address or served to other containers may not answer at all."
		}
		return "Published ports have no DNAT rule and userland-proxy is off (" + a.exp.Proxy.Source + "): no published port answers."
	case c == ChainDockerUser:
		return "Docker's FORWARD hook for administrators' rules is gone: any policy kept in DOCKER-USER is no longer applied, and Docker's own FORWARD jump to it cannot be restored."
	case c == ChainDockerFwd || c == ChainDockerCT || c == ChainDockerBridge:
		return "Docker 28's forwarding chains are incomplete: forwarded traffic to and from containers falls through to the FORWARD policy, typically DROP, so published ports and container egress stop working."
	case c == ChainIsolation1 || c == ChainIsolation2 || c == ChainDockerIntern:
		return "Network isolation is incomplete: containers on different Docker networks (or internal networks) may reach each other, and the jump to this chain blocks forwarding if it still exists."
	case t == parse.TableFilter && c == ChainDocker:
		return "The filter DOCKER chain admits published ports to their containers: without it, traffic to published ports is dropped by the FORWARD policy."
	}
	return "Docker's rules in this chain are gone."
}
