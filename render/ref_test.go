package render

// The summaries and rule tables as they were before they were built in
// place (kept as the reference the fast versions must match byte for byte).

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// refMatchSummary is the former MatchSummary: it describes what a rule matches in the compact words of
// `iptables -L`, with negations kept: "! -i docker0 tcp dpt:8080",
// "-s 172.17.0.0/16 ! -o docker0", "dst-type LOCAL". It returns "" for a
// rule that matches every packet.
func refMatchSummary(r *parse.Rule) string {
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	field := func(flag string, n parse.Negatable) {
		if n.IsZero() {
			return
		}
		if n.Negated {
			add("! " + flag + " " + n.Value)
		} else {
			add(flag + " " + n.Value)
		}
	}
	field("-s", r.Source)
	field("-d", r.Destination)
	field("-i", r.InIface)
	field("-o", r.OutIface)
	protoShown := false
	for _, m := range r.Matches {
		if m.Name == r.Protocol.Value && !r.Protocol.Negated {
			protoShown = true
		}
	}
	if !protoShown && !r.Protocol.IsZero() && r.Protocol.Value != "all" && r.Protocol.Value != "0" {
		field("-p", r.Protocol)
	}
	if !r.Fragment.IsZero() {
		if r.Fragment.Negated {
			add("! -f")
		} else {
			add("-f")
		}
	}
	for _, m := range r.Matches {
		add(refMatchText(m))
	}
	for _, u := range r.Unparsed {
		add(u)
	}
	return strings.Join(parts, " ")
}

// refPortWords are the option names iptables -L abbreviates for port matches.
var refPortWords = map[string]string{
	"dport": "dpt:", "destination-port": "dpt:", "sport": "spt:", "source-port": "spt:",
}

func refNeg(o parse.Option) string {
	if o.Negated {
		return "!"
	}
	return ""
}

// refMatchText renders one match compactly.
func refMatchText(m parse.Match) string {
	var b strings.Builder
	switch m.Name {
	case "tcp", "udp", "sctp", "udplite":
		b.WriteString(m.Name)
		for _, o := range m.Options {
			b.WriteByte(' ')
			if w, ok := refPortWords[o.Name]; ok {
				if strings.Contains(o.Value(), ":") {
					w = strings.TrimSuffix(w, ":") + "s:"
				}
				b.WriteString(refNeg(o) + w + o.Value())
				continue
			}
			b.WriteString(refNeg(o) + o.Name + " " + o.Value())
		}
		return b.String()
	case "comment":
		for _, o := range m.Options {
			if o.Name == "comment" {
				return "/* " + o.Value() + " */"
			}
		}
	case "addrtype", "conntrack", "state", "multiport", "mark", "set", "physdev":
		var parts []string
		if m.Name == "multiport" || m.Name == "mark" || m.Name == "set" {
			parts = append(parts, m.Name)
		}
		for _, o := range m.Options {
			s := refNeg(o)
			if s != "" {
				s += " "
			}
			name := o.Name
			if name == "match-set" {
				name = "set"
			}
			parts = append(parts, strings.TrimSpace(s+name+" "+o.Value()))
		}
		return strings.Join(parts, " ")
	}
	b.WriteString("-m " + m.Name)
	for _, o := range m.Options {
		b.WriteByte(' ')
		if o.Negated {
			b.WriteString("! ")
		}
		b.WriteString("--" + o.Name)
		if v := o.Value(); v != "" {
			b.WriteString(" " + v)
		}
	}
	return b.String()
}

// refTargetSummary is the former TargetSummary: it describes the target and its options: "DNAT to:172.17.0.2:80",
// "REJECT reject-with icmp-port-unreachable", "goto KUBE-SEP-X", "DOCKER".
func refTargetSummary(r *parse.Rule) string {
	if r.Target == "" {
		return ""
	}
	s := string(r.Target)
	if r.Goto {
		s = "goto " + s
	}
	for _, o := range r.TargetOptions {
		switch o.Name {
		case "to-destination", "to-source", "to":
			s += " to:" + o.Value()
		case "to-ports":
			s += " ports:" + o.Value()
		default:
			if o.Negated {
				s += " !"
			}
			s += " " + o.Name
			if v := o.Value(); v != "" {
				s += " " + v
			}
		}
	}
	return s
}

