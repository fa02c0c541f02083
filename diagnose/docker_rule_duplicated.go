package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// dockerRuleDuplicated: one of Docker's rules appears more than once in
// its chain, typically after a saved ruleset was restored with --noflush
// on top of Docker's (netfilter-persistent, a firewall script run twice).
// The later copy changes nothing today (the first one matches first), but
// when Docker removes a container it deletes one copy only: the other
// keeps translating or admitting traffic for an address a later container
// may get (dnat-stale then). Not repaired: the copies are identical, and
// `iptables -D` by rule text deletes the first one, which would move the
// rule to the later position; the finding gives the deletions by
// position, last first.
var dockerRuleDuplicated = Check{
	ID:       "docker-rule-duplicated",
	Title:    "One of Docker's rules appears more than once",
	Severity: SeverityWarning,
	Run:      perFamily(dockerRuleDuplicatedOf),
	Repair: Repair{Manual: "the copies are identical and `iptables -D` by text deletes the first one (moving the rule): " +
		"delete the later copies by position, as the finding says"},
}

func dockerRuleDuplicatedOf(_ *Env, a analysis) []Finding {
	// One finding per family: a saved ruleset restored on top of Docker's
	// doubles rules in several chains at once; the chains it hit are its
	// affected subjects.
	cause := Subject{Family: a.family()}
	f := Finding{
		ID:       "docker-rule-duplicated",
		Key:      KeyOf("docker-rule-duplicated", cause),
		Severity: SeverityWarning,
		Subject:  cause,
		Detail: "These rules are copies of Docker's rules earlier in the same chain, typically left by a saved ruleset " +
			"restored with --noflush on top of Docker's. They change nothing today, but when Docker removes a container " +
			"it deletes one copy only: the other keeps translating or admitting traffic for an address that a later " +
			"container may get.",
	}
	var cmds, chainsHit []string
	total := 0
	for _, t := range parse.KnownTables {
		chains := make([]string, 0, len(a.exp.Rules[t]))
		for c := range a.exp.Rules[t] {
			chains = append(chains, string(c))
		}
		sort.Strings(chains)
		for _, cn := range chains {
			c := a.rs.Table(t).Chain(parse.ChainName(cn))
			if c == nil {
				continue
			}
			// The Specs Compare rendered, when it saw this chain (always,
			// but for an analysis built by hand in a test).
			specOf := func(i int) string { return c.Rules[i].Spec() }
			expected := func(sp string) bool { return false }
			if cs := a.diff.chainSeenOf(t, parse.ChainName(cn)); cs != nil && len(cs.specs) == len(c.Rules) {
				specOf = func(i int) string { return cs.specs[i] }
				expected = func(sp string) bool { _, ok := cs.want[sp]; return ok }
			} else {
				want := map[string]bool{}
				for _, er := range a.exp.RulesOf(t, parse.ChainName(cn)) {
					want[er.Spec()] = true
				}
				expected = func(sp string) bool { return want[sp] }
			}
			seen := make(map[string]*parse.Rule, len(c.Rules))
			var dups []*parse.Rule
			for i, r := range c.Rules {
				sp := specOf(i)
				if !expected(sp) {
					continue
				}
				if seen[sp] != nil {
					dups = append(dups, r)
					continue
				}
				seen[sp] = r
			}
			if len(dups) == 0 {
				continue
			}
			total += len(dups)
			chainsHit = append(chainsHit, string(t)+" "+cn)
			f.Affected = append(f.Affected, Subject{Family: a.family(), Table: t, Chain: parse.ChainName(cn)})
			for i := len(dups) - 1; i >= 0; i-- {
				cmds = append(cmds, fmt.Sprintf("%s -t %s -D %s %d", a.ipt(), t, cn, dups[i].Position))
			}
			for _, r := range dups {
				f.Rules = append(f.Rules, ruleRef(a.family(), "duplicate", r))
				f.Evidence = append(f.Evidence, fmt.Sprintf("rule %d of %s %s copies rule %d: %s", r.Position, t, cn, seen[r.Spec()].Position, a.evSave(r.SaveLine(false))))
			}
		}
	}
	if total == 0 {
		return nil
	}
	if len(f.Affected) == 1 {
		f.Subject = f.Affected[0]
	}
	f.Title = fmt.Sprintf("%s in %s%s", count(total, "One of Docker's rules appears twice", "%d of Docker's rules appear twice"), capList(chainsHit, 3), a.famTitle())
	f.Evidence = capped(f.Evidence, 10)
	f.Fix = "Delete the later copies by position, last first, chain by chain: `" + strings.Join(cmds, "; ") + "` (`-D` by rule text would " +
		"delete the first copy and move the rule). Then stop whatever restores the saved ruleset with --noflush (netfilter-persistent, " +
		"a firewall script). Not repaired automatically."
	return []Finding{f}
}
