package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Thresholds past which docker-proxy's cost is a warning.
const (
	proxyWarnCount = 500
	proxyWarnRSS   = 512 << 20
)

// proxyOverhead: how many docker-proxy processes run, their memory, and
// which port ranges cause most of them (docker-facts.md §3.2, field
// failure 9).
var proxyOverhead = Check{
	ID:       "proxy-overhead",
	Title:    "docker-proxy processes and their cost",
	Severity: SeverityInfo,
	Repair:   Repair{Manual: "information only: docker-proxy is Docker's setting (userland-proxy)"},
	Needs:    "the docker-proxy processes",
	Run: func(env *Env) []Finding {
		s := env.S
		if len(s.Proxies) == 0 {
			return nil
		}
		var rss int64
		type key struct{ cip, proto string }
		ports := map[key][]int{}
		for _, p := range s.Proxies {
			rss += p.RSSBytes
			k := key{p.ContainerIP, p.Proto}
			ports[k] = append(ports[k], p.HostPort)
		}
		type group struct {
			key
			ps   []int
			addr netip.Addr // parsed once: parsing in the comparator cost 0.1 s at 33,000
			ok   bool
		}
		groups := make([]group, 0, len(ports))
		for k, ps := range ports {
			a, err := netip.ParseAddr(k.cip)
			groups = append(groups, group{k, ps, a, err == nil})
		}
		slices.SortFunc(groups, func(a, b group) int {
			if len(a.ps) != len(b.ps) {
				return len(b.ps) - len(a.ps)
			}
			if a.cip != b.cip {
				if a.ok && b.ok { // numeric order, text order when one does not parse
					return a.addr.Compare(b.addr)
				}
				return strings.Compare(a.cip, b.cip)
			}
			return strings.Compare(a.proto, b.proto)
		})
		// Only the first four are shown (capped): formatting all of them
		// cost 0.1 s at 33,000 containers.
		var ev []string
		for i, g := range groups {
			if i == 4 {
				ev = append(ev, fmt.Sprintf("... and %d more", len(groups)-4))
				break
			}
			ev = append(ev, fmt.Sprintf("%s for %s (%s host port%s %s)", count(len(g.ps), "1 docker-proxy process", "%d docker-proxy processes"),
				g.cip, g.proto, plural(len(uniqueInts(g.ps))), portRanges(g.ps)))
		}
		sev := SeverityInfo
		if len(s.Proxies) >= proxyWarnCount || rss >= proxyWarnRSS {
			sev = SeverityWarning
		}
		mem := "memory not read"
		if rss > 0 {
			mem = fmt.Sprintf("%.1f MiB resident in total", float64(rss)/(1<<20))
		}
		return []Finding{{
			ID:       "proxy-overhead",
			Severity: sev,
			Title:    fmt.Sprintf("%d docker-proxy processes (%s)", len(s.Proxies), mem),
			Detail: "Docker starts one docker-proxy per host address, port and protocol (two per port on an IPv6-capable host), " +
				"ranges included. They only carry host-local and fallback traffic while the NAT rules work, but each costs " +
				"memory and a process slot; thousands exhaust TasksMax.",
			Evidence: ev,
			Fix: "Nothing to repair while the count is small. For large ranges: publish fewer ports, use `--network host` for " +
				"such services, or set \"userland-proxy\": false in /etc/docker/daemon.json (needs br_netfilter; then 127.0.0.1 " +
				"access goes through DNAT) and restart docker.",
		}}
	},
}

// portRanges renders ports as they are, runs of consecutive ports joined:
// "7000-7002, 9090" (never "7000-9090", never "8080-8080").
func portRanges(ps []int) string {
	ps = uniqueInts(ps)
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, itoa(ps[i]))
		} else {
			parts = append(parts, itoa(ps[i])+"-"+itoa(ps[j]))
		}
		i = j + 1
	}
	return capList(parts, 6)
}

// uniqueInts returns ps sorted, each once.
func uniqueInts(ps []int) []int {
	out := append([]int(nil), ps...)
	slices.Sort(out)
	return slices.Compact(out)
}
