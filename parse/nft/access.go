package nft

import (
	"bytes"
	"encoding/json"
)

// Table returns the table of that family and name, or nil.
func (rs *Ruleset) Table(family Family, name string) *Table {
	if rs == nil {
		return nil
	}
	for _, t := range rs.Tables {
		if t.Family == family && t.Name == name {
			return t
		}
	}
	return nil
}

// JSON prints the ruleset back as an `nft -j list ruleset` document: the
// input's objects, in order, each byte for byte.
func (rs *Ruleset) JSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"nftables": [`)
	for i, o := range rs.Objects {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(o.Raw)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// Chain returns the chain of that name, or nil.
func (t *Table) Chain(name string) *Chain {
	if t == nil {
		return nil
	}
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Set returns the set or map of that name (without "@"), or nil.
func (t *Table) Set(name string) *Set {
	if t == nil {
		return nil
	}
	for _, s := range t.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// BaseChains returns the table's base chains in input order.
func (t *Table) BaseChains() []*Chain {
	var out []*Chain
	for _, c := range t.Chains {
		if c.IsBase() {
			out = append(out, c)
		}
	}
	return out
}

// Edge is one way a rule enters another chain: a jump or goto, or a
// verdict-map element (Key set, Map the named map or "" for an anonymous
// one).
type Edge struct {
	Rule    *Rule
	Verdict Verdict
	Map     string
	Key     string
}

// Edges returns every chain entry of a rule in order: its jump/goto
// verdicts and the jump/goto elements of the verdict maps it looks up
// (named maps resolved in t, which may be nil).
func (t *Table) Edges(r *Rule) []Edge {
	var out []Edge
	for _, e := range r.Exprs {
		switch {
		case e.Verdict.IsChainTarget():
			out = append(out, Edge{Rule: r, Verdict: *e.Verdict})
		case e.VMap != nil:
			els := e.VMap.Elements
			if e.VMap.Map != "" {
				if s := t.Set(e.VMap.Map); s != nil {
					els = s.Elements
				}
			}
			for _, el := range els {
				if el.Verdict.IsChainTarget() {
					out = append(out, Edge{Rule: r, Verdict: *el.Verdict, Map: e.VMap.Map, Key: el.Key})
				}
			}
		}
	}
	return out
}

// Targets returns the names of the chains c enters (jumps, gotos,
// verdict-map elements), each once, in order of first appearance.
func (t *Table) Targets(c *Chain) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range c.Rules {
		for _, e := range t.Edges(r) {
			if !seen[e.Verdict.Target] {
				seen[e.Verdict.Target] = true
				out = append(out, e.Verdict.Target)
			}
		}
	}
	return out
}

// Verdict returns the rule's verdict statement (the last one), or nil when
// it has none (it only counts, logs, marks or NATs; a NAT statement is
// final for its base chain, see NAT).
func (r *Rule) Verdict() *Verdict {
	for i := len(r.Exprs) - 1; i >= 0; i-- {
		if v := r.Exprs[i].Verdict; v != nil {
			return v
		}
	}
	return nil
}

// NAT returns the rule's dnat/snat/masquerade/redirect statement and its
// kind, or nil.
func (r *Rule) NAT() (*NAT, ExprKind) {
	for _, e := range r.Exprs {
		if e.NAT != nil {
			return e.NAT, e.Kind
		}
	}
	return nil, ""
}

// Matches returns the rule's matches on a selector ("iifname", "ip
// daddr", "tcp dport", ...), in order.
func (r *Rule) Matches(selector string) []*Match {
	var out []*Match
	for _, e := range r.Exprs {
		if e.Match != nil && e.Match.Left.Selector == selector {
			out = append(out, e.Match)
		}
	}
	return out
}

// Match returns the rule's first match on a selector, or nil.
func (r *Rule) Match(selector string) *Match {
	for _, e := range r.Exprs {
		if e.Match != nil && e.Match.Left.Selector == selector {
			return e.Match
		}
	}
	return nil
}

// Counter returns the rule's first counter, or nil.
func (r *Rule) Counter() *Counter {
	for _, e := range r.Exprs {
		if e.Counter != nil {
			return e.Counter
		}
	}
	return nil
}

// Unknown returns the rule's expressions the model does not decode (kept
// as raw JSON): iptables-nft's xt stubs, log, limit, meta set, ...
func (r *Rule) Unknown() []Expr {
	var out []Expr
	for _, e := range r.Exprs {
		if e.Match == nil && e.Verdict == nil && e.VMap == nil && e.NAT == nil && e.Counter == nil {
			out = append(out, e)
		}
	}
	return out
}

// HasXT reports whether any rule of the table holds an iptables-nft xt
// stub (the table is iptables-nft's; read it with iptables-nft-save).
func (t *Table) HasXT() bool {
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			for _, e := range r.Exprs {
				if e.Kind == KindXT {
					return true
				}
			}
		}
	}
	return false
}

// ObjectTable returns "FAMILY NAME" of the table a top-level object
// belongs to (a table, chain, rule, set, map, element, ...), "" for
// objects of no table (metainfo).
func ObjectTable(o Object) string {
	var m map[string]struct {
		Family string `json:"family"`
		Table  string `json:"table"`
		Name   string `json:"name"`
	}
	if json.Unmarshal(o.Raw, &m) != nil {
		return ""
	}
	for _, v := range m {
		if o.Kind == "table" {
			return v.Family + " " + v.Name
		}
		if v.Table != "" {
			return v.Family + " " + v.Table
		}
	}
	return ""
}
