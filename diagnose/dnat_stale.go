package diagnose

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// dnatStale: a DNAT rule in nat DOCKER that Docker's view does not
// account for: it points at an address no running container has, at a
// port the container does not publish, or it sits above the right rule and
// shadows it.
var dnatStale = Check{
	ID:       "dnat-stale",
	Title:    "A DNAT rule sends traffic to the wrong place",
	Severity: SeverityError,
	Repair:   Repair{PerFinding: true, Manual: "the rule's target is a running container and it takes no port Docker maps elsewhere: it cannot be proven stale, so it is left alone"},
	Run: func(env *Env) []Finding {
		s := env.S
		if env.RulesOnly {
			return perFamily(dnatStaleFromRules)(env)
		}
		if s == nil || (s.Docker != nil && s.Docker.Error != "") {
			// Why: with a partial Docker view a live container may look
			// absent; never call a rule stale on that.
			return nil
		}
		return withNft(perFamily(dnatStaleOf), nftDNATStale)(env)
	},
}

// staleCause is the subject of the dnat-stale finding about r; the plan's
// deletion of r links to it.
func staleCause(a analysis, r *parse.Rule) Subject {
	return Subject{Family: a.family(), Table: parse.TableNAT, Chain: ChainDocker, Port: portsText(r), Rule: r.SaveLine(false)}
}

// liveIPs maps the addresses of running containers' endpoints, of both
// families, to the container's name.
func liveIPs(s *snapshot.Snapshot) map[string]string {
	live := map[string]string{}
	for _, c := range s.Docker.Containers {
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			for _, ip := range []string{ep.IP, ep.IPv6} {
				if ip == "" {
					continue
				}
				if a, err := netip.ParseAddr(ip); err == nil {
					ip = a.String()
				}
				live[ip] = c.Name
			}
		}
	}
	return live
}

// dnatStaleOf is dnat-stale for one family.
func dnatStaleOf(env *Env, a analysis) []Finding {
	s := env.S
	_ = s
	live := liveIPs(s)
	var out []Finding
	for _, r := range a.diff.Unexpected {
		if r.Table != parse.TableNAT || r.Chain != ChainDocker || r.Target != parse.TargetDNAT {
			continue
		}
		dest, err := parse.ParseNATDest(r.NATTo())
		if err != nil {
			continue
		}
		f := Finding{
			ID:       "dnat-stale",
			Severity: SeverityError,
			Key:      KeyOf("dnat-stale", staleCause(a, r)),
			Subject:  staleCause(a, r),
			Evidence: []string{fmt.Sprintf("rule %d of nat DOCKER: %s", r.Position, a.evSave(r.SaveLine(false)))},
			Rules:    []RuleRef{ruleRef(a.family(), "stale", r)},
		}
		shadowed := shadows(a, r)
		owner, isLive := live[canonIP(dest.IP)]
		switch {
		case !isLive:
			f.Repairable = true
			f.Title = fmt.Sprintf("DNAT for port %s points at %s, which no running container has%s", portsText(r), r.NATTo(), a.famTitle())
			f.Detail = "Connections matching this rule are sent to an address nobody answers on: they time out."
			f.Fix = "`sudo iptscope doctor --fix` deletes it. By hand: `" + a.ipt() + " -t nat -D DOCKER " + r.Spec() + "`. It is not Docker's (no running container has " +
				dest.IP + "); it was probably restored from a saved ruleset or added by hand, so also remove it from wherever it came from " +
				"(/etc/iptables/rules.v" + a.ipVer() + ", a firewall script)."
		default:
			f.Subject.Container = owner
			f.Title = fmt.Sprintf("DNAT for port %s points at %s, which container %s does not publish there%s", portsText(r), r.NATTo(), owner, a.famTitle())
			f.Detail = "This DNAT rule does not match any of the container's published ports: Docker did not write it, and traffic it matches goes to a port the container may not serve."
			if ov := overrides(a, r); len(ov) > 0 {
				f.Repairable = true
				f.Fix = "`sudo iptscope doctor --fix` deletes it. By hand: `" + a.ipt() + " -t nat -D DOCKER " + r.Spec() + "`. It takes port " +
					portName(ov[0].Port) + ", which Docker maps to " + ov[0].NATTo() + " (container " + ov[0].Container + ")."
			} else {
				f.Fix = "Check where the rule comes from before deleting it: `" + a.ipt() + " -t nat -D DOCKER " + r.Spec() + "`. iptscope does not remove rules it cannot prove stale."
			}
		}
		if len(shadowed) > 0 {
			f.Detail += " It sits above Docker's own rule for the same port, so that rule never matches:"
			for _, sh := range shadowed {
				f.Detail += fmt.Sprintf(" %s -> %s (container %s)", portName(sh.Expected.Port), sh.Actual.NATTo(), sh.Expected.Container)
				f.Evidence = append(f.Evidence, fmt.Sprintf("shadowed rule %d of nat DOCKER: %s", sh.Actual.Position, a.evSave(sh.Actual.SaveLine(false))))
				f.Rules = append(f.Rules, ruleRef(a.family(), "shadowed", sh.Actual))
			}
		}
		out = append(out, f)
	}
	return out
}

