package render

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/internal/buildinfo"
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
	tables = sanitized(tables) // chain names and comments from the input (sanitize.go)
	// A terminal's width: long rule lines wrap under their tree glyphs.
	fw := Fit(w, o.Width)
	defer fw.Close()
	w = fw
	tw := &treeWriter{w: w, p: newPalette(o), o: o, color: o.color()}
	first := true
	for _, t := range tables {
		g := parse.BuildGraph(t)
		// By name, for the jumps (Table.Chain is a scan: quadratic on a
		// kube-proxy node with 30,000 chains).
		tw.chains = make(map[parse.ChainName]*parse.Chain, len(t.Chains))
		for _, c := range t.Chains {
			if tw.chains[c.Name] == nil {
				tw.chains[c.Name] = c
			}
		}
		for _, c := range t.Chains {
			if !c.Builtin {
				continue
			}
			if !first {
				tw.buf = append(tw.buf, '\n')
			}
			first = false
			tw.buf = append(tw.buf, chainHeading(t, c, 0, o, tw.p)...)
			tw.buf = append(tw.buf, '\n')
			expanded := map[parse.ChainName]bool{c.Name: true}
			tw.rules(c, "", expanded, 1)
		}
		// Chains no built-in chain reaches are listed so nothing is hidden.
		if un := g.Unreachable(); len(un) > 0 {
			names := make([]string, len(un))
			for i, u := range un {
				names[i] = string(u)
			}
			tw.buf = fmt.Appendf(tw.buf, "\n%s %s\n", tw.p.yellow(string(t.Name)+": chains nothing jumps to:"), strings.Join(names, ", "))
		}
	}
	return tw.flush()
}

// treeWriter writes a Tree into a buffer it hands to w every few
// kilobytes. Off a terminal (no colour) a rule's line is built in place;
// colour goes through the palette.
type treeWriter struct {
	w       io.Writer
	buf     []byte
	err     error
	p       palette
	o       Options
	color   bool
	scratch []byte
	chains  map[parse.ChainName]*parse.Chain // of the table being written
}

func (tw *treeWriter) flush() error {
	if tw.err == nil && len(tw.buf) > 0 {
		_, tw.err = tw.w.Write(tw.buf)
	}
	tw.buf = tw.buf[:0]
	return tw.err
}

// paint appends s through the colour function f (as is without colour).
func (tw *treeWriter) paint(f func(a ...any) string, s string) {
	if tw.color {
		s = f(s)
	}
	tw.buf = append(tw.buf, s...)
}

// oneLineBytes replaces line breaks and tabs in b by spaces, as oneLine.
func oneLineBytes(b []byte) []byte {
	for i, c := range b {
		if c == '\n' || c == '\r' || c == '\t' {
			b[i] = ' '
		}
	}
	return b
}

