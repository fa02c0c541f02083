package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// dnatMissing: a running container publishes a port but nat DOCKER has no
// DNAT rule for it. When the whole chain is gone, docker-chain-missing
// reports it once instead.
var dnatMissing = Check{
	ID:       "dnat-missing",
	Title:    "A published port has no DNAT rule",
	Severity: SeverityError,
	Run:      perFamily(dnatMissingOf),
}

// dnatMissingOf is dnat-missing for one family.
func dnatMissingOf(s *snapshot.Snapshot, a analysis) []Finding {
	var out []Finding
	seenAlt := map[string]bool{}
	for _, er := range a.diff.MissingOf(KindDNAT) {
		if a.missingChain(er) || (er.Alt != "" && seenAlt[er.Alt]) {
			continue
		}
		seenAlt[er.Alt] = true
		pn := portName(er.Port)
		f := Finding{
			ID:       "dnat-missing",
			Severity: SeverityError,
			Title:    fmt.Sprintf("Port %s of container %s has no DNAT rule%s", pn, er.Container, a.famTitle()),
			Subject:  Subject{Table: "nat", Chain: "DOCKER", Network: er.Network, Container: er.Container, Port: pn, Family: a.family()},
			Evidence: []string{"missing: " + a.evLine(er)},
			Fix: restartFix(a) + " Or add the rule Docker would have written: `" + a.ipt() + " " + ruleLine(er) +
				"` (re-check with `" + a.ipt() + " -t nat -S DOCKER`).",
		}
		if a.exp.Proxy.On() {
			f.Detail = "Connections to " + pn + " from other machines are not translated to the container. With userland-proxy on (" +
				a.exp.Proxy.Source + ") docker-proxy still answers on the host port and relays them, so the port seems to work, but " +
				"the container sees the bridge gateway instead of the client's address and every byte goes through a userspace process."
		} else {
			f.Detail = "Connections to " + pn + " are not translated to the container and userland-proxy is off (" +
				a.exp.Proxy.Source + "): the port does not answer."
		}
		for _, p := range s.Proxies {
			if er.Port != nil && p.HostPort == er.Port.HostPort && p.Proto == proto(*er.Port) && proxyFamily(p) == a.family() {
				f.Evidence = append(f.Evidence, fmt.Sprintf("docker-proxy pid %d listens on %s:%d/%s", p.PID, p.HostIP, p.HostPort, p.Proto))
			}
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

// proxyFor reports the docker-proxy processes on a binding's protocol and
// host port, whatever their address.
func proxyFor(s *snapshot.Snapshot, p *snapshot.PortBinding) []snapshot.Proxy {
	var out []snapshot.Proxy
	for i := range s.Proxies {
		if p != nil && proxyOnPort(&s.Proxies[i], p) {
			out = append(out, s.Proxies[i])
		}
	}
	return out
}