// canonIP is an address in netip's canonical text (IPv6 compressed), or
// s itself when it does not parse.
func canonIP(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

// portsText renders a rule's destination ports and protocol: "8080/tcp".
func portsText(r *parse.Rule) string {
	ps, _ := r.DestPorts()
	if len(ps) == 0 {
		return "any/" + r.Proto()
	}
	return ps[0].String() + "/" + r.Proto()
}

// overrides returns Docker's expected DNAT rules whose connections r
// takes instead, with another destination: r matches them (protocol, host
// port, address, interface) and sits above them, or they are missing (then
// restoring them below r would change nothing). A rule that overrides
// Docker's own mapping of a port is wrong by Docker's state even when it
// points at a live container (a container re-created with another port
// mapping that got its old address back): the plan deletes it.
func overrides(a analysis, r *parse.Rule) []ExpectedRule {
	return a.overIdx().over[r]
}

// overriddenBy returns the unexpected DNAT of nat DOCKER that takes the
// port of Docker's DNAT er (see overrides), or nil.
func overriddenBy(a analysis, er ExpectedRule) *parse.Rule {
	return a.overIdx().by[er.id]
}

// overrideIndex is overrides for every unexpected DNAT of nat DOCKER, and
// its reverse. Why an index: Ports and proxy-fallback ask per published
// port; scanning every unexpected DNAT against every expected one per port
// took 44 s on a host whose 1,000 DNATs were all re-pointed.
type overrideIndex struct {
	over map[*parse.Rule][]ExpectedRule // unexpected DNAT -> Docker's DNATs it takes
	by   map[int32]*parse.Rule          // Docker's DNAT (expected) -> the first that takes it
}

func buildOverrideIndex(a analysis) overrideIndex {
	x := overrideIndex{over: map[*parse.Rule][]ExpectedRule{}, by: map[int32]*parse.Rule{}}
	for _, u := range a.diff.Unexpected {
		if u.Table != parse.TableNAT || u.Chain != ChainDocker || u.Target != parse.TargetDNAT {
			continue
		}
		ov := computeOverrides(a, u)
		x.over[u] = ov
		for _, er := range ov {
			if x.by[er.id] == nil {
				x.by[er.id] = u
			}
		}
	}
	return x
}

func computeOverrides(a analysis, r *parse.Rule) []ExpectedRule {
	ports, neg := r.DestPorts()
	if neg || len(ports) == 0 {
		return nil
	}
	var out []ExpectedRule
	for _, er := range a.exp.RulesOf(parse.TableNAT, ChainDocker) {
		if er.Kind != KindDNAT || er.Port == nil || er.NATTo() == r.NATTo() {
			continue
		}
		if got := a.diff.Got(er); got != nil && got.Position < r.Position {
			continue
		}
		if r.Proto() != proto(*er.Port) || !inRanges(uint16(er.Port.HostPort), ports) {
			continue
		}
		if !addrOverlaps(r.Destination, er.Rule().Destination) || !ifaceOverlaps(r.InIface, er.Rule().InIface) {
			continue
		}
		out = append(out, er)
	}
	return out
}

// shadows returns Docker's DNAT rules that r, placed above them, matches
// first: same protocol, an overlapping destination port and host address.
func shadows(a analysis, r *parse.Rule) []Placed {
	ports, neg := r.DestPorts()
	if neg {
		return nil
	}
	var out []Placed
	for _, er := range a.exp.RulesOf(parse.TableNAT, ChainDocker) {
		got := a.diff.Got(er)
		if er.Kind != KindDNAT || got == nil || got.Position < r.Position || er.Port == nil {
			continue
		}
		if r.Proto() != "" && r.Proto() != proto(*er.Port) {
			continue
		}
		if len(ports) > 0 && !inRanges(uint16(er.Port.HostPort), ports) {
			continue
		}
		if !addrOverlaps(r.Destination, got.Destination) || !ifaceOverlaps(r.InIface, got.InIface) {
			continue
		}
		out = append(out, Placed{er, got})
	}
	return out
}

func inRanges(p uint16, rs []parse.PortRange) bool {
	for _, r := range rs {
		if p >= r.From && p <= r.To {
			return true
		}
	}
	return false
}

// addrOverlaps reports whether two -d matches can match the same packet
// (a negated or unparsable match is taken to overlap).
func addrOverlaps(a, b parse.Negatable) bool {
	if a.IsZero() || b.IsZero() || a.Negated || b.Negated {
		return true
	}
	pa, err1 := netip.ParsePrefix(parse.CanonicalAddr(a.Value))
	pb, err2 := netip.ParsePrefix(parse.CanonicalAddr(b.Value))
	if err1 != nil || err2 != nil {
		return true
	}
	return pa.Overlaps(pb)
}

// ifaceOverlaps reports whether two -i matches can match the same packet.
func ifaceOverlaps(a, b parse.Negatable) bool {
	if a.IsZero() || b.IsZero() || a.Negated || b.Negated {
		return true
	}
	return a.Value == b.Value
}

// dnatStaleFromRules is dnat-stale on a raw dump: a DNAT for a host port
// that another DNAT maps to a container port Docker's other rules name,
// while nothing names its own destination (InferFromRules). Which of the
// two comes first decides what traffic meets today.
func dnatStaleFromRules(env *Env, a analysis) []Finding {
	inf := env.Inference
	if inf == nil || inf.Family != a.family() {
		return nil
	}
	var out []Finding
	for _, st := range inf.Stale {
		r := st.Rule
		if st.Live == nil {
			out = append(out, repointedFinding(a, st))
			continue
		}
		f := Finding{
			ID:       "dnat-stale",
			Severity: SeverityError,
			Subject:  staleCause(a, r),
			Title:    fmt.Sprintf("DNAT for port %s points at %s, which none of Docker's other rules names%s", portsText(r), r.NATTo(), a.famTitle()),
			Evidence: []string{
				fmt.Sprintf("rule %d of nat DOCKER: %s", r.Position, a.evSave(r.SaveLine(false))),
				fmt.Sprintf("rule %d of nat DOCKER, same port: %s", st.Live.Position, a.evSave(st.Live.SaveLine(false))),
				fmt.Sprintf("Docker's rule for %s: rule %d of %s %s: %s", st.Live.NATTo(), st.Admits.Position, st.Admits.Table, st.Admits.Chain, a.evSave(st.Admits.SaveLine(false))),
			},
			Rules: []RuleRef{ruleRef(a.family(), "stale", r), ruleRef(a.family(), "found", st.Live), ruleRef(a.family(), "inferred-from", st.Admits)},
			Fix: "Delete the stale rule: `" + a.ipt() + " -t nat -D DOCKER " + r.Spec() + "` (on the host `sudo iptscope doctor --fix` does it " +
				"after checking Docker's view). It is not Docker's; it was probably restored from a saved ruleset or left by a re-created " +
				"container, so also remove it from wherever it came from (/etc/iptables/rules.v" + a.ipVer() + ", a firewall script).",
		}
		if r.Position < st.Live.Position {
			f.Detail = fmt.Sprintf("Two DNATs translate port %s. This one (rule %d) comes first, so connections go to %s, where no container of Docker's rules answers: they time out. Docker's own rule %d, to %s, never matches.",
				portsText(r), r.Position, r.NATTo(), st.Live.Position, st.Live.NATTo())
		} else {
			f.Severity = SeverityWarning
			f.Detail = fmt.Sprintf("Two DNATs translate port %s. Docker's rule %d, to %s, comes first and wins, so traffic works today; this one (rule %d) is a leftover that matches nothing until the rules are reordered.",
				portsText(r), st.Live.Position, st.Live.NATTo(), r.Position)
		}
		out = append(out, f)
	}
	for _, am := range inf.Ambiguous {
		r := am.Rule
		out = append(out, Finding{
			ID:       "dnat-stale",
			Severity: SeverityWarning,
			Subject:  staleCause(a, r),
			Title:    fmt.Sprintf("Port %s has two DNATs: rule %d (to %s) wins, rule %d (to %s) never matches%s", portsText(r), am.Live.Position, am.Live.NATTo(), r.Position, r.NATTo(), a.famTitle()),
			Detail: "Docker writes one DNAT per published host port. One of these two is not Docker's: if the winning one is the " +
				"stale one, connections to the port go to the wrong place. The dump does not tell which one Docker wrote: with " +
				"the filter table (`iptables -t filter -L -n -v`) iptscope can tell from the ACCEPT Docker keeps for its own.",
			Evidence: []string{
				fmt.Sprintf("rule %d of nat DOCKER: %s", am.Live.Position, a.evSave(am.Live.SaveLine(false))),
				fmt.Sprintf("rule %d of nat DOCKER: %s", r.Position, a.evSave(r.SaveLine(false))),
			},
			Rules: []RuleRef{ruleRef(a.family(), "found", am.Live), ruleRef(a.family(), "shadowed", r)},
			Fix: "Find which container publishes the port (`docker ps --filter publish=" + strings.TrimSuffix(portsText(r), "/tcp") +
				"`) and delete the other rule with `" + a.ipt() + " -t nat -D DOCKER <its spec>`, or run `sudo iptscope doctor --fix` on the host.",
		})
	}
	return out
}

// repointedFinding is dnat-stale on a raw dump for a DNAT to a port the
// container's other rules do not publish, while a port they publish has
// no DNAT (InferFromRules).
func repointedFinding(a analysis, st StaleDNAT) Finding {
	r := st.Rule
	return Finding{
		ID:       "dnat-stale",
		Severity: SeverityError,
		Subject:  staleCause(a, r),
		Title:    fmt.Sprintf("DNAT for port %s points at %s, a port the container's other rules do not publish%s", portsText(r), r.NATTo(), a.famTitle()),
		Detail: "Docker's rules for this container publish another port (see the evidence) and no DNAT reaches that one: this " +
			"DNAT is a leftover, typically of a container re-created with another mapping that got its old address back. " +
			"Connections to the host port go to a port the container may not serve.",
		Evidence: []string{
			fmt.Sprintf("rule %d of nat DOCKER: %s", r.Position, a.evSave(r.SaveLine(false))),
			fmt.Sprintf("the port Docker publishes: rule %d of %s %s: %s", st.Admits.Position, st.Admits.Table, st.Admits.Chain, a.evSave(st.Admits.SaveLine(false))),
		},
		Rules: []RuleRef{ruleRef(a.family(), "stale", r), ruleRef(a.family(), "inferred-from", st.Admits)},
		Fix: "Delete the stale rule: `" + a.ipt() + " -t nat -D DOCKER " + r.Spec() + "` (on the host `sudo iptscope doctor --fix` " +
			"deletes it and restores Docker's own DNAT from Docker's view).",
	}
}
