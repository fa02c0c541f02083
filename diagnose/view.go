package diagnose

import "github.com/iptscope/iptscope/snapshot"

// apiView reports whether the snapshot has Docker's containers from the
// API, for the namespace the daemon runs in: what the checks that compare
// processes, links and sysctls with Docker's view need.
func apiView(s *snapshot.Snapshot) bool {
	return s != nil && s.Docker != nil && !s.Docker.Inferred && len(s.Docker.Containers) > 0 && dockerElsewhere(s) == ""
}

// knownProxyOn returns the proxy mode when it is known to be on and the
// docker-proxy processes and Docker's containers were read.
func knownProxyOn(s *snapshot.Snapshot) (ProxyMode, bool) {
	if !apiView(s) {
		return ProxyMode{}, false
	}
	for _, pe := range s.Errors {
		if pe.Part == "proxies" {
			return ProxyMode{}, false
		}
	}
	mode := proxyMode(s)
	if !mode.On() || mode.Source == proxyDefaultSource {
		return ProxyMode{}, false
	}
	return mode, true
}

// knownProxyOff returns the proxy mode when userland-proxy is off and
// Docker's containers were read from the API.
func knownProxyOff(s *snapshot.Snapshot) (ProxyMode, bool) {
	if !apiView(s) {
		return ProxyMode{}, false
	}
	mode := proxyMode(s)
	return mode, !mode.On()
}

// publishes reports whether c publishes a port on the host.
func publishes(c snapshot.Container) bool {
	for _, p := range c.Ports {
		if p.HostPort > 0 {
			return true
		}
	}
	return false
}

// natBridges maps each bridge-driver network that is neither internal nor
// in routed gateway mode (NAT'd, so hairpin and route_localnet matter) to
// its bridge. Built once per loop over containers: a scan of every network
// per endpoint is quadratic at scale.
func natBridges(s *snapshot.Snapshot) map[string]string {
	out := map[string]string{}
	if s == nil || s.Docker == nil {
		return out
	}
	v, _ := ParseVersion(s.Docker.Version)
	for _, n := range s.Docker.Networks {
		if _, dup := out[n.Name]; dup {
			continue // the first network of a name wins, as before
		}
		if n.Driver == "bridge" && !n.Internal && gatewayMode(n, snapshot.FamilyIPv4, v) != "routed" {
			out[n.Name] = n.BridgeName
		}
	}
	return out
}
