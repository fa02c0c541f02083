package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftPortPackets are the published ports of the nftables-backend host as
// packets on the forward hook (the DNATs Docker writes), one per
// (container, binding), IPv4 and IPv6.
type nftPortPacket struct {
	rule NftRule
	ip   string
}

func nftPortPackets(a nftAnalysis, s *snapshot.Snapshot) []nftPortPacket {
	var out []nftPortPacket
	for _, r := range a.exp.Rules {
		if r.Kind != KindDNAT || r.Port == nil || isLoopback(r.Port.HostIP) {
			continue
		}
		ip := ""
		for _, c := range s.Docker.Containers {
			if c.Name != r.Container {
				continue
			}
			for _, ep := range c.Endpoints {
				if ep.Network == r.Network {
					ip = epIP(ep, a.family())
				}
			}
		}
		if ip == "" {
			continue
		}
		out = append(out, nftPortPacket{rule: r, ip: ip})
	}
	return out
}

// nftForwardBlocked is forward-blocked on the nftables backend: an
// iptables filter FORWARD chain (iptables-nft or legacy: each is a base
// chain of its own on the forward hook) whose DROP policy drops what
// docker-bridges accepts. Typical after switching Docker from iptables to
// nftables: the old daemon's `-P FORWARD DROP` stays (docker-facts.md
// §2.5) and Docker's nftables backend writes no iptables rule to admit
// its traffic. One finding per family and iptables backend.
func nftForwardBlocked(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		byWhy := map[string]*Finding{}
		var order []string
		for _, pp := range nftPortPackets(a, env.S) {
			// The engine decides that the port is dead there; the
			// chain's description says why in words.
			j := env.judgementOf(pp.rule.Container, *pp.rule.Port)
			if j == nil || j.path != PathBroken || j.stop.table != string(parse.TableFilter) || j.stop.chain != string(parse.ChainForward) {
				continue
			}
			backend, why := iptablesForwardDrop(env.S, a.family(), pp.rule.Bridge)
			if why == "" {
				backend, why = iptablesBackendOf(env.S, a.family()), stopText(j.stop)
			}
			f := byWhy[why]
			if f == nil {
				ipt := "iptables"
				if a.family() == snapshot.FamilyIPv6 {
					ipt = "ip6tables"
				}
				f = &Finding{ID: "forward-blocked", Severity: SeverityError,
					Subject: Subject{Family: a.family(), Table: "filter", Chain: "FORWARD", Rule: why},
					Title:   fmt.Sprintf("%s drops the traffic Docker's nftables table accepts", upperFirst(why)),
					Detail: "Docker uses its nftables backend and writes no iptables rule, but iptables' filter FORWARD is a base chain of its own on the " +
						"same forward hook: a packet must be accepted by every base chain, so its DROP drops every connection to the published ports " +
						"(and the containers' outbound traffic), whatever docker-bridges accepts. Typically left by an iptables-mode Docker before the switch.",
					Evidence: []string{fmt.Sprintf("%s-%s-save: filter FORWARD: %s", ipt, backend, why)},
					Fix: fmt.Sprintf("If nothing else on the host needs it: `%s -P FORWARD ACCEPT` (with the %s backend), and remove it from the saved "+
						"ruleset that restores it (/etc/iptables/rules.v4, /etc/sysconfig/iptables). Or admit Docker's bridges there: `%s -I FORWARD -o BRIDGE -j ACCEPT` "+
						"and `%s -I FORWARD -i BRIDGE -j ACCEPT`.", ipt, backend, ipt, ipt),
				}
				byWhy[why] = f
				order = append(order, why)
			}
			f.Affected = append(f.Affected, Subject{Family: a.family(), Network: pp.rule.Network, Container: pp.rule.Container, Port: nftPortName(pp.rule.Port)})
		}
		for _, w := range order {
			out = append(out, *byWhy[w])
		}
	}
	return out
}

