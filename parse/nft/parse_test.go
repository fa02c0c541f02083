package nft

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixtureRulesets returns every fixture folder's nft-ruleset.json and .txt.
func fixtureRulesets(t *testing.T) map[string][2][]byte {
	t.Helper()
	files, err := filepath.Glob("../../fixtures/*/nft-ruleset.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixture nft-ruleset.json: %v", err)
	}
	out := map[string][2][]byte{}
	for _, f := range files {
		js, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		txt, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(filepath.Dir(f))] = [2][]byte{js, txt}
	}
	return out
}

// tableBlocks splits `nft list ruleset` text into its tables.
func tableBlocks(txt string) map[string]string {
	out := map[string]string{}
	var name string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(txt, "\n") {
		if strings.HasPrefix(line, "table ") {
			name = strings.TrimSuffix(strings.TrimPrefix(line, "table "), " {\n")
			cur.Reset()
		}
		cur.WriteString(line)
		if line == "}\n" {
			out[name] = cur.String()
		}
	}
	return out
}

func TestEveryFixtureParses(t *testing.T) {
	for dir, f := range fixtureRulesets(t) {
		t.Run(dir+" parses, prints its JSON back and its native tables as nft does", func(t *testing.T) {
			rs, err := Parse(f[0])
			if err != nil {
				t.Fatal(err)
			}
			// JSON round trip: the same objects in the same order.
			var a, b struct{ Nftables []json.RawMessage }
			if err := json.Unmarshal(f[0], &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(rs.JSON(), &b); err != nil {
				t.Fatalf("JSON() does not decode: %v", err)
			}
			if len(a.Nftables) != len(b.Nftables) {
				t.Fatalf("JSON() has %d objects, want %d", len(b.Nftables), len(a.Nftables))
			}
			for i := range a.Nftables {
				if compact(a.Nftables[i]) != compact(b.Nftables[i]) {
					t.Fatalf("object %d differs:\n%s\n%s", i, a.Nftables[i], b.Nftables[i])
				}
			}
			want := tableBlocks(joinElements(string(f[1])))
			for _, tb := range rs.Tables {
				key := string(tb.Family) + " " + tb.Name
				if tb.HasXT() {
					continue
				}
				var got bytes.Buffer
				if err := tb.WriteText(&got); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(want[key], joinElements(got.String())); d != "" {
					t.Errorf("table %s text (-nft +model):\n%s", key, d)
				}
			}
		})
	}
}

// joinElements puts a set's elements on one line: nft wraps them by a
// rule of its own, which the model does not copy.
func joinElements(s string) string {
	return strings.ReplaceAll(s, ",\n\t\t\t     ", ", ")
}

// TestShapesBeyondDocker: a ruleset made to hold what Docker does not
// write (named and anonymous sets and verdict maps, goto, ranges, inet
// NAT with a family, IPv6 dnat, redirect, snat, log, meta mark, priority
// offsets), loaded into a real nft 1.0.6 and captured with nft list and
// nft -j list (testdata/extra.*), prints back as nft printed it.
func TestShapesBeyondDocker(t *testing.T) {
	js, err := os.ReadFile("testdata/extra.json")
	if err != nil {
		t.Fatal(err)
	}
	txt, err := os.ReadFile("testdata/extra.txt")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(joinElements(string(txt)), joinElements(rs.Text())); d != "" {
		t.Errorf("text (-nft +model):\n%s", d)
	}
	tb := rs.Table(FamilyInet, "nftx")
	if got := tb.Targets(tb.Chain("fwdchain")); !cmp.Equal(got, []string{"web"}) {
		t.Errorf("targets of fwdchain: %v, want [web]", got)
	}
	edges := tb.Edges(tb.Chain("fwdchain").Rules[0])
	if len(edges) != 2 || edges[0].Map != "portjump" || edges[0].Key != "80" || edges[1].Verdict.Kind != "goto" {
		t.Errorf("edges of the vmap rule: %+v", edges)
	}
	if s := tb.Set("portjump"); !s.IsVerdictMap() || len(s.Elements) != 2 {
		t.Errorf("portjump: %+v", s)
	}
	r := tb.Chain("prechain").Rules[0]
	if n, k := r.NAT(); k != KindDNAT || n.Addr != "fd00::2" || n.Port != "80" || n.Family != "ip6" {
		t.Errorf("dnat: %v %+v", k, n)
	}
	if got := tb.Chain("web").Rules[2].Unknown(); len(got) != 1 || got[0].Kind != "log" {
		t.Errorf("unknown expressions of the log rule: %+v", got)
	}
}

func TestParseErrorsAndEmpty(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"empty input is an empty ruleset", "  \n", true},
		{"a document without nftables is refused", `{"foo": 1}`, false},
		{"broken JSON is refused", `{"nftables": [`, false},
		{"an object with two kinds is refused", `{"nftables": [{"table": {}, "chain": {}}]}`, false},
		{"a rule without a chain is refused", `{"nftables": [{"rule": {"family": "ip", "table": "t"}}]}`, false},
		{"an unknown object kind is kept", `{"nftables": [{"flowtable": {"name": "f"}}]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Parse([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if _, ok := err.(*Error); !ok {
					t.Errorf("error of type %T", err)
				}
				return
			}
			if rs == nil {
				t.Fatal("nil ruleset")
			}
		})
	}
}
