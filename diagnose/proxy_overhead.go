package diagnose

import (
	"fmt"
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
		var ev []string
		var keys []key
		for k := range ports {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(ports[keys[i]]) != len(ports[keys[j]]) {
				return len(ports[keys[i]]) > len(ports[keys[j]])
			}
			return keys[i].cip < keys[j].cip
		})
		for _, k := range keys {
			ps := ports[k]
			sort.Ints(ps)
			ev = append(ev, fmt.Sprintf("%d docker-proxy processes for %s (%s host ports %d-%d)", len(ps), k.cip, k.proto, ps[0], ps[len(ps)-1]))
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
