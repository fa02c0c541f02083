package diagnose

// ipForwardDisabled: net.ipv4.ip_forward is 0, so the kernel routes no
// packet between the uplink and Docker's bridges.
var ipForwardDisabled = Check{
	ID:       "ip-forward-disabled",
	Title:    "IPv4 forwarding is off: containers are cut off from the network",
	Severity: SeverityError,
	Repair:   Repair{Auto: true},
	Needs:    "the forwarding sysctls",
	Run: func(env *Env) []Finding {
		s := env.S
		v, ok := sysctl(s, "net.ipv4.ip_forward")
		if !ok || v != "0" {
			return nil
		}
		ev := []string{"net.ipv4.ip_forward = 0"}
		if all, ok := sysctl(s, "net.ipv4.conf.all.forwarding"); ok {
			ev = append(ev, "net.ipv4.conf.all.forwarding = "+all)
		}
		return []Finding{{
			ID:       "ip-forward-disabled",
			Severity: SeverityError,
			Title:    "IPv4 forwarding is off: containers are cut off from the network",
			Detail: "With net.ipv4.ip_forward=0 the kernel does not route between the host's interfaces and Docker's " +
				"bridges: published ports do not answer from other machines (DNAT'd packets are dropped), and containers " +
				"cannot reach anything outside the host. Connections to 127.0.0.1 on the host still work through " +
				"docker-proxy, which hides the problem from local tests. Docker only sets the sysctl when it starts " +
				"(20.10–27) or creates a network (28+); something turned it off afterwards (systemd-sysctl, a CIS " +
				"profile, networkd).",
			Evidence: ev,
			Fix: "sysctl -w net.ipv4.ip_forward=1, and make it stick: echo 'net.ipv4.ip_forward = 1' > " +
				"/etc/sysctl.d/99-docker-forward.conf (with systemd-networkd also IPForward=yes in the uplink's .network " +
				"file). Find what turned it off: grep -r ip_forward /etc/sysctl.d /usr/lib/sysctl.d /etc/sysctl.conf.",
		}}
	},
}
