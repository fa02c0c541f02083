package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// maxTreeDepth bounds how deep Tree follows jumps. The kernel allows at
// most a few thousand nested chains; nobody reads a tree that deep.
const maxTreeDepth = 32

// Tree writes, for each built-in chain of each table, the tree a packet
// follows: every rule in order, and under a rule that jumps to a user
// chain, that chain's rules. Within one built-in chain's tree a user chain
// is expanded once; later jumps to it say "(see above)". A jump to a
// chain that does not exist is marked "(missing chain)".
//
//	nat PREROUTING (policy ACCEPT 3 packets, 180 bytes)
//	└── [3 pkts] dst-type LOCAL -> DOCKER
//	    ├── [0 pkts] -i docker0 -> RETURN
//	    └── [3 pkts] ! -i docker0 tcp dpt:8080 -> DNAT to:172.17.0.2:80
func Tree(w io.Writer, tables []*parse.Table, o Options) error {
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
			treeRules(&b, t, g, c, "", expanded, 1, o, p)
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

func treeRules(b *strings.Builder, t *parse.Table, g *parse.Graph, c *parse.Chain, indent string, expanded map[parse.ChainName]bool, depth int, o Options, p palette) {
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
		if m := MatchSummary(r); m != "" {
			b.WriteString(oneLine(m) + " ")
		}
		action := TargetSummary(r)
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
			treeRules(b, t, g, sub, indent+next, expanded, depth+1, o, p)
		}
	}
}

