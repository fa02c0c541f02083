package render

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse/nft"
)

// NftRulesTable writes native nftables tables chain by chain: per chain
// a heading (family, table, chain; for a base chain its type, hook,
// priority and policy) and one row per rule: position, handle, packets,
// bytes, the rule as nft prints it without its counter. only, when set,
// keeps that chain alone.
func NftRulesTable(w io.Writer, tables []*nft.Table, only string, o Options) error {
	p := newPalette(o)
	first := true
	for _, t := range tables {
		for _, c := range t.Chains {
			if only != "" && c.Name != only {
				continue
			}
			if !first {
				if _, err := io.WriteString(w, "\n"); err != nil {
					return err
				}
			}
			first = false
			if _, err := fmt.Fprintln(w, nftChainHeading(t, c, p)); err != nil {
				return err
			}
			if len(c.Rules) == 0 {
				if _, err := fmt.Fprintln(w, p.dim("(no rules)")); err != nil {
					return err
				}
				continue
			}
			tb := newTable(w, o)
			tb.Header("#", "HANDLE", "PKTS", "BYTES", "RULE")
			for i, r := range c.Rules {
				pk, by := "-", "-"
				if k := r.Counter(); k != nil && k.Name == "" {
					pk, by = count(k.Packets, o), count(k.Bytes, o)
				}
				tb.Append([]string{strconv.Itoa(i + 1), strconv.Itoa(r.Handle), pk, by, nftRuleSummary(r)})
			}
			if err := tb.Render(); err != nil {
				return err
			}
		}
	}
	return nil
}

// nftRuleSummary is a rule's text without its counter (the counter has
// its own columns).
func nftRuleSummary(r *nft.Rule) string {
	parts := make([]string, 0, len(r.Exprs)+1)
	for i := range r.Exprs {
		if r.Exprs[i].Counter != nil {
			continue
		}
		parts = append(parts, r.Exprs[i].Text())
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+strconv.Quote(r.Comment))
	}
	return oneLine(strings.Join(parts, " "))
}

// nftChainHeading: "ip docker-bridges filter-FORWARD (type filter hook
// forward priority filter; policy accept)", or "(regular chain)".
func nftChainHeading(t *nft.Table, c *nft.Chain, p palette) string {
	s := p.bold(string(t.Family)+" "+t.Name+" "+c.Name) + " "
	if c.IsBase() {
		h := strings.TrimSuffix(c.Header(), ";")
		if c.Policy == "drop" {
			h = strings.Replace(h, "policy drop", "policy "+p.red("drop"), 1)
		}
		return s + "(" + h + ")"
	}
	return s + "(regular chain)"
}

// NftTree writes, for each base chain of each table (in hook and priority
// order), the tree a packet follows: every rule in order, and under a rule
// that enters another chain (jump, goto, or a verdict-map element: one
// branch per element, labelled with its key) that chain's rules. A chain
// is expanded once per base chain; a target that does not exist is marked
// "(missing chain)", a named map that does not exist "(missing map)".
//
//	ip docker-bridges filter-FORWARD (type filter hook forward priority filter; policy accept)
//	├── oifname vmap @filter-forward-in-jumps
//	│   └── "docker0" : jump filter-forward-in__docker0
//	│       ├── [61 pkts] ct state established,related accept
//	│       ...
func NftTree(w io.Writer, tables []*nft.Table, o Options) error {
	fw := Fit(w, o.Width)
	defer fw.Close()
	nw := &nftTreeWriter{p: newPalette(o), o: o}
	first := true
	for _, t := range tables {
		nw.t = t
		for _, c := range baseChainsInOrder(t) {
			if !first {
				nw.b.WriteString("\n")
			}
			first = false
			nw.b.WriteString(nftChainHeading(t, c, nw.p) + "\n")
			nw.rules(c, "", map[string]bool{c.Name: true}, 1)
		}
		if un := nftUnreachable(t); len(un) > 0 {
			fmt.Fprintf(&nw.b, "\n%s %s\n", nw.p.yellow(string(t.Family)+" "+t.Name+": chains nothing enters:"), strings.Join(un, ", "))
		}
	}
	_, err := io.WriteString(fw, nw.b.String())
	return err
}

type nftTreeWriter struct {
	b strings.Builder
	p palette
	o Options
	t *nft.Table
}

// baseChainsInOrder sorts base chains as the kernel meets them: by hook
// (prerouting, input, forward, output, postrouting, then others), then
// priority.
func baseChainsInOrder(t *nft.Table) []*nft.Chain {
	rank := map[string]int{"ingress": 0, "prerouting": 1, "input": 2, "forward": 3, "output": 4, "postrouting": 5, "egress": 6}
	cs := t.BaseChains()
	sort.SliceStable(cs, func(i, j int) bool {
		if rank[cs[i].Hook] != rank[cs[j].Hook] {
			return rank[cs[i].Hook] < rank[cs[j].Hook]
		}
		return cs[i].Priority < cs[j].Priority
	})
	return cs
}

// nftUnreachable lists the regular chains no base chain reaches.
func nftUnreachable(t *nft.Table) []string {
	seen := map[string]bool{}
	var walk func(c *nft.Chain)
	walk = func(c *nft.Chain) {
		if c == nil || seen[c.Name] {
			return
		}
		seen[c.Name] = true
		for _, n := range t.Targets(c) {
			walk(t.Chain(n))
		}
	}
	for _, c := range t.BaseChains() {
		walk(c)
	}
	var out []string
	for _, c := range t.Chains {
		if !seen[c.Name] {
			out = append(out, c.Name)
		}
	}
	return out
}

