package diagnose

// dockerIptablesDisabled: the daemon runs with iptables=false (its command
// line or daemon.json), so it writes no rule and none is expected: the
// rule checks stay silent and --fix plans nothing. Said as info so that
// nobody reads the silence as "Docker's rules are fine". Seen on real 28.5:
// without reading the daemon's configuration, such a host gave 9 errors
// and 9 warnings (every chain "missing").
var dockerIptablesDisabled = Check{
	ID:       "docker-iptables-disabled",
	Title:    "Docker runs with iptables=false: it writes no firewall rules",
	Severity: SeverityInfo,
	Repair:   Repair{Manual: "the daemon's configuration: Docker manages no rule, so iptscope writes none"},
	Needs:    "the daemon's configuration",
	Run: func(env *Env) []Finding {
		s := env.S
		off, src := iptablesOff(s)
		if !off || s.Docker == nil {
			return nil
		}
		return []Finding{{
			ID:       "docker-iptables-disabled",
			Severity: SeverityInfo,
			Title:    "Docker runs with iptables=false: it writes no firewall rules",
			Detail: "The daemon is configured not to touch iptables, so iptscope expects none of Docker's rules and checks none. " +
				"Published ports answer only through docker-proxy (userland-proxy), which hides clients' addresses; containers " +
				"reach the outside only if the administrator provides forwarding and a MASQUERADE for their subnets; networks " +
				"are not isolated from each other. If that is not intended, remove the setting and restart Docker.",
			Evidence: []string{"iptables=false: " + src},
			Fix:      "Nothing to repair: this is the daemon's configuration. iptscope never writes rules that Docker does not manage.",
		}}
	},
}