func (tw *treeWriter) rules(c *parse.Chain, indent string, expanded map[parse.ChainName]bool, depth int) {
	if len(c.Rules) == 0 {
		tw.buf = append(tw.buf, indent...)
		tw.buf = append(tw.buf, "└── "...)
		tw.paint(tw.p.dim, "(no rules)")
		tw.buf = append(tw.buf, '\n')
		return
	}
	for i, r := range c.Rules {
		if len(tw.buf) > 60<<10 {
			tw.flush()
		}
		last := i == len(c.Rules)-1
		branch, next := "├── ", "│   "
		if last {
			branch, next = "└── ", "    "
		}
		tw.buf = append(tw.buf, indent...)
		tw.buf = append(tw.buf, branch...)
		if r.Counters != nil {
			s := append(tw.scratch[:0], '[')
			if r.Counters.Approximate {
				s = append(s, '~')
			}
			s = append(s, count(r.Counters.Packets, tw.o)...)
			s = append(s, " pkts] "...)
			tw.scratch = s
			if tw.color {
				tw.buf = append(tw.buf, tw.p.dim(string(s))...)
			} else {
				tw.buf = append(tw.buf, s...)
			}
		}
		m := len(tw.buf)
		tw.buf = appendMatchSummary(tw.buf, r)
		if len(tw.buf) > m {
			oneLineBytes(tw.buf[m:])
			tw.buf = append(tw.buf, ' ')
		}
		tw.buf = append(tw.buf, "-> "...)
		action := appendTargetSummary(tw.scratch[:0], r)
		if len(action) == 0 {
			action = append(action, "(no target: counts only)"...)
		}
		tw.scratch = oneLineBytes(action)
		if tw.color {
			tw.buf = append(tw.buf, colourTarget(r.Target, string(action), tw.p)...)
		} else {
			tw.buf = append(tw.buf, action...)
		}
		if !r.JumpsToChain() {
			tw.buf = append(tw.buf, '\n')
			continue
		}
		sub := tw.chains[parse.ChainName(r.Target)]
		switch {
		case sub == nil:
			tw.buf = append(tw.buf, ' ')
			tw.paint(tw.p.red, "(missing chain)")
			tw.buf = append(tw.buf, '\n')
		case expanded[sub.Name]:
			tw.buf = append(tw.buf, ' ')
			tw.paint(tw.p.dim, "(see above)")
			tw.buf = append(tw.buf, '\n')
		case depth >= maxTreeDepth:
			tw.buf = append(tw.buf, ' ')
			tw.paint(tw.p.dim, "(too deep)")
			tw.buf = append(tw.buf, '\n')
		default:
			tw.buf = append(tw.buf, '\n')
			expanded[sub.Name] = true
			tw.rules(sub, indent+next, expanded, depth+1)
		}
	}
}

