package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/snapshot"
)

// vethDetached: a running container's host-side veth is missing, down, or
// not a port of its network's bridge. Silent when the collector could not
// find the veth (HostVeth empty): that proves nothing; and when the bridge
// itself is gone (bridge-missing says so).
var vethDetached = Check{
	ID:       "veth-detached",
	Title:    "A container's veth is not attached to its bridge",
	Severity: SeverityError,
	Repair:   Repair{Manual: "links are Docker's to manage: restart the container"},
	Needs:    "the host's links",
	Run: func(env *Env) []Finding {
		s := env.S
		if s.Docker == nil || !linksRead(s) {
			return nil
		}
		bridgeOf := map[string]string{}
		for _, n := range s.Docker.Networks {
			if n.Driver == "bridge" {
				bridgeOf[n.ID] = n.BridgeName
				bridgeOf[n.Name] = n.BridgeName
			}
		}
		var out []Finding
		for _, c := range s.Docker.Containers {
			if !c.Running {
				continue
			}
			for _, ep := range c.Endpoints {
				br := bridgeOf[ep.NetworkID]
				if br == "" {
					br = bridgeOf[ep.Network]
				}
				if br == "" || ep.HostVeth == "" || link(s, br) == nil {
					continue // a missing bridge is bridge-missing's finding
				}
				l := link(s, ep.HostVeth)
				var why, ev string
				switch {
				case l == nil:
					why, ev = "is missing", "ip link show "+ep.HostVeth+": does not exist"
				case !l.Up:
					why, ev = "is down", fmt.Sprintf("ip link show %s: up=false operstate=%s", l.Name, l.OperState)
				case l.Master != br:
					why, ev = "is not a port of "+br, fmt.Sprintf("ip link show %s: master=%q", l.Name, l.Master)
				default:
					continue
				}
				out = append(out, Finding{
					ID:       "veth-detached",
					Severity: SeverityError,
					Title:    fmt.Sprintf("Container %s: veth %s %s", c.Name, ep.HostVeth, why),
					Detail:   "The container's interface on network " + ep.Network + " is not connected to the bridge: it cannot reach or be reached on this network (published ports, egress, other containers).",
					Subject:  Subject{Network: ep.Network, Container: c.Name},
					Evidence: []string{ev},
					Fix:      reattachFix(s, ep.HostVeth, br, c.Name),
				})
			}
		}
		return out
	},
}

// reattachFix is the repair of a detached veth. A re-attached port starts
// with hairpin off, which Docker turns on when userland-proxy is off (seen
// on real 20.10 and 28.5: hairpin-mode-off after `master BR` alone).
func reattachFix(s *snapshot.Snapshot, veth, br, container string) string {
	cmd := "ip link set " + veth + " master " + br + " up"
	if _, off := knownProxyOff(s); off {
		cmd += " && ip link set " + veth + " type bridge_slave hairpin on"
	}
	return "Reconnect it: `" + cmd + "`, or restart the container (`docker restart " + container + "`), which re-creates the veth pair."
}
