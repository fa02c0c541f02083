package diagnose

import (
	"strings"
)

// nftablesBackend: Docker 29+ runs with its nftables firewall backend
// (`--firewall-backend=nftables`, docker-facts.md §2.5). Its rules live in
// nft tables "ip docker-bridges" / "ip6 docker-bridges", not in iptables:
// the absence of Docker's iptables chains is normal there, and iptscope
// does not inspect those tables yet. Said plainly as an info finding; the
// report is partial (status "unknown", exit 2), never "docker-chain-missing".
//
// Detected from the daemon's own word (GET /info FirewallBackend.Driver,
// API 1.49+: "nftables", "nftables+firewalld"), never guessed from empty
// iptables tables: a wiped ruleset looks the same.
var nftablesBackend = Check{
	ID:       "nftables-backend",
	Title:    "Docker uses its nftables firewall backend, which iptscope does not inspect yet",
	Severity: SeverityInfo,
	Repair:   Repair{Manual: "Docker's nftables tables are not repaired by iptscope yet"},
	Needs:    "Docker's API (docker info)",
	Run: func(env *Env) []Finding {
		s := env.S
		if s.Docker == nil || s.Docker.Info == nil || !strings.HasPrefix(s.Docker.Info.FirewallBackend, "nftables") {
			return nil
		}
		return []Finding{{
			ID:       "nftables-backend",
			Severity: SeverityInfo,
			Title:    "Docker " + s.Docker.Version + " uses its nftables firewall backend, which iptscope does not inspect yet",
			Detail: "This daemon writes its rules to the nftables tables \"ip docker-bridges\" and \"ip6 docker-bridges\", not " +
				"to iptables: that Docker's iptables chains (DOCKER, DOCKER-FORWARD, ...) are absent is expected, not a fault. " +
				"iptscope does not read those tables yet, so Docker's NAT and filtering rules were not checked; host-level " +
				"checks (IP forwarding, bridges, veths, docker-proxy) still ran. Note that with this backend DOCKER-USER is " +
				"not consulted and Docker never enables IP forwarding itself.",
			Evidence: []string{"docker info: FirewallBackend " + s.Docker.Info.FirewallBackend},
			Fix: "Nothing to repair. Inspect the rules by hand: `nft list table ip docker-bridges` (and ip6). An iptables " +
				"FORWARD policy of DROP left from before the switch still drops what nftables accepts: `iptables -S FORWARD`.",
		}}
	},
}
