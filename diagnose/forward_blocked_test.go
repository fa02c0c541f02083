package diagnose

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// loadBundle reads fixtures/<dir>/bundle.json afresh (tests change it).
func loadBundle(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// insertRule puts "-A CHAIN SPEC" as rule number pos (1-based; past the
// end appends) of a chain in the dump the checks read (Docker's backend,
// IPv4), declaring the chain first when the table lacks it.
func insertRule(t *testing.T, s *snapshot.Snapshot, table, chain, spec string, pos int) {
	t.Helper()
	insertRuleFam(t, s, snapshot.FamilyIPv4, table, chain, spec, pos)
}

// insertRuleFam is insertRule for the dump of a family.
func insertRuleFam(t *testing.T, s *snapshot.Snapshot, family, table, chain, spec string, pos int) {
	t.Helper()
	d, err := s.PickDump(snapshot.BackendAuto, family)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(d.Raw, "\n")
	in, start, at, n := false, -1, -1, 0
	declared := false
	for i, l := range lines {
		switch {
		case l == "*"+table:
			in, start = true, i
		case in && strings.HasPrefix(l, ":"+chain+" "):
			declared = true
		case in && (strings.HasPrefix(l, "-A "+chain+" ") || strings.Contains(l, "] -A "+chain+" ")):
			n++
			if n == pos {
				at = i
			}
		case in && l == "COMMIT":
			if at < 0 {
				at = i
			}
			in = false
		}
		if !in && at >= 0 {
			break
		}
	}
	if start < 0 || at < 0 {
		t.Fatalf("no table %s in the dump", table)
	}
	if pos > n {
		// Append after the chain's last rule (or before COMMIT).
		at = -1
		in, n = false, 0
		for i, l := range lines {
			if l == "*"+table {
				in = true
			}
			if in && (strings.HasPrefix(l, "-A "+chain+" ") || strings.Contains(l, "] -A "+chain+" ")) {
				at = i + 1
			}
			if in && l == "COMMIT" {
				if at < 0 {
					at = i
				}
				break
			}
		}
	}
	ins := []string{"[0:0] -A " + chain + " " + spec}
	if !strings.Contains(d.Raw, "] -A") {
		ins[0] = "-A " + chain + " " + spec
	}
	lines = append(lines[:at], append(ins, lines[at:]...)...)
	if !declared {
		lines = append(lines[:start+1], append([]string{":" + chain + " - [0:0]"}, lines[start+1:]...)...)
	}
	d.Raw = strings.Join(lines, "\n")
	s.ParseRules()
	if d.Ruleset == nil {
		t.Fatalf("edited dump does not parse: %s", d.Error)
	}
}

// healthyBundles are one healthy bundle per version and layout.
var healthyBundles = []string{
	"docker-20.10-nft-proxy-on-healthy",
	"docker-20.10-legacy-proxy-off-healthy",
	"docker-28.5-nft-proxy-off-healthy",
	"docker-28.5-legacy-proxy-on-healthy",
}

func idsOf(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

func TestForwardBlocked(t *testing.T) {
	cases := []struct {
		name, spec string
		pos        int
		want       int // findings
	}{
		{"a REJECT of everything at the top of FORWARD is reported", "-j REJECT --reject-with icmp-host-prohibited", 1, 1},
		{"a DROP of traffic to docker0 at the top is reported", "-o docker0 -j DROP", 1, 1},
		{"a DROP of new connections from a bridge wildcard is reported", "-i br-+ -m conntrack --ctstate NEW -j DROP", 1, 1},
		{"a DROP of a Docker subnet is reported", "-d 172.17.0.0/16 -j DROP", 1, 1},
		{"a DROP after Docker's rules is not reported", "-j DROP", 99, 0},
		{"a DROP of INVALID packets is the admin's and not reported", "-m conntrack --ctstate INVALID -j DROP", 1, 0},
		{"a DROP of one port is the admin's and not reported", "-p tcp -m tcp --dport 22 -j DROP", 1, 0},
		{"a DROP of a source outside Docker is the admin's and not reported", "-s 198.51.100.0/24 -j DROP", 1, 0},
		{"a DROP of another interface is not reported", "-i eth1 -o eth2 -j DROP", 1, 0},
		{"an ACCEPT at the top is not reported", "-j ACCEPT", 1, 0},
	}
	for _, dir := range healthyBundles {
		for _, c := range cases {
			t.Run(dir+": "+c.name, func(t *testing.T) {
				s := loadBundle(t, dir)
				insertRule(t, s, "filter", "FORWARD", c.spec, c.pos)
				got := forwardBlocked.Run(NewEnv(s))
				if len(got) != c.want {
					t.Fatalf("got %d findings, want %d: %+v", len(got), c.want, got)
				}
				for _, f := range got {
					if f.Severity != SeverityError || !strings.Contains(f.Evidence[0], c.spec) || f.Fix == "" || f.Detail == "" {
						t.Errorf("finding lacks severity, evidence or fix: %+v", f)
					}
				}
				// The rule is an admin's, not Docker's: no other check
				// should call it anything.
				if c.want > 0 {
					for _, f := range Run(s, Options{}) {
						if f.Severity.Rank() >= SeverityWarning.Rank() && f.ID != "forward-blocked" {
							t.Errorf("unexpected %s %s: %s", f.Severity, f.ID, f.Title)
						}
					}
				}
			})
		}
	}
}

func TestForwardBlockedSaysWhichNetworks(t *testing.T) {
	s := loadBundle(t, "docker-28.5-nft-proxy-on-healthy")
	insertRule(t, s, "filter", "FORWARD", "-o docker0 -j DROP", 1)
	got := forwardBlocked.Run(NewEnv(s))
	if len(got) != 1 || !strings.Contains(got[0].Detail, "bridge (docker0)") || strings.Contains(got[0].Detail, "appnet") {
		t.Fatalf("want one finding naming only the default bridge network: %+v", got)
	}
}

// TestNewChecksAreSilentOnHealthyHosts: every healthy fixture (bundles and
// older captures) gives no finding from the three checks.
func TestNewChecksAreSilentOnHealthyHosts(t *testing.T) {
	for name, s := range healthySnapshots(t) {
		t.Run(name+" gives nothing", func(t *testing.T) {
			for _, c := range []Check{forwardBlocked, dockerUserDrop, proxyFallback} {
				if fs := c.Run(NewEnv(s)); len(fs) > 0 {
					t.Errorf("%s: %v", c.ID, fs)
				}
			}
		})
	}
}
