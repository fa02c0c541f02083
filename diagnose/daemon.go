package diagnose

import (
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// daemonOf returns the dockerd whose settings apply to the Docker view:
// the one listening on the endpoint that was read, else the only dockerd
// of the namespace (systemd starts it with -H fd://). nil when unknown.
func daemonOf(s *snapshot.Snapshot) *snapshot.Daemon {
	if s == nil || len(s.Daemons) == 0 {
		return nil
	}
	if s.Docker != nil && s.Docker.Host != "" {
		for i := range s.Daemons {
			for _, h := range s.Daemons[i].Hosts {
				if h == s.Docker.Host || strings.TrimPrefix(h, "unix://") == strings.TrimPrefix(s.Docker.Host, "unix://") {
					return &s.Daemons[i]
				}
			}
		}
	}
	if len(s.Daemons) == 1 {
		return &s.Daemons[0]
	}
	return nil
}

// daemonSetting returns a dockerd setting that shapes the rules and where
// it was read ("dockerd --iptables=false", "/etc/docker/daemon.json"), or
// nil when the daemon does not set it.
func daemonSetting(s *snapshot.Snapshot, key string) (*bool, string) {
	d := daemonOf(s)
	if d == nil {
		return nil, ""
	}
	var v *bool
	switch key {
	case "iptables":
		v = d.IPTables
	case "ip6tables":
		v = d.IP6Tables
	case "userland-proxy":
		v = d.UserlandProxy
	}
	if v == nil {
		return nil, ""
	}
	for _, a := range d.Args {
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); n == key && strings.HasPrefix(a, "-") {
			return v, "dockerd " + a
		}
	}
	return v, d.ConfigFile
}

// iptablesOff reports whether Docker runs with iptables=false (it writes
// no iptables rules at all) and where that was read.
func iptablesOff(s *snapshot.Snapshot) (bool, string) {
	v, src := daemonSetting(s, "iptables")
	return v != nil && !*v, src
}
