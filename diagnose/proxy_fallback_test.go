package diagnose

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// answeredFromClient reads fixtures/<dir>/probe.txt: the ports that
// answered from the client namespace ("8080", ...).
func answeredFromClient(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, dir, "probe.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "answered=yes") && strings.Contains(l, "from=client") {
			out = append(out, strings.TrimPrefix(strings.Fields(l)[0], "port="))
		}
	}
	sort.Strings(out)
	return out
}

// TestProxyFallbackMatchesTheProbes: on every real bundle, proxy-fallback
// names exactly the ports that answered from the client while their NAT
// path was broken: all published non-loopback ports of the proxy-on
// fixtures whose nat DOCKER chain, DNAT rules or PREROUTING jump are gone,
// and nothing elsewhere (healthy, proxy off, stale DNAT, ip_forward off).
func TestProxyFallbackMatchesTheProbes(t *testing.T) {
	broken := map[string]bool{"nat-docker-flushed": true, "nat-docker-deleted": true, "prerouting-jump-deleted": true, "firewall-reload": true}
	for _, b := range bundles(t) {
		proxyOn := strings.Contains(b.dir, "-proxy-on-")
		t.Run(b.dir, func(t *testing.T) {
			var got []string
			for _, f := range proxyFallback.Run(NewEnv(b.snap)) {
				for _, port := range findingPorts(f) {
					got = append(got, strings.TrimSuffix(port, "/tcp"))
				}
				if f.Severity != SeverityWarning || len(f.Evidence) < 2 || !strings.Contains(strings.Join(f.Evidence, "\n"), "docker-proxy pid ") {
					t.Errorf("finding lacks severity or evidence (rule and proxy): %+v", f)
				}
			}
			sort.Strings(got)
			if !proxyOn || !broken[b.state] {
				if len(got) > 0 {
					t.Fatalf("want no proxy-fallback, got %v", got)
				}
				return
			}
			want := []string{"7000", "7001", "7002", "8080", "8081"}
			if !slices.Equal(got, want) {
				t.Fatalf("ports %v, want %v", got, want)
			}
			answered := answeredFromClient(t, b.dir)
			for _, p := range got {
				if !slices.Contains(answered, p) {
					t.Errorf("port %s reported as served by docker-proxy but did not answer in probe.txt", p)
				}
			}
		})
	}
}

// TestProxyFallbackOnARuleThatSkipsDNAT: a RETURN above a port's DNAT in
// nat DOCKER sends its packets to the host, where docker-proxy answers.
func TestProxyFallbackOnARuleThatSkipsDNAT(t *testing.T) {
	for _, dir := range []string{"docker-20.10-legacy-proxy-on-healthy", "docker-28.5-nft-proxy-on-healthy"} {
		t.Run(dir+": the RETURN'd port only", func(t *testing.T) {
			s := loadBundle(t, dir)
			insertRule(t, s, "nat", "DOCKER", "-p tcp -m tcp --dport 8081 -j RETURN", 1)
			got := proxyFallback.Run(NewEnv(s))
			if len(got) != 1 || got[0].Subject.Port != "8081/tcp" || got[0].Subject.Container != "app" {
				t.Fatalf("want one finding for 8081/tcp of app, got %+v", got)
			}
			if !strings.Contains(got[0].Evidence[0], "--dport 8081 -j RETURN") || !strings.Contains(got[0].Evidence[1], "bypassed") {
				t.Errorf("evidence: %q", got[0].Evidence)
			}
		})
	}
	t.Run("a DNAT above, pointing elsewhere, is dnat-stale's, not a fallback", func(t *testing.T) {
		s := loadBundle(t, "docker-28.5-nft-proxy-on-healthy")
		insertRule(t, s, "nat", "DOCKER", "! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.250:80", 1)
		if got := proxyFallback.Run(NewEnv(s)); len(got) != 0 {
			t.Fatalf("want nothing, got %+v", got)
		}
	})
	t.Run("no docker-proxy process, no fallback", func(t *testing.T) {
		s := loadBundle(t, "docker-28.5-nft-proxy-on-nat-docker-flushed")
		s.Proxies = nil
		if got := proxyFallback.Run(NewEnv(s)); len(got) != 0 {
			t.Fatalf("want nothing, got %+v", got)
		}
	})
}