// refRulesTable is the former RulesTable: tablewriter, off a terminal its
// plain blueprint through trimWriter.
func refRulesTable(w io.Writer, tables []*parse.Table, only parse.ChainName, o Options) error {
	if !o.Terminal {
		tw := &trimWriter{w: w}
		defer tw.Flush()
		w = tw
	}
	p := newPalette(o)
	first := true
	for _, t := range tables {
		g := parse.BuildGraph(t)
		for _, c := range t.Chains {
			if only != "" && c.Name != only {
				continue
			}
			if !first {
				fmt.Fprintln(w)
			}
			first = false
			fmt.Fprintln(w, chainHeading(t, c, chainRefs(g, c), o, p))
			if len(c.Rules) == 0 {
				fmt.Fprintln(w, p.dim("(no rules)"))
				continue
			}
			tbl := newTable(w, o)
			tbl.Header("#", "PKTS", "BYTES", "MATCH", "TARGET")
			for _, r := range c.Rules {
				pk, by := "-", "-"
				if r.Counters != nil {
					pk, by = count(r.Counters.Packets, o), count(r.Counters.Bytes, o)
					if r.Counters.Approximate {
						pk, by = "~"+pk, "~"+by
					}
				}
				if err := tbl.Append([]string{
					strconv.Itoa(r.Position), pk, by,
					orDash(oneLine(refMatchSummary(r))),
					colourTarget(r.Target, orDash(oneLine(refTargetSummary(r))), p),
				}); err != nil {
					return err
				}
			}
			if err := tbl.Render(); err != nil {
				return err
			}
		}
	}
	return nil
}

