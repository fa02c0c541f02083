package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
)

// The nftables forms of the checks that report Docker's missing or stale
// rules (docker-facts.md §2.5). Each is hooked into its check's Run with
// withNft; the IDs mean the same as on iptables.

func parseChain(s string) parse.ChainName { return parse.ChainName(s) }
func parseTable(s string) parse.TableName { return parse.TableName(s) }

// nftRestartFix is the by-hand repair of Docker's nftables table: a
// restart of dockerd rewrites it whole (29 rebuilds docker-bridges at
// start; with live-restore the containers keep running).
const nftRestartFix = "restart Docker (`sudo systemctl restart docker`; with \"live-restore\": true the containers keep running): it rewrites table docker-bridges whole."

// nftChainMissing is docker-chain-missing on the nftables backend: the
// table docker-bridges, a base chain, a per-bridge chain or a verdict map
// is gone. One finding per family.
func nftChainMissing(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		chains, maps := a.missingChains(), a.missingMaps()
		if len(chains) == 0 && len(maps) == 0 {
			continue
		}
		cause := Subject{Family: a.family(), Table: NftDockerTable}
		f := Finding{ID: "docker-chain-missing", Severity: SeverityError, Subject: cause}
		for _, c := range chains {
			f.Affected = append(f.Affected, Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(c.Name), Network: c.Network})
		}
		for _, m := range maps {
			f.Affected = append(f.Affected, Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(m)})
		}
		tbl := string(a.exp.Family) + " " + NftDockerTable
		if a.table == nil {
			f.Title = fmt.Sprintf("Docker's nftables table %s is gone", tbl)
			f.Detail = fmt.Sprintf("Docker %s writes every rule of its nftables firewall backend into table %s: without it no published port is DNATed (with the userland proxy on, docker-proxy still answers, without the client's address), containers' outbound traffic is not masqueraded, and direct access to container addresses is not dropped. Docker does not notice: the next container start recreates only part of the table (empty maps, no base chains), so ports stay dead until Docker rebuilds it.", a.exp.Version, tbl)
			f.Evidence = append(f.Evidence, "nft list table "+tbl+": no such table")
		} else {
			var names []string
			for _, c := range chains {
				names = append(names, "chain "+c.Name)
			}
			for _, m := range maps {
				names = append(names, "map "+m)
			}
			f.Title = fmt.Sprintf("Docker's nftables table %s lacks %s", tbl, strings.Join(names, ", "))
			f.Detail = "Docker's nftables table is incomplete: what the missing chains and maps do (NAT of published ports, filtering per bridge, masquerading) no longer happens, and Docker fails to change rules in them when containers start or stop."
			for _, n := range names {
				f.Evidence = append(f.Evidence, "nft list table "+tbl+": no "+n)
			}
		}
		for _, r := range a.exp.Rules {
			if a.chain(r.Chain) == nil {
				f.Rules = append(f.Rules, nftMissingRef(a, r))
			}
		}
		f.Fix = nftRestartFix + " Stop whatever deleted it from doing it again (`nft flush ruleset` in a firewall script or unit)."
		out = append(out, f)
	}
	return out
}

