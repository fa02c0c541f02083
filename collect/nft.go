package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// NftListArgs are the arguments of the two reads of the native nftables
// ruleset: JSON for the model, text for people.
var (
	NftListJSONArgs = []string{"-j", "list", "ruleset"}
	NftListArgs     = []string{"list", "ruleset"}
)

// CollectNftables reads the nftables ruleset, inside the target namespace
// when inNS is set (nsPath is that namespace's path, "" for the calling
// thread's). A host without nft gives NotInstalled and no error; a failed
// or unparsable read gives Error (the text, when it was read, is kept).
//
// With the real runner it lists the tables and chains over netlink first
// (nftObjects), then reads each table with `nft -j list table` and `nft
// list table`, except iptables-nft's own tables (filter, nat, raw, mangle
// and security of ip and ip6, arptables' and ebtables' of arp and bridge):
// of those only the chains are kept, without rules, since iptables-nft-save
// reads their rules and the kernel trace needs only which chains exist.
// Why: on a namespace of 100,000 iptables-nft rules `nft list ruleset`
// takes 30 s (and even `nft list tables` 23 s: nft 1.0.6 reads every rule
// to say which tables iptables-nft manages), against 2.7 s for
// iptables-nft-save; reading Docker 29's table alone takes milliseconds.
// Any failure of the netlink listing or of a table's read falls back to
// the whole ruleset.
//
// Why the nft tool for the rules and not netlink (github.com/google/nftables
// v0.3.0): nft's JSON is libnftables' own decoding of every expression,
// which the netlink expression types would make us redo.
func CollectNftables(ctx context.Context, r Runner, inNS func(func() error) error, nsPath string) *snapshot.NftRuleset {
	var jsonOut, textOut []byte
	var jsonErr, textErr error
	read := func() error {
		if _, real := r.(ExecRunner); real {
			if objs, err := nftObjects(nsPath); err == nil {
				jsonOut, textOut, jsonErr, textErr = readNftTables(ctx, r, objs)
				if jsonErr == nil || errors.Is(jsonErr, exec.ErrNotFound) {
					return nil
				}
				// A table nft cannot name or list on its own: the
				// whole ruleset, as without netlink.
			}
		}
		jsonOut, jsonErr = r.Run(ctx, "nft", NftListJSONArgs, nil)
		if jsonErr == nil {
			textOut, textErr = r.Run(ctx, "nft", NftListArgs, nil)
		}
		return nil
	}
	if inNS != nil {
		if err := inNS(read); err != nil {
			return &snapshot.NftRuleset{Error: fmt.Sprintf("reading the nftables ruleset: %v", err)}
		}
	} else {
		read()
	}
	if errors.Is(jsonErr, exec.ErrNotFound) {
		return &snapshot.NftRuleset{NotInstalled: true}
	}
	if jsonErr != nil {
		return &snapshot.NftRuleset{Error: fmt.Sprintf("reading the nftables ruleset: %v", needsRoot(jsonErr))}
	}
	n := snapshot.NewNftRuleset(jsonOut, string(textOut))
	if textErr != nil && n.Error == "" {
		n.Error = fmt.Sprintf("reading the nftables ruleset as text: %v", textErr)
	}
	return n
}

// nftTableRef is a table as netlink lists it, with its chains.
type nftTableRef struct {
	family, name string
	chains       []nftChainRef
}

// nftChainRef is a chain; hook is "" for a regular chain.
type nftChainRef struct {
	name, typ, hook, policy string
	prio                    int
}

// iptablesNftTable reports whether family/name is a table iptables-nft
// (or arptables-nft, ebtables-nft) writes: its rules are read with
// iptables-nft-save.
func iptablesNftTable(family, name string) bool {
	switch family {
	case "ip", "ip6":
		return parse.TableName(name).IsKnown()
	case "arp":
		return name == "filter"
	case "bridge":
		return name == "filter" || name == "nat" || name == "broute"
	}
	return false
}

// readNftTables reads each table of objs with nft (JSON and text), and
// gives iptables-nft's tables as their chains alone, merged into the one
// document `nft -j list ruleset` would give.
func readNftTables(ctx context.Context, r Runner, objs []nftTableRef) (jsonOut, textOut []byte, jsonErr, textErr error) {
	var items []json.RawMessage
	var text strings.Builder
	for _, t := range objs {
		if iptablesNftTable(t.family, t.name) {
			items = append(items, nftStub(t)...)
			names := make([]string, len(t.chains))
			for i, c := range t.chains {
				names[i] = c.name
			}
			fmt.Fprintf(&text, "# table %s %s is iptables-nft's: its rules are read with iptables-nft-save (chains: %s)\n", t.family, t.name, strings.Join(names, ", "))
			continue
		}
		out, err := r.Run(ctx, "nft", []string{"-j", "list", "table", t.family, t.name}, nil)
		if err != nil {
			return nil, nil, err, nil
		}
		var doc struct {
			Nftables []json.RawMessage `json:"nftables"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			return nil, nil, fmt.Errorf("nft -j list table %s %s: %w", t.family, t.name, err), nil
		}
		for _, it := range doc.Nftables {
			if len(items) == 0 || !isMetainfo(it) {
				items = append(items, it)
			}
		}
		if textErr == nil {
			var tout []byte
			if tout, textErr = r.Run(ctx, "nft", []string{"list", "table", t.family, t.name}, nil); textErr == nil {
				text.Write(tout)
			}
		}
	}
	if len(items) == 0 || !isMetainfo(items[0]) {
		items = append([]json.RawMessage{json.RawMessage(`{"metainfo":{"json_schema_version":1}}`)}, items...)
	}
	jsonOut, err := json.Marshal(map[string][]json.RawMessage{"nftables": items})
	if err != nil {
		return nil, nil, err, nil
	}
	return jsonOut, []byte(text.String()), nil, textErr
}

func isMetainfo(it json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(it, &m) != nil {
		return false
	}
	_, ok := m["metainfo"]
	return ok
}

// nftStub is a table and its chains in nft's JSON, without rules.
func nftStub(t nftTableRef) []json.RawMessage {
	type tableObj struct {
		Family string `json:"family"`
		Name   string `json:"name"`
	}
	type chainObj struct {
		Family string `json:"family"`
		Table  string `json:"table"`
		Name   string `json:"name"`
		Type   string `json:"type,omitempty"`
		Hook   string `json:"hook,omitempty"`
		Prio   *int   `json:"prio,omitempty"`
		Policy string `json:"policy,omitempty"`
	}
	mk := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	out := []json.RawMessage{mk(map[string]tableObj{"table": {t.family, t.name}})}
	for _, c := range t.chains {
		co := chainObj{Family: t.family, Table: t.name, Name: c.name}
		if c.hook != "" {
			prio := c.prio
			co.Type, co.Hook, co.Prio, co.Policy = c.typ, c.hook, &prio, c.policy
		}
		out = append(out, mk(map[string]chainObj{"chain": co}))
	}
	return out
}
