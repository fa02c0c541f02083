package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// forwardBlocked: a DROP or REJECT in filter FORWARD, above the rules
// through which Docker admits traffic, that matches traffic to or from
// Docker's bridges. Typical after a host firewall reload that restores a
// saved ruleset ending in "-A FORWARD -j REJECT" (RHEL's iptables.service
// default) and after tools that insert their FORWARD rules at the top
// (docker-facts.md field failures 1 and 5).
//
//	FORWARD: -j REJECT          <- matches first: containers cut off
//	         -j DOCKER-USER
//	         -j DOCKER-FORWARD  (28+) / per-bridge ACCEPTs (20.10-27)
//
// Only rules whose every match is about Docker are reported: no address or
// interface match at all (everything), or -i/-o naming a Docker bridge, or
// -s/-d inside a Docker network's subnet; other matches limited to -p,
// comments and "--ctstate NEW". Anything narrower (ports, marks, a source
// outside Docker's networks, negations) is the admin's policy, not a
// blockage iptscope can prove: no finding.
var forwardBlocked = Check{
	ID:       "forward-blocked",
	Title:    "A FORWARD rule ahead of Docker's drops container traffic",
	Severity: SeverityError,
	Repair:   Repair{Manual: "the blocking rule is not Docker's: change the firewall configuration that adds it"},
	Run:      withNft(perFamily(forwardBlockedOf), nftForwardBlocked),
}

// forwardBlockedOf is forward-blocked for one family's rules.
func forwardBlockedOf(env *Env, a analysis) []Finding {
	s := env.S
	_ = s
	fwd := a.rs.Table(parse.TableFilter).Chain(parse.ChainForward)
	if fwd == nil {
		return nil
	}
	docker := make(map[*parse.Rule]bool, len(a.diff.Found))
	for _, r := range a.diff.Found {
		docker[r] = true
	}
	nets := bridgeNets(s, a.exp.Family)
	// The engine's verdicts: the published ports whose connection from
	// another machine a FORWARD rule stops (the ports table's broken).
	// Why lazily: most hosts have no foreign DROP in FORWARD (and a
	// check run alone, as in a test, need not trace every port).
	var stopped map[int][]Subject
	var out []Finding
	for _, r := range fwd.Rules {
		if docker[r] || (r.Target != parse.TargetDrop && r.Target != parse.TargetReject) {
			continue
		}
		if stopped == nil {
			stopped = env.stoppedBy(a.family(), string(parse.TableFilter), string(parse.ChainForward))
		}
		ports := stopped[r.Position]
		scoped := dockerScoped(r)
		if !scoped && len(ports) == 0 {
			continue
		}
		var hit []string
		var first *parse.Rule
		for _, n := range nets {
			if !scoped && !slices.ContainsFunc(ports, func(p Subject) bool { return p.Network == n.net.Name }) {
				continue
			}
			if scoped && !ruleHitsNet(r, n) {
				continue
			}
			b := admitRule(a, n.bridge)
			if b != nil && b.Position < r.Position {
				continue // Docker's rules for this bridge come first
			}
			hit = append(hit, n.net.Name+" ("+n.bridge+")")
			if first == nil || (b != nil && b.Position < first.Position) {
				first = b
			}
		}
		if len(hit) == 0 {
			continue
		}
		ev := []string{fmt.Sprintf("rule %d of filter FORWARD: %s", r.Position, a.evSave(r.SaveLine(false)))}
		if first != nil {
			ev = append(ev, fmt.Sprintf("Docker's rule %d of filter FORWARD, reached only after it: %s", first.Position, first.SaveLine(false)))
		} else {
			ev = append(ev, "no Docker rule admits these networks' traffic in filter FORWARD at all")
		}
		if r.Counters != nil && r.Counters.Packets > 0 {
			ev = append(ev, fmt.Sprintf("it has matched %d packets", r.Counters.Packets))
		}
		if len(ports) > 0 {
			ev = append(ev, fmt.Sprintf("a connection from another machine to %s stops at this rule (`iptscope trace` shows the path)", portsList(ports, 6)))
		}
		verb := "drops"
		if r.Target == parse.TargetReject {
			verb = "rejects"
		}
		out = append(out, Finding{
			ID:       "forward-blocked",
			Severity: SeverityError,
			Title:    fmt.Sprintf("Rule %d of FORWARD %s traffic of Docker networks before Docker's rules see it%s", r.Position, verb, a.famTitle()),
			Detail: "Forwarded packets to and from containers on " + strings.Join(hit, ", ") + " match this rule before any " +
				"of Docker's FORWARD rules: published ports do not answer from other machines and containers cannot reach " +
				"anything outside the host (replies to host-local connections through docker-proxy still work). This is " +
				"what a firewall reload that restores a saved ruleset, or a tool that inserts its rules at the top of " +
				"FORWARD, leaves behind.",
			Subject:  Subject{Table: "filter", Chain: "FORWARD", Family: a.family()},
			Affected: ports,
			Evidence: ev,
			Fix: "Delete the rule (`" + a.ipt() + " -D FORWARD " + r.Spec() + "`) or move it below Docker's rules, and fix " +
				"the saved ruleset or tool that put it there (/etc/sysconfig/iptables, /etc/iptables/rules.v4, an nftables " +
				"or firewall script). To filter container traffic, put rules in DOCKER-USER instead: Docker keeps that " +
				"chain first. iptscope does not remove it: it is not Docker's rule.",
		})
	}
	return out
}

