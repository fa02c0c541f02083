package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// deleteRule removes the rule "-A CHAIN SPEC" of a table from the dump the
// checks read (Docker's backend, IPv4), as `iptables -D` would.
func deleteRule(t *testing.T, s *snapshot.Snapshot, table, line string) {
	t.Helper()
	d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(d.Raw, "\n")
	in, done := false, false
	for i, l := range lines {
		switch {
		case l == "*"+table:
			in = true
		case l == "COMMIT":
			in = false
		case in && (l == line || strings.HasSuffix(l, "] "+line)):
			lines, done = append(lines[:i], lines[i+1:]...), true
		}
		if done {
			break
		}
	}
	if !done {
		t.Fatalf("no rule %q in table %s", line, table)
	}
	d.Raw = strings.Join(lines, "\n")
	s.ParseRules()
	if d.Ruleset == nil {
		t.Fatalf("edited dump does not parse: %s", d.Error)
	}
}

// TestDockerRuleMissingOnRealCaptures deletes, from real healthy captures,
// one rule of each class docker-rule-missing owns and checks the finding's
// severity (which depends on userland-proxy), that no other check reports
// them, and that the plan puts back exactly those rules.
func TestDockerRuleMissingOnRealCaptures(t *testing.T) {
	for _, dir := range []string{
		"docker-20.10-nft-proxy-on-healthy",
		"docker-20.10-legacy-proxy-off-healthy",
		"docker-28.5-nft-proxy-off-healthy",
		"docker-28.5-legacy-proxy-on-healthy",
		"docker-26.1-nft-proxy-on-healthy",
	} {
		t.Run(dir, func(t *testing.T) {
			s := loadBundle(t, dir)
			proxyOn := strings.Contains(dir, "-proxy-on-")
			web := ""
			for _, c := range s.Docker.Containers {
				if c.Name == "web" {
					web = c.Endpoints[0].IP
				}
			}
			d, _ := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
			before := d.Ruleset
			type del struct{ table, line string }
			dels := []del{{"filter", "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP"}}
			want := []string{"warning Network bridge (docker0) lost one of Docker's isolation DROPs"}
			// The per-port hairpin MASQUERADE: 20.10-27 always, 28.x with
			// the proxy off.
			if masq := "-A POSTROUTING -s " + web + "/32 -d " + web + "/32 -p tcp -m tcp --dport 80 -j MASQUERADE"; strings.Contains(d.Raw, masq+"\n") {
				dels = append(dels, del{"nat", masq})
				sev := "warning"
				if proxyOn {
					sev = "info"
				}
				want = append(want, sev+" Network bridge (docker0) lost a hairpin MASQUERADE rule")
			} else if !proxyOn || !strings.HasPrefix(dir, "docker-28.") {
				t.Fatalf("no hairpin MASQUERADE for web in %s", dir)
			}
			// 20.10-27 end the isolation chains with RETURN (28.x does not).
			if strings.Contains(d.Raw, "-A DOCKER-ISOLATION-STAGE-1 -j RETURN\n") {
				dels = append(dels, del{"filter", "-A DOCKER-ISOLATION-STAGE-1 -j RETURN"})
				want = append(want, "info Docker's final RETURN is missing from filter DOCKER-ISOLATION-STAGE-1")
			}
			if proxyOn {
				dels = append(dels, del{"nat", "-A DOCKER -i docker0 -j RETURN"})
				want = append(want, "warning Network bridge (docker0) lost its early RETURN in nat DOCKER")
			}
			for _, x := range dels {
				deleteRule(t, s, x.table, x.line)
			}

			findings := Run(s, Options{})
			var got []string
			for _, f := range findings {
				switch {
				case f.ID == "docker-rule-missing":
					got = append(got, string(f.Severity)+" "+f.Title)
				case f.Severity.Rank() >= SeverityWarning.Rank():
					t.Errorf("other finding: %s %s: %s", f.Severity, f.ID, f.Title)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("docker-rule-missing findings:\n got %q\nwant %q", got, want)
			}

			p := NewPlan(s, findings)
			var ops []string
			for _, o := range p.Ops {
				ops = append(ops, string(o.Table)+" "+string(o.Chain)+" "+o.Spec+" ("+o.Why+")")
				if o.Why != "docker-rule-missing" {
					t.Errorf("op for %s: %s", o.Why, o.Line())
				}
			}
			if len(p.Ops) != len(dels) {
				t.Errorf("%d ops for %d deleted rules: %q", len(p.Ops), len(dels), ops)
			}
			after := applyInMemory(t, d.Ruleset, p)
			for _, tn := range []parse.TableName{parse.TableNAT, parse.TableFilter} {
				for _, c := range before.Table(tn).Chains {
					var b, a []string
					for _, r := range c.Rules {
						b = append(b, r.Spec())
					}
					for _, r := range after.Table(tn).Chain(c.Name).Rules {
						a = append(a, r.Spec())
					}
					if tn == parse.TableNAT && c.Name == parse.ChainPostrouting {
						// Docker appends a port's MASQUERADE when the container
						// starts: the plan appends it too (order does not matter).
						slices.Sort(a)
						slices.Sort(b)
					}
					if !slices.Equal(a, b) {
						t.Errorf("%s %s after the plan:\n got %q\nwant %q", tn, c.Name, a, b)
					}
				}
			}
		})
	}
}
