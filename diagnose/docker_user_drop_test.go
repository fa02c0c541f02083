package diagnose

import (
	"strings"
	"testing"
)

func TestDockerUserDrop(t *testing.T) {
	cases := []struct {
		name, spec string
		pos        int
		wantPorts  []string // published ports named in the finding; nil: no finding
	}{
		{"a DROP of everything reaches every published port", "-j DROP", 1,
			[]string{"8080/tcp", "7000/tcp", "7001/tcp", "7002/tcp", "8081/tcp"}},
		{"a DROP of some clients still reaches every published port", "-s 198.51.100.0/24 -j DROP", 1,
			[]string{"8080/tcp", "8081/tcp"}},
		{"a REJECT by container address and port reaches that port only", "-d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j REJECT", 1,
			[]string{"8080/tcp"}},
		{"a DROP by original port (conntrack) reaches that port only", "-p tcp -m conntrack --ctorigdstport 8081 -j DROP", 1,
			[]string{"8081/tcp"}},
		{"a DROP of the outside interface reaches every published port", "-i tbhost0 -m conntrack --ctstate NEW -j DROP", 1,
			[]string{"8080/tcp", "8081/tcp"}},
		{"a DROP of a bridge reaches that network's ports only", "-o docker0 -j DROP", 1,
			[]string{"8080/tcp", "7000/tcp"}},
		{"a DROP of the host port after DNAT matches nothing published", "-p tcp -m tcp --dport 8080 -j DROP", 1, nil},
		// Why: DOCKER-USER comes before Docker's ESTABLISHED accept, so
		// the replies of the bridge's published ports are dropped too
		// (the trace engine's reply walk; the kernel agrees: e2e
		// forward-reject-bridge).
		{"a DROP of the containers' own traffic drops their published ports' replies", "-i docker0 -j DROP", 1,
			[]string{"8080/tcp", "7000/tcp"}},
		{"a DROP of udp does not reach tcp ports", "-p udp -j DROP", 1, nil},
		{"an ACCEPT is not reported", "-j ACCEPT", 1, nil},
	}
	for _, dir := range healthyBundles {
		for _, c := range cases {
			t.Run(dir+": "+c.name, func(t *testing.T) {
				s := loadBundle(t, dir)
				insertRule(t, s, "filter", "DOCKER-USER", c.spec, c.pos)
				got := dockerUserDrop.Run(NewEnv(s))
				if c.wantPorts == nil {
					if len(got) != 0 {
						t.Fatalf("want no finding, got %+v", got)
					}
					return
				}
				if len(got) != 1 {
					t.Fatalf("want one finding, got %+v", got)
				}
				f := got[0]
				if f.Severity != SeverityInfo || !strings.Contains(f.Evidence[0], c.spec) || !strings.Contains(f.Fix, "Not repaired") {
					t.Errorf("finding lacks info severity, evidence or the no-repair fix: %+v", f)
				}
				for _, p := range c.wantPorts {
					if !strings.Contains(","+f.Subject.Port+",", ","+p+",") {
						t.Errorf("port %s not in %q", p, f.Subject.Port)
					}
				}
				if strings.Contains(f.Subject.Port, "9090") {
					t.Errorf("a 127.0.0.1 binding is never forwarded: %q", f.Subject.Port)
				}
				// Info only: the host is still "healthy" for the exit code.
				for _, f := range Run(s, Options{}) {
					if f.Severity.Rank() >= SeverityWarning.Rank() {
						t.Errorf("unexpected %s %s: %s", f.Severity, f.ID, f.Title)
					}
				}
			})
		}
	}
}

func TestDockerUserDropIgnoresRulesAfterReturn(t *testing.T) {
	s := loadBundle(t, "docker-20.10-nft-proxy-on-healthy")
	// 20.10 keeps "-j RETURN" in DOCKER-USER: an appended DROP is dead.
	insertRule(t, s, "filter", "DOCKER-USER", "-j DROP", 99)
	if got := dockerUserDrop.Run(NewEnv(s)); len(got) != 0 {
		t.Fatalf("a rule after DOCKER-USER's RETURN is never reached, got %+v", got)
	}
}
