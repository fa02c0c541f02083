package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// dnatMissing: a running container publishes a port but nat DOCKER has no
// DNAT rule for it. One finding per family: nat DOCKER flushed on a
// 1,000-port host is one error listing the 1,000 ports. When the whole
// chain is gone, docker-chain-missing reports it instead.
var dnatMissing = Check{
	ID:       "dnat-missing",
	Title:    "A published port has no DNAT rule",
	Severity: SeverityError,
	Run:      withNft(perFamily(dnatMissingOf), nftDNATMissing),
	Repair:   Repair{Auto: true},
	Claims:   dnatMissingClaims,
}

// dnatMissingClaims: a DNAT whose chain exists; one cause per family.
func dnatMissingClaims(a analysis, er ExpectedRule) (Subject, bool) {
	if er.Kind != KindDNAT || a.missingChain(er) {
		return Subject{}, false
	}
	return Subject{Family: a.family(), Table: parse.TableNAT, Chain: ChainDocker}, true
}

// dnatMissingOf is dnat-missing for one family.
func dnatMissingOf(env *Env, a analysis) []Finding {
	causes, groups := claimedBy(a, dnatMissingClaims)
	var out []Finding
	if f, ok := orphansFinding(env, a); ok {
		out = append(out, f)
	}
	for _, cause := range causes {
		ers := groups[cause]
		f := Finding{
			ID:       "dnat-missing",
			Key:      KeyOf("dnat-missing", cause),
			Severity: SeverityError,
			Subject:  cause,
			Affected: affectedOf(a, ers),
			Evidence: missingEvidence(a, ers, 5),
			Rules:    missingRefs(a, ers),
			Fix:      restoreFix(a, ers, a.addLine) + " Check with `" + a.ipt() + " -t nat -S DOCKER`.",
		}
		total := 0
		for _, er := range a.exp.RulesOf(parse.TableNAT, ChainDocker) {
			if er.Kind == KindDNAT {
				total++
			}
		}
		pn := portsList(f.Affected, 6)
		switch {
		case len(ers) == 1:
			er := ers[0]
			f.Subject = subjectOfRule(a, er)
			f.Title = fmt.Sprintf("Port %s of container %s has no DNAT rule%s", portName(er.Port), er.Container, a.famTitle())
		case len(ers) == total:
			f.Title = fmt.Sprintf("nat DOCKER has lost all %s DNATs of the published ports%s", thousands(total), a.famTitle())
		default:
			f.Title = fmt.Sprintf("nat DOCKER has lost %s of its %s DNATs%s", thousands(len(ers)), thousands(total), a.famTitle())
		}
		if a.exp.Proxy.On() {
			f.Detail = "Connections to " + pn + " from other machines are not translated to the container. With userland-proxy on (" +
				a.exp.Proxy.Source + ") docker-proxy still answers on the host port and relays them, so the port seems to work, but " +
				"the container sees the bridge gateway instead of the client's address and every byte goes through a userspace process."
		} else {
			f.Detail = "Connections to " + pn + " are not translated to the container and userland-proxy is off (" +
				a.exp.Proxy.Source + "): the port does not answer."
		}
		if env.RulesOnly {
			f.Detail += " (The ports were inferred from the other rules Docker keeps for them: see the evidence.)"
		}
		nproxy := 0
		for _, er := range ers {
			if er.Port == nil {
				continue
			}
			for _, p := range env.proxies().onPort(er.Port) {
				if p.HostPort == er.Port.HostPort && proxyFamily(*p) == a.family() {
					if nproxy++; nproxy <= 3 {
						f.Evidence = append(f.Evidence, fmt.Sprintf("docker-proxy pid %d listens on %s:%d/%s", p.PID, p.HostIP, p.HostPort, p.Proto))
					}
				}
			}
		}
		if nproxy > 3 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("... and %d more docker-proxy processes", nproxy-3))
		}
		out = append(out, f)
	}
	return out
}

