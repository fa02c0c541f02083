package diagnose

// nftablesBackend: Docker 29+ runs with its nftables firewall backend
// (`--firewall-backend=nftables`, docker-facts.md §2.5). Its rules live in
// the nft tables "ip docker-bridges" / "ip6 docker-bridges", not in
// iptables: the absence of Docker's iptables chains is normal there. The
// checks judge those tables (nft_*.go: the same IDs as on iptables); this
// info says which backend was judged, and when the snapshot holds no
// nftables ruleset (a bundle from an iptscope that did not read it), that
// Docker's rules could not be judged (the report is then partial).
//
// Detected from the daemon's own word (GET /info FirewallBackend.Driver,
// API 1.49+: "nftables", "nftables+firewalld"), never guessed from empty
// iptables tables: a wiped ruleset looks the same.
var nftablesBackend = Check{
	ID:       "nftables-backend",
	Title:    "Docker uses its nftables firewall backend: its rules are judged in table docker-bridges",
	Severity: SeverityInfo,
	Repair:   Repair{Manual: "nothing to repair: it says which backend was judged"},
	Needs:    "Docker's API (docker info)",
	Run: func(env *Env) []Finding {
		s := env.S
		if !nftablesBackendOf(s) {
			return nil
		}
		f := Finding{
			ID:       "nftables-backend",
			Severity: SeverityInfo,
			Evidence: []string{"docker info: FirewallBackend " + s.Docker.Info.FirewallBackend},
		}
		if !s.NftRead() {
			f.Title = "Docker " + s.Docker.Version + " uses its nftables firewall backend, and this snapshot holds no nftables ruleset"
			f.Detail = "This daemon writes its rules to the nftables tables \"ip docker-bridges\" and \"ip6 docker-bridges\", not " +
				"to iptables, and the snapshot has no `nft -j list ruleset` (collected by an older iptscope, or nft is not installed): " +
				"Docker's NAT and filtering rules were not checked; host-level checks (IP forwarding, bridges, veths, docker-proxy) still ran."
			f.Fix = "Collect again with this iptscope (it reads `nft -j list ruleset`), or inspect the rules by hand: `nft list table ip docker-bridges`."
			if s.Nftables != nil && s.Nftables.Error != "" {
				f.Evidence = append(f.Evidence, "nftables: "+s.Nftables.Error)
			}
			return []Finding{f}
		}
		f.Title = "Docker " + s.Docker.Version + " uses its nftables firewall backend: its rules were judged in table docker-bridges"
		f.Detail = "This daemon writes its rules to the nftables tables \"ip docker-bridges\" and \"ip6 docker-bridges\", not to " +
			"iptables: that Docker's iptables chains (DOCKER, DOCKER-FORWARD, ...) are absent is expected. DOCKER-USER is not " +
			"consulted with this backend (an administrator's policy goes into tables of their own, judged on the forward hook), " +
			"and Docker never enables IP forwarding itself."
		f.Fix = "Nothing to repair. `iptscope dump -t docker-bridges` and `iptscope graph -t docker-bridges` show Docker's table."
		return []Finding{f}
	},
}
