package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// TestExpectedMatchesHealthyFixtures is the model's proof: on every real
// healthy capture, each rule Docker should have written is in the dump,
// each rule of Docker's chains (and, since the captures hold nothing
// else, of every chain Docker writes to) is expected, and the order
// constraints hold.
func TestExpectedMatchesHealthyFixtures(t *testing.T) {
	for name, s := range healthySnapshots(t) {
		for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
			t.Run(name+" "+fam+" has exactly the rules Docker writes", func(t *testing.T) {
				e, err := Expect(s, fam)
				if err != nil {
					t.Fatal(err)
				}
				d, err := s.PickDump(snapshot.BackendAuto, fam)
				if err != nil {
					if fam == snapshot.FamilyIPv6 && e.Era == EraClassic {
						return // 20.10: ip6tables off, empty dump
					}
					t.Fatal(err)
				}
				if fam == snapshot.FamilyIPv4 && !e.Modelled {
					t.Fatalf("IPv4 not modelled: %v", e.Notes)
				}
				if !e.Modelled {
					return
				}
				diff := Compare(e, d.Ruleset)
				for _, m := range diff.Missing {
					t.Errorf("missing %s %s: %s (%s)", m.Table, m.Chain, m.Spec(), m.Kind)
				}
				for _, u := range diff.Unexpected {
					t.Errorf("unexpected in Docker chain: %s", u.Raw)
				}
				for _, o := range diff.OutOfOrder {
					t.Errorf("order: %q should precede %q", o[0].Actual.Raw, o[1].Actual.Raw)
				}
				// Stricter on these captures: every rule of every chain
				// must be expected (nothing but Docker wrote to them).
				for _, tb := range d.Ruleset.Tables {
					for _, c := range tb.Chains {
						for _, r := range c.Rules {
							if _, ok := foundRule(diff, r); !ok {
								if !e.IsDockerChain(tb.Name, c.Name) {
									t.Errorf("rule in %s %s not expected: %s", tb.Name, c.Name, strings.TrimSpace(r.Raw))
								}
							}
						}
						if !c.Builtin && !e.IsDockerChain(tb.Name, c.Name) {
							t.Errorf("chain %s %s is not one of Docker's", tb.Name, c.Name)
						}
					}
				}
				for tb, chains := range e.Chains {
					for _, c := range chains {
						if d.Ruleset.Table(tb).Chain(c) == nil {
							t.Errorf("expected chain %s %s is absent", tb, c)
						}
					}
				}
			})
		}
	}
}

func foundRule(d *Diff, r *parse.Rule) (int, bool) {
	for k, v := range d.Found {
		if v == r {
			return k, true
		}
	}
	return 0, false
}

// TestCompareSeesMovedAndRemovedRules: the comparison is not vacuous.
func TestCompareSeesMovedAndRemovedRules(t *testing.T) {
	s := captureSnapshot(t, fixtureDir+"/docker-20.10-nft")
	var lines []string
	lastForward := 0
	for _, l := range strings.Split(s.Rules[0].Raw, "\n") {
		switch {
		case strings.HasSuffix(l, "-A FORWARD -j DOCKER-USER"),
			strings.Contains(l, "--dport 8080 -j DNAT"):
			continue
		case strings.Contains(l, "-A FORWARD "):
			lastForward = len(lines) + 1
		}
		lines = append(lines, l)
	}
	lines = slices.Insert(lines, lastForward, "-A FORWARD -j DOCKER-USER")
	s.Rules[0].Raw = strings.Join(lines, "\n")
	s.ParseRules()
	e, err := Expect(s, snapshot.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	d := Compare(e, s.Rules[0].Ruleset)
	if len(d.OutOfOrder) == 0 {
		t.Error("FORWARD -j DOCKER-USER moved to the end: no order violation seen")
	}
	if m := d.MissingOf(KindDNAT); len(m) != 1 || m[0].Port.HostPort != 8080 {
		t.Errorf("removed DNAT for 8080: missing = %v", m)
	}
}

// TestExpectedRulesAreCanonical: Compare matches an expected rule by its
// text and the checks read its table, chain and target without parsing it,
// so the builder's text must be what parse gives back, with that target.
// Over every bundle, every healthy capture, their rule-only views and a
// synthetic host.
func TestExpectedRulesAreCanonical(t *testing.T) {
	snaps := healthySnapshots(t)
	for _, b := range bundles(t) {
		snaps[b.dir] = b.snap
		if len(b.snap.Rules) > 0 && b.snap.Rules[0].Ruleset != nil {
			raw := &snapshot.Snapshot{Rules: b.snap.Rules[:1]}
			if s, inf, _ := withRulesInferredDocker(raw); inf != nil {
				snaps[b.dir+" (rules only)"] = s
			}
		}
	}
	snaps["synthetic 300 ports"] = synth.DockerSnapshot(300, synth.DockerHost(300), "nft")
	n := 0
	for name, s := range snaps {
		for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
			e, err := Expect(s, fam)
			if err != nil {
				t.Fatalf("%s %s: %v", name, fam, err)
			}
			for _, er := range e.All() {
				n++
				r, err := parse.ParseRuleSpec(er.Table, er.Chain, er.Spec())
				if err != nil {
					t.Fatalf("%s %s: %s %s %q does not parse: %v", name, fam, er.Table, er.Chain, er.Spec(), err)
				}
				if r.Spec() != er.Spec() || r.Target != er.Target || r.Goto != er.Goto {
					t.Errorf("%s %s: %s %s %q parses back as %q (target %q goto %v; the builder says %q %v)",
						name, fam, er.Table, er.Chain, er.Spec(), r.Spec(), r.Target, r.Goto, er.Target, er.Goto)
				}
				if got := er.Rule(); got.Spec() != er.Spec() || got != er.Rule() {
					t.Errorf("%s: Rule() gives %q, or not the same rule twice", name, got.Spec())
				}
			}
		}
	}
	if n < 10000 {
		t.Fatalf("only %d expected rules checked", n)
	}
	t.Logf("%d expected rules over %d snapshots", n, len(snaps))
}
