package diagnose

import (
	"fmt"
	"strings"
)

// bridgeMissing: a bridge-driver network's Linux bridge does not exist.
var bridgeMissing = Check{
	ID:       "bridge-missing",
	Title:    "A Docker network's bridge interface is missing",
	Severity: SeverityError,
	Repair:   Repair{Manual: "links are Docker's to manage: `docker network` or a daemon restart recreates the bridge"},
	Needs:    "the host's links",
	Run: func(env *Env) []Finding {
		s := env.S
		if s.Docker == nil || !linksRead(s) {
			return nil
		}
		var out []Finding
		for _, n := range s.Docker.Networks {
			if n.Driver != "bridge" || n.BridgeName == "" || link(s, n.BridgeName) != nil {
				continue
			}
			cts := runningOn(s, n)
			f := Finding{
				ID:       "bridge-missing",
				Severity: SeverityError,
				Title:    fmt.Sprintf("Bridge %s of network %s does not exist", n.BridgeName, n.Name),
				Detail: "Docker's rules for this network name an interface that is gone (deleted by hand, by a network manager, " +
					"or the daemon runs in another namespace than the one inspected): its containers are unreachable and have no egress.",
				Subject:  Subject{Network: n.Name},
				Evidence: []string{"ip link show " + n.BridgeName + ": does not exist"},
				Fix: "Restart Docker so that it re-creates the bridge (`systemctl restart docker`); if a network manager " +
					"(NetworkManager, systemd-networkd) deletes it, tell it to leave docker0 and br-* alone.",
			}
			if len(cts) > 0 {
				f.Evidence = append(f.Evidence, "running containers on it: "+strings.Join(cts, ", "))
			}
			out = append(out, f)
		}
		return out
	},
}
