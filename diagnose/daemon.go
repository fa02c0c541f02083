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

// dockerElsewhere says why the Docker daemon that answered cannot be the
// one whose namespace was read, or "". It is so when the collector saw
// every process of the host and none is a dockerd of this network
// namespace: a rootless daemon (its rules live in rootlesskit's
// namespace), a daemon in another namespace reached through its socket, a
// remote DOCKER_HOST. Bundles from before dockerd was read (Daemons nil)
// and collectors in a container's PID namespace cannot tell: "".
func dockerElsewhere(s *snapshot.Snapshot) string {
	if s == nil || s.Docker == nil || s.Docker.Inferred || s.Daemons == nil || len(s.Daemons) > 0 || !s.Host.AllProcesses {
		return ""
	}
	if s.Docker.Error != "" && len(s.Docker.Networks) == 0 {
		return "" // no Docker view: docker-unreachable says so
	}
	for _, pe := range s.Errors {
		if pe.Part == "daemon" || pe.Part == "proxies" {
			return ""
		}
	}
	host := s.Docker.Host
	if host == "" {
		host = "the Docker API"
	}
	return "the Docker daemon that answered (" + host + ") does not run in this network namespace (no dockerd process here): " +
		"its rules, bridges and docker-proxy processes are where it runs, so nothing here was compared with Docker's view. " +
		"Run iptscope in the daemon's namespace (`--netns /proc/$(pidof dockerd)/ns/net`; for rootless Docker, rootlesskit's " +
		"namespace: `--netns /proc/$(pgrep -u USER rootlesskit | head -1)/ns/net` with DOCKER_HOST set), or on the host where a " +
		"remote daemon runs"
}

// iptablesOff reports whether Docker runs with iptables=false (it writes
// no iptables rules at all) and where that was read.
func iptablesOff(s *snapshot.Snapshot) (bool, string) {
	v, src := daemonSetting(s, "iptables")
	return v != nil && !*v, src
}
