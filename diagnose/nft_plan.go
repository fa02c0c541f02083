package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse/nft"
)

// OpNft is one command of the `nft -f` transaction that repairs Docker's
// nftables table (Spec holds the whole command: "add rule ip
// docker-bridges CHAIN ...", "insert rule ... position HANDLE ...", "add
// element ...", "add chain ...", "add map ...", "add table ..."). Only
// table docker-bridges is ever named; nothing is flushed or deleted.
const OpNft OpKind = "nft"

// NftOps returns the plan's nftables commands of one family ("ip",
// "ip6"), in order.
func (p *Plan) NftOps(family nft.Family) []Op {
	var out []Op
	for _, o := range p.Ops {
		if o.Kind == OpNft && o.Family == nftSnapFamily(family) {
			out = append(out, o)
		}
	}
	return out
}

// HasNftOps reports whether the plan changes Docker's nftables table.
func (p *Plan) HasNftOps() bool {
	for _, o := range p.Ops {
		if o.Kind == OpNft {
			return true
		}
	}
	return false
}

func nftSnapFamily(f nft.Family) string {
	if f == nft.FamilyIP6 {
		return "ipv6"
	}
	return "ipv4"
}

// planNft plans the repair of Docker's nftables tables: what is missing
// is added exactly as Docker 29 writes it (same comments, bare counters),
// so that Docker finds and rewrites it later. A missing table is rebuilt
// whole; a missing chain or map is created with its rules or elements; a
// missing rule is inserted before the first of Docker's rules that comes
// after it, else appended. Stale DNATs are left alone (dnat-stale). Each
// operation names the finding it repairs by key.
func planNft(p *Plan, env *Env) {
	for _, a := range nftAnalyses(env) {
		fam := string(a.exp.Family)
		op := func(chain, cmd, why, key string) {
			p.Ops = append(p.Ops, Op{Kind: OpNft, Family: a.family(), Table: NftDockerTable, Chain: parseChain(chain), Spec: cmd, Why: why, Finding: key})
		}
		chainKey := KeyOf("docker-chain-missing", Subject{Family: a.family(), Table: NftDockerTable})
		if a.table == nil {
			op("", "add table "+fam+" "+NftDockerTable, "docker-chain-missing", chainKey)
		}
		for _, m := range a.missingMaps() {
			decl := fmt.Sprintf("add map %s %s %s { type ifname : verdict; }", fam, NftDockerTable, m)
			op("", decl, "docker-chain-missing", chainKey)
		}
		missingChain := map[string]bool{}
		for _, c := range a.missingChains() {
			missingChain[c.Name] = true
			op(c.Name, c.Decl(a.exp.Family), "docker-chain-missing", chainKey)
		}
		// Elements: of maps created now, and those gone from maps that exist.
		newMap := map[string]bool{}
		for _, m := range a.missingMaps() {
			newMap[m] = true
		}
		for _, el := range a.exp.Elements {
			if newMap[el.Map] {
				op("", fmt.Sprintf("add element %s %s %s { %q : jump %s }", fam, NftDockerTable, el.Map, el.Key, el.Target), "docker-chain-missing", chainKey)
			}
		}
		for _, el := range a.missingElements() {
			key := KeyOf("docker-jump-missing", Subject{Family: a.family(), Table: NftDockerTable, Chain: parseChain(el.Target), Network: el.Network})
			op("", fmt.Sprintf("add element %s %s %s { %q : jump %s }", fam, NftDockerTable, el.Map, el.Key, el.Target), "docker-jump-missing", key)
		}
		// Rules, chain by chain in Docker's order.
		var chains []string
		seen := map[string]bool{}
		for _, r := range a.exp.Rules {
			if !seen[r.Chain] {
				seen[r.Chain] = true
				chains = append(chains, r.Chain)
			}
		}
		ruleMissing := map[string]bool{}
		for _, f := range nftRuleMissing(env) {
			ruleMissing[f.Key] = true
		}
		for _, ch := range chains {
			exp := a.expectedOf(ch)
			var present []*nft.Rule
			if c := a.chain(ch); c != nil {
				present = c.Rules
			}
			seqOf := map[string]int{}
			for _, r := range exp {
				if _, dup := seqOf[r.Spec]; !dup {
					seqOf[r.Spec] = r.Seq
				}
			}
			for _, r := range exp {
				if len(a.found(r)) > 0 {
					continue
				}
				why, key := a.claim(r, missingChain[ch])
				cmd := fmt.Sprintf("add rule %s %s %s %s", fam, NftDockerTable, ch, r.Spec)
				// Before the first of Docker's rules that comes after it.
				for _, have := range present {
					if s, ok := seqOf[have.Spec()]; ok && s > r.Seq && have.Handle > 0 {
						cmd = fmt.Sprintf("insert rule %s %s %s position %d %s", fam, NftDockerTable, ch, have.Handle, r.Spec)
						break
					}
				}
				op(ch, cmd, why, key)
			}
		}
	}
}

// expectedOf returns the expected rules of a chain in Seq order.
func (a nftAnalysis) expectedOf(chain string) []NftRule { return a.exp.RulesOf(chain) }

// claim names the check and finding key that a missing rule's restoration
// repairs (the same subjects as the nft checks' findings).
func (a nftAnalysis) claim(r NftRule, chainMissing bool) (string, string) {
	fam := a.family()
	switch {
	case chainMissing:
		return "docker-chain-missing", KeyOf("docker-chain-missing", Subject{Family: fam, Table: NftDockerTable})
	case r.Kind == KindJump:
		s := nftSubject(a, r.Chain)
		s.Rule = r.Spec
		return "docker-jump-missing", KeyOf("docker-jump-missing", s)
	case r.Kind == KindDNAT:
		return "dnat-missing", KeyOf("dnat-missing", nftSubject(a, NftNATPreAndOutput))
	case r.Kind == KindMasquerade:
		return "masquerade-missing", KeyOf("masquerade-missing", Subject{Family: fam, Table: NftDockerTable, Chain: parseChain(r.Chain), Network: r.Network})
	case r.Kind == KindRawEndpoint || r.Kind == KindRawLoopback:
		return "raw-drop-missing", KeyOf("raw-drop-missing", nftSubject(a, NftRawPrerouting))
	}
	return "docker-rule-missing", KeyOf("docker-rule-missing", Subject{Family: fam, Table: NftDockerTable, Chain: parseChain(r.Chain), Network: a.networkOfChain(r.Chain)})
}

// networkOfChain is the network whose missing rules of chain the
// docker-rule-missing finding names (that of its first missing rule).
func (a nftAnalysis) networkOfChain(chain string) string {
	for _, r := range a.missingRules(KindNetworkPath, KindPortAccept, KindHairpinMasq, KindPortMasq) {
		if r.Chain == chain {
			return r.Network
		}
	}
	return ""
}

// NftScript renders one family's nftables operations as an `nft -f`
// transaction (applied atomically by nft: all or nothing).
func (p *Plan) NftScript(family nft.Family) string {
	var b strings.Builder
	for _, o := range p.NftOps(family) {
		b.WriteString(o.Spec + "\n")
	}
	return b.String()
}
