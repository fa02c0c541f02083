package diagnose

import (
	"path/filepath"
	"slices"
	"strings"
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

// TestNftablesBackendBundlesSayNotInspected pins what doctor says today of
// every real Docker 29 nftables-backend capture (issue 14 models those
// tables): the nftables-backend info, a partial report, no port judged but
// the loopback ones, never an iptables finding: Docker wrote no iptables
// rule, so none can be missing. ip-forward-off is the one host-level
// problem it sees.
func TestNftablesBackendBundlesSayNotInspected(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(fixtureDir, "docker-29-nftables-*"))
	if len(dirs) == 0 {
		t.Fatal("no docker-29-nftables-* fixtures")
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			s := loadBundle(t, filepath.Base(d))
			r := NewReport(s, ReportOptions{})
			if !r.Partial || r.Status == StatusOK {
				t.Errorf("partial %v, status %s", r.Partial, r.Status)
			}
			ids := map[string]bool{}
			for _, f := range r.Findings {
				if f.ID != "proxy-overhead" { // docker-proxy's count, with the proxy on
					ids[f.ID] = true
				}
			}
			if !ids["nftables-backend"] {
				t.Errorf("no nftables-backend finding: %v", ids)
			}
			want := 1
			if strings.HasSuffix(d, "-ip-forward-off") {
				want = 2
				if !ids["ip-forward-disabled"] {
					t.Errorf("ip-forward-disabled not reported: %v", ids)
				}
			}
			if len(ids) != want {
				t.Errorf("findings %v, want only what the host shows", ids)
			}
			for _, p := range r.Ports {
				if p.Path != PathUnknown && p.Path != PathLocalOnly {
					t.Errorf("port %s judged %s on tables iptscope does not read", p.HostAddr(), p.Path)
				}
			}
		})
	}
}
