package diagnose

import (
	"fmt"
	"strings"
)

// bridgeDown: a bridge with running containers is administratively down or
// has no carrier. (A bridge with no ports is DOWN/NO-CARRIER normally.)
var bridgeDown = Check{
	ID:       "bridge-down",
	Title:    "A Docker network's bridge is down while containers use it",
	Severity: SeverityError,
	Repair:   Repair{Manual: "links are Docker's to manage: `ip link set BRIDGE up` or a daemon restart"},
	Needs:    "the host's links",
	Run: func(env *Env) []Finding {
		s := env.S
		// Why not on an inferred view: its containers come from neighbour
		// entries and DNAT rules, which outlive the containers.
		if s.Docker == nil || s.Docker.Inferred || !linksRead(s) {
			return nil
		}
		var out []Finding
		for _, n := range s.Docker.Networks {
			l := link(s, n.BridgeName)
			if n.Driver != "bridge" || l == nil {
				continue
			}
			if l.Up && l.OperState != "DOWN" {
				continue // why first: runningOn reads every container
			}
			cts := runningOn(s, n)
			if len(cts) == 0 {
				continue
			}
			out = append(out, Finding{
				ID:       "bridge-down",
				Severity: SeverityError,
				Title:    fmt.Sprintf("Bridge %s of network %s is down", n.BridgeName, n.Name),
				Detail:   "The host does not send or receive packets on this bridge: its containers are unreachable from the host and the outside, and have no egress.",
				Subject:  Subject{Network: n.Name},
				Evidence: []string{fmt.Sprintf("ip link show %s: up=%v operstate=%s", l.Name, l.Up, l.OperState), "running containers on it: " + strings.Join(cts, ", ")},
				Fix:      "ip link set " + n.BridgeName + " up; if it stays DOWN, check that its veth ports are up (`ip link show master " + n.BridgeName + "`).",
			})
		}
		return out
	},
}
