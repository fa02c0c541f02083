package snapshot

import (
	"encoding/json"
	"fmt"

	"github.com/iptscope/iptscope/parse/nft"
)

// NftRuleset is the host's whole nftables ruleset: Docker 29's
// `docker-bridges` tables with its nftables firewall backend, firewalld's,
// ufw's and an admin's own tables, and the tables iptables-nft made (whose
// rules show only `xt` stubs here: those tables are read from the
// iptables-nft-save dumps in Snapshot.Rules).
//
// JSON is `nft -j list ruleset` as nft printed it (compacted by the
// bundle's encoding), Text `nft list ruleset` for people. On decoding, JSON
// is parsed into Ruleset (nft.Parse); a ruleset that does not parse keeps
// Ruleset nil and says why in Error.
//
// A host without the nft tool gives NotInstalled and no ruleset: not an
// error (nothing there can have written native tables but iptables-nft,
// whose tables are read with iptables-nft-save). A snapshot without this part (Snapshot.Nftables nil) is from a collector
// that did not read nftables: nothing may be concluded about native tables.
type NftRuleset struct {
	JSON json.RawMessage `json:"json,omitempty"`
	Text string          `json:"text,omitempty"`
	// NotInstalled: no `nft` on PATH.
	NotInstalled bool `json:"not_installed,omitempty"`
	// Error says why the ruleset is missing or did not parse.
	Error string `json:"error,omitempty"`
	// Ruleset is JSON parsed (nil when JSON is empty or did not parse);
	// not serialised.
	Ruleset *nft.Ruleset `json:"-"`
}

// NewNftRuleset is the part for what nft printed: JSON parsed into
// Ruleset (an error of nft.Parse goes into Error).
func NewNftRuleset(jsonOut []byte, text string) *NftRuleset {
	n := &NftRuleset{Text: text}
	if len(jsonOut) > 0 {
		n.JSON = append(json.RawMessage(nil), jsonOut...)
	}
	n.Parse()
	return n
}

// Parse (re)parses JSON into Ruleset. An empty JSON is an empty ruleset.
// Idempotent.
func (n *NftRuleset) Parse() {
	if n == nil {
		return
	}
	n.Ruleset = nil
	if len(n.JSON) == 0 && (n.NotInstalled || n.Error != "") {
		return
	}
	rs, err := nft.Parse(n.JSON)
	if err != nil {
		if n.Error == "" {
			n.Error = fmt.Sprintf("parsing the nftables ruleset: %v", err)
		}
		return
	}
	n.Ruleset = rs
}

// UnmarshalJSON decodes the part and parses its ruleset, so that Load
// gives a snapshot whose Nftables.Ruleset is ready.
func (n *NftRuleset) UnmarshalJSON(data []byte) error {
	type plain NftRuleset
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*n = NftRuleset(p)
	n.Parse()
	return nil
}

// NftTable returns a native nftables table of the snapshot, or nil (no
// such table, or the ruleset was not read).
func (s *Snapshot) NftTable(family nft.Family, name string) *nft.Table {
	if s == nil || s.Nftables == nil || s.Nftables.Ruleset == nil {
		return nil
	}
	return s.Nftables.Ruleset.Table(family, name)
}

// NftRead reports whether the snapshot holds a parsed nftables ruleset
// (possibly empty), so that the absence of a table means something.
func (s *Snapshot) NftRead() bool {
	return s != nil && s.Nftables != nil && s.Nftables.Ruleset != nil
}
