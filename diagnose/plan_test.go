package diagnose

import (
	"fmt"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// applyInMemory runs a plan's rule operations on a ruleset the way
// iptables-restore --noflush would, and returns the result.
func applyInMemory(t *testing.T, rs *parse.Ruleset, p *Plan) *parse.Ruleset {
	t.Helper()
	var b strings.Builder
	for _, tb := range rs.Tables {
		rules := map[parse.ChainName][]string{}
		var order []parse.ChainName
		pol := map[parse.ChainName]string{}
		for _, c := range tb.Chains {
			order = append(order, c.Name)
			pol[c.Name] = "-"
			if c.Builtin {
				pol[c.Name] = string(c.Policy)
			}
			for _, r := range c.Rules {
				rules[c.Name] = append(rules[c.Name], r.Spec())
			}
		}
		for _, o := range p.RuleOps(snapshot.FamilyIPv4, tb.Name) {
			switch o.Kind {
			case OpCreateChain:
				order, pol[o.Chain] = append(order, o.Chain), "-"
			case OpAppend:
				rules[o.Chain] = append(rules[o.Chain], o.Spec)
			case OpInsert:
				l := rules[o.Chain]
				if o.Position < 1 || o.Position > len(l)+1 {
					t.Fatalf("insert at %d of %s (%d rules)", o.Position, o.Chain, len(l))
				}
				rules[o.Chain] = append(l[:o.Position-1], append([]string{o.Spec}, l[o.Position-1:]...)...)
			case OpDelete:
				l, ok := rules[o.Chain], false
				for i, s := range l {
					if s == o.Spec {
						rules[o.Chain], ok = append(l[:i:i], l[i+1:]...), true
						break
					}
				}
				if !ok {
					t.Fatalf("delete of a rule that is not there: %s", o.Line())
				}
			}
		}
		fmt.Fprintf(&b, "*%s\n", tb.Name)
		for _, c := range order {
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c, pol[c])
		}
		for _, c := range order {
			for _, s := range rules[c] {
				fmt.Fprintf(&b, "-A %s %s\n", c, s)
			}
		}
		b.WriteString("COMMIT\n")
	}
	out, err := parse.ParseSave([]byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return out
}

func TestPlansRepairEveryFixtureAndAreEmptyAfterwards(t *testing.T) {
	for _, bf := range bundles(t) {
		t.Run(bf.dir, func(t *testing.T) {
			s := bf.snap
			p := NewPlan(s, Run(s, Options{}))
			switch bf.state {
			case "healthy", "backend-split", "legacy-leftovers", "saved-rules-restored":
				if !p.Empty() {
					t.Fatalf("plan for %s is not empty: %+v", bf.state, p.Ops)
				}
				return
			}
			if p.Empty() {
				t.Fatalf("empty plan for %s", bf.state)
			}
			d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
			if err != nil {
				t.Fatal(err)
			}
			fixed := *s
			fixed.Rules = []snapshot.RuleDump{{Backend: d.Backend, Family: snapshot.FamilyIPv4, Ruleset: applyInMemory(t, d.Ruleset, p)}}
			fixed.DockerBackend = d.Backend
			fixed.Sysctls = map[string]snapshot.Sysctl{}
			for k, v := range s.Sysctls {
				fixed.Sysctls[k] = v
			}
			for _, o := range p.SysctlOps() {
				fixed.Sysctls[o.Name] = snapshot.Sysctl{Value: o.Value, Present: true}
			}
			after := Run(&fixed, Options{})
			for _, f := range after {
				if f.Severity != SeverityInfo {
					t.Errorf("after the plan: %s %s: %s", f.Severity, f.ID, f.Title)
				}
			}
			if p2 := NewPlan(&fixed, after); !p2.Empty() {
				t.Errorf("a second plan is not empty: %+v", p2.Ops)
			}
			for _, pf := range p.Findings {
				if pf.Finding.Severity != SeverityInfo && !pf.Repaired {
					t.Errorf("%s not repaired: %s", pf.Finding.ID, pf.Reason)
				}
			}
		})
	}
}

// TestPlanRefusesARuleThatWouldAppearTwice: an expectation that lists one
// of Docker's rules twice (a bug: Docker writes each rule once) never
// makes the plan insert a duplicate; the plan says so instead.
func TestPlanRefusesARuleThatWouldAppearTwice(t *testing.T) {
	rs, err := parse.Parse([]byte("*filter\n:DOCKER - [0:0]\n-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	spec := "-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"
	er := ExpectedRule{Table: parse.TableFilter, Chain: ChainDocker, Target: parse.TargetAccept, spec: spec, Kind: KindPortAccept, Container: "web"}
	er2 := er
	er2.id = 1
	e := &Expected{Family: snapshot.FamilyIPv4, Modelled: true,
		Chains: map[parse.TableName][]parse.ChainName{parse.TableFilter: {ChainDocker}},
		Rules: map[parse.TableName]map[parse.ChainName][]ExpectedRule{parse.TableFilter: {ChainDocker: {
			er, er2,
		}}}}
	// Compare counts a rule the expectation lists twice as present once;
	// the plan is handed the second copy as missing, as a wrong
	// expectation would.
	d := Compare(e, rs)
	p := &Plan{}
	a := analysis{exp: e, rs: rs, diff: d}
	ops := planChain(p, e, a, d, parse.TableFilter, ChainDocker, map[int32]bool{1: true}, nil, claimer())
	if len(ops) != 0 {
		t.Errorf("planned %v, want nothing", ops)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "would appear twice") {
		t.Errorf("notes %q, want the refusal", p.Notes)
	}
}
