package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// routeLocalnetDisabled: userland-proxy is off and a Docker bridge with
// published ports has route_localnet=0. With the proxy off the host's own
// connections to 127.0.0.1:HPORT are DNAT'd (nat OUTPUT -> DOCKER) to the
// container; the kernel routes a packet with a loopback source out of the
// bridge only with route_localnet=1, which Docker sets on its bridges when
// the proxy is off (docker-facts.md §3.4). Seen on real 28.5 (proxy off):
// with docker0's route_localnet at 0, `curl 127.0.0.1:8080` on the host
// fails; other machines still reach the port.
var routeLocalnetDisabled = Check{
	ID:       "route-localnet-disabled",
	Title:    "A Docker bridge has route_localnet=0 while userland-proxy is off",
	Severity: SeverityWarning,
	Repair:   Repair{Auto: true},
	Needs:    "the route_localnet sysctls",
	Run: func(env *Env) []Finding {
		s := env.S
		mode, ok := knownProxyOff(s)
		if !ok {
			return nil
		}
		var out []Finding
		for _, br := range localnetBridges(s) {
			name := "net.ipv4.conf." + br.bridge + ".route_localnet"
			out = append(out, Finding{
				ID:       "route-localnet-disabled",
				Severity: SeverityWarning,
				Title:    fmt.Sprintf("route_localnet is 0 on %s: the host cannot reach its published ports on 127.0.0.1", br.bridge),
				Detail: "With userland-proxy off, the host's own connections to 127.0.0.1:PORT are translated to the container " +
					"and leave through the bridge with a loopback source address. The kernel routes such packets only with " +
					"route_localnet=1, which Docker sets on its bridges when the proxy is off: without it those connections " +
					"fail. Other machines are not affected.",
				Subject:  Subject{Network: br.network},
				Evidence: []string{name + " = 0", "published ports the host reaches on 127.0.0.1: " + strings.Join(br.ports, ", "), "userland-proxy off: " + mode.Source},
				Fix:      "sysctl -w " + name + "=1 (Docker sets it when it creates the bridge; a daemon restart does too).",
			})
		}
		return out
	},
}

type localnetBridge struct {
	bridge, network string
	ports           []string
}

// localnetBridges lists the NAT'd Docker bridges whose route_localnet was
// read as 0 and that carry ports published on 0.0.0.0 or 127.0.0.1.
func localnetBridges(s *snapshot.Snapshot) []localnetBridge {
	bridgeOf := natBridges(s)
	byBridge := map[string]*localnetBridge{}
	for _, c := range s.Docker.Containers {
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			br := bridgeOf[ep.Network]
			if br == "" || ep.IP == "" {
				continue
			}
			v, ok := sysctl(s, "net.ipv4.conf."+br+".route_localnet")
			if !ok || v != "0" {
				continue
			}
			for _, p := range c.Ports {
				a, err := netip.ParseAddr(p.HostIP)
				if p.HostPort == 0 || p.HostIP != "" && (err != nil || !a.Is4() || !a.IsUnspecified() && !a.IsLoopback()) {
					continue
				}
				b := byBridge[br]
				if b == nil {
					b = &localnetBridge{bridge: br, network: ep.Network}
					byBridge[br] = b
				}
				pn := fmt.Sprintf("%d/%s (%s)", p.HostPort, proto(p), c.Name)
				if !slices.Contains(b.ports, pn) {
					b.ports = append(b.ports, pn)
				}
			}
		}
	}
	var out []localnetBridge
	for _, b := range byBridge {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].bridge < out[j].bridge })
	return out
}
