package diagnose

import (
	"math/rand"
	"testing"

	"github.com/iptscope/iptscope/parse"
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
