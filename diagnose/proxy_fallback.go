package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
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
	Repair:   Repair{Manual: "the NAT path is not restored by this plan"},
	Needs:    "the docker-proxy processes",
	Run:      perFamily(proxyFallbackOf),
}

// proxyFallbackOf is proxy-fallback for one family's rules.
func proxyFallbackOf(env *Env, a analysis) []Finding {
	s := env.S
	_ = s
	if len(s.Proxies) == 0 {
		return nil
	}
	// Path-wide breakage: the chain or the PREROUTING jump.
	var pathWide, pathCause string
	var pathEvidence []string
	switch {
	case !a.chainExists(parse.TableNAT, ChainDocker):
		pathWide = "nat DOCKER is missing"
		pathCause = KeyOf("docker-chain-missing", Subject{Family: a.family()})
		pathEvidence = append(pathEvidence, a.ipt()+" -t nat -S DOCKER: no such chain")
	default:
		for _, er := range a.diff.MissingOf(KindJump) {
			if er.Table == parse.TableNAT && er.Chain == parse.ChainPrerouting {
				pathWide = "nat PREROUTING no longer jumps to DOCKER"
				pathCause = KeyOf("docker-jump-missing", Subject{Family: a.family(), Table: parse.TableNAT, Chain: parse.ChainPrerouting})
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
	missing := map[int32]bool{}
	for _, er := range a.diff.MissingOf(KindDNAT) {
		missing[er.id] = true
	}

	// One finding per cause: the cause's key (another finding), or the
	// rule that bypasses the DNATs.
	type group struct {
		why, causedBy string
		ev            []string
		evSeen        map[string]bool
		refs          []RuleRef
		ers           []ExpectedRule
		proxies       []string
	}
	var groups []*group
	byCause := map[string]*group{}
	seen := map[string]bool{} // alt group or rule: one entry per binding
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
		var why, cause, gk string
		var ev []string
		var refs []RuleRef
		switch got := a.diff.Got(er); {
		case pathWide != "":
			why, cause, gk, ev = pathWide, pathCause, pathCause, pathEvidence
		case got == nil && missing[er.id] && overriddenBy(a, er) != nil:
			continue // a stale DNAT takes the port: nothing reaches the proxy (dnat-stale)
		case got == nil && missing[er.id]:
			why = "its DNAT rule is missing"
			cause = KeyOf("dnat-missing", Subject{Family: a.family(), Table: parse.TableNAT, Chain: ChainDocker})
			gk = cause
			ev = []string{"missing: " + a.evLine(er)}
		case got != nil && bypass[got] != nil:
			sh := bypass[got]
			why = fmt.Sprintf("rule %d of nat DOCKER (%s) matches it before its DNAT rule", sh.Position, sh.Target)
			gk = "bypass " + sh.SaveLine(false)
			ev = []string{
				fmt.Sprintf("rule %d of nat DOCKER: %s", sh.Position, sh.SaveLine(false)),
				fmt.Sprintf("bypassed rule %d of nat DOCKER: %s", got.Position, got.SaveLine(false)),
			}
			refs = []RuleRef{ruleRef(a.family(), "blocking", sh), ruleRef(a.family(), "shadowed", got)}
		default:
			continue
		}
		// Why the engine: a port counts only when the packet-path
		// engine's connection from another machine ends at docker-proxy
		// (the ports table's proxy-only), the one judgement doctor and
		// trace share.
		if j := env.judgementOf(er.Container, *er.Port); j == nil || j.path != PathProxyOnly {
			continue
		}
		prox := proxiesFor(env.proxies(), er.Port)
		if len(prox) == 0 {
			continue
		}
		seen[key] = true
		g := byCause[gk]
		if g == nil {
			g = &group{why: why, causedBy: cause, evSeen: map[string]bool{}}
			byCause[gk] = g
			groups = append(groups, g)
		}
		for _, line := range ev {
			if !g.evSeen[line] {
				g.evSeen[line] = true
				g.ev = append(g.ev, line)
			}
		}
		g.refs = append(g.refs, refs...)
		g.ers = append(g.ers, er)
		for _, p := range prox {
			g.proxies = append(g.proxies, fmt.Sprintf("docker-proxy pid %d: %s", p.PID, strings.Join(p.Args, " ")))
		}
	}

	var out []Finding
	for _, g := range groups {
		affected := affectedOf(a, g.ers)
		pn := portsList(affected, 6)
		cause := Subject{Family: a.family(), Table: parse.TableNAT, Chain: ChainDocker}
		if g.causedBy == "" {
			cause.Rule = g.refs[0].Rule
		}
		f := Finding{
			ID:       "proxy-fallback",
			Key:      KeyOf("proxy-fallback", cause),
			Severity: SeverityWarning,
			Subject:  cause,
			Affected: affected,
			Detail: "Connections to " + pn + " from other machines are not translated to the container (" + g.why + "). " +
				"They still reach docker-proxy, which listens on the host port and relays them, so the port seems to work. " +
				"But the container sees the bridge gateway instead of the client's address (logs, allow-lists and rate " +
				"limits by client address break), every byte is copied through a userspace process (slower, more CPU), " +
				"and the port stops answering as soon as the proxy is off (userland-proxy false, a daemon restart with " +
				"the proxy disabled, the proxy process killed).",
			Evidence: append(capped(g.ev, 3), capped(g.proxies, 2)...),
			Rules:    g.refs,
		}
		if g.causedBy != "" {
			f.CausedBy = []string{g.causedBy}
			f.Fix = "`sudo iptscope doctor --fix` repairs what it follows from (" + g.causedBy + "); then docker-proxy goes back to " +
				"serving only host-local connections."
		} else {
			f.Fix = "Remove the rule that bypasses the DNATs (it is not Docker's), or " + lowerFirst(restartFix(a))
		}
		if len(g.ers) == 1 {
			er := g.ers[0]
			f.Subject = subjectOfRule(a, er)
			f.Subject.Rule = cause.Rule
			f.Title = fmt.Sprintf("Port %s of container %s answers only through docker-proxy (%s)%s", portName(er.Port), er.Container, g.why, a.famTitle())
		} else {
			f.Title = fmt.Sprintf("%s published ports answer only through docker-proxy (%s)%s", thousands(len(g.ers)), g.why, a.famTitle())
		}
		out = append(out, f)
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