// nodeID makes a DOT/Mermaid-safe identifier for a chain of a table.
func nodeID(t parse.TableName, c parse.ChainName) string {
	plain := true
	for i := 0; i < len(c) && plain; i++ {
		r := c[i]
		plain = r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	if plain {
		return string(t) + "_" + string(c)
	}
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

// nodeIDs caches the nodeID of each chain of a table: the edges of a
// kube-proxy node name the same chains tens of thousands of times.
type nodeIDs struct {
	table parse.TableName
	m     map[parse.ChainName]string
}

func (n *nodeIDs) of(c parse.ChainName) string {
	if id, ok := n.m[c]; ok {
		return id
	}
	if n.m == nil {
		n.m = map[parse.ChainName]string{}
	}
	id := nodeID(n.table, c)
	n.m[c] = id
	return id
}

// edgeLabel is a short label for an edge: what the jumping rule matches.
func edgeLabel(e parse.Edge) string {
	s := flatten(MatchSummary(e.Rule))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	if e.Goto {
		s = strings.TrimSpace("goto " + s)
	}
	return s
}

// The escapers are built once: a strings.Replacer is costly to build and
// the graph renderers quote every chain and every edge.
var (
	dotEscaper     = strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	mermaidEscaper = strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "|", "#124;")
	mermaidQuot    = strings.NewReplacer(`"`, "#quot;")
	lineFlattener  = strings.NewReplacer("\n", " ", "\r", " ", "\t", " ")
)

// flatten is oneLine with a shared replacer and a fast path for the usual
// single-line text.
func flatten(s string) string {
	if !strings.ContainsAny(s, "\n\r\t") {
		return s
	}
	return lineFlattener.Replace(s)
}

func dotQuote(s string) string {
	return `"` + dotEscaper.Replace(s) + `"`
}

// DOT writes the chain graph of the tables as one Graphviz digraph, one
// cluster per table. Built-in chains are bold boxes with their policy;
// user chains are boxes with their rule count; chains nothing reaches are
// dashed; jumps to missing chains point at a red node. Edges carry what
// the jumping rule matches.
func DOT(w io.Writer, tables []*parse.Table) error {
	b := bufio.NewWriterSize(w, 64<<10)
	b.WriteString("digraph iptables {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n")
	for _, t := range tables {
		g := parse.BuildGraph(t)
		unreach := map[parse.ChainName]bool{}
		for _, u := range g.Unreachable() {
			unreach[u] = true
		}
		fmt.Fprintf(b, "  subgraph %s {\n    label=%s;\n", dotQuote("cluster_"+string(t.Name)), dotQuote(string(t.Name)))
		for _, c := range t.Chains {
			label := fmt.Sprintf("%s\n%d rules", c.Name, len(c.Rules))
			attrs := ""
			if c.Builtin {
				label = fmt.Sprintf("%s\npolicy %s, %d rules", c.Name, c.Policy, len(c.Rules))
				attrs = ", style=bold"
			} else if unreach[c.Name] {
				attrs = ", style=dashed"
			}
			fmt.Fprintf(b, "    %s [label=%s%s];\n", nodeID(t.Name, c.Name), dotQuote(label), attrs)
		}
		for _, e := range g.Dangling() {
			fmt.Fprintf(b, "    %s [label=%s, color=red, fontcolor=red];\n", nodeID(t.Name, e.To), dotQuote(string(e.To)+"\n(missing)"))
		}
		b.WriteString("  }\n")
		ids := nodeIDs{table: t.Name}
		for _, e := range g.Edges {
			// "  FROM -> TO [label=..., style=dashed, color=red];"
			b.WriteString("  ")
			b.WriteString(ids.of(e.From))
			b.WriteString(" -> ")
			b.WriteString(ids.of(e.To))
			b.WriteString(" [label=")
			b.WriteString(dotQuote(edgeLabel(e)))
			if e.Goto {
				b.WriteString(", style=dashed")
			}
			if e.Missing {
				b.WriteString(", color=red")
			}
			b.WriteString("];\n")
		}
	}
	b.WriteString("}\n")
	return b.Flush()
}

// mermaidText escapes text for a Mermaid label in double quotes.
func mermaidText(s string) string {
	return mermaidEscaper.Replace(s)
}

// Mermaid writes the chain graph as a Mermaid flowchart, one subgraph per
// table, with the same conventions as DOT.
func Mermaid(w io.Writer, tables []*parse.Table) error {
	b := bufio.NewWriterSize(w, 64<<10)
	b.WriteString("flowchart LR\n")
	for _, t := range tables {
		g := parse.BuildGraph(t)
		fmt.Fprintf(b, "  subgraph %s[\"%s\"]\n", nodeID(t.Name, "table"), t.Name)
		for _, c := range t.Chains {
			label := fmt.Sprintf("%s<br/>%d rules", c.Name, len(c.Rules))
			if c.Builtin {
				label = fmt.Sprintf("<b>%s</b><br/>policy %s, %d rules", c.Name, c.Policy, len(c.Rules))
			}
			fmt.Fprintf(b, "    %s[\"%s\"]\n", nodeID(t.Name, c.Name), mermaidQuot.Replace(label))
		}
		for _, e := range g.Dangling() {
			fmt.Fprintf(b, "    %s[\"%s (missing)\"]\n    style %s stroke:#d00,color:#d00\n", nodeID(t.Name, e.To), mermaidText(string(e.To)), nodeID(t.Name, e.To))
		}
		b.WriteString("  end\n")
		ids := nodeIDs{table: t.Name}
		for _, e := range g.Edges {
			// "  FROM -->|"label"| TO", "-.->" for a goto.
			b.WriteString("  ")
			b.WriteString(ids.of(e.From))
			if e.Goto {
				b.WriteString(" -.->")
			} else {
				b.WriteString(" -->")
			}
			if l := edgeLabel(e); l != "" {
				b.WriteString(`|"`)
				b.WriteString(mermaidText(l))
				b.WriteString(`"|`)
			}
			b.WriteByte(' ')
			b.WriteString(ids.of(e.To))
			b.WriteByte('\n')
		}
	}
	return b.Flush()
}

// GraphSchema is the "schema" value of `iptscope graph --format json`.
const GraphSchema = "iptscope.graph/v1"

// GraphDoc is the JSON document of `iptscope graph --format json`.
type GraphDoc struct {
	Schema string `json:"schema"`
	// ToolVersion is the iptscope build that wrote the document
	// (buildinfo.Version).
	ToolVersion string       `json:"tool_version"`
	Tables      []GraphTable `json:"tables"`
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
	doc := GraphDoc{Schema: GraphSchema, ToolVersion: buildinfo.Version(), Tables: []GraphTable{}}
	for _, t := range tables {
		doc.Tables = append(doc.Tables, buildGraphTable(t))
	}
	return doc
}

func buildGraphTable(t *parse.Table) GraphTable {
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
	return gt
}

// GraphJSON writes BuildGraphDoc(tables) as indented JSON, the bytes
// encoding/json's Encoder with SetIndent("", "  ") gives (a render test
// holds the two together), one table at a time.
func GraphJSON(w io.Writer, tables []*parse.Table) error {
	j := newJSONWriter(w)
	j.beginObject()
	j.key("schema")
	j.str(GraphSchema)
	j.key("tool_version")
	j.str(buildinfo.Version())
	j.key("tables")
	j.beginArray()
	for _, t := range tables {
		j.elem()
		j.graphTable(buildGraphTable(t))
		if err := j.flush(); err != nil {
			return err
		}
	}
	j.endArray()
	j.endObject()
	j.buf = append(j.buf, '\n')
	return j.flush()
}

func (j *jsonWriter) graphTable(gt GraphTable) {
	j.beginObject()
	j.key("table")
	j.str(string(gt.Table))
	j.key("chains")
	j.beginArray()
	for _, c := range gt.Chains {
		j.elem()
		j.beginObject()
		j.key("name")
		j.str(string(c.Name))
		j.key("builtin")
		j.bool(c.Builtin)
		if c.Policy != "" {
			j.key("policy")
			j.str(string(c.Policy))
		}
		j.key("rules")
		j.int(int64(c.Rules))
		j.key("references")
		j.int(int64(c.References))
		j.endObject()
	}
	j.endArray()
	j.graphEdges("edges", gt.Edges)
	j.key("visit_order")
	j.beginObject()
	names := make([]string, 0, len(gt.VisitOrder))
	for n := range gt.VisitOrder {
		names = append(names, string(n))
	}
	sort.Strings(names) // as encoding/json orders map keys
	for _, n := range names {
		j.key(n)
		j.chainNames(gt.VisitOrder[parse.ChainName(n)])
	}
	j.endObject()
	j.key("unreachable")
	j.chainNames(gt.Unreachable)
	j.graphEdges("dangling", gt.Dangling)
	j.key("loops")
	j.beginArray()
	for _, l := range gt.Loops {
		j.elem()
		j.chainNames(l)
	}
	j.endArray()
	j.endObject()
}

func (j *jsonWriter) chainNames(names []parse.ChainName) {
	if names == nil {
		j.null()
		return
	}
	j.beginArray()
	for _, n := range names {
		j.elem()
		j.str(string(n))
	}
	j.endArray()
}

func (j *jsonWriter) graphEdges(key string, edges []GraphEdge) {
	j.key(key)
	j.beginArray()
	for i := range edges {
		e := &edges[i]
		j.elem()
		j.beginObject()
		j.key("from")
		j.str(string(e.From))
		j.key("to")
		j.str(string(e.To))
		if e.Goto {
			j.key("goto")
			j.bool(true)
		}
		if e.Missing {
			j.key("missing")
			j.bool(true)
		}
		j.key("position")
		j.int(int64(e.Position))
		j.key("line")
		j.int(int64(e.Line))
		j.key("match")
		j.str(e.Match)
		if e.Packets != nil {
			j.key("packets")
			j.uint(*e.Packets)
		}
		j.endObject()
	}
	j.endArray()
}
