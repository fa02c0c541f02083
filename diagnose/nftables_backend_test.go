package diagnose

import (
	"slices"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// emptyIptables is what iptables-nft-save prints on a host whose Docker
// uses the nftables backend: the built-in chains, no Docker chain.
const emptyIptables = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
`

// TestNftablesBackendIsSaidPlainly: a real healthy 28.5 bundle turned into
// what a Docker 29 daemon with the nftables backend shows (FirewallBackend
// "nftables", no Docker chain in iptables) gives the nftables-backend info,
// no error or warning (never docker-chain-missing), and a partial report
// with status unknown.
func TestNftablesBackendIsSaidPlainly(t *testing.T) {
	for _, b := range bundles(t) {
		if b.dir != "docker-28.5-nft-proxy-on-healthy" {
			continue
		}
		s := b.snap
		s.Docker.Version = "29.1.3"
		s.Docker.Info.ServerVersion = "29.1.3"
		s.Docker.Info.FirewallBackend = "nftables"
		for i := range s.Rules {
			s.Rules[i].Raw = emptyIptables
		}
		s.ParseRules()
		s.DockerBackend = snapshot.BackendNone
		r := NewReport(s, ReportOptions{Source: "test"})
		var ids []string
		for _, f := range r.Findings {
			ids = append(ids, f.ID)
			if f.Severity.Rank() >= SeverityWarning.Rank() {
				t.Errorf("false alarm on the nftables backend: %s %s: %s", f.Severity, f.ID, f.Title)
			}
		}
		if !slices.Contains(ids, "nftables-backend") {
			t.Errorf("nftables-backend not reported: %v", ids)
		}
		if r.Status != StatusUnknown || !r.Partial {
			t.Errorf("status %q partial %v, want unknown and partial", r.Status, r.Partial)
		}
		for _, p := range r.Ports {
			if p.Path != PathUnknown && p.Path != PathLocalOnly && p.Path != PathProxyOnly {
				t.Errorf("port %s judged %q (%s) on an uninspected backend", p.HostAddr(), p.Path, p.Reason)
			}
		}
		return
	}
	t.Fatal("fixture docker-28.5-nft-proxy-on-healthy not found")
}

// TestNftablesBackendBundles: every real Docker 29 nftables-backend
// capture gets the finding IDs of its breakage (the same IDs as on
// iptables), the status, and a ports table that agrees with the probes
// the capture recorded (fixtures/README.md): the broken ports, and with the
// proxy on the ports that docker-proxy alone still serves.
func TestNftablesBackendBundles(t *testing.T) {
	all := []int{7000, 7001, 7002, 8080, 8081}
	for _, tc := range []struct {
		state       string
		ids         []string
		status      Status
		broken      []int
		proxyOnlyOn []int // with the proxy on; off: these are broken
	}{
		{state: "healthy", status: StatusOK},
		{state: "nft-table-deleted", ids: []string{"docker-chain-missing"}, status: StatusProblems, proxyOnlyOn: all},
		{state: "nft-bridge-chain-flushed", ids: []string{"docker-rule-missing"}, status: StatusProblems},
		{state: "nft-vmap-element-deleted", ids: []string{"docker-jump-missing"}, status: StatusProblems},
		{state: "nft-dnat-deleted", ids: []string{"dnat-missing"}, status: StatusProblems, proxyOnlyOn: []int{8080}},
		{state: "nft-masq-flushed", ids: []string{"masquerade-missing"}, status: StatusProblems},
		{state: "nft-user-table-drop", status: StatusOK, broken: []int{8080}},
		{state: "nft-iptables-forward-drop", ids: []string{"forward-blocked"}, status: StatusProblems, broken: all},
		{state: "ip-forward-off", ids: []string{"ip-forward-disabled"}, status: StatusProblems, broken: all},
	} {
		for _, proxy := range []string{"on", "off"} {
			dir := "docker-29-nftables-proxy-" + proxy + "-" + tc.state
			t.Run(dir+" says what broke", func(t *testing.T) {
				s := loadBundle(t, dir)
				r := NewReport(s, ReportOptions{})
				var ids []string
				for _, f := range r.Findings {
					if f.Severity.Rank() >= SeverityWarning.Rank() && !slices.Contains(ids, f.ID) {
						ids = append(ids, f.ID)
					}
				}
				slices.Sort(ids)
				if !slices.Equal(ids, tc.ids) || r.Status != tc.status || r.Partial {
					t.Errorf("error/warning IDs %v, status %s, partial %v; want %v, %s, not partial (notes %v)", ids, r.Status, r.Partial, tc.ids, tc.status, r.Notes)
				}
				broken, proxied := append([]int(nil), tc.broken...), []int(nil)
				if proxy == "on" {
					proxied = tc.proxyOnlyOn
				} else {
					broken = append(broken, tc.proxyOnlyOn...)
				}
				slices.Sort(broken)
				var gotBroken, gotProxied []int
				for _, p := range r.Ports {
					switch p.Path {
					case PathBroken:
						gotBroken = append(gotBroken, p.HostPort)
					case PathProxyOnly:
						gotProxied = append(gotProxied, p.HostPort)
					case PathUnknown:
						t.Errorf("port %s not judged: %s", p.HostAddr(), p.Reason)
					}
				}
				slices.Sort(gotBroken)
				slices.Sort(gotProxied)
				if !slices.Equal(gotBroken, broken) || !slices.Equal(gotProxied, proxied) {
					t.Errorf("broken %v, proxy-only %v; want %v, %v", gotBroken, gotProxied, broken, proxied)
				}
			})
		}
	}
}