// nftUserDrop is docker-user-drop on the nftables backend: a user's own
// table (table inet myfw, firewalld's, ufw's) with a base chain on the
// forward hook that drops connections to a published port. Docker's
// nftables backend has no DOCKER-USER: such tables are where users put
// their policy, and an accept there cannot undo Docker's drops nor a drop
// there be undone by Docker's accepts (each base chain must accept). Info,
// like DOCKER-USER drops: deliberate, never repaired. One finding per rule.
func nftUserDrop(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		byRule := map[string]*Finding{}
		var order []string
		for _, pp := range nftPortPackets(a, env.S) {
			// The engine decides which rule stops the port; a foreign
			// table's is the administrator's.
			j := env.judgementOf(pp.rule.Container, *pp.rule.Port)
			if j == nil || j.path != PathBroken {
				continue
			}
			d := nftForeignStop(env.S, j.stop)
			if d == nil {
				continue
			}
			key := d.describe()
			f := byRule[key]
			if f == nil {
				f = &Finding{ID: "docker-user-drop", Severity: SeverityInfo,
					Subject: Subject{Family: a.family(), Table: parseTable(d.table.Name), Chain: parseChain(d.chain.Name)},
					Title:   fmt.Sprintf("Table %s %s drops connections to published ports (%s)", d.table.Family, d.table.Name, key),
					Detail: "A base chain of a table that is not Docker's, on the forward hook, drops connections to published ports after DNAT. " +
						"With Docker's nftables backend this is where an administrator's policy lives (there is no DOCKER-USER), so it is taken as " +
						"deliberate; the ports it reaches are dead from outside. An accept in another table cannot undo it.",
					Evidence: []string{key},
					Fix:      fmt.Sprintf("If it is not meant to: change or delete the rule in table %s %s (`nft -a list chain %s %s %s` shows its handle).", d.table.Family, d.table.Name, d.table.Family, d.table.Name, d.chain.Name),
				}
				if d.rule != nil {
					f.Subject.Rule = d.rule.Spec()
					f.Rules = []RuleRef{nftRuleRef(a.family(), "blocking", d.rule)}
				} else {
					f.Subject.Rule = "policy drop"
				}
				byRule[key] = f
				order = append(order, key)
			}
			f.Affected = append(f.Affected, Subject{Family: a.family(), Network: pp.rule.Network, Container: pp.rule.Container, Port: nftPortName(pp.rule.Port)})
		}
		for _, k := range order {
			out = append(out, *byRule[k])
		}
	}
	return out
}

// nftForeignStop is the rule (or policy) of a table that is neither
// Docker's nor iptables' where the engine's trace stopped, or nil.
func nftForeignStop(s *snapshot.Snapshot, st ruleStop) *nftForeignDrop {
	if !s.NftRead() || st.table == "" {
		return nil
	}
	for _, t := range s.Nftables.Ruleset.Tables {
		if string(t.Family)+" "+t.Name != st.table || t.Name == NftDockerTable || t.HasXT() {
			continue
		}
		var c *nft.Chain
		for _, ch := range t.Chains {
			if ch.Name == st.chain {
				c = ch
			}
		}
		if c == nil {
			return nil
		}
		d := &nftForeignDrop{table: t, chain: c, in: c}
		if !c.IsBase() {
			for _, b := range t.BaseChains() {
				if b.Hook == "forward" {
					d.chain = b
					break
				}
			}
		}
		if st.rule > 0 && st.rule <= len(c.Rules) {
			d.rule = c.Rules[st.rule-1]
		}
		return d
	}
	return nil
}

// stopText names a rule of a trace: "rule 2 of filter FORWARD", "the
// policy of filter FORWARD".
func stopText(st ruleStop) string {
	if st.rule == 0 {
		return "the policy of " + st.table + " " + st.chain
	}
	return fmt.Sprintf("rule %d of %s %s", st.rule, st.table, st.chain)
}

// iptablesBackendOf is the backend of the iptables dump of a family that
// holds a filter FORWARD chain ("nft" or "legacy").
func iptablesBackendOf(s *snapshot.Snapshot, family string) string {
	for _, d := range s.Rules {
		if d.Family == family && d.Ruleset != nil && d.Ruleset.Table(parse.TableFilter).Chain(parse.ChainForward) != nil {
			return strings.ToLower(d.Backend)
		}
	}
	return "nft"
}
