package parse

import "sort"

// Edge is a jump (-j) or goto (-g) from one chain to another, with the
// rule that makes it.
type Edge struct {
	From ChainName `json:"from"`
	To   ChainName `json:"to"`
	// Goto is true for "-g": the target does not return to From.
	Goto bool `json:"goto,omitempty"`
	// Missing is true when To is not a chain of the table (a dangling jump:
	// iptables-restore would refuse it; in a -L paste it may only mean the
	// chain was not pasted).
	Missing bool `json:"missing,omitempty"`
	// Rule is the rule that jumps.
	Rule *Rule `json:"-"`
}

// Graph is the jump graph of one table: nodes are chains, edges are the
// rules that jump or go to a user chain.
//
//	PREROUTING --(-m addrtype --dst-type LOCAL)--> DOCKER
//	OUTPUT     --(! -d 127.0.0.0/8 ...)----------> DOCKER
//
// It is built once and read only; it holds pointers into the Table.
type Graph struct {
	Table *Table
	// Edges in table order: chain by chain, rule by rule.
	Edges []Edge

	out map[ChainName][]Edge
	in  map[ChainName][]Edge
}

// BuildGraph builds the jump graph of t. Rules whose target is a verdict
// or a known target extension (ACCEPT, DNAT, ...) are not edges.
//
// The edges are stored once: a chain's callees are a sub-slice of Edges
// (a chain's rules are contiguous), its callers a sub-slice of one array
// ordered by target. (Per-chain appends cost a kube-proxy node with 30,000
// chains tens of megabytes.)
func BuildGraph(t *Table) *Graph {
	names := make(map[ChainName]bool, len(t.Chains))
	n := 0
	for _, c := range t.Chains {
		names[c.Name] = true
		for _, r := range c.Rules {
			if r.JumpsToChain() {
				n++
			}
		}
	}
	g := &Graph{Table: t, Edges: make([]Edge, 0, n), out: make(map[ChainName][]Edge, len(t.Chains))}
	incoming := make(map[ChainName]int, len(t.Chains))
	for _, c := range t.Chains {
		start := len(g.Edges)
		for _, r := range c.Rules {
			if !r.JumpsToChain() {
				continue
			}
			to := ChainName(r.Target)
			g.Edges = append(g.Edges, Edge{From: c.Name, To: to, Goto: r.Goto, Missing: !names[to], Rule: r})
			incoming[to]++
		}
		if end := len(g.Edges); end > start {
			if prev := g.out[c.Name]; prev != nil {
				// A chain listed twice (only in a table built by hand)
				// has the edges of both.
				g.out[c.Name] = append(prev[:len(prev):len(prev)], g.Edges[start:end]...)
			} else {
				g.out[c.Name] = g.Edges[start:end:end]
			}
		}
	}
	// Callers: one array, each target's edges together, in table order.
	g.in = make(map[ChainName][]Edge, len(incoming))
	back := make([]Edge, len(g.Edges))
	off := 0
	for _, e := range g.Edges {
		if _, ok := g.in[e.To]; !ok {
			k := incoming[e.To]
			g.in[e.To] = back[off : off : off+k]
			off += k
		}
		g.in[e.To] = append(g.in[e.To], e)
	}
	return g
}

// Callees returns the edges leaving chain c, in rule order.
func (g *Graph) Callees(c ChainName) []Edge { return g.out[c] }

// Callers returns the edges that reach chain c, in table order.
func (g *Graph) Callers(c ChainName) []Edge { return g.in[c] }

// References is the number of rules that jump or go to chain c (what
// `iptables -L` prints as "(N references)").
func (g *Graph) References(c ChainName) int { return len(g.in[c]) }

// VisitOrder returns the user chains a packet entering built-in chain
// start can visit, in the order it would first reach them if every rule
// matched: depth first, following rules in order. Each chain appears once;
// start itself is not included.
func (g *Graph) VisitOrder(start ChainName) []ChainName {
	var order []ChainName
	g.walk(start, map[ChainName]bool{start: true}, func(c ChainName) { order = append(order, c) })
	return order
}

// walk visits, depth first in rule order, the chains reachable from c that
// seen does not hold yet, marking them (iteratively: a chain of thousands
// of jumps must not grow the stack without bound).
func (g *Graph) walk(c ChainName, seen map[ChainName]bool, visit func(ChainName)) {
	type frame struct {
		edges []Edge
		i     int
	}
	stack := []frame{{edges: g.out[c]}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.i == len(f.edges) {
			stack = stack[:len(stack)-1]
			continue
		}
		e := f.edges[f.i]
		f.i++
		if seen[e.To] || e.Missing {
			continue
		}
		seen[e.To] = true
		visit(e.To)
		stack = append(stack, frame{edges: g.out[e.To]})
	}
}

// Unreachable returns the user chains no built-in chain can reach, in
// table order. Docker's chains are never unreachable on a healthy host;
// an unreachable DOCKER chain means its jump is gone.
func (g *Graph) Unreachable() []ChainName {
	// One walk from all built-in chains: what VisitOrder of each reaches.
	reached := make(map[ChainName]bool, len(g.Table.Chains))
	for _, c := range g.Table.Chains {
		if c.Builtin {
			reached[c.Name] = true
		}
	}
	for _, c := range g.Table.Chains {
		if c.Builtin {
			g.walk(c.Name, reached, func(ChainName) {})
		}
	}
	var out []ChainName
	for _, c := range g.Table.Chains {
		if !reached[c.Name] {
			out = append(out, c.Name)
		}
	}
	return out
}

// Dangling returns the edges whose target chain does not exist.
func (g *Graph) Dangling() []Edge {
	var out []Edge
	for _, e := range g.Edges {
		if e.Missing {
			out = append(out, e)
		}
	}
	return out
}

// Loops returns each set of chains that can jump back into itself (a
// strongly connected component with more than one chain, or a chain that
// jumps to itself). The kernel refuses such rulesets, so a loop in an
// input means it was edited by hand or pasted from several hosts. Chains
// in each loop are sorted by name; loops are in order of their first chain
// in the table.
func (g *Graph) Loops() [][]ChainName {
	// Tarjan's strongly connected components, iterative over small graphs
	// (recursion depth is bounded by the number of chains).
	index := map[ChainName]int{}
	low := map[ChainName]int{}
	onStack := map[ChainName]bool{}
	var stack []ChainName
	var loops [][]ChainName
	next := 0
	var strong func(v ChainName)
	strong = func(v ChainName) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, e := range g.out[v] {
			if e.Missing {
				continue
			}
			if _, ok := index[e.To]; !ok {
				strong(e.To)
				low[v] = min(low[v], low[e.To])
			} else if onStack[e.To] {
				low[v] = min(low[v], index[e.To])
			}
		}
		if low[v] != index[v] {
			return
		}
		var comp []ChainName
		for {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[w] = false
			comp = append(comp, w)
			if w == v {
				break
			}
		}
		self := false
		for _, e := range g.out[v] {
			if e.To == v {
				self = true
			}
		}
		if len(comp) > 1 || self {
			sort.Slice(comp, func(i, j int) bool { return comp[i] < comp[j] })
			loops = append(loops, comp)
		}
	}
	for _, c := range g.Table.Chains {
		if _, ok := index[c.Name]; !ok {
			strong(c.Name)
		}
	}
	return loops
}
