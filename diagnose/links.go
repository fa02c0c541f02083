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
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i] // why not a copy: 33,000 of them per network
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