// refTree is the former Tree, built in a strings.Builder.
func refTree(w io.Writer, tables []*parse.Table, o Options) error {
	p := newPalette(o)
	var b strings.Builder
	first := true
	for _, t := range tables {
		g := parse.BuildGraph(t)
		for _, c := range t.Chains {
			if !c.Builtin {
				continue
			}
			if !first {
				b.WriteByte('\n')
			}
			first = false
			b.WriteString(chainHeading(t, c, 0, o, p))
			b.WriteByte('\n')
			expanded := map[parse.ChainName]bool{c.Name: true}
			refTreeRules(&b, t, g, c, "", expanded, 1, o, p)
		}
		// Chains no built-in chain reaches are listed so nothing is hidden.
		if un := g.Unreachable(); len(un) > 0 {
			names := make([]string, len(un))
			for i, u := range un {
				names[i] = string(u)
			}
			fmt.Fprintf(&b, "\n%s %s\n", p.yellow(string(t.Name)+": chains nothing jumps to:"), strings.Join(names, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func refTreeRules(b *strings.Builder, t *parse.Table, g *parse.Graph, c *parse.Chain, indent string, expanded map[parse.ChainName]bool, depth int, o Options, p palette) {
	if len(c.Rules) == 0 {
		b.WriteString(indent + "└── " + p.dim("(no rules)") + "\n")
		return
	}
	for i, r := range c.Rules {
		last := i == len(c.Rules)-1
		branch, next := "├── ", "│   "
		if last {
			branch, next = "└── ", "    "
		}
		b.WriteString(indent + branch)
		if r.Counters != nil {
			approx := ""
			if r.Counters.Approximate {
				approx = "~"
			}
			b.WriteString(p.dim(fmt.Sprintf("[%s%s pkts] ", approx, count(r.Counters.Packets, o))))
		}
		if m := refMatchSummary(r); m != "" {
			b.WriteString(oneLine(m) + " ")
		}
		action := refTargetSummary(r)
		if action == "" {
			action = "(no target: counts only)"
		}
		b.WriteString("-> " + colourTarget(r.Target, oneLine(action), p))
		if !r.JumpsToChain() {
			b.WriteByte('\n')
			continue
		}
		sub := t.Chain(parse.ChainName(r.Target))
		switch {
		case sub == nil:
			b.WriteString(" " + p.red("(missing chain)") + "\n")
		case expanded[sub.Name]:
			b.WriteString(" " + p.dim("(see above)") + "\n")
		case depth >= maxTreeDepth:
			b.WriteString(" " + p.dim("(too deep)") + "\n")
		default:
			b.WriteByte('\n')
			expanded[sub.Name] = true
			refTreeRules(b, t, g, sub, indent+next, expanded, depth+1, o, p)
		}
	}
}

// refNodeID is the former nodeID: it makes a DOT/Mermaid-safe identifier for a chain of a table.
func refNodeID(t parse.TableName, c parse.ChainName) string {
	var b strings.Builder
	b.WriteString(string(t))
	b.WriteByte('_')
	for _, r := range string(c) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "_%x_", r)
		}
	}
	return b.String()
}

// refEdgeLabel is the former edgeLabel: a short label for an edge: what the jumping rule matches.
func refEdgeLabel(e parse.Edge) string {
	s := oneLine(refMatchSummary(e.Rule))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	if e.Goto {
		s = strings.TrimSpace("goto " + s)
	}
	return s
}

func refDotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// refDOT is the former DOT: it writes the chain graph of the tables as one Graphviz digraph, one
// cluster per table. Built-in chains are bold boxes with their policy;
// user chains are boxes with their rule count; chains nothing reaches are
// dashed; jumps to missing chains point at a red node. Edges carry what
// the jumping rule matches.
func refDOT(w io.Writer, tables []*parse.Table) error {
	var b strings.Builder
	b.WriteString("digraph iptables {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n")
	for _, t := range tables {
		g := parse.BuildGraph(t)
		unreach := map[parse.ChainName]bool{}
		for _, u := range g.Unreachable() {
			unreach[u] = true
		}
		fmt.Fprintf(&b, "  subgraph %s {\n    label=%s;\n", refDotQuote("cluster_"+string(t.Name)), refDotQuote(string(t.Name)))
		for _, c := range t.Chains {
			label := fmt.Sprintf("%s\n%d rules", c.Name, len(c.Rules))
			attrs := ""
			if c.Builtin {
				label = fmt.Sprintf("%s\npolicy %s, %d rules", c.Name, c.Policy, len(c.Rules))
				attrs = ", style=bold"
			} else if unreach[c.Name] {
				attrs = ", style=dashed"
			}
			fmt.Fprintf(&b, "    %s [label=%s%s];\n", refNodeID(t.Name, c.Name), refDotQuote(label), attrs)
		}
		for _, e := range g.Dangling() {
			fmt.Fprintf(&b, "    %s [label=%s, color=red, fontcolor=red];\n", refNodeID(t.Name, e.To), refDotQuote(string(e.To)+"\n(missing)"))
		}
		b.WriteString("  }\n")
		for _, e := range g.Edges {
			attrs := []string{"label=" + refDotQuote(refEdgeLabel(e))}
			if e.Goto {
				attrs = append(attrs, "style=dashed")
			}
			if e.Missing {
				attrs = append(attrs, "color=red")
			}
			fmt.Fprintf(&b, "  %s -> %s [%s];\n", refNodeID(t.Name, e.From), refNodeID(t.Name, e.To), strings.Join(attrs, ", "))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// refMermaidText escapes text for a Mermaid label in double quotes.
func refMermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "|", "#124;").Replace(s)
}

// refMermaid is the former Mermaid: it writes the chain graph as a Mermaid flowchart, one subgraph per
// table, with the same conventions as DOT.
func refMermaid(w io.Writer, tables []*parse.Table) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, t := range tables {
		g := parse.BuildGraph(t)
		fmt.Fprintf(&b, "  subgraph %s[\"%s\"]\n", refNodeID(t.Name, "table"), t.Name)
		for _, c := range t.Chains {
			label := fmt.Sprintf("%s<br/>%d rules", c.Name, len(c.Rules))
			if c.Builtin {
				label = fmt.Sprintf("<b>%s</b><br/>policy %s, %d rules", c.Name, c.Policy, len(c.Rules))
			}
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", refNodeID(t.Name, c.Name), strings.NewReplacer(`"`, "#quot;").Replace(label))
		}
		for _, e := range g.Dangling() {
			fmt.Fprintf(&b, "    %s[\"%s (missing)\"]\n    style %s stroke:#d00,color:#d00\n", refNodeID(t.Name, e.To), refMermaidText(string(e.To)), refNodeID(t.Name, e.To))
		}
		b.WriteString("  end\n")
		for _, e := range g.Edges {
			arrow := "-->"
			if e.Goto {
				arrow = "-.->"
			}
			if l := refEdgeLabel(e); l != "" {
				fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", refNodeID(t.Name, e.From), arrow, refMermaidText(l), refNodeID(t.Name, e.To))
			} else {
				fmt.Fprintf(&b, "  %s %s %s\n", refNodeID(t.Name, e.From), arrow, refNodeID(t.Name, e.To))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
