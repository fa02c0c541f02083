package diagnose

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// proxyMissing: userland-proxy is on but a published port has no
// docker-proxy process (killed by hand or by the OOM killer, crashed;
// dockerd does not restart it). The NAT path still serves other machines,
// so probes from outside see nothing wrong, but everything the proxy
// carries by design is refused (docker-facts.md §3.2):
//
//	host ──> 127.0.0.1:HPORT ──(OUTPUT jump excludes 127.0.0.0/8)──> docker-proxy (gone): refused
//	container on the same bridge ──> HOSTIP:HPORT ──(nat DOCKER -i BR RETURN)──> docker-proxy (gone)
//	IPv6 client ──> [HOSTIP6]:HPORT of an IPv4-only container ──> docker-proxy (gone)
//
// Only judged when the proxy mode is known (daemon API, the shape of nat
// OUTPUT's jump, or other docker-proxy processes; not Docker's default
// alone), the processes were read, and the Docker view came from the API
// (an inferred view is built from the proxies). A port counts as served
// when any docker-proxy listens on its protocol and host port for one of
// its bindings (Docker skips the "::" proxy on hosts without IPv6).
var proxyMissing = Check{
	ID:       "proxy-missing",
	Title:    "A published port has no docker-proxy although userland-proxy is on",
	Severity: SeverityWarning,
	Repair:   Repair{Manual: "dockerd owns docker-proxy and would not know of a process started by another tool: `docker restart CONTAINER` re-creates it"},
	Needs:    "the docker-proxy processes",
	Run: func(env *Env) []Finding {
		s := env.S
		mode, ok := knownProxyOn(s)
		if !ok {
			return nil
		}
		var out []Finding
		for _, g := range unservedPorts(env) {
			pn := fmt.Sprintf("%d/%s", g.hostPort, g.proto)
			var binds []string
			for _, b := range g.bindings {
				binds = append(binds, (PortReport{HostIP: b.HostIP, HostPort: b.HostPort, Proto: proto(b)}).HostAddr())
			}
			ev := []string{
				fmt.Sprintf("published by container %s: %s -> container port %d", g.container, strings.Join(binds, ", "), g.containerPort),
				fmt.Sprintf("no docker-proxy process listens on %s %d (%d docker-proxy processes run for other ports)", g.proto, g.hostPort, len(s.Proxies)),
				"userland-proxy on: " + mode.Source,
			}
			loop := "127.0.0.1"
			if g.loopback != "" {
				loop = g.loopback
			}
			out = append(out, Finding{
				ID:       "proxy-missing",
				Severity: SeverityWarning,
				Title:    fmt.Sprintf("Port %s of container %s has no docker-proxy (userland-proxy is on)", pn, g.container),
				Detail: "With userland-proxy on, Docker runs one docker-proxy per published port. It carries what the NAT rules " +
					"leave out by design: connections from the host itself to " + loop + ":" + fmt.Sprint(g.hostPort) + " (nat OUTPUT " +
					"skips loopback addresses), from containers on the same bridge to the host's address, and IPv6 clients of " +
					"IPv4-only containers. This port's proxy is gone (killed, OOM-killed or crashed; dockerd does not restart it): " +
					"those connections are refused, and the host port is free for another program to take. Connections from other " +
					"machines still reach the container through DNAT, so a probe from outside sees nothing wrong.",
				Subject:  Subject{Container: g.container, Network: g.network, Port: pn},
				Evidence: ev,
				Fix: "Let Docker start the proxy again by re-creating the port mapping: `docker restart " + g.container + "` " +
					"(the container restarts), or restart Docker. iptscope does not start docker-proxy itself: dockerd owns the " +
					"process and would not know of it. Find out what killed it: `journalctl -k | grep -i 'killed process'` (OOM), " +
					"`journalctl -u docker`.",
			})
		}
		return out
	},
}

// unservedPort is one published port (all host addresses of one protocol,
// host port and container port) that no docker-proxy serves.
type unservedPort struct {
	container, network string
	proto              string
	hostPort           int
	containerPort      int
	bindings           []snapshot.PortBinding
	loopback           string // the binding's loopback address, if bound to one
}

// unservedPorts lists the running containers' published ports with no
// docker-proxy for any of their bindings, in container then port order.
func unservedPorts(env *Env) []unservedPort {
	// Computed once per Env: proxy-missing and the ports table both ask.
	env.unservedOnce.Do(func() { env.unserved = computeUnservedPorts(env) })
	return env.unserved
}

func computeUnservedPorts(env *Env) []unservedPort {
	s := env.S
	bridgeOf := natBridges(s)
	px := env.proxies()
	served := func(pb snapshot.PortBinding) bool {
		for _, x := range px.onPort(&pb) {
			if proxyListensOn(x, &pb) {
				return true
			}
		}
		return false
	}
	type groupKey struct {
		proto                   string
		hostPort, containerPort int
	}
	var out []unservedPort
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if !c.Running {
			continue
		}
		network := ""
		for _, ep := range c.Endpoints {
			if ep.IP != "" && network == "" && bridgeOf[ep.Network] != "" {
				network = ep.Network
			}
		}
		if network == "" {
			continue // no NAT'd bridge endpoint: no proxy either
		}
		groups := map[groupKey]*unservedPort{}
		var keys []groupKey
		for _, pb := range c.Ports {
			if pb.HostPort == 0 {
				continue
			}
			k := groupKey{proto(pb), pb.HostPort, pb.ContainerPort}
			g := groups[k]
			if g == nil {
				g = &unservedPort{container: c.Name, network: network, proto: proto(pb), hostPort: pb.HostPort, containerPort: pb.ContainerPort}
				groups[k] = g
				keys = append(keys, k)
			}
			g.bindings = append(g.bindings, pb)
			if a, err := netip.ParseAddr(pb.HostIP); err == nil && a.IsLoopback() {
				g.loopback = pb.HostIP
			}
		}
		slices.SortFunc(keys, func(a, b groupKey) int {
			return cmp.Or(strings.Compare(a.proto, b.proto), cmp.Compare(a.hostPort, b.hostPort), cmp.Compare(a.containerPort, b.containerPort))
		})
	group:
		for _, k := range keys {
			g := groups[k]
			for _, b := range g.bindings {
				if served(b) {
					continue group
				}
			}
			out = append(out, *g)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].container != out[j].container {
			return out[i].container < out[j].container
		}
		return out[i].hostPort < out[j].hostPort
	})
	return out
}

// proxyUnservedSet returns the unserved ports by container and
// proto/host port/container port (see unservedKey), or nil when
// userland-proxy is not known to be on.
func proxyUnservedSet(env *Env) map[unservedKey]bool {
	if _, ok := knownProxyOn(env.S); !ok {
		return nil
	}
	set := map[unservedKey]bool{}
	for _, g := range unservedPorts(env) {
		set[unservedKey{g.container, g.proto, g.hostPort, g.containerPort}] = true
	}
	return set
}

// unservedKey is a container's binding: protocol, host and container
// port.
type unservedKey struct {
	container, proto        string
	hostPort, containerPort int
}
