package diagnose

import "github.com/iptscope/iptscope/snapshot"

// linksRead reports whether the snapshot has the namespace's links.
func linksRead(s *snapshot.Snapshot) bool {
	if len(s.Links) == 0 {
		return false
	}
	for _, e := range s.Errors {
		if e.Part == "netlink" || e.Part == "links" {
			return false
		}
	}
	return true
}

// link returns the link of that name, or nil.
func link(s *snapshot.Snapshot, name string) *snapshot.Link {
	for i := range s.Links {
		if s.Links[i].Name == name {
			return &s.Links[i]
		}
	}
	return nil
}

// runningOn returns the names of running containers with an endpoint on
// network n.
func runningOn(s *snapshot.Snapshot, n snapshot.Network) []string {
	var out []string
	for _, c := range s.Docker.Containers {
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			if ep.NetworkID == n.ID || (ep.NetworkID == "" && ep.Network == n.Name) {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// linkProblem says why container c cannot be reached on network at the
// link level (its bridge missing or down, its host-side veth missing,
// down or off the bridge), or "" when the links are fine or were not read.
// The checks bridge-missing, bridge-down and veth-detached report the same
// facts; the ports table uses this to call the port broken.
func linkProblem(s *snapshot.Snapshot, c *snapshot.Container, network string) string {
	if s.Docker == nil || s.Docker.Inferred || !linksRead(s) || network == "" {
		return ""
	}
	var n *snapshot.Network
	for i := range s.Docker.Networks {
		if s.Docker.Networks[i].Name == network && s.Docker.Networks[i].Driver == "bridge" {
			n = &s.Docker.Networks[i]
		}
	}
	if n == nil || n.BridgeName == "" {
		return ""
	}
	br := link(s, n.BridgeName)
	switch {
	case br == nil:
		return "bridge " + n.BridgeName + " of network " + n.Name + " does not exist (bridge-missing)"
	case !br.Up || br.OperState == "DOWN":
		return "bridge " + n.BridgeName + " of network " + n.Name + " is down (bridge-down)"
	}
	for _, ep := range c.Endpoints {
		if ep.Network != network || ep.HostVeth == "" {
			continue
		}
		switch l := link(s, ep.HostVeth); {
		case l == nil:
			return "the container's veth " + ep.HostVeth + " does not exist (veth-detached)"
		case !l.Up:
			return "the container's veth " + ep.HostVeth + " is down (veth-detached)"
		case l.Master != n.BridgeName:
			return "the container's veth " + ep.HostVeth + " is not a port of " + n.BridgeName + " (veth-detached)"
		}
	}
	return ""
}
