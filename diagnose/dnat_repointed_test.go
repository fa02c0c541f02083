package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// TestDNATRepointedToALiveContainer: Docker's DNAT for 8080 replaced by one
// to the same (running) container on another port, as a container
// re-created with another mapping that got its address back leaves it.
// It takes Docker's port, so it is provably wrong: dnat-missing and
// dnat-stale, the port broken (not proxy-only: the packet is translated
// and never reaches docker-proxy), and a plan that deletes it before
// restoring Docker's rule. Proxy on and off.
func TestDNATRepointedToALiveContainer(t *testing.T) {
	for _, dir := range []string{"docker-28.5-nft-proxy-off-healthy", "docker-20.10-nft-proxy-on-healthy"} {
		t.Run(dir, func(t *testing.T) {
			s := loadBundle(t, dir)
			d, _ := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
			var lines []string
			for _, l := range strings.Split(d.Raw, "\n") {
				if strings.Contains(l, "--dport 8080 -j DNAT --to-destination 172.17.0.2:80") {
					continue // Docker's rule, deleted
				}
				lines = append(lines, l)
			}
			d.Raw = strings.Join(lines, "\n")
			s.ParseRules()
			bang := "! -i docker0 "
			if strings.Contains(dir, "proxy-off") {
				bang = ""
			}
			insertRule(t, s, "nat", "DOCKER", bang+"-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:81", 1)

			got := warnings(s)
			slices.Sort(got)
			got = slices.Compact(got)
			if strings.Join(got, ",") != "dnat-missing,dnat-stale" {
				t.Errorf("errors/warnings %v, want dnat-missing, dnat-stale", got)
			}
			for _, p := range Ports(s) {
				if p.HostPort == 8080 && (p.Path != PathBroken || !strings.Contains(p.Reason, "stale DNAT")) {
					t.Errorf("8080: %s (%s), want broken by the stale DNAT", p.Path, p.Reason)
				}
			}
			p := NewPlan(s, Run(s, Options{}))
			var ops []string
			for _, o := range p.Ops {
				ops = append(ops, string(o.Kind)+" "+o.Spec)
			}
			if len(ops) != 2 || !strings.HasPrefix(ops[0], "delete ") || !strings.Contains(ops[0], ":81") || !strings.Contains(ops[1], "172.17.0.2:80") {
				t.Errorf("plan %q, want the :81 rule deleted, then Docker's restored", ops)
			}
			for _, pf := range p.Findings {
				if pf.Finding.Severity != SeverityInfo && !pf.Repaired {
					t.Errorf("%s not repaired: %s", pf.Finding.ID, pf.Reason)
				}
			}
		})
	}
}
