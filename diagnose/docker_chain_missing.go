package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// dockerChainMissing: one of the chains Docker's layout needs is gone,
// typically after a firewall reload or `iptables -X`.
var dockerChainMissing = Check{
	ID:       "docker-chain-missing",
	Title:    "A chain Docker needs is missing",
	Severity: SeverityError,
	Run:      perFamily(chainMissing),
}

// chainMissing is docker-chain-missing for one family.
func chainMissing(_ *snapshot.Snapshot, a analysis) []Finding {
	var out []Finding
	for _, t := range parse.KnownTables {
		for _, c := range a.exp.Chains[t] {
			if a.chainExists(t, c) {
				continue
			}
			f := Finding{
				ID:       "docker-chain-missing",
				Severity: SeverityError,
				Title:    fmt.Sprintf("Chain %s of table %s is missing%s", c, t, a.famTitle()),
				Detail:   chainMissingDetail(a, t, c),
				Subject:  Subject{Table: string(t), Chain: string(c), Family: a.family()},
				Evidence: []string{fmt.Sprintf("%s -t %s -S %s: no such chain (Docker %s, %s layout)", a.ipt(), t, c, a.exp.Version, a.exp.Era)},
				Fix: restartFix(a) + " Until then `docker run -p` and network changes fail with " +
					"\"No chain/target/match by that name\". Stop whatever flushed the rules from doing it again " +
					"(a firewall service that restores a saved ruleset, `iptables -X`, `nft flush ruleset`).",
			}
			for _, r := range tableRules(a.rs.Table(t)) {
				if r.Target == parse.Target(c) {
					f.Evidence = append(f.Evidence, "dangling jump: "+a.evSave(saveLine(r)))
				}
			}
			n := 0
			for _, er := range a.exp.RulesOf(t, c) {
				n++
				if n <= 5 {
					f.Evidence = append(f.Evidence, "expected in it: "+a.evLine(er))
				}
			}
			if n > 5 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("... and %d more expected rules", n-5))
			}
			out = append(out, f)
		}
	}
	return out
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
