package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

func TestCollectNftables(t *testing.T) {
	js, err := os.ReadFile("../fixtures/docker-29-nftables-proxy-off-healthy/nft-ruleset.json")
	if err != nil {
		t.Fatal(err)
	}
	txt, err := os.ReadFile("../fixtures/docker-29-nftables-proxy-off-healthy/nft-ruleset.txt")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the JSON and the text are read and the JSON parsed", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{
			{Name: "nft", Args: NftListJSONArgs, Stdout: string(js)},
			{Name: "nft", Args: NftListArgs, Stdout: string(txt)},
		}}
		n := CollectNftables(context.Background(), f, nil, "")
		if err := f.Done(); err != nil {
			t.Fatal(err)
		}
		if n.Error != "" || n.Ruleset == nil || n.Text != string(txt) {
			t.Fatalf("error %q, ruleset %v, text %d bytes", n.Error, n.Ruleset != nil, len(n.Text))
		}
		if n.Ruleset.Table("ip", "docker-bridges") == nil {
			t.Error("no table ip docker-bridges")
		}
	})
	t.Run("a host without nft gives an empty part, not an error", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{{Name: "nft", Args: NftListJSONArgs, Err: fmt.Errorf("running nft: %w", exec.ErrNotFound)}}}
		n := CollectNftables(context.Background(), f, nil, "")
		if !n.NotInstalled || n.Error != "" {
			t.Errorf("%+v, want NotInstalled and no error", n)
		}
	})
	t.Run("a failing nft is an error of the part", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{{Name: "nft", Args: NftListJSONArgs, Err: &ExitError{Cmd: "nft -j list ruleset", Code: 1, Stderr: "Operation not permitted"}}}}
		n := CollectNftables(context.Background(), f, nil, "")
		if n.Error == "" || n.NotInstalled {
			t.Errorf("%+v, want an error", n)
		}
	})
	t.Run("unparsable JSON keeps the text and says why", func(t *testing.T) {
		f := &FakeRunner{Script: []Call{
			{Name: "nft", Args: NftListJSONArgs, Stdout: `{"nftables": [{"rule": {}}]}`},
			{Name: "nft", Args: NftListArgs, Stdout: "table ip t {\n}\n"},
		}}
		n := CollectNftables(context.Background(), f, nil, "")
		if n.Error == "" || n.Ruleset != nil || n.Text == "" {
			t.Errorf("%+v", n)
		}
	})
}

// TestReadNftTablesIsTheRulesetLessIptablesNftRules: reading table by
// table gives, for every native table, what `nft -j list ruleset` gives,
// and for iptables-nft's tables their chains (hook, priority, policy)
// without rules. The ruleset is two captures' together: Docker 29's
// iptables-nft tables and its nftables backend's docker-bridges.
func TestReadNftTablesIsTheRulesetLessIptablesNftRules(t *testing.T) {
	var all []json.RawMessage
	for _, f := range []string{"../fixtures/docker-29-nft-proxy-on-stale-dnat/nft-ruleset.json", "../fixtures/docker-29-nftables-proxy-off-healthy/nft-ruleset.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Nftables []json.RawMessage `json:"nftables"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if len(all) == 0 {
			all = doc.Nftables
		} else {
			all = append(all, doc.Nftables[1:]...)
		}
	}
	whole, _ := json.Marshal(map[string]any{"nftables": all})
	want := snapshot.NewNftRuleset(whole, "")
	if want.Error != "" {
		t.Fatal(want.Error)
	}
	// What netlink would list, and what nft prints per native table.
	var objs []nftTableRef
	f := &FakeRunner{}
	for _, tab := range want.Ruleset.Tables {
		ref := nftTableRef{family: string(tab.Family), name: tab.Name}
		for _, c := range tab.Chains {
			ref.chains = append(ref.chains, nftChainRef{name: c.Name, typ: c.Type, hook: c.Hook, prio: c.Priority, policy: c.Policy})
		}
		objs = append(objs, ref)
		if iptablesNftTable(ref.family, ref.name) {
			continue
		}
		items := []json.RawMessage{all[0]}
		for _, it := range all[1:] {
			var o map[string]struct {
				Family string `json:"family"`
				Table  string `json:"table"`
				Name   string `json:"name"`
			}
			_ = json.Unmarshal(it, &o)
			for kind, v := range o {
				if v.Family == ref.family && (kind == "table" && v.Name == ref.name || kind != "table" && v.Table == ref.name) {
					items = append(items, it)
				}
			}
		}
		doc, _ := json.Marshal(map[string]any{"nftables": items})
		f.Script = append(f.Script,
			Call{Name: "nft", Args: []string{"-j", "list", "table", ref.family, ref.name}, Stdout: string(doc)},
			Call{Name: "nft", Args: []string{"list", "table", ref.family, ref.name}, Stdout: "table " + ref.family + " " + ref.name + " {}\n"})
	}
	jsonOut, textOut, jerr, terr := readNftTables(context.Background(), f, objs)
	if jerr != nil || terr != nil {
		t.Fatal(jerr, terr)
	}
	if err := f.Done(); err != nil {
		t.Fatal(err)
	}
	got := snapshot.NewNftRuleset(jsonOut, string(textOut))
	if got.Error != "" {
		t.Fatal(got.Error)
	}
	if len(got.Ruleset.Tables) != len(want.Ruleset.Tables) {
		t.Fatalf("%d tables, want %d", len(got.Ruleset.Tables), len(want.Ruleset.Tables))
	}
	native, stubs := 0, 0
	for i, wt := range want.Ruleset.Tables {
		gt := got.Ruleset.Tables[i]
		if gt.Family != wt.Family || gt.Name != wt.Name || len(gt.Chains) != len(wt.Chains) {
			t.Fatalf("table %d: %s %s with %d chains, want %s %s with %d", i, gt.Family, gt.Name, len(gt.Chains), wt.Family, wt.Name, len(wt.Chains))
		}
		stub := iptablesNftTable(string(wt.Family), wt.Name)
		for j, wc := range wt.Chains {
			gc := gt.Chains[j]
			if gc.Name != wc.Name || gc.Type != wc.Type || gc.Hook != wc.Hook || gc.Priority != wc.Priority || gc.Policy != wc.Policy {
				t.Errorf("%s %s chain %s: %+v, want %+v", wt.Family, wt.Name, wc.Name, gc, wc)
			}
			switch {
			case stub && len(gc.Rules) != 0:
				t.Errorf("%s %s %s: %d rules in a stub", wt.Family, wt.Name, wc.Name, len(gc.Rules))
			case !stub && len(gc.Rules) != len(wc.Rules):
				t.Errorf("%s %s %s: %d rules, want %d", wt.Family, wt.Name, wc.Name, len(gc.Rules), len(wc.Rules))
			case !stub:
				for k := range wc.Rules {
					if gc.Rules[k].Spec() != wc.Rules[k].Spec() {
						t.Errorf("%s %s %s rule %d: %q, want %q", wt.Family, wt.Name, wc.Name, k, gc.Rules[k].Spec(), wc.Rules[k].Spec())
					}
				}
			}
		}
		if stub {
			stubs++
		} else {
			native++
		}
	}
	if native < 2 || stubs < 4 {
		t.Fatalf("%d native tables and %d stubs compared", native, stubs)
	}
	if !strings.Contains(string(textOut), "# table ip nat is iptables-nft's") {
		t.Errorf("text %q", textOut)
	}
}