// dockerScoped reports whether every match of r other than addresses and
// interfaces is one that does not narrow it below "all traffic" of a kind:
// the protocol, comments, and conntrack/state NEW.
func dockerScoped(r *parse.Rule) bool {
	if r.Protocol.Negated || r.Source.Negated || r.Destination.Negated || r.InIface.Negated || r.OutIface.Negated || !r.Fragment.IsZero() {
		return false
	}
	for _, m := range r.Matches {
		switch m.Name {
		case "comment":
		case "conntrack", "state":
			for _, o := range m.Options {
				if (o.Name != "ctstate" && o.Name != "state") || o.Negated || o.Value() != "NEW" {
					return false
				}
			}
		default:
			// "-p tcp -m tcp" with no port option still matches all TCP.
			if portMatches(m.Name) && len(m.Options) == 0 {
				continue
			}
			return false
		}
	}
	return true
}

// ruleHitsNet reports whether r's interface and address matches all point
// at network n (each one absent, or naming its bridge or overlapping its
// subnet). Callers check negations first.
func ruleHitsNet(r *parse.Rule, n *bridgeNet) bool {
	for _, ifc := range []parse.Negatable{r.InIface, r.OutIface} {
		if !ifc.IsZero() && !ifaceMatches(ifc.Value, n.bridge) {
			return false
		}
	}
	for _, addr := range []parse.Negatable{r.Source, r.Destination} {
		if !addr.IsZero() && !inSubnet(addr.Value, n.subnet) {
			return false
		}
	}
	return true
}

// ifaceMatches applies iptables' interface pattern ("br-+" matches every
// name starting with "br-") to name.
func ifaceMatches(pattern, name string) bool {
	if p, ok := strings.CutSuffix(pattern, "+"); ok {
		return strings.HasPrefix(name, p)
	}
	return pattern == name
}

// inSubnet reports whether an -s/-d value overlaps subnet ("" never does).
func inSubnet(value, subnet string) bool {
	if subnet == "" {
		return false
	}
	p, err := netip.ParsePrefix(parse.CanonicalAddr(value))
	if err != nil {
		return false
	}
	sn, err := netip.ParsePrefix(subnet)
	return err == nil && p.Overlaps(sn)
}

// admitRule returns the first of Docker's rules in filter FORWARD that
// lets bridge's traffic through (the DOCKER-FORWARD jump on 28+, the
// bridge's own rules on 20.10-27), nil when none is there. The
// DOCKER-USER and isolation jumps admit nothing (they return).
func admitRule(a analysis, bridge string) *parse.Rule {
	var first *parse.Rule
	for _, er := range a.exp.RulesOf(parse.TableFilter, parse.ChainForward) {
		got := a.diff.Got(er)
		if got == nil {
			continue
		}
		if er.Target != parse.Target(ChainDockerFwd) && er.Bridge != bridge {
			continue
		}
		if first == nil || got.Position < first.Position {
			first = got
		}
	}
	return first
}
