package diagnose

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// TestOutOfOrderFlagsTheSameRulesAsEveryPair checks the linear scan against
// the definition: a rule is flagged iff some rule above it must come after
// it, and the pair given is such a pair.
func TestOutOfOrderFlagsTheSameRulesAsEveryPair(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	groups := []string{"", "docker0", "br-1"}
	for round := 0; round < 500; round++ {
		n := 1 + rng.Intn(12)
		var ps []Placed
		for i, pos := range rng.Perm(n) {
			ps = append(ps, Placed{
				Expected: ExpectedRule{Rank: rng.Intn(3), Group: groups[rng.Intn(3)], Seq: rng.Intn(3), Alt: string(rune('a' + i))},
				Actual:   &parse.Rule{Position: pos + 1},
			})
		}
		want := map[*parse.Rule]bool{}
		for _, a := range ps {
			for _, b := range ps {
				if mustPrecede(a.Expected, b.Expected) && a.Actual.Position > b.Actual.Position {
					want[a.Actual] = true
				}
			}
		}
		got := map[*parse.Rule]bool{}
		for _, p := range outOfOrder(ps) {
			if !mustPrecede(p[0].Expected, p[1].Expected) || p[0].Actual.Position < p[1].Actual.Position {
				t.Fatalf("round %d: pair %+v is not out of order", round, p)
			}
			if got[p[0].Actual] {
				t.Fatalf("round %d: rule at %d flagged twice", round, p[0].Actual.Position)
			}
			got[p[0].Actual] = true
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: flagged %d rules, every-pair check flags %d", round, len(got), len(want))
		}
		for r := range want {
			if !got[r] {
				t.Fatalf("round %d: rule at %d not flagged", round, r.Position)
			}
		}
	}
}

// TestSharedRuleIsOneRule: two host ports to one container port
// (-p 18080:80 -p 18081:80, real 28.5 capture) need the same filter
// ACCEPT, which Docker writes once (it checks with -C first). Present once,
// it serves both; missing, it is listed once and both ports are broken;
// the plan puts it back once; written twice, the copy is a duplicate.
func TestSharedRuleIsOneRule(t *testing.T) {
	const accept = "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"
	load := func(t *testing.T) *snapshot.Snapshot {
		t.Helper()
		return shapeBundles(t)["healthy-shapes-two-host-ports/docker-28.5-nft-proxy-on"]
	}
	portAccepts := func(d *Diff, container string) []ExpectedRule {
		var out []ExpectedRule
		for _, m := range d.MissingOf(KindPortAccept) {
			if m.Container == container {
				out = append(out, m)
			}
		}
		return out
	}
	diffOf := func(t *testing.T, s *snapshot.Snapshot) (*Expected, *Diff) {
		t.Helper()
		e, err := Expect(s, snapshot.FamilyIPv4)
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
		if err != nil {
			t.Fatal(err)
		}
		return e, Compare(e, d.Ruleset)
	}

	t.Run("present once it satisfies both bindings", func(t *testing.T) {
		s := load(t)
		e, d := diffOf(t, s)
		n := 0
		var got *parse.Rule
		for _, er := range e.RulesOf(parse.TableFilter, ChainDocker) {
			if er.Kind == KindPortAccept && er.Container == "p2" {
				n++
				if got != nil && d.Got(er) != got {
					t.Errorf("the two bindings are satisfied by different rules")
				}
				got = d.Got(er)
			}
		}
		if n != 2 || got == nil {
			t.Fatalf("%d expected ACCEPTs for p2 (want 2, one per binding), found %v", n, got)
		}
		if m := portAccepts(d, "p2"); len(m) != 0 {
			t.Errorf("missing: %v", m)
		}
	})
	t.Run("missing it is listed once, both ports are broken and the plan adds it once", func(t *testing.T) {
		s := load(t)
		deleteRule(t, s, "filter", accept)
		_, d := diffOf(t, s)
		if m := portAccepts(d, "p2"); len(m) != 1 {
			t.Errorf("%d missing ACCEPTs for p2, want 1", len(m))
		}
		for _, p := range Ports(s) {
			if p.Container == "p2" && !strings.Contains(p.HostIP, ":") && p.Path != PathBroken {
				t.Errorf("%s: %s (%s), want broken", p.HostAddr(), p.Path, p.Reason)
			}
		}
		rep := NewReport(s, ReportOptions{})
		n := 0
		for _, f := range rep.Findings {
			if f.ID == "forward-accept-missing" && f.Subject.Container == "p2" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d forward-accept-missing findings for p2, want 1", n)
		}
		adds := 0
		for _, op := range NewPlan(s, rep.Findings).Ops {
			if strings.Contains(op.Line(), "-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT") {
				adds++
			}
		}
		if adds != 1 {
			t.Errorf("the plan adds the shared ACCEPT %d times, want 1", adds)
		}
	})
	t.Run("written twice the copy is docker-rule-duplicated", func(t *testing.T) {
		s := load(t)
		insertRule(t, s, "filter", "DOCKER", strings.TrimPrefix(accept, "-A DOCKER "), 1)
		var dup []string
		for _, f := range NewReport(s, ReportOptions{}).Findings {
			if f.Severity.Rank() >= SeverityWarning.Rank() {
				dup = append(dup, f.ID)
			}
		}
		if len(dup) != 1 || dup[0] != "docker-rule-duplicated" {
			t.Errorf("findings %v, want [docker-rule-duplicated]", dup)
		}
	})
}
