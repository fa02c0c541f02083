package diagnose

import (
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// TestIPv6ForwardDisabled: on the real 28.5 IPv6 capture, forwarding=0
// gives ipv6-forward-disabled and a plan that sets it; an RA-learnt route
// on an interface with accept_ra=1 withholds the repair with the reason;
// accept_ra=2 lets it through. The IPv4-only fixtures have forwarding=0
// and must not report it.
func TestIPv6ForwardDisabled(t *testing.T) {
	s := ipv6Bundle(t, "docker-28.5-nft-ipv6-healthy")
	s.Sysctls["net.ipv6.conf.all.forwarding"] = snapshot.Sysctl{Value: "0", Present: true}
	fs := Run(s, Options{})
	var got []string
	for _, f := range fs {
		if f.Severity.Rank() >= SeverityWarning.Rank() {
			got = append(got, f.ID)
		}
	}
	if strings.Join(got, ",") != "ipv6-forward-disabled" {
		t.Fatalf("errors/warnings %v, want [ipv6-forward-disabled]", got)
	}
	plan := func() *Plan { return NewPlan(s, Run(s, Options{})) }
	p := plan()
	if ops := p.SysctlOps(); len(ops) != 1 || ops[0].Name != "net.ipv6.conf.all.forwarding" || ops[0].Value != "1" {
		t.Errorf("sysctl ops %+v, want net.ipv6.conf.all.forwarding=1", ops)
	}

	s.Routes = append(s.Routes, snapshot.Route{Dst: "default", Gateway: "fe80::1", Dev: "eth9", Table: 254, Protocol: "ra"})
	s.Sysctls["net.ipv6.conf.eth9.accept_ra"] = snapshot.Sysctl{Value: "1", Present: true}
	p = plan()
	if len(p.SysctlOps()) != 0 {
		t.Errorf("forwarding set although eth9 learns routes from RAs with accept_ra=1")
	}
	for _, pf := range p.Findings {
		if pf.Finding.ID == "ipv6-forward-disabled" && (pf.Repaired || !strings.Contains(pf.Reason, "accept_ra=2")) {
			t.Errorf("finding planned as repaired=%v, reason %q", pf.Repaired, pf.Reason)
		}
	}

	s.Sysctls["net.ipv6.conf.eth9.accept_ra"] = snapshot.Sysctl{Value: "2", Present: true}
	if len(plan().SysctlOps()) != 1 {
		t.Errorf("accept_ra=2: forwarding not planned")
	}

	for _, b := range bundles(t) {
		if v, _ := sysctl(b.snap, "net.ipv6.conf.all.forwarding"); v == "0" {
			if f := ipv6ForwardDisabled.Run(NewEnv(b.snap)); len(f) != 0 {
				t.Errorf("%s (no IPv6 network): %s", b.dir, f[0].Title)
			}
		}
	}
}
