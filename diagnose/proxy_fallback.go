package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// proxyFallback: a published port whose NAT path is broken while a
// docker-proxy listens on its host address and port. Other machines'
// connections are then not DNAT'd: they reach the proxy on the host, which
// relays them (docker-facts.md §3.2, field failure 13). The port answers,
// so probes and users see nothing wrong, but:
//
//	client ──> host:HPORT ──X── nat DOCKER DNAT (missing)      ──> container
//	client ──> host:HPORT ───── docker-proxy (userspace relay) ──> container
//	                            (container sees the bridge gateway as the client)
//
// The NAT path counts as broken when, for the port's IPv4 binding:
//   - nat DOCKER is gone, or the PREROUTING -> DOCKER jump is gone;
//   - its DNAT rule is missing;
//   - a rule that does not translate (RETURN, ACCEPT) sits above its DNAT
//     in nat DOCKER and matches it first.
//
// A DNAT above it that points elsewhere (dnat-stale) is not a fallback:
// the packet is translated to the wrong address and never reaches the
// proxy (seen on 20.10 and 28.5: stale-dnat fixtures, 8080 does not answer
// with the proxy on). Bindings on loopback addresses are skipped: other
// machines never reach them, and the host reaches them through the proxy
// by design (the OUTPUT jump excludes 127.0.0.0/8).
var proxyFallback = Check{
	ID:       "proxy-fallback",
	Title:    "A published port works only through docker-proxy",
	Severity: SeverityWarning,
	Run:      perFamily(proxyFallbackOf),
}

// proxyFallbackOf is proxy-fallback for one family's rules.
func proxyFallbackOf(s *snapshot.Snapshot, a analysis) []Finding {
	if len(s.Proxies) == 0 {
		return nil
	}
	// Path-wide breakage: the chain or the PREROUTING jump.
	var pathWide string
	var pathEvidence []string
	switch {
	case !a.chainExists(parse.TableNAT, ChainDocker):
		pathWide = "nat DOCKER is missing"
		pathEvidence = append(pathEvidence, a.ipt()+" -t nat -S DOCKER: no such chain")
	default:
		for _, er := range a.diff.MissingOf(KindJump) {
			if er.Rule.Table == parse.TableNAT && er.Rule.Chain == parse.ChainPrerouting {
				pathWide = "nat PREROUTING no longer jumps to DOCKER"
				pathEvidence = append(pathEvidence, "missing: "+a.evLine(er))
			}
		}
	}
	// Rules in nat DOCKER that stop evaluation without translating,
	// and the Docker DNAT rules each one shadows.
	bypass := map[*parse.Rule]*parse.Rule{} // Docker's DNAT -> the rule above it
	for _, r := range a.diff.Unexpected {
		if r.Table != parse.TableNAT || r.Chain != ChainDocker || (r.Target != parse.TargetReturn && r.Target != parse.TargetAccept) {
			continue
		}
		if !onlyPortMatches(r) {
			continue
		}
		for _, sh := range shadows(a, r) {
			if bypass[sh.Actual] == nil {
				bypass[sh.Actual] = r
			}
		}
	}
	missing := map[*parse.Rule]bool{}
	for _, er := range a.diff.MissingOf(KindDNAT) {
		missing[er.Rule] = true
	}

	var out []Finding
	seen := map[string]bool{} // alt group or rule: one finding per binding
	for _, er := range a.exp.RulesOf(parse.TableNAT, ChainDocker) {
		if er.Kind != KindDNAT || er.Port == nil || isLoopback(er.Port.HostIP) {
			continue
		}
		key := er.Alt
		if key == "" {
			key = er.Spec()
		}
		if seen[key] {
			continue
		}
		var why string
		var ev []string
		switch got := a.diff.Found[er.Rule]; {
		case pathWide != "":
			why, ev = pathWide, append([]string(nil), pathEvidence...)
		case got == nil && missing[er.Rule] && overriddenBy(a, er) != nil:
			continue // a stale DNAT takes the port: nothing reaches the proxy (dnat-stale)
		case got == nil && missing[er.Rule]:
			why, ev = "its DNAT rule is missing", []string{"missing: " + a.evLine(er)}
		case got != nil && bypass[got] != nil:
			sh := bypass[got]
			why = fmt.Sprintf("rule %d of nat DOCKER (%s) matches it before its DNAT rule", sh.Position, sh.Target)
			ev = []string{
				fmt.Sprintf("rule %d of nat DOCKER: %s", sh.Position, sh.SaveLine(false)),
				fmt.Sprintf("bypassed rule %d of nat DOCKER: %s", got.Position, got.SaveLine(false)),
			}
		default:
			continue
		}
		prox := proxiesFor(s, er.Port)
		if len(prox) == 0 {
			continue
		}
		seen[key] = true
		for _, p := range prox {
			ev = append(ev, fmt.Sprintf("docker-proxy pid %d: %s", p.PID, strings.Join(p.Args, " ")))
		}
		pn := portName(er.Port)
		out = append(out, Finding{
			ID:       "proxy-fallback",
			Severity: SeverityWarning,
			Title:    fmt.Sprintf("Port %s of container %s answers only through docker-proxy (%s)%s", pn, er.Container, why, a.famTitle()),
			Detail: "Connections to " + pn + " from other machines are not translated to the container (" + why + "). " +
				"They still reach docker-proxy, which listens on the host port and relays them, so the port seems to work. " +
				"But the container sees the bridge gateway instead of the client's address (logs, allow-lists and rate " +
				"limits by client address break), every byte is copied through a userspace process (slower, more CPU), " +
				"and the port stops answering as soon as the proxy is off (userland-proxy false, a daemon restart with " +
				"the proxy disabled, the proxy process killed).",
			Subject:  Subject{Table: "nat", Chain: "DOCKER", Network: er.Network, Container: er.Container, Port: pn, Family: a.family()},
			Evidence: ev,
			Fix: restartFix(a) + " Docker then writes the DNAT rule again and the proxy goes back to serving only " +
				"host-local connections. Or add the rule Docker would have written: `" + a.ipt() + " " + ruleLine(er) + "`.",
		})
	}
	return out
}

// onlyPortMatches reports whether r matches on nothing but addresses,
// interfaces, protocol and ports (and comments): a rule shadows a DNAT only
// when what it matches can be compared with it.
func onlyPortMatches(r *parse.Rule) bool {
	for _, m := range r.Matches {
		if !portMatches(m.Name) && m.Name != "multiport" && m.Name != "comment" {
			return false
		}
	}
	return true
}

func portMatches(name string) bool {
	switch name {
	case "tcp", "udp", "sctp", "udplite", "dccp":
		return true
	}
	return false
}
