package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iptscope/iptscope/internal/buildinfo"
	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
)

// oddRules are save lines whose summaries and cells exercise the corners
// of the fast renderers: port ranges, negations, empty and quoted values,
// wide and non-ASCII characters, control characters, escape sequences.
const oddRules = `*filter
:INPUT ACCEPT [1:2]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:X - [0:0]
[1:2] -A INPUT -p tcp -m tcp --dport 1000:2000 ! --sport 53 -j ACCEPT
[1:2] -A X -p udp -m udp ! --dport 1:2 -m comment --comment "日本語のコメント wide" -j X
-A X -m comment --comment "tab	inside and \"quotes\"" -j DROP
-A INPUT -m conntrack --ctstate "" -j DROP
-A INPUT -m conntrack -j DROP
-A INPUT -m addrtype --dst-type " LOCAL " ! --src-type LOCAL -j RETURN
-A INPUT -m multiport --dports 80,443 -m set --match-set s src -m mark ! --mark 0x1/0xff -j ACCEPT
-A X -m physdev --physdev-is-bridged -m state --state NEW -j LOG --log-prefix "é ünïcode " --log-level 6
-A X -m limit --limit 3/min --limit-burst 10 -m comment --comment "` + "\x1b[31mred\x1b[0m" + `" -j REJECT --reject-with icmp-port-unreachable
-A INPUT -m recent ! --rcheck --seconds 60 --name "" -j DROP
-A INPUT -s 10.0.0.0/8 ! -d 10.1.0.0/16 -i eth0 ! -o eth1 ! -p tcp -f -j X
-A INPUT ! -f -p 6 -j X
-A INPUT -p tcp -m udp --dport 5 -g X
-A INPUT -j DNAT --to-destination 1.2.3.4:80 --random
-A INPUT -j MASQUERADE --to-ports 1000-2000 ! --random-fully
-A INPUT -j CT --notrack --zone ""
-A INPUT -m comment
-A INPUT -m comment --comment "x" --comment "y" -j ACCEPT
-A INPUT -m tcp --dport "a b" "unparsed word" "" ! -j ACCEPT
-A X -m ☃ --snow man -j ☃
-A INPUT -m comment --comment "<b>&amp;</b>" -j ACCEPT
-A X -m comment --comment "line sep" -j ACCEPT
-A INPUT -m comment --comment "tab	in ascii  " -j DROP
-A INPUT -m physdev --physdev-is-bridged -m state --state NEW -j LOG --log-prefix "a  b " --log-level 6
COMMIT
`

// fastTestInputs are every fixture dump (save and -L), the parser's test
// inputs, oddRules and a small synthetic host.
func fastTestInputs(t *testing.T) map[string]*parse.Ruleset {
	t.Helper()
	inputsOnce.Do(func() { inputs, inputsErr = readFastTestInputs() })
	if inputsErr != nil {
		t.Fatal(inputsErr)
	}
	return inputs
}

var (
	inputsOnce sync.Once
	inputs     map[string]*parse.Ruleset
	inputsErr  error
)

func readFastTestInputs() (map[string]*parse.Ruleset, error) {
	var files []string
	for _, g := range []string{"../fixtures/*/*.txt", "../parse/testdata/save/*.txt", "../parse/testdata/list/*.txt"} {
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	out := map[string]*parse.Ruleset{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if rs, err := parse.Parse(data); err == nil {
			out[f] = rs
		}
	}
	if len(out) < 50 {
		return nil, fmt.Errorf("only %d inputs parsed", len(out))
	}
	for name, data := range map[string][]byte{"odd rules": []byte(oddRules), "synthetic docker": synth.DockerHost(600), "render test nat": []byte(dockerNAT), "synthetic kube": synth.KubeNode(50, 3)} {
		rs, err := parse.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		out[name] = rs
	}
	return out, nil
}

func TestSummariesAreTheFormerOnesByteForByte(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		for _, tb := range rs.Tables {
			for _, c := range tb.Chains {
				for _, r := range c.Rules {
					if got, want := MatchSummary(r), refMatchSummary(r); got != want {
						t.Errorf("%s: %s: MatchSummary = %q, want %q", name, r.Raw, got, want)
					}
					if got, want := TargetSummary(r), refTargetSummary(r); got != want {
						t.Errorf("%s: %s: TargetSummary = %q, want %q", name, r.Raw, got, want)
					}
				}
			}
		}
	}
}

