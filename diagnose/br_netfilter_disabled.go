package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/snapshot"
)

// brNetfilterDisabled: Docker needs bridged traffic to pass through
// iptables (br_netfilter, net.bridge.bridge-nf-call-iptables=1) and it
// does not:
//
//   - userland-proxy off: container A -> HOSTIP:HPORT is DNAT'd to
//     container B on the same bridge; B's reply goes straight to A over the
//     bridge, and without br_netfilter conntrack never un-DNATs it, so A
//     drops it. Seen on real 28.5 (proxy off): with the sysctl at 0,
//     multi -> HOSTIP:8080 (web, same bridge) times out.
//   - a network with icc=false: its "-i BR -o BR -j DROP" only sees
//     bridged packets through br_netfilter; without it containers of the
//     network talk to each other freely.
//
// Docker 27.4+ loads br_netfilter and sets the sysctls in both cases
// (≤27.2 loaded it at start; docker-facts.md §3.4). Absent sysctls mean
// the module is not loaded (collect records them as absent, not 0).
var brNetfilterDisabled = Check{
	ID:       "br-netfilter-disabled",
	Title:    "Bridged traffic bypasses iptables (br_netfilter) although Docker needs it",
	Severity: SeverityWarning,
	Repair:   Repair{Auto: true},
	Needs:    "the br_netfilter sysctls",
	Run: func(env *Env) []Finding {
		s := env.S
		if !apiView(s) {
			return nil
		}
		need := brNetfilterNeeds(s)
		const name = "net.bridge.bridge-nf-call-iptables"
		v, read := s.Sysctls[name]
		if len(need.why) == 0 || !read || v.Present && v.Value != "0" {
			return nil // not needed, not read, or on
		}
		bad := name + " = 0"
		fix := "sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 (what Docker sets)."
		if !v.Present {
			bad = name + ": absent (br_netfilter is not loaded)"
			fix = "modprobe br_netfilter (and list it in /etc/modules-load.d/ so it loads at boot); Docker 27.4+ also does it " +
				"when it starts. Not repaired automatically: iptscope does not load kernel modules."
		}
		detail := "Packets between containers on the same bridge are not seen by iptables."
		if need.proxyOff {
			detail += " With userland-proxy off, a container's connection to another container's published port on the " +
				"same bridge through the host's address is translated, but the reply goes back over the bridge without being " +
				"translated back: the connection times out."
		}
		if need.icc {
			detail += " On an icc=false network, Docker's DROP between its containers never sees their packets: they " +
				"talk to each other freely."
		}
		return []Finding{{
			ID:       "br-netfilter-disabled",
			Severity: SeverityWarning,
			Title:    "Bridged traffic bypasses iptables: " + bad,
			Detail:   detail + " Note that with br_netfilter on, traffic of every Linux bridge (libvirt, LXC) goes through iptables FORWARD too.",
			Evidence: append([]string{bad}, need.why...),
			Fix:      fix,
		}}
	},
}

// brNetfilterNeed is why Docker needs br_netfilter here (why, one line per
// network) and for which of the two reasons.
type brNetfilterNeed struct {
	why           []string
	proxyOff, icc bool
}

// brNetfilterNeeds says why Docker needs br_netfilter here: userland-proxy
// off with a bridge that has a published port and another container, or a
// network with icc=false and two running containers. No why: not needed.
func brNetfilterNeeds(s *snapshot.Snapshot) brNetfilterNeed {
	bridgeOf := natBridges(s)
	var need brNetfilterNeed
	mode := proxyMode(s)
	perNet := map[string][]string{} // network -> running containers
	publishing := map[string]bool{}
	for _, c := range s.Docker.Containers {
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			if bridgeOf[ep.Network] == "" {
				continue
			}
			perNet[ep.Network] = append(perNet[ep.Network], c.Name)
			if publishes(c) {
				publishing[ep.Network] = true
			}
		}
	}
	for _, n := range s.Docker.Networks {
		cts := perNet[n.Name]
		if len(cts) < 2 {
			continue
		}
		if !mode.On() && publishing[n.Name] {
			need.proxyOff = true
			need.why = append(need.why, fmt.Sprintf("network %s: userland-proxy off (%s) and %d containers, one publishing ports", n.Name, mode.Source, len(cts)))
		}
		if n.Options["com.docker.network.bridge.enable_icc"] == "false" {
			need.icc = true
			need.why = append(need.why, fmt.Sprintf("network %s: icc=false with %d containers", n.Name, len(cts)))
		}
	}
	return need
}
