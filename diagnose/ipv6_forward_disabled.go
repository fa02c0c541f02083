package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// ipv6ForwardDisabled: net.ipv6.conf.all.forwarding is 0 while Docker has
// IPv6 networks with running containers. The kernel then routes no IPv6
// packet between the uplink and those bridges: ports published over IPv6
// do not answer from other machines (the DNAT'd packet is dropped) and the
// containers have no IPv6 egress. Docker turns it on when it programs an
// IPv6 network with ip6tables enabled (docker-facts.md §1); something
// turned it off afterwards.
//
// Why the repair may be withheld: with forwarding on, the kernel ignores
// router advertisements on interfaces whose accept_ra is 1. A host that
// learnt its IPv6 default route from RAs would lose it when the route's
// lifetime runs out, so the plan sets the sysctl only when no route of the
// snapshot comes from RAs on such an interface (ipv6RARisk).
var ipv6ForwardDisabled = Check{
	ID:       "ipv6-forward-disabled",
	Title:    "IPv6 forwarding is off while Docker has IPv6 networks",
	Severity: SeverityError,
	Repair:   Repair{Auto: true},
	Needs:    "the forwarding sysctls",
	Run: func(env *Env) []Finding {
		s := env.S
		v, ok := sysctl(s, "net.ipv6.conf.all.forwarding")
		if !ok || v != "0" {
			return nil
		}
		nets := ipv6ForwardNeeded(s)
		if len(nets) == 0 {
			return nil
		}
		ev := []string{"net.ipv6.conf.all.forwarding = 0"}
		for _, n := range nets {
			ev = append(ev, "IPv6 network "+n)
		}
		fix := "sysctl -w net.ipv6.conf.all.forwarding=1, and make it stick: echo 'net.ipv6.conf.all.forwarding = 1' > " +
			"/etc/sysctl.d/99-docker-forward.conf. Find what turned it off: grep -r forwarding /etc/sysctl.d " +
			"/usr/lib/sysctl.d /etc/sysctl.conf."
		risk := ipv6RARisk(s)
		if len(risk) > 0 {
			ev = append(ev, risk...)
			fix = "First let the uplink keep accepting router advertisements with forwarding on: sysctl -w " +
				"net.ipv6.conf.IFACE.accept_ra=2 for each interface listed in the evidence; then " + fix +
				" iptscope does not do it for you: forwarding=1 with accept_ra=1 would make this host drop its " +
				"RA-learnt IPv6 routes."
		}
		return []Finding{{
			ID:       "ipv6-forward-disabled",
			Severity: SeverityError,
			Title:    fmt.Sprintf("IPv6 forwarding is off: %d Docker IPv6 network(s) are cut off", len(nets)),
			Detail: "With net.ipv6.conf.all.forwarding=0 the kernel does not route IPv6 between the host's interfaces and " +
				"Docker's bridges: ports published over IPv6 do not answer from other machines (the DNAT'd packets are " +
				"dropped) and containers have no IPv6 egress. IPv4 is not affected. Docker turns IPv6 forwarding on when " +
				"it programs an IPv6 network; something turned it off afterwards (systemd-sysctl, a hardening profile, " +
				"networkd's IPv6Forwarding=).",
			Subject:  Subject{Family: snapshot.FamilyIPv6},
			Evidence: ev,
			Fix:      fix,
		}}
	},
}

// ipv6ForwardNeeded names Docker's IPv6 bridge networks that need
// forwarding: not internal, with a running container that has an IPv6
// address on them.
func ipv6ForwardNeeded(s *snapshot.Snapshot) []string {
	if s == nil || s.Docker == nil {
		return nil
	}
	v6 := map[string]bool{}
	for _, n := range s.Docker.Networks {
		if n.Driver == "bridge" && n.EnableIPv6 && !n.Internal {
			v6[n.Name] = true
		}
	}
	used := map[string]bool{}
	for _, c := range s.Docker.Containers {
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			if ep.IPv6 != "" && v6[ep.Network] {
				used[ep.Network] = true
			}
		}
	}
	var out []string
	for n := range used {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ipv6RARisk lists the routes learnt from router advertisements on
// interfaces whose accept_ra is not 2 (or was not read): turning
// forwarding on would make the kernel ignore further RAs there.
func ipv6RARisk(s *snapshot.Snapshot) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.Routes {
		if r.Protocol != "ra" || r.Dev == "" || seen[r.Dev] {
			continue
		}
		v, ok := sysctl(s, "net.ipv6.conf."+r.Dev+".accept_ra")
		if ok && v == "2" {
			continue
		}
		seen[r.Dev] = true
		state := "accept_ra not read"
		if ok {
			state = "net.ipv6.conf." + r.Dev + ".accept_ra = " + v
		}
		dst := r.Dst
		if r.Gateway != "" {
			dst += " via " + r.Gateway
		}
		out = append(out, fmt.Sprintf("route %s dev %s learnt from router advertisements (%s)", dst, r.Dev, state))
	}
	return out
}

// ipv6ForwardPlanNote says why the plan does not set IPv6 forwarding, or
// "" when it may.
func ipv6ForwardPlanNote(s *snapshot.Snapshot) string {
	if risk := ipv6RARisk(s); len(risk) > 0 {
		return "net.ipv6.conf.all.forwarding is left at 0: with forwarding on the kernel ignores router advertisements " +
			"where accept_ra is 1, and this host learns IPv6 routes from them (" + strings.Join(risk, "; ") +
			"). Set accept_ra=2 on those interfaces first, then run --fix again."
	}
	return ""
}