// nftJumpMissing is docker-jump-missing on the nftables backend: a base
// chain's vmap lookup or jump, or a bridge's verdict-map element, is gone,
// so Docker's per-bridge chain (or the DNAT chain) is never reached.
func nftJumpMissing(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		for _, r := range a.missingRules(KindJump) {
			f := Finding{ID: "docker-jump-missing", Severity: SeverityError, Subject: nftSubject(a, r.Chain),
				Title:  fmt.Sprintf("Docker's base chain %s %s %s lacks its rule `%s`", a.exp.Family, NftDockerTable, r.Chain, r.Spec),
				Detail: "Without it the chains Docker reaches from this hook are never entered: " + nftJumpEffect(r.Chain),
				Rules:  []RuleRef{nftMissingRef(a, r)},
				Fix:    nftRestartFix + " Or put the rule back: `nft add rule " + string(a.exp.Family) + " " + NftDockerTable + " " + r.Chain + " " + r.Spec + "`.",
			}
			f.Subject.Rule = r.Spec
			f.Evidence = []string{"missing: " + nftEvidence(a.exp.Family, NftDockerTable, r.Chain, r.Spec)}
			out = append(out, f)
		}
		for _, el := range a.missingElements() {
			f := Finding{ID: "docker-jump-missing", Severity: SeverityError,
				Subject: Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(el.Target), Network: el.Network},
				Title:   fmt.Sprintf("Docker's verdict map %s %s %s lacks the element %q : jump %s", a.exp.Family, NftDockerTable, el.Map, el.Key, el.Target),
				Detail:  fmt.Sprintf("Chain %s of network %s is never reached: %s", el.Target, el.Network, nftElementEffect(el.Map)),
				Fix: nftRestartFix + fmt.Sprintf(" Or put the element back: `nft add element %s %s %s { %q : jump %s }`.",
					a.exp.Family, NftDockerTable, el.Map, el.Key, el.Target),
			}
			f.Evidence = []string{fmt.Sprintf("nft list map %s %s %s: no element %q", a.exp.Family, NftDockerTable, el.Map, el.Key)}
			out = append(out, f)
		}
	}
	return out
}

func nftJumpEffect(chain string) string {
	switch chain {
	case NftFilterForward:
		return "no per-bridge filtering (the hook's policy accepts: unpublished container ports are reachable from outside, ICC settings do not apply)."
	case NftNATPrerouting:
		return "no published port is DNATed for other machines (with the userland proxy on, docker-proxy still answers, without the client's address)."
	case NftNATOutput:
		return "connections from the host itself to its published ports are not DNATed (docker-proxy may still answer them)."
	case NftNATPostrouting:
		return "containers' outbound traffic is not masqueraded, or hairpin connections are not."
	}
	return "Docker's rules behind it do not apply."
}

func nftElementEffect(m string) string {
	switch m {
	case NftMapFwdIn:
		return "traffic into the bridge is no longer filtered (the forward hook's policy accepts): unpublished ports of its containers are reachable from outside, ICC settings do not apply."
	case NftMapFwdOut:
		return "traffic out of the bridge is accepted by the hook's policy instead of Docker's rules (an internal network is no longer cut off)."
	case NftMapPostOut:
		return "the network's outbound traffic is not masqueraded: containers cannot reach other networks."
	case NftMapPostIn:
		return "hairpin and host-to-container connections to published ports are not masqueraded (userland proxy off)."
	}
	return "its rules do not apply."
}

// nftDNATMissing is dnat-missing on the nftables backend: published
// ports' DNATs are not in nat-prerouting-and-output (which exists). One
// finding per family, as on iptables: `affected` lists the ports.
func nftDNATMissing(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		miss := a.missingRules(KindDNAT)
		if len(miss) == 0 {
			continue
		}
		f := Finding{ID: "dnat-missing", Severity: SeverityError, Subject: nftSubject(a, NftNATPreAndOutput), Detail: nftDNATEffect(a), Fix: nftRestartFix}
		var ports []string
		for _, r := range miss {
			port := nftPortName(r.Port)
			ports = append(ports, port+" of "+r.Container)
			f.Affected = append(f.Affected, Subject{Family: a.family(), Table: NftDockerTable, Chain: NftNATPreAndOutput, Network: r.Network, Container: r.Container, Port: port})
			f.Rules = append(f.Rules, nftMissingRef(a, r))
			f.Evidence = append(f.Evidence, "missing: "+nftEvidence(a.exp.Family, NftDockerTable, NftNATPreAndOutput, r.Spec))
		}
		if len(miss) == 1 {
			f.Title = fmt.Sprintf("Published port %s has no DNAT rule in %s %s %s", ports[0], a.exp.Family, NftDockerTable, NftNATPreAndOutput)
			f.Fix += " Or put the rule back: `nft add rule " + string(a.exp.Family) + " " + NftDockerTable + " " + NftNATPreAndOutput + " " + miss[0].Spec + "`."
		} else {
			f.Title = fmt.Sprintf("%d published ports have no DNAT rule in %s %s %s", len(miss), a.exp.Family, NftDockerTable, NftNATPreAndOutput)
		}
		out = append(out, f)
	}
	return out
}

