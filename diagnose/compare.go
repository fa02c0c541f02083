package diagnose

import (
	"sort"

	"github.com/iptscope/iptscope/parse"
)

// Diff is how a dump differs from the expected rules.
type Diff struct {
	// Missing are expected rules with no rule of the same Spec in their
	// chain (for an Alt group: when no alternative is present). A rule
	// whose chain is missing is listed here too.
	Missing []ExpectedRule
	// Unexpected are rules in Docker's own chains that no expected rule
	// accounts for.
	Unexpected []*parse.Rule
	// OutOfOrder are pairs (First should come before Second) found the
	// other way round: for each rule found after a rule it must precede,
	// one pair, with the highest-ranked such rule above it (not every
	// inverted pair: those can be quadratic in number). Empty when every
	// chain is in Docker's order.
	OutOfOrder [][2]Placed
	// Found is, by expected rule (its id), the dump's rule that is it;
	// nil when missing. Read it with Got.
	Found []*parse.Rule

	// seen is what Compare rendered per table and chain of the expected
	// rules, kept for the checks that need it again (chainSeenOf).
	seen map[parse.TableName]map[parse.ChainName]*chainSeen
}

// chainSeen is one chain as Compare saw it: the Spec of every dump rule
// (by index in the chain), which ones matched an expected rule, and the
// Specs of every expected rule of the chain (alternatives not chosen
// included), each with the first expected rule of that Spec.
type chainSeen struct {
	specs []string
	used  []bool
	want  map[string]int32 // Spec -> id of the first expected rule of it
}

// Got returns the dump's rule that is the expected rule er, nil when it
// is missing.
func (d *Diff) Got(er ExpectedRule) *parse.Rule {
	if d == nil || int(er.id) >= len(d.Found) {
		return nil
	}
	return d.Found[er.id]
}

// chainSeenOf returns what Compare saw of chain c of table t, nil when
// the chain holds no expected rule or is not in the dump.
func (d *Diff) chainSeenOf(t parse.TableName, c parse.ChainName) *chainSeen {
	if d == nil || d.seen == nil {
		return nil
	}
	cs := d.seen[t][c]
	if cs == nil || cs.specs == nil {
		return nil
	}
	return cs
}

// Placed is an expected rule with the dump rule that matched it.
type Placed struct {
	Expected ExpectedRule
	Actual   *parse.Rule
}

// Compare matches the expected rules with a parsed dump by exact
// Rule.Spec() within each table and chain. Each dump rule satisfies at
// most one expected rule of a different Spec; expected rules with the
// same Spec in one chain are one rule (see sharedSpec) and the same dump
// rule satisfies all of them. A missing shared rule is listed once in
// Missing, as the first of them.
func Compare(e *Expected, rs *parse.Ruleset) *Diff {
	d := &Diff{}
	if e == nil || !e.Modelled {
		return d
	}
	all := e.All()
	d.Found = make([]*parse.Rule, e.size())
	altFound := map[string]bool{}
	// covered: expected rules that share the Spec of an earlier one.
	covered := make([]bool, len(d.Found))
	seen := map[parse.TableName]map[parse.ChainName]*chainSeen{}
	d.seen = seen
	// placed: per table and chain, the expected rules found, as pointers
	// into e.Rules (a Placed copies its expected rule: 20 MB at 33,000
	// ports, twice with outOfOrder's sorted copy).
	placed := map[parse.TableName]map[parse.ChainName][]placedRef{}
	var buf []byte
	for _, t := range parse.KnownTables {
		seen[t] = map[parse.ChainName]*chainSeen{}
		for c, rules := range e.Rules[t] {
			chain := rs.Table(t).Chain(c)
			cs := &chainSeen{want: make(map[string]int32, len(rules))}
			seen[t][c] = cs
			// Why an index: Spec() renders text; comparing every expected
			// rule with every rule is O(n²) renders (about 1 s at 1,000
			// published ports). bySpec holds the first dump rule of each
			// Spec, next the following one of the same Spec (-1: none).
			var bySpec map[string]int32
			var next []int32
			if chain != nil {
				n := len(chain.Rules)
				cs.specs, cs.used, next = make([]string, n), make([]bool, n), make([]int32, n)
				bySpec = make(map[string]int32, n)
				for i := n - 1; i >= 0; i-- {
					// The Spec as a substring of the rule's line when it
					// is one (a dump's rules are): no copy of the text.
					sp, ok, b := chain.Rules[i].RawSpec(buf)
					if buf = b; !ok {
						sp = string(b)
					}
					cs.specs[i] = sp
					next[i] = -1
					if j, ok := bySpec[sp]; ok {
						next[i] = j
					}
					bySpec[sp] = int32(i)
				}
			}
			pl := make([]placedRef, 0, len(rules))
			for k := range rules {
				er := &rules[k]
				want := er.Spec()
				if f, ok := cs.want[want]; ok {
					// sharedSpec: Docker wrote this rule once.
					covered[er.id] = true
					if got := d.Found[f]; got != nil {
						d.Found[er.id] = got
						if er.Alt != "" {
							altFound[altKey(*er)] = true
						}
					}
					continue
				}
				cs.want[want] = er.id
				j, ok := bySpec[want]
				for ok && j >= 0 && cs.used[j] {
					j = next[j]
				}
				if !ok || j < 0 {
					continue
				}
				got := chain.Rules[j]
				cs.used[j] = true
				d.Found[er.id] = got
				if er.Alt != "" {
					altFound[altKey(*er)] = true
				}
				pl = append(pl, placedRef{er, got})
			}
			if len(pl) > 0 {
				if placed[t] == nil {
					placed[t] = map[parse.ChainName][]placedRef{}
				}
				placed[t][c] = pl
			}
		}
	}
	for _, er := range all {
		if d.Found[er.id] != nil || covered[er.id] || (er.Alt != "" && altFound[altKey(er)]) {
			continue
		}
		d.Missing = append(d.Missing, er)
	}
	// Unexpected: rules of Docker's chains nobody expects. Alternatives
	// that were not chosen are still accepted (their Spec is known).
	for _, t := range parse.KnownTables {
		for _, cn := range e.Chains[t] {
			chain := rs.Table(t).Chain(cn)
			if chain == nil {
				continue
			}
			cs := seen[t][cn]
			for i, r := range chain.Rules {
				if cs == nil {
					d.Unexpected = append(d.Unexpected, r)
					continue
				}
				if _, ok := cs.want[cs.specs[i]]; !cs.used[i] && !ok {
					d.Unexpected = append(d.Unexpected, r)
				}
			}
		}
	}
	for _, t := range parse.KnownTables {
		chains := make([]string, 0, len(placed[t]))
		for c := range placed[t] {
			chains = append(chains, string(c))
		}
		sort.Strings(chains)
		for _, c := range chains {
			d.OutOfOrder = append(d.OutOfOrder, outOfOrderRefs(placed[t][parse.ChainName(c)])...)
		}
	}
	return d
}