// nodeID makes a DOT/Mermaid-safe identifier for a chain of a table.
func nodeID(t parse.TableName, c parse.ChainName) string {
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

// edgeLabel is a short label for an edge: what the jumping rule matches.
func edgeLabel(e parse.Edge) string {
	s := oneLine(MatchSummary(e.Rule))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	if e.Goto {
		s = strings.TrimSpace("goto " + s)
	}
	return s
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// DOT writes the chain graph of the tables as one Graphviz digraph, one
// cluster per table. Built-in chains are bold boxes with their policy;
// user chains are boxes with their rule count; chains nothing reaches are
// dashed; jumps to missing chains point at a red node. Edges carry what
// the jumping rule matches.
func DOT(w io.Writer, tables []*parse.Table) error {
	var b strings.Builder
	b.WriteString("digraph iptables {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n")
	for _, t := range tables {
		g := parse.BuildGraph(t)
		unreach := map[parse.ChainName]bool{}
		for _, u := range g.Unreachable() {
			unreach[u] = true
		}
		fmt.Fprintf(&b, "  subgraph %s {\n    label=%s;\n", dotQuote("cluster_"+string(t.Name)), dotQuote(string(t.Name)))
		for _, c := range t.Chains {
			label := fmt.Sprintf("%s\n%d rules", c.Name, len(c.Rules))
			attrs := ""
			if c.Builtin {
				label = fmt.Sprintf("%s\npolicy %s, %d rules", c.Name, c.Policy, len(c.Rules))
				attrs = ", style=bold"
			} else if unreach[c.Name] {
				attrs = ", style=dashed"
			}
			fmt.Fprintf(&b, "    %s [label=%s%s];\n", nodeID(t.Name, c.Name), dotQuote(label), attrs)
		}
		for _, e := range g.Dangling() {
			fmt.Fprintf(&b, "    %s [label=%s, color=red, fontcolor=red];\n", nodeID(t.Name, e.To), dotQuote(string(e.To)+"\n(missing)"))
		}
		b.WriteString("  }\n")
		for _, e := range g.Edges {
			attrs := []string{"label=" + dotQuote(edgeLabel(e))}
			if e.Goto {
				attrs = append(attrs, "style=dashed")
			}
			if e.Missing {
				attrs = append(attrs, "color=red")
			}
			fmt.Fprintf(&b, "  %s -> %s [%s];\n", nodeID(t.Name, e.From), nodeID(t.Name, e.To), strings.Join(attrs, ", "))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText escapes text for a Mermaid label in double quotes.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "|", "#124;").Replace(s)
}

// Mermaid writes the chain graph as a Mermaid flowchart, one subgraph per
// table, with the same conventions as DOT.
func Mermaid(w io.Writer, tables []*parse.Table) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, t := range tables {
		g := parse.BuildGraph(t)
		fmt.Fprintf(&b, "  subgraph %s[\"%s\"]\n", nodeID(t.Name, "table"), t.Name)
		for _, c := range t.Chains {
			label := fmt.Sprintf("%s<br/>%d rules", c.Name, len(c.Rules))
			if c.Builtin {
				label = fmt.Sprintf("<b>%s</b><br/>policy %s, %d rules", c.Name, c.Policy, len(c.Rules))
			}
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", nodeID(t.Name, c.Name), strings.NewReplacer(`"`, "#quot;").Replace(label))
		}
		for _, e := range g.Dangling() {
			fmt.Fprintf(&b, "    %s[\"%s (missing)\"]\n    style %s stroke:#d00,color:#d00\n", nodeID(t.Name, e.To), mermaidText(string(e.To)), nodeID(t.Name, e.To))
		}
		b.WriteString("  end\n")
		for _, e := range g.Edges {
			arrow := "-->"
			if e.Goto {
				arrow = "-.->"
			}
			if l := edgeLabel(e); l != "" {
				fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", nodeID(t.Name, e.From), arrow, mermaidText(l), nodeID(t.Name, e.To))
			} else {
				fmt.Fprintf(&b, "  %s %s %s\n", nodeID(t.Name, e.From), arrow, nodeID(t.Name, e.To))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// GraphSchema is the "schema" value of `iptscope graph --format json`.
const GraphSchema = "iptscope.graph/v1"

// GraphDoc is the JSON document of `iptscope graph --format json`.
type GraphDoc struct {
	Schema string       `json:"schema"`
	Tables []GraphTable `json:"tables"`
}

// GraphTable is one table's chain graph.
type GraphTable struct {
	Table  parse.TableName `json:"table"`
	Chains []GraphChain    `json:"chains"`
	Edges  []GraphEdge     `json:"edges"`
	// VisitOrder maps each built-in chain to the user chains a packet
	// entering it can visit, in first-visit order.
	VisitOrder  map[parse.ChainName][]parse.ChainName `json:"visit_order"`
	Unreachable []parse.ChainName                     `json:"unreachable"`
	Dangling    []GraphEdge                           `json:"dangling"`
	Loops       [][]parse.ChainName                   `json:"loops"`
}

// GraphChain is a node of the graph.
type GraphChain struct {
	Name       parse.ChainName `json:"name"`
	Builtin    bool            `json:"builtin"`
	Policy     parse.Target    `json:"policy,omitempty"`
	Rules      int             `json:"rules"`
	References int             `json:"references"`
}

// GraphEdge is a jump or goto, with the rule that makes it.
type GraphEdge struct {
	From     parse.ChainName `json:"from"`
	To       parse.ChainName `json:"to"`
	Goto     bool            `json:"goto,omitempty"`
	Missing  bool            `json:"missing,omitempty"`
	Position int             `json:"position"`
	Line     int             `json:"line"`
	Match    string          `json:"match"`
	Packets  *uint64         `json:"packets,omitempty"`
}

func graphEdge(e parse.Edge) GraphEdge {
	ge := GraphEdge{From: e.From, To: e.To, Goto: e.Goto, Missing: e.Missing,
		Position: e.Rule.Position, Line: e.Rule.Line, Match: MatchSummary(e.Rule)}
	if e.Rule.Counters != nil {
		n := e.Rule.Counters.Packets
		ge.Packets = &n
	}
	return ge
}

// BuildGraphDoc computes the graph document for the tables.
func BuildGraphDoc(tables []*parse.Table) GraphDoc {
	doc := GraphDoc{Schema: GraphSchema, Tables: []GraphTable{}}
	for _, t := range tables {
		g := parse.BuildGraph(t)
		gt := GraphTable{Table: t.Name, Chains: []GraphChain{}, Edges: []GraphEdge{},
			VisitOrder: map[parse.ChainName][]parse.ChainName{}, Unreachable: []parse.ChainName{},
			Dangling: []GraphEdge{}, Loops: [][]parse.ChainName{}}
		for _, c := range t.Chains {
			gt.Chains = append(gt.Chains, GraphChain{Name: c.Name, Builtin: c.Builtin, Policy: c.Policy,
				Rules: len(c.Rules), References: g.References(c.Name)})
			if c.Builtin {
				order := g.VisitOrder(c.Name)
				if order == nil {
					order = []parse.ChainName{}
				}
				gt.VisitOrder[c.Name] = order
			}
		}
		for _, e := range g.Edges {
			gt.Edges = append(gt.Edges, graphEdge(e))
		}
		gt.Unreachable = append(gt.Unreachable, g.Unreachable()...)
		for _, e := range g.Dangling() {
			gt.Dangling = append(gt.Dangling, graphEdge(e))
		}
		gt.Loops = append(gt.Loops, g.Loops()...)
		doc.Tables = append(doc.Tables, gt)
	}
	return doc
}

// GraphJSON writes BuildGraphDoc(tables) as indented JSON.
func GraphJSON(w io.Writer, tables []*parse.Table) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(BuildGraphDoc(tables))
}