// proxyFamily is the family of the container address a docker-proxy
// relays to.
func proxyFamily(p snapshot.Proxy) string {
	if strings.Contains(p.ContainerIP, ":") {
		return snapshot.FamilyIPv6
	}
	return snapshot.FamilyIPv4
}

// orphansFinding is dnat-missing on a raw dump: container ports that
// Docker's other rules name (filter DOCKER's ACCEPT, the hairpin
// MASQUERADE) but that no DNAT reaches. Their host ports are not in the
// dump, so there is nothing to restore by hand: the fix is Docker's (a
// restart) or `doctor --fix` on the host, which reads them from the API.
func orphansFinding(env *Env, a analysis) (Finding, bool) {
	inf := env.Inference
	if inf == nil || inf.Family != a.family() || len(inf.Orphans) == 0 {
		return Finding{}, false
	}
	cause := Subject{Family: a.family(), Table: parse.TableNAT, Chain: ChainDocker}
	f := Finding{
		ID:       "dnat-missing",
		Key:      KeyOf("dnat-missing", cause),
		Severity: SeverityError,
		Subject:  cause,
	}
	var names []string
	for i, o := range inf.Orphans {
		cp := fmt.Sprintf("%s/%s", netJoin(o.ContainerIP, o.ContainerPort), o.Proto)
		names = append(names, cp)
		f.Affected = append(f.Affected, Subject{Family: a.family(), Table: parse.TableNAT, Chain: ChainDocker, Network: o.Network, ContainerPort: cp})
		for j, r := range o.From {
			f.Rules = append(f.Rules, ruleRef(a.family(), "inferred-from", r))
			if i < 8 && j == 0 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("published port %s inferred from rule %d of %s %s: %s", cp, r.Position, r.Table, r.Chain, a.evSave(r.SaveLine(false))))
			}
		}
	}
	if len(inf.Orphans) > 8 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("... and %d more published ports", len(inf.Orphans)-8))
	}
	dnats := 0
	if c := a.rs.Table(parse.TableNAT).Chain(ChainDocker); c != nil {
		for _, r := range c.Rules {
			if r.Target == parse.TargetDNAT {
				dnats++
			}
		}
		f.Evidence = append(f.Evidence, fmt.Sprintf("nat DOCKER has %d rules, %d of them DNAT", len(c.Rules), dnats))
	}
	if dnats == 0 {
		f.Title = fmt.Sprintf("nat DOCKER has lost all its DNATs: %s published container port%s get%s no traffic%s", thousands(len(names)), plural(len(names)), map[bool]string{true: "s", false: ""}[len(names) == 1], a.famTitle())
	} else {
		f.Title = fmt.Sprintf("%s published container port%s ha%s no DNAT in nat DOCKER: %s%s", thousands(len(names)), plural(len(names)), hasHave(len(names)), capList(names, 3), a.famTitle())
	}
	f.Detail = "Docker's filter ACCEPT (or hairpin MASQUERADE) rules show that " + capList(names, 6) + " " +
		map[bool]string{true: "is", false: "are"}[len(names) == 1] + " published, but no DNAT in nat DOCKER translates connections to " +
		map[bool]string{true: "it", false: "them"}[len(names) == 1] + ": from other machines the host port"
	if a.exp.Proxy.On() {
		f.Detail += " is answered only by docker-proxy (userland-proxy on, " + a.exp.Proxy.Source + "): clients' addresses are lost."
	} else {
		f.Detail += " does not answer (userland-proxy off, " + a.exp.Proxy.Source + ")."
	}
	f.Fix = "The host ports are not in the dump. On the host, `sudo iptscope doctor --fix` restores the DNATs from Docker's own view; or " +
		lowerFirst(restartFix(a)) + " Check with `" + a.ipt() + " -t nat -S DOCKER`."
	return f, true
}

// netJoin renders an address and port as "1.2.3.4:80" or "[::1]:80".
func netJoin(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + itoa(port)
	}
	return ip + ":" + itoa(port)
}