func nftDNATEffect(a nftAnalysis) string {
	if a.exp.Proxy.On() {
		return "Connections from other machines are not translated to the container: docker-proxy still answers on the host port, so the port works, but the container sees the bridge gateway instead of the client, and the port dies when the proxy does."
	}
	return "Connections from other machines to this port are not translated to the container and are refused: the port is dead from outside."
}

// nftDNATStale is dnat-stale on the nftables backend: a DNAT in
// nat-prerouting-and-output that no running container publishes.
func nftDNATStale(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		for _, r := range a.staleDNATs() {
			n, _ := r.NAT()
			f := Finding{ID: "dnat-stale", Severity: SeverityError,
				Subject:  Subject{Family: a.family(), Table: NftDockerTable, Chain: NftNATPreAndOutput, Rule: r.Spec()},
				Title:    fmt.Sprintf("A DNAT rule in %s %s %s sends traffic to %s, which no running container publishes", a.exp.Family, NftDockerTable, NftNATPreAndOutput, n.Addr+":"+n.Port),
				Detail:   "A rule above or beside Docker's sends matching connections to an address and port that no container publishes: those connections fail (the first DNAT that matches wins).",
				Rules:    []RuleRef{nftRuleRef(a.family(), "stale", r)},
				Evidence: []string{fmt.Sprintf("stale (handle %d): %s", r.Handle, nftEvidence(a.exp.Family, NftDockerTable, NftNATPreAndOutput, r.Spec()))},
				Fix:      fmt.Sprintf("`nft delete rule %s %s %s handle %d`, then find what added it.", a.exp.Family, NftDockerTable, NftNATPreAndOutput, r.Handle),
			}
			out = append(out, f)
		}
	}
	return out
}

// nftMasqMissing is masquerade-missing on the nftables backend: a
// network's "MASQUERADE" rule is not in its nat-postrouting-out chain.
func nftMasqMissing(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		for _, r := range a.missingRules(KindMasquerade) {
			f := Finding{ID: "masquerade-missing", Severity: SeverityError,
				Subject:  Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(r.Chain), Network: r.Network},
				Title:    fmt.Sprintf("Network %s has no outbound MASQUERADE in %s %s %s", r.Network, a.exp.Family, NftDockerTable, r.Chain),
				Detail:   "Its containers' connections to other networks and the Internet leave with their private addresses and get no answer.",
				Rules:    []RuleRef{nftMissingRef(a, r)},
				Evidence: []string{"missing: " + nftEvidence(a.exp.Family, NftDockerTable, r.Chain, r.Spec)},
				Fix:      nftRestartFix + " Or put the rule back: `nft add rule " + string(a.exp.Family) + " " + NftDockerTable + " " + r.Chain + " " + r.Spec + "`.",
			}
			out = append(out, f)
		}
	}
	return out
}

// nftRawDropMissing is raw-drop-missing on the nftables backend: a
// "DROP DIRECT ACCESS" or "DROP REMOTE LOOPBACK" rule of raw-PREROUTING
// is gone. One finding per family.
func nftRawDropMissing(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		miss := a.missingRules(KindRawEndpoint, KindRawLoopback)
		if len(miss) == 0 {
			continue
		}
		f := Finding{ID: "raw-drop-missing", Severity: SeverityWarning, Subject: nftSubject(a, NftRawPrerouting),
			Title:  fmt.Sprintf("%d of Docker's direct-access DROP rules are missing from %s %s %s", len(miss), a.exp.Family, NftDockerTable, NftRawPrerouting),
			Detail: "Hosts on the same link can reach containers' addresses (and 127.0.0.1-bound ports) directly, past the published-port rules.",
			Fix:    nftRestartFix,
		}
		for _, r := range miss {
			f.Affected = append(f.Affected, Subject{Family: a.family(), Table: NftDockerTable, Chain: NftRawPrerouting, Network: r.Network, Container: r.Container, Port: nftPortName(r.Port)})
			f.Rules = append(f.Rules, nftMissingRef(a, r))
			f.Evidence = append(f.Evidence, "missing: "+nftEvidence(a.exp.Family, NftDockerTable, NftRawPrerouting, r.Spec))
		}
		out = append(out, f)
	}
	return out
}

