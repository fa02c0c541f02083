package diagnose

import (
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// TestIptablesDisabledDaemon: a real 28.5 capture whose rules are gone
// (firewall-reload) reads as a broken host; the same snapshot from a
// daemon configured with iptables=false is a healthy one with an info
// finding, ports through docker-proxy and an empty plan.
func TestIptablesDisabledDaemon(t *testing.T) {
	s := loadBundle(t, "docker-28.5-nft-proxy-on-firewall-reload")
	if len(warnings(s)) == 0 {
		t.Fatal("the reload capture gives no error or warning")
	}
	off := false
	s.Daemons = []snapshot.Daemon{{PID: 1, Hosts: []string{"fd://"}, ConfigFile: "/etc/docker/daemon.json", IPTables: &off}}
	if got := warnings(s); len(got) != 0 {
		t.Errorf("iptables=false: errors/warnings %v, want none", got)
	}
	var ids []string
	for _, f := range Run(s, Options{}) {
		ids = append(ids, f.ID)
	}
	if !strings.Contains(strings.Join(ids, ","), "docker-iptables-disabled") {
		t.Errorf("findings %v lack docker-iptables-disabled", ids)
	}
	for _, p := range Ports(s) {
		if p.Path != PathProxyOnly && p.Path != PathLocalOnly {
			t.Errorf("%s: %s (%s)", p.HostAddr(), p.Path, p.Reason)
		}
	}
	if p := NewPlan(s, Run(s, Options{})); !p.Empty() {
		t.Errorf("a plan for an iptables=false daemon: %+v", p.Ops)
	}
	if r := NewReport(s, ReportOptions{}); r.Status != StatusOK {
		t.Errorf("status %s, want ok", r.Status)
	}
}

// TestDaemonSettings: the proxy mode and ip6tables come from the daemon's
// configuration when it says, and the daemon is the one serving the API
// endpoint that was read.
func TestDaemonSettings(t *testing.T) {
	s := loadBundle(t, "docker-20.10-nft-proxy-on-healthy")
	on, off := true, false
	s.Docker.Host = "unix:///run/b.sock"
	s.Daemons = []snapshot.Daemon{
		{PID: 1, Hosts: []string{"unix:///run/a.sock"}, UserlandProxy: &on},
		{PID: 2, Hosts: []string{"unix:///run/b.sock"}, UserlandProxy: &off, Args: []string{"dockerd", "--userland-proxy=false"}},
	}
	if m := proxyMode(s); m.On() || m.Source != "daemon configuration (dockerd --userland-proxy=false)" {
		t.Errorf("proxy mode %+v", m)
	}
	s.Docker.Host = "unix:///run/c.sock" // neither: two daemons, unknown
	if d := daemonOf(s); d != nil {
		t.Errorf("daemon %d chosen among two that do not serve the endpoint", d.PID)
	}
	s.Daemons = s.Daemons[:1]
	s.Daemons[0].IP6Tables = &off
	if on6, why := ip6tablesOn(s, Version{28, 5, 2}); on6 || !strings.Contains(why, "ip6tables=false") {
		t.Errorf("ip6tablesOn = %v, %q", on6, why)
	}
}

// TestDockerElsewhere: a snapshot whose namespace has no dockerd although
// the collector saw every process (the API answered from another
// namespace: rootless Docker, a wrong DOCKER_HOST) is compared with
// nothing: no finding, ports unknown, an empty plan, a partial report.
// Without the daemons list (older bundles) or with a partial view of the
// processes, nothing can be concluded and the checks run.
func TestDockerElsewhere(t *testing.T) {
	s := loadBundle(t, "docker-28.5-nft-proxy-off-nat-docker-flushed")
	if len(Run(s, Options{})) == 0 {
		t.Fatal("the capture gives no finding to begin with")
	}
	s.Daemons, s.Host.AllProcesses = []snapshot.Daemon{}, true
	if fs := Run(s, Options{}); len(fs) != 0 {
		t.Errorf("%d findings, first %s", len(fs), fs[0].ID)
	}
	for _, p := range Ports(s) {
		if p.Path != PathUnknown && p.Path != PathLocalOnly {
			t.Errorf("%s judged %s", p.HostAddr(), p.Path)
		}
	}
	if p := NewPlan(s, nil); !p.Empty() {
		t.Errorf("plan %+v", p.Ops)
	}
	r := NewReport(s, ReportOptions{})
	if r.Status != StatusUnknown || !strings.Contains(strings.Join(r.Notes, "\n"), "does not run in this network namespace") {
		t.Errorf("status %s, notes %q", r.Status, r.Notes)
	}
	s.Host.AllProcesses = false // a collector in a container's PID namespace
	if len(Run(s, Options{})) == 0 {
		t.Error("without every process in view, the checks did not run")
	}
}
