package diagnose

import (
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// withoutProxies drops the docker-proxy processes of one host port, as
// `kill` or the OOM killer would (dockerd does not restart them).
func withoutProxies(s *snapshot.Snapshot, hostPort int) int {
	var keep []snapshot.Proxy
	for _, p := range s.Proxies {
		if p.HostPort != hostPort {
			keep = append(keep, p)
		}
	}
	n := len(s.Proxies) - len(keep)
	s.Proxies = keep
	return n
}

// TestProxyMissingOnRealCaptures: real healthy proxy-on hosts with 8080's
// docker-proxy processes removed give exactly one proxy-missing warning
// (web's 8080), the ports table keeps 8080 on the nat path and says the
// proxy is gone; proxy-off hosts and hosts whose processes could not be
// read give none.
func TestProxyMissingOnRealCaptures(t *testing.T) {
	n := 0
	for _, b := range bundles(t) {
		if b.state != "healthy" || !strings.Contains(b.dir, "-proxy-on-") {
			continue
		}
		n++
		t.Run(b.dir, func(t *testing.T) {
			s := b.snap
			if got := withoutProxies(s, 8080); got == 0 {
				t.Fatalf("no docker-proxy for 8080 in a proxy-on capture")
			}
			var ids []string
			for _, f := range Run(s, Options{}) {
				if f.Severity.Rank() >= SeverityWarning.Rank() {
					ids = append(ids, f.ID+" "+f.Subject.Container+" "+f.Subject.Port)
				}
			}
			if len(ids) != 1 || ids[0] != "proxy-missing web 8080/tcp" {
				t.Errorf("errors/warnings %q, want [proxy-missing web 8080/tcp]", ids)
			}
			for _, p := range Ports(s) {
				if p.HostPort != 8080 {
					if strings.Contains(p.Reason, "proxy-missing") {
						t.Errorf("port %d: %s", p.HostPort, p.Reason)
					}
					continue
				}
				if p.Path != PathNAT || !strings.Contains(p.Reason, "proxy-missing") {
					t.Errorf("port 8080: %s (%s), want nat and the proxy named", p.Path, p.Reason)
				}
			}

			// The mode comes from the OUTPUT jump, not from the processes:
			// with every proxy gone, every port is reported.
			all := len(s.Proxies)
			s.Proxies = nil
			if got := len(proxyMissing.Run(NewEnv(s))); got < 5 {
				t.Errorf("all %d proxies gone: %d proxy-missing findings, want one per published port (>= 5)", all, got)
			}
			// Processes not read: nothing can be said.
			s.Errors = append(s.Errors, snapshot.PartError{Part: "proxies", Error: "permission denied"})
			if got := proxyMissing.Run(NewEnv(s)); len(got) != 0 {
				t.Errorf("proxies not read: %d findings, want none", len(got))
			}
		})
	}
	if n == 0 {
		t.Fatal("no healthy proxy-on bundle")
	}
}

// TestProxyMissingNeedsTheMode: with the OUTPUT jumps gone and no process
// left, the mode is unknown (no docker-proxy reads as proxy off): no
// finding, rather than a guess.
func TestProxyMissingNeedsTheMode(t *testing.T) {
	for _, b := range bundles(t) {
		if b.dir != "docker-28.5-nft-proxy-on-healthy" {
			continue
		}
		s := b.snap
		for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
			d, err := s.PickDump(snapshot.BackendAuto, fam)
			if err != nil {
				continue
			}
			if c := d.Ruleset.Table(parse.TableNAT).Chain(parse.ChainOutput); c != nil {
				c.Rules = nil
			}
		}
		s.Proxies = nil
		if got := proxyMissing.Run(NewEnv(s)); len(got) != 0 {
			t.Errorf("%d findings, want none: %s", len(got), got[0].Title)
		}
		return
	}
	t.Fatal("fixture docker-28.5-nft-proxy-on-healthy not found")
}

// TestProxyMissingRangeProxy: a docker-proxy started for a range
// (-host-port-end) serves every port of it.
func TestProxyMissingRangeProxy(t *testing.T) {
	s := loadBundle(t, "docker-20.10-nft-proxy-on-healthy")
	var keep []snapshot.Proxy
	for _, p := range s.Proxies {
		switch {
		case p.HostPort == 7000:
			p.HostPortEnd = 7002
			keep = append(keep, p)
		case p.HostPort == 7001 || p.HostPort == 7002:
		default:
			keep = append(keep, p)
		}
	}
	s.Proxies = keep
	if got := proxyMissing.Run(NewEnv(s)); len(got) != 0 {
		t.Errorf("range proxy 7000-7002: %s", got[0].Title)
	}
	for i := range s.Proxies {
		s.Proxies[i].HostPortEnd = 0
	}
	if got := proxyMissing.Run(NewEnv(s)); len(got) != 2 {
		t.Errorf("without the range: %d findings, want 7001 and 7002", len(got))
	}
}
