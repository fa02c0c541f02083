package diagnose

import (
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftAnalysis compares Docker's nftables table of one family with what
// Docker 29 writes (NftExpected).
type nftAnalysis struct {
	exp   *NftExpected
	table *nft.Table // nil: the table is gone
	// bySpec indexes the table's rules: chain -> Spec -> rules.
	bySpec map[string]map[string][]*nft.Rule
	// expected: chain -> Spec of Docker's expected rules.
	expected map[string]map[string]bool
}

// nftAnalyses returns the comparisons of the families Docker's nftables
// backend writes, IPv4 first; none when the daemon does not use that
// backend or the snapshot holds no nftables ruleset (a bundle from before
// iptscope read it): then the nft checks stay silent.
//
// Why not cached in Env: the comparison is linear in the table's rules
// (a few milliseconds at 1,000 ports); each nft check derives it again.
func nftAnalyses(env *Env) []nftAnalysis {
	s := env.S
	if env.RulesOnly || !nftablesBackendOf(s) || !s.NftRead() || dockerElsewhere(s) != "" {
		return nil
	}
	var out []nftAnalysis
	for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
		e := ExpectNft(s, fam)
		if e == nil {
			continue
		}
		a := nftAnalysis{exp: e, table: s.NftTable(e.Family, NftDockerTable), bySpec: map[string]map[string][]*nft.Rule{}, expected: map[string]map[string]bool{}}
		if a.table == nil && e.Optional {
			continue
		}
		if a.table != nil {
			for _, c := range a.table.Chains {
				m := map[string][]*nft.Rule{}
				for _, r := range c.Rules {
					m[r.Spec()] = append(m[r.Spec()], r)
				}
				a.bySpec[c.Name] = m
			}
		}
		for _, r := range e.Rules {
			if a.expected[r.Chain] == nil {
				a.expected[r.Chain] = map[string]bool{}
			}
			a.expected[r.Chain][r.Spec] = true
		}
		out = append(out, a)
	}
	return out
}

// nftV4 returns the IPv4 comparison, if any.
func nftV4(env *Env) (nftAnalysis, bool) {
	for _, a := range nftAnalyses(env) {
		if a.exp.Family == nft.FamilyIP {
			return a, true
		}
	}
	return nftAnalysis{}, false
}

func (a nftAnalysis) family() string { return a.exp.SnapFamily }

func (a nftAnalysis) chain(name string) *nft.Chain {
	if a.table == nil {
		return nil
	}
	return a.table.Chain(name)
}

// missingChains lists Docker's chains the table lacks (all of them when
// the table is gone).
func (a nftAnalysis) missingChains() []NftChainSpec {
	var out []NftChainSpec
	for _, c := range a.exp.Chains {
		if a.chain(c.Name) == nil {
			out = append(out, c)
		}
	}
	return out
}

// missingMaps lists Docker's verdict maps the table lacks.
func (a nftAnalysis) missingMaps() []string {
	var out []string
	for _, m := range a.exp.Maps {
		if a.table == nil || a.table.Set(m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// missingElements lists the per-bridge map elements that are gone from
// maps that exist (or that point elsewhere).
func (a nftAnalysis) missingElements() []NftElementSpec {
	if a.table == nil {
		return nil
	}
	var out []NftElementSpec
	for _, el := range a.exp.Elements {
		m := a.table.Set(el.Map)
		if m == nil {
			continue
		}
		ok := false
		for _, have := range m.Elements {
			if have.Key == el.Key && have.Verdict != nil && have.Verdict.Kind == "jump" && have.Verdict.Target == el.Target {
				ok = true
				break
			}
		}
		if !ok {
			out = append(out, el)
		}
	}
	return out
}

// found returns the rules of the table that are the expected rule.
func (a nftAnalysis) found(r NftRule) []*nft.Rule { return a.bySpec[r.Chain][r.Spec] }

// missingRules lists the expected rules of kinds in chains that exist
// but lack them (a missing chain is docker-chain-missing's).
func (a nftAnalysis) missingRules(kinds ...Kind) []NftRule {
	var out []NftRule
	for _, r := range a.exp.Rules {
		if !kindIn(r.Kind, kinds) || a.chain(r.Chain) == nil || len(a.found(r)) > 0 {
			continue
		}
		out = append(out, r)
	}
	return out
}

func kindIn(k Kind, ks []Kind) bool {
	if len(ks) == 0 {
		return true
	}
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// staleDNATs lists the rules of nat-prerouting-and-output that NAT to a
// destination no running container publishes (Docker's own rule shape,
// comment "DNAT", or any dnat there).
func (a nftAnalysis) staleDNATs() []*nft.Rule {
	c := a.chain(NftNATPreAndOutput)
	if c == nil {
		return nil
	}
	var out []*nft.Rule
	for _, r := range c.Rules {
		if _, k := r.NAT(); k != nft.KindDNAT {
			continue
		}
		if !a.expected[NftNATPreAndOutput][r.Spec()] {
			out = append(out, r)
		}
	}
	return out
}

// nftTableName is the subject's table for Docker's nftables table.
func nftSubject(a nftAnalysis, chain string) Subject {
	return Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(chain)}
}

// nftRuleRef points at a rule of an nftables table: Position is its
// 1-based place in its chain, Rule its Spec.
func nftRuleRef(family, role string, r *nft.Rule) RuleRef {
	return RuleRef{Role: role, Family: family, Table: parseTable(r.Table), Chain: parseChain(r.Chain), Position: r.Index + 1, Rule: r.Spec()}
}

// nftMissingRef is an expected rule that is not in the table.
func nftMissingRef(a nftAnalysis, r NftRule) RuleRef {
	return RuleRef{Role: "missing", Family: a.family(), Table: NftDockerTable, Chain: parseChain(r.Chain), Rule: r.Spec}
}

// nftEvidence renders a rule for people: `nft list chain ip docker-bridges
// CHAIN: SPEC`.
func nftEvidence(family nft.Family, table, chain, spec string) string {
	return string(family) + " " + table + " " + chain + ": " + spec
}

// withNft runs an iptables check and adds what its nftables form finds.
// The hook each check file uses: `Run: withNft(perFamily(x), nftX)`.
func withNft(run func(*Env) []Finding, nftRun func(*Env) []Finding) func(*Env) []Finding {
	return func(env *Env) []Finding {
		return append(run(env), nftRun(env)...)
	}
}

// nftJudged reports whether Docker's rules are judged in its nftables
// table: then an empty or missing iptables dump does not make the report
// partial (Docker writes no iptables rule with that backend).
func nftJudged(s *snapshot.Snapshot) bool { return nftablesBackendOf(s) && s.NftRead() }
