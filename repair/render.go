// Package repair is the only package that changes the host. It renders a
// diagnose.Plan to one `iptables-restore --noflush` payload per table,
// checks each with --test, backs up the tables it touches with
// iptables-save, applies the payloads under the xtables lock, re-reads the
// host and rolls back when the re-read disagrees. Every command goes
// through collect.Runner.
package repair

import (
	"strings"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Payload is the iptables-restore input for one family and table.
type Payload struct {
	Family string
	Table  parse.TableName
	// Text is the whole payload: "*table", chain declarations, rule
	// lines, "COMMIT".
	Text string
}

// Render turns the plan's rule operations into payloads, one per family
// and table, tables in hook order (raw, mangle, nat, filter).
//
// Why only chains to create are declared: with --noflush, a ":CHAIN"
// line for a chain that exists flushes it (iptables 1.8, both backends).
func Render(p *diagnose.Plan) []Payload {
	var out []Payload
	for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
		for _, t := range parse.KnownTables {
			ops := p.RuleOps(fam, t)
			if len(ops) == 0 {
				continue
			}
			var b strings.Builder
			b.WriteString("*" + string(t) + "\n")
			for _, o := range ops {
				if o.Kind == diagnose.OpCreateChain {
					b.WriteString(o.Line() + "\n")
				}
			}
			for _, o := range ops {
				if o.Kind != diagnose.OpCreateChain {
					b.WriteString(o.Line() + "\n")
				}
			}
			b.WriteString("COMMIT\n")
			out = append(out, Payload{Family: fam, Table: t, Text: b.String()})
		}
	}
	return append(out, renderNft(p)...) // Docker's nftables table (nft.go)
}

// restoreCommand is the restore tool of a family and backend:
// iptables-nft-restore, ip6tables-legacy-restore, or plain
// iptables-restore for backend "".
func restoreCommand(family, backend string) string {
	return strings.TrimSuffix(collect.SaveCommand(collect.Family(family), backend), "-save") + "-restore"
}
