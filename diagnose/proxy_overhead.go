package diagnose

import (
	"fmt"
	"slices"
	"sort"
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
		var keys []key
		for k := range ports {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(ports[keys[i]]) != len(ports[keys[j]]) {
				return len(ports[keys[i]]) > len(ports[keys[j]])
			}
			if keys[i].cip != keys[j].cip {
				return ipLess(keys[i].cip, keys[j].cip)
			}
			return keys[i].proto < keys[j].proto
		})
		var ev []string
		for _, k := range keys {
			ps := ports[k]
			ev = append(ev, fmt.Sprintf("%s for %s (%s host port%s %s)", count(len(ps), "1 docker-proxy process", "%d docker-proxy processes"),
				k.cip, k.proto, plural(len(uniqueInts(ps))), portRanges(ps)))
		}
		ev = capped(ev, 4)
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
	sort.Ints(out)
	return slices.Compact(out)
}