// placedRef is a Placed that points at its expected rule.
type placedRef struct {
	exp    *ExpectedRule
	actual *parse.Rule
}

// outOfOrder is outOfOrderRefs of Placed values.
func outOfOrder(ps []Placed) [][2]Placed {
	refs := make([]placedRef, len(ps))
	for i := range ps {
		refs[i] = placedRef{&ps[i].Expected, ps[i].Actual}
	}
	return outOfOrderRefs(refs)
}

// outOfOrderRefs scans one chain's placed rules in their actual order and
// returns, for each rule that comes after a rule it must precede
// (mustPrecede), one such pair. O(n log n): a rule a is misplaced iff a
// rule above it has a higher Rank, or the same Rank and Group and a higher
// Seq; the running maximum of each is enough to tell.
func outOfOrderRefs(ps []placedRef) [][2]Placed {
	byPos := append([]placedRef(nil), ps...)
	sort.SliceStable(byPos, func(i, j int) bool { return byPos[i].actual.Position < byPos[j].actual.Position })
	type groupKey struct {
		rank  int
		group string
	}
	pair := func(a, b *placedRef) [2]Placed {
		return [2]Placed{{*a.exp, a.actual}, {*b.exp, b.actual}}
	}
	var out [][2]Placed
	var top *placedRef // highest Rank seen so far
	maxSeq := map[groupKey]*placedRef{}
	for i := range byPos {
		a := &byPos[i]
		switch {
		case top != nil && top.exp.Rank > a.exp.Rank:
			out = append(out, pair(a, top))
		case a.exp.Group != "":
			if b := maxSeq[groupKey{a.exp.Rank, a.exp.Group}]; b != nil && b.exp.Seq > a.exp.Seq {
				out = append(out, pair(a, b))
			}
		}
		if top == nil || a.exp.Rank > top.exp.Rank {
			top = a
		}
		if a.exp.Group != "" {
			k := groupKey{a.exp.Rank, a.exp.Group}
			if b := maxSeq[k]; b == nil || a.exp.Seq > b.exp.Seq {
				maxSeq[k] = a
			}
		}
	}
	return out
}

// sharedSpec: why expected rules with the same Spec in one chain are one
// rule. Docker checks every rule before it adds it (`iptables -C`:
// ProgramRule in libnetwork/iptables for 20.10–27, Rule.Append and
// Rule.Insert in 28.x and 29's iptabler), so a rule two bindings need
// alike is written once: two host ports to one container port
// (`-p 18080:80 -p 18081:80`), or one container port on two host
// addresses, get one filter ACCEPT (and one hairpin MASQUERADE) for both
// DNATs. Seen on real 20.10, 26.1 and 28.5, IPv4 and IPv6.

// altKey is the alternative group of er within its kind. Why the kind: a
// published port's DNAT, filter ACCEPT and raw DROP share one Alt (the
// binding); the ACCEPT found for one endpoint of a container on two
// networks must not make its missing DNAT look present (seen on Docker
// 20.10 and 28.5 after `docker network connect` and a flush of nat DOCKER).
func altKey(er ExpectedRule) string { return string(er.Kind) + "\x00" + er.Alt }

// mustPrecede reports whether Docker always puts a before b in a chain.
func mustPrecede(a, b ExpectedRule) bool {
	if a.Rank != b.Rank {
		return a.Rank < b.Rank
	}
	return a.Group != "" && a.Group == b.Group && a.Seq < b.Seq
}

// MissingOf returns the missing rules of the given kinds.
func (d *Diff) MissingOf(kinds ...Kind) []ExpectedRule {
	var out []ExpectedRule
	for _, m := range d.Missing {
		for _, k := range kinds {
			if m.Kind == k {
				out = append(out, m)
			}
		}
	}
	return out
}