func TestRulesTableIsTablewritersLayoutByteForByte(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		if strings.HasPrefix(name, "synthetic") {
			continue // the fixtures' shapes, in numbers tablewriter is slow at
		}
		chains := []parse.ChainName{""}
		if name == "odd rules" || name == "render test nat" {
			chains = append(chains, "DOCKER", "INPUT", "X") // --chain
		}
		for _, only := range chains {
			for _, o := range []Options{{}, {Terminal: true}, {Terminal: true, NoColor: true}} {
				var got, want bytes.Buffer
				if err := RulesTable(&got, rs.Tables, only, o); err != nil {
					t.Fatal(err)
				}
				if err := refRulesTable(&want, sanitized(rs.Tables), only, o); err != nil { // the new one sanitises (sanitize.go)
					t.Fatal(err)
				}
				if diff := cmp.Diff(want.String(), got.String()); diff != "" {
					t.Errorf("%s (chain %q, %+v): rules table differs (-tablewriter +new):\n%s", name, only, o, diff)
				}
			}
		}
	}
}
func TestRulesJSONIsEncodingJSONByteForByte(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		var got, want bytes.Buffer
		if err := RulesJSON(&got, rs.Format, rs.Tables); err != nil {
			t.Fatal(err)
		}
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(RulesDoc{Schema: RulesSchema, ToolVersion: buildinfo.Version(), Format: rs.Format, Tables: noNilSlices(rs.Tables)}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("%s: RulesJSON differs (-encoding/json +new):\n%s", name, diff)
		}
	}
}

func TestTreeIsTheFormerOneByteForByte(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		for _, o := range []Options{{}, {Terminal: true}, {Terminal: true, NoColor: true}} {
			var got, want bytes.Buffer
			if err := Tree(&got, rs.Tables, o); err != nil {
				t.Fatal(err)
			}
			if err := refTree(&want, sanitized(rs.Tables), o); err != nil { // the new one sanitises (sanitize.go)
				t.Fatal(err)
			}
			if diff := cmp.Diff(want.String(), got.String()); diff != "" {
				t.Errorf("%s (%+v): tree differs (-former +new):\n%s", name, o, diff)
			}
		}
	}
}

func TestDOTAndMermaidAreTheFormerOnesByteForByte(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		for _, f := range []struct {
			name      string
			got, want func(io.Writer, []*parse.Table) error
		}{{"dot", DOT, refDOT}, {"mermaid", Mermaid, refMermaid}} {
			var got, want bytes.Buffer
			if err := f.got(&got, rs.Tables); err != nil {
				t.Fatal(err)
			}
			if err := f.want(&want, rs.Tables); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want.String(), got.String()); diff != "" {
				t.Errorf("%s: %s differs (-former +new):\n%s", name, f.name, diff)
			}
		}
	}
}

func TestGraphJSONIsEncodingJSONByteForByte(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		var got, want bytes.Buffer
		if err := GraphJSON(&got, rs.Tables); err != nil {
			t.Fatal(err)
		}
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(BuildGraphDoc(rs.Tables)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("%s: GraphJSON differs (-encoding/json +new):\n%s", name, diff)
		}
	}
}

// noNilSlices copies the tables with empty chain and rule lists that are
// not nil: RulesJSON writes [] for both, encoding/json null for nil.
func noNilSlices(tables []*parse.Table) []*parse.Table {
	out := make([]*parse.Table, len(tables))
	for i, t := range tables {
		cp := *t
		cp.Chains = make([]*parse.Chain, len(t.Chains))
		for j, c := range t.Chains {
			cp.Chains[j] = c
			if c.Rules == nil {
				cc := *c
				cc.Rules = []*parse.Rule{}
				cp.Chains[j] = &cc
			}
		}
		out[i] = &cp
	}
	return out
}

func TestRulesJSONHasNoNullAndNoEmptyObject(t *testing.T) {
	for name, rs := range fastTestInputs(t) {
		var b bytes.Buffer
		if err := RulesJSON(&b, rs.Format, rs.Tables); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"null", "{}"} {
			if i := bytes.Index(b.Bytes(), []byte(bad)); i >= 0 {
				t.Errorf("%s: dump JSON has %s: ...%s...", name, bad, b.Bytes()[max(0, i-200):i+len(bad)])
			}
		}
		var doc struct {
			Tables []map[string]any `json:"tables"`
		}
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, tb := range doc.Tables {
			if _, ok := tb["table"]; !ok {
				t.Errorf("%s: a table without its \"table\" key: %v", name, tb)
			}
		}
	}
}