func (nw *nftTreeWriter) line(indent, branch, s string) {
	nw.b.WriteString(indent + branch + s + "\n")
}

func (nw *nftTreeWriter) rules(c *nft.Chain, indent string, expanded map[string]bool, depth int) {
	if len(c.Rules) == 0 {
		nw.line(indent, "└── ", nw.p.dim("(no rules)"))
		return
	}
	for i, r := range c.Rules {
		branch, next := "├── ", "│   "
		if i == len(c.Rules)-1 {
			branch, next = "└── ", "    "
		}
		s := ""
		if k := r.Counter(); k != nil && k.Name == "" {
			s = nw.p.dim("["+count(k.Packets, nw.o)+" pkts]") + " "
		}
		s += nftColour(r, nftRuleSummary(r), nw.p)
		var subs []nftSub
		for _, e := range r.Exprs {
			switch {
			case e.Verdict.IsChainTarget():
				subs = append(subs, nftSub{target: e.Verdict.Target})
			case e.VMap != nil:
				els := e.VMap.Elements
				if e.VMap.Map != "" {
					m := nw.t.Set(e.VMap.Map)
					if m == nil {
						s += " " + nw.p.red("(missing map)")
						continue
					}
					els = m.Elements
					if len(els) == 0 {
						s += " " + nw.p.dim("(empty map)")
					}
				}
				for _, el := range els {
					label := strconv.Quote(el.Key) + " : " + el.Data
					if el.Verdict.IsChainTarget() {
						subs = append(subs, nftSub{label: label, target: el.Verdict.Target})
					} else {
						subs = append(subs, nftSub{label: label})
					}
				}
			}
		}
		// A plain jump expands right under its rule; verdict-map
		// elements each get a branch of their own.
		if len(subs) == 1 && subs[0].label == "" {
			note, sub := nw.enter(subs[0].target, expanded, depth)
			nw.line(indent, branch, s+note)
			if sub != nil {
				nw.rules(sub, indent+next, expanded, depth+1)
			}
			continue
		}
		nw.line(indent, branch, s)
		for j, sb := range subs {
			b2, n2 := "├── ", "│   "
			if j == len(subs)-1 {
				b2, n2 = "└── ", "    "
			}
			if sb.target == "" {
				nw.line(indent+next, b2, sb.label)
				continue
			}
			note, sub := nw.enter(sb.target, expanded, depth)
			nw.line(indent+next, b2, sb.label+note)
			if sub != nil {
				nw.rules(sub, indent+next+n2, expanded, depth+1)
			}
		}
	}
}

type nftSub struct{ label, target string }

// enter returns the chain to expand under the rule (marking it expanded),
// or nil and a note why its rules do not follow.
func (nw *nftTreeWriter) enter(target string, expanded map[string]bool, depth int) (string, *nft.Chain) {
	sub := nw.t.Chain(target)
	switch {
	case sub == nil:
		return " " + nw.p.red("(missing chain)"), nil
	case expanded[target]:
		return " " + nw.p.dim("(see above)"), nil
	case depth >= maxTreeDepth:
		return " " + nw.p.dim("(too deep)"), nil
	}
	expanded[target] = true
	return "", sub
}

func nftColour(r *nft.Rule, s string, p palette) string {
	if v := r.Verdict(); v != nil && v.Kind == "drop" {
		return p.red(s)
	}
	return s
}

// NftDOT writes the chain graph of native tables for Graphviz: nodes are
// chains (base chains boxed with their hook), edges the jumps, gotos
// (dashed) and verdict-map elements (labelled with the key).
func NftDOT(w io.Writer, tables []*nft.Table) error {
	var b strings.Builder
	b.WriteString("digraph nftables {\n  rankdir=LR;\n  node [shape=ellipse, fontname=\"monospace\"];\n")
	for _, t := range tables {
		id := func(c string) string { return dotQuote(string(t.Family) + "/" + t.Name + "/" + c) }
		for _, c := range t.Chains {
			if c.IsBase() {
				fmt.Fprintf(&b, "  %s [shape=box, label=%s];\n", id(c.Name), dotQuote(c.Name+" ("+c.Hook+" "+c.PriorityText()+")"))
			} else {
				fmt.Fprintf(&b, "  %s [label=%s];\n", id(c.Name), dotQuote(c.Name))
			}
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, e := range t.Edges(r) {
					attrs := []string{}
					if e.Key != "" {
						attrs = append(attrs, "label="+dotQuote(strconv.Quote(e.Key)))
					}
					if e.Verdict.Kind == "goto" {
						attrs = append(attrs, "style=dashed")
					}
					fmt.Fprintf(&b, "  %s -> %s", id(c.Name), id(e.Verdict.Target))
					if len(attrs) > 0 {
						b.WriteString(" [" + strings.Join(attrs, ", ") + "]")
					}
					b.WriteString(";\n")
				}
			}
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// NftJSON writes the tables as an `nft -j list ruleset` document holding
// only their objects (each as nft gave it), so that `nft -j -f` reads it
// back.
func NftJSON(w io.Writer, rs *nft.Ruleset, tables []*nft.Table) error {
	want := map[string]bool{}
	for _, t := range tables {
		want[string(t.Family)+" "+t.Name] = true
	}
	sub := &nft.Ruleset{}
	for _, o := range rs.Objects {
		if o.Kind == "metainfo" || want[nft.ObjectTable(o)] {
			sub.Objects = append(sub.Objects, o)
		}
	}
	_, err := w.Write(sub.JSON())
	return err
}