// nftRuleMissing is docker-rule-missing on the nftables backend: Docker's
// other rules (per-bridge filtering, the per-port accepts, the hairpin
// masquerades) missing from chains that exist. One finding per chain.
func nftRuleMissing(env *Env) []Finding {
	var out []Finding
	for _, a := range nftAnalyses(env) {
		miss := a.missingRules(KindNetworkPath, KindPortAccept, KindHairpinMasq, KindPortMasq)
		byChain := map[string][]NftRule{}
		var order []string
		for _, r := range miss {
			if byChain[r.Chain] == nil {
				order = append(order, r.Chain)
			}
			byChain[r.Chain] = append(byChain[r.Chain], r)
		}
		for _, ch := range order {
			rs := byChain[ch]
			f := Finding{ID: "docker-rule-missing", Severity: SeverityError,
				Subject: Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(ch), Network: rs[0].Network},
				Fix:     nftRestartFix,
			}
			empty := a.chain(ch) != nil && len(a.chain(ch).Rules) == 0
			what := fmt.Sprintf("%d of Docker's rules are", len(rs))
			if len(rs) == 1 {
				what = "one of Docker's rules is"
			}
			if empty {
				f.Title = fmt.Sprintf("Docker's chain %s %s %s of network %s is empty", a.exp.Family, NftDockerTable, ch, rs[0].Network)
			} else {
				f.Title = fmt.Sprintf("%s missing from %s %s %s (network %s)", what, a.exp.Family, NftDockerTable, ch, rs[0].Network)
			}
			f.Title = upperFirst(f.Title)
			f.Detail = nftRulesEffect(ch, rs)
			for _, r := range rs {
				f.Rules = append(f.Rules, nftMissingRef(a, r))
				f.Evidence = append(f.Evidence, "missing: "+nftEvidence(a.exp.Family, NftDockerTable, ch, r.Spec))
				if r.Port != nil {
					f.Affected = append(f.Affected, Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(ch), Network: r.Network, Container: r.Container, Port: nftPortName(r.Port)})
				}
			}
			out = append(out, f)
		}
	}
	return out
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func nftRulesEffect(chain string, rs []NftRule) string {
	switch {
	case strings.HasPrefix(chain, "filter-forward-in__"):
		for _, r := range rs {
			if strings.Contains(r.Spec, "UNPUBLISHED PORT DROP") || strings.Contains(r.Spec, "INTERNAL NETWORK INGRESS") {
				return "Traffic into the bridge is no longer filtered by Docker: the forward hook's policy accepts it, so every port of its containers (published or not) is reachable from outside, and ICC settings do not apply."
			}
		}
		return "Connections to the published ports of this network lose Docker's accept; with Docker's drop still in place they are dropped."
	case strings.HasPrefix(chain, "filter-forward-out__"):
		return "Traffic out of the bridge is no longer judged by Docker's rules (the hook's policy accepts it): an internal network is no longer cut off."
	case strings.HasPrefix(chain, "nat-postrouting-in__"):
		return "Connections from the host and from containers to published ports of this network are not masqueraded (userland proxy off): hairpin connections fail."
	}
	return "Docker's rules in this chain do not apply."
}

// nftDockerRule reports whether r is one of Docker's nftables rules of
// the analysis (what other checks must not call a user's).
func (a nftAnalysis) isDockers(r *nft.Rule) bool { return a.expected[r.Chain][r.Spec()] }
