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
		for _, p := range s.Proxies {
			rss += p.RSSBytes
		}
		// The proxies by container address and protocol: runs of one
		// sorted index. Why not a map of port lists: at 33,000 proxies it
		// held 11 MB while the other checks ran, for four lines of
		// evidence.
		idx := make([]int32, len(s.Proxies))
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortStableFunc(idx, func(a, b int32) int {
			pa, pb := &s.Proxies[a], &s.Proxies[b]
			if c := strings.Compare(pa.ContainerIP, pb.ContainerIP); c != 0 {
				return c
			}
			return strings.Compare(pa.Proto, pb.Proto)
		})
		type group struct {
			cip, proto string
			run        []int32    // indices of its proxies
			addr       netip.Addr // parsed once: parsing in the comparator cost 0.1 s at 33,000
			ok         bool
		}
		before := func(a, b *group) bool {
			if len(a.run) != len(b.run) {
				return len(a.run) > len(b.run)
			}
			if a.cip != b.cip {
				if a.ok && b.ok { // numeric order, text order when one does not parse
					return a.addr.Less(b.addr)
				}
				return a.cip < b.cip
			}
			return a.proto < b.proto
		}
		// Only the first four are shown (capped): formatting all of them
		// cost 0.1 s at 33,000 containers.
		var top []group
		groups := 0
		for lo := 0; lo < len(idx); {
			p := &s.Proxies[idx[lo]]
			hi := lo + 1
			for hi < len(idx) && s.Proxies[idx[hi]].ContainerIP == p.ContainerIP && s.Proxies[idx[hi]].Proto == p.Proto {
				hi++
			}
			a, err := netip.ParseAddr(p.ContainerIP)
			g := group{p.ContainerIP, p.Proto, idx[lo:hi], a, err == nil}
			groups++
			at := len(top)
			for at > 0 && before(&g, &top[at-1]) {
				at--
			}
			if at < 4 {
				top = slices.Insert(top, at, g)
				if len(top) > 4 {
					top = top[:4]
				}
			}
			lo = hi
		}
		var ev []string
		for _, g := range top {
			ps := make([]int, len(g.run))
			for i, x := range g.run {
				ps[i] = s.Proxies[x].HostPort
			}
			ev = append(ev, fmt.Sprintf("%s for %s (%s host port%s %s)", count(len(ps), "1 docker-proxy process", "%d docker-proxy processes"),
				g.cip, g.proto, plural(len(uniqueInts(ps))), portRanges(ps)))
		}
		if groups > 4 {
			ev = append(ev, fmt.Sprintf("... and %d more", groups-4))
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
