package diagnose

import (
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// TestDockerRuleDuplicated: a real capture with its built-in chains'
// rules appended a second time (what iptables-restore --noflush of a saved
// ruleset does) gives one docker-rule-duplicated per chain, with the
// deletions by position, last first; nothing else and no plan.
func TestDockerRuleDuplicated(t *testing.T) {
	s := loadBundle(t, "docker-28.5-nft-proxy-off-healthy")
	d, _ := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
	var out, again []string
	for _, l := range strings.Split(d.Raw, "\n") {
		if l == "COMMIT" {
			out = append(out, again...)
			again = nil
		}
		out = append(out, l)
		if strings.Contains(l, "-A POSTROUTING ") {
			again = append(again, l)
		}
	}
	d.Raw = strings.Join(out, "\n")
	s.ParseRules()
	var got []Finding
	for _, f := range Run(s, Options{}) {
		if f.Severity.Rank() >= SeverityWarning.Rank() {
			got = append(got, f)
		}
	}
	if len(got) != 1 || got[0].ID != "docker-rule-duplicated" || got[0].Subject.Chain != "POSTROUTING" {
		t.Fatalf("findings %+v, want one docker-rule-duplicated for POSTROUTING", got)
	}
	n := len(d.Ruleset.Table("nat").Chain("POSTROUTING").Rules)
	if !strings.Contains(got[0].Fix, "iptables -t nat -D POSTROUTING "+strconv.Itoa(n)+";") {
		t.Errorf("fix does not delete the last copy (rule %d) first: %s", n, got[0].Fix)
	}
	if p := NewPlan(s, Run(s, Options{})); !p.Empty() {
		t.Errorf("plan %+v, want none", p.Ops)
	}
}
