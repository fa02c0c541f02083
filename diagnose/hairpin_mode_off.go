package diagnose

import (
	"fmt"
)

// hairpinModeOff: userland-proxy is off and a container with published
// ports sits behind a bridge port whose hairpin mode is off. With the
// proxy off, Docker turns hairpin on for every port of its bridges
// (docker-facts.md §3.4): a container's connection to its own published
// port through the host's address is DNAT'd back to itself and must leave
// through the bridge port it came in on, which a bridge refuses without
// hairpin. Seen on real 28.5 (proxy off): with web's veth at hairpin off,
// web -> HOSTIP:8080 times out; other containers and other machines still
// reach it.
var hairpinModeOff = Check{
	ID:       "hairpin-mode-off",
	Title:    "A container's bridge port has hairpin mode off while userland-proxy is off",
	Severity: SeverityWarning,
	Repair:   Repair{Manual: "links are Docker's to manage: `ip link set VETH type bridge_slave hairpin on` or restart the container"},
	Needs:    "the host's links",
	Run: func(env *Env) []Finding {
		s := env.S
		mode, ok := knownProxyOff(s)
		if !ok || !linksRead(s) {
			return nil
		}
		var out []Finding
		bridgeOf := natBridges(s)
		for _, c := range s.Docker.Containers {
			if !c.Running || !publishes(c) {
				continue
			}
			for _, ep := range c.Endpoints {
				br := bridgeOf[ep.Network]
				l := link(s, ep.HostVeth)
				if br == "" || l == nil || l.Master != br || l.Hairpin == nil || *l.Hairpin {
					continue
				}
				out = append(out, Finding{
					ID:       "hairpin-mode-off",
					Severity: SeverityWarning,
					Title:    fmt.Sprintf("Container %s: hairpin mode is off on its bridge port %s", c.Name, l.Name),
					Detail: "With userland-proxy off, a container's connection to its own published port through the host's " +
						"address (or a name that resolves to it) is translated back to the container itself and has to leave " +
						"through the bridge port it came in on. The bridge does that only in hairpin mode, which Docker turns on " +
						"for every port when the proxy is off: without it those connections time out. Other containers and " +
						"other machines are not affected.",
					Subject:  Subject{Network: ep.Network, Container: c.Name},
					Evidence: []string{fmt.Sprintf("ip -d link show %s: master %s, hairpin off", l.Name, br), "userland-proxy off: " + mode.Source},
					Fix: "ip link set " + l.Name + " type bridge_slave hairpin on (or `docker restart " + c.Name + "`, which " +
						"re-creates the port). Not repaired automatically: links are Docker's to manage.",
				})
			}
		}
		return out
	},
}
