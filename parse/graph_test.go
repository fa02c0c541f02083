package parse

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const graphDump = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:ORPHAN - [0:0]
:LOOP-A - [0:0]
:LOOP-B - [0:0]
:SELF - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
-A DOCKER -g GONE
-A ORPHAN -j LOOP-A
-A LOOP-A -j LOOP-B
-A LOOP-B -j LOOP-A
-A SELF -j SELF
COMMIT
`

func TestGraph(t *testing.T) {
	rs, err := ParseSave([]byte(graphDump))
	if err != nil {
		t.Fatal(err)
	}
	g := BuildGraph(rs.Table(TableNAT))

	t.Run("counts the rules that jump to each chain", func(t *testing.T) {
		for name, want := range map[ChainName]int{"DOCKER": 2, "ORPHAN": 0, "LOOP-A": 2, "SELF": 1, "PREROUTING": 0} {
			if got := g.References(name); got != want {
				t.Errorf("References(%s) = %d, want %d", name, got, want)
			}
		}
	})
	t.Run("gives the user chains a packet can visit from a built-in chain in order", func(t *testing.T) {
		if got, want := g.VisitOrder(ChainPrerouting), []ChainName{"DOCKER"}; !reflect.DeepEqual(got, want) {
			t.Errorf("VisitOrder(PREROUTING) = %v, want %v", got, want)
		}
		if got := g.VisitOrder(ChainPostrouting); len(got) != 0 {
			t.Errorf("VisitOrder(POSTROUTING) = %v, want none", got)
		}
		if got, want := g.VisitOrder("ORPHAN"), []ChainName{"LOOP-A", "LOOP-B"}; !reflect.DeepEqual(got, want) {
			t.Errorf("VisitOrder(ORPHAN) = %v, want %v", got, want)
		}
	})
	t.Run("finds the chains nothing reaches", func(t *testing.T) {
		if got, want := g.Unreachable(), []ChainName{"ORPHAN", "LOOP-A", "LOOP-B", "SELF"}; !reflect.DeepEqual(got, want) {
			t.Errorf("Unreachable() = %v, want %v", got, want)
		}
	})
	t.Run("finds jumps to chains that do not exist, with the rule", func(t *testing.T) {
		d := g.Dangling()
		if len(d) != 1 || d[0].To != "GONE" || !d[0].Goto || d[0].Rule.Line != 16 || d[0].Rule.Position != 3 {
			t.Fatalf("Dangling() = %+v, want one goto GONE from line 16, position 3", d)
		}
	})
	t.Run("finds loops, including a chain that jumps to itself", func(t *testing.T) {
		if got, want := g.Loops(), [][]ChainName{{"LOOP-A", "LOOP-B"}, {"SELF"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("Loops() = %v, want %v", got, want)
		}
	})
	t.Run("keeps every edge with its rule in table order", func(t *testing.T) {
		var got []string
		for _, e := range g.Edges {
			got = append(got, string(e.From)+">"+string(e.To))
		}
		want := []string{"PREROUTING>DOCKER", "OUTPUT>DOCKER", "DOCKER>GONE", "ORPHAN>LOOP-A", "LOOP-A>LOOP-B", "LOOP-B>LOOP-A", "SELF>SELF"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("edges = %v, want %v", got, want)
		}
	})
}

func TestSpecRoundTrip(t *testing.T) {
	for _, spec := range []string{
		"-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
		"-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
		"-p tcp -m multiport --dports 80,443 -m conntrack ! --ctstate INVALID -j REJECT --reject-with icmp-port-unreachable",
		"! -s 10.0.0.0/8 -g KUBE-SEP-X",
		"-m mark ! --mark 0x4000/0x4000 -j RETURN",
		"-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j TCPMSS --clamp-mss-to-pmtu",
		"-j LOG --log-prefix \"drop: \\\"x\\\" \" --log-level 4",
	} {
		t.Run(spec, func(t *testing.T) {
			r, err := ParseRuleSpec(TableFilter, "X", spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Spec(); got != spec {
				t.Errorf("Spec() = %q\nwant     %q", got, spec)
			}
			if len(r.Unparsed) != 0 {
				t.Errorf("Unparsed = %q, want none", r.Unparsed)
			}
		})
	}
	t.Run("an implicit protocol match is kept implicit", func(t *testing.T) {
		r, err := ParseRuleSpec(TableFilter, "X", "-p tcp --dport 22 -j ACCEPT")
		if err != nil {
			t.Fatal(err)
		}
		if m := r.Match("tcp"); m == nil || !m.Implicit || m.Option("dport").Value() != "22" {
			t.Fatalf("tcp match = %+v", m)
		}
		if got := r.Spec(); got != "-p tcp --dport 22 -j ACCEPT" {
			t.Errorf("Spec() = %q", got)
		}
	})
	t.Run("old-style negation after the option is understood", func(t *testing.T) {
		r, err := ParseRuleSpec(TableFilter, "X", "-s ! 10.0.0.1 -p tcp -m tcp --dport ! 22 -j DROP")
		if err != nil {
			t.Fatal(err)
		}
		if !r.Source.Negated || r.Source.Value != "10.0.0.1" || !r.Match("tcp").Option("dport").Negated {
			t.Errorf("rule = %+v", r)
		}
	})
	t.Run("an option without its value is an error", func(t *testing.T) {
		if _, err := ParseRuleSpec(TableFilter, "X", "-j"); err == nil {
			t.Error("want an error for -j without a target")
		}
	})
}

// TestGraphIsTheFormerOne holds BuildGraph, VisitOrder and Unreachable to
// the straightforward versions they replaced (appends per chain, one
// recursive walk per built-in chain), over every fixture and the parser's
// inputs.
func TestGraphIsTheFormerOne(t *testing.T) {
	var files []string
	for _, g := range []string{"../fixtures/*/*.txt", "testdata/save/*.txt", "testdata/list/*.txt"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	loop := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n:C - [0:0]\n" +
		"-A INPUT -j A\n-A A -j B\n-A B -j A\n-A B -j C\n-A A -j MISSING\n-A C -g A\n-A FORWARD -j C\n-A OUTPUT -j INPUT\nCOMMIT\n"
	inputs := map[string][]byte{"loops": []byte(loop)}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = data
	}
	n := 0
	for name, data := range inputs {
		rs, err := Parse(data)
		if err != nil {
			continue
		}
		for _, tb := range rs.Tables {
			n++
			g := BuildGraph(tb)
			// The former BuildGraph.
			out, in := map[ChainName][]Edge{}, map[ChainName][]Edge{}
			var edges []Edge
			names := map[ChainName]bool{}
			for _, c := range tb.Chains {
				names[c.Name] = true
			}
			for _, c := range tb.Chains {
				for _, r := range c.Rules {
					if r.JumpsToChain() {
						e := Edge{From: c.Name, To: ChainName(r.Target), Goto: r.Goto, Missing: !names[ChainName(r.Target)], Rule: r}
						edges = append(edges, e)
						out[c.Name] = append(out[c.Name], e)
						in[e.To] = append(in[e.To], e)
					}
				}
			}
			if !reflect.DeepEqual(g.Edges, edges) && len(edges) > 0 {
				t.Errorf("%s %s: edges differ", name, tb.Name)
			}
			var walk func(c ChainName, seen map[ChainName]bool, order *[]ChainName)
			walk = func(c ChainName, seen map[ChainName]bool, order *[]ChainName) {
				for _, e := range out[c] {
					if seen[e.To] || e.Missing {
						continue
					}
					seen[e.To] = true
					*order = append(*order, e.To)
					walk(e.To, seen, order)
				}
			}
			reached := map[ChainName]bool{}
			for _, c := range tb.Chains {
				if !reflect.DeepEqual(g.Callees(c.Name), out[c.Name]) || !reflect.DeepEqual(g.Callers(c.Name), in[c.Name]) {
					t.Errorf("%s %s %s: callees or callers differ", name, tb.Name, c.Name)
				}
				if c.Builtin {
					var order []ChainName
					walk(c.Name, map[ChainName]bool{c.Name: true}, &order)
					if got := g.VisitOrder(c.Name); !reflect.DeepEqual(got, order) {
						t.Errorf("%s %s %s: visit order %v, want %v", name, tb.Name, c.Name, got, order)
					}
					reached[c.Name] = true
					for _, u := range order {
						reached[u] = true
					}
				}
			}
			var un []ChainName
			for _, c := range tb.Chains {
				if !reached[c.Name] {
					un = append(un, c.Name)
				}
			}
			if got := g.Unreachable(); !reflect.DeepEqual(got, un) {
				t.Errorf("%s %s: unreachable %v, want %v", name, tb.Name, got, un)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d tables compared", n)
	}
}
