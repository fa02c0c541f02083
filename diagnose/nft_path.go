package diagnose

import (
	"strconv"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftForeignDrop is a rule (or the policy) of a table on the forward
// hook that is neither Docker's nor one iptables makes, where the
// engine's trace of a published port stopped (nftForeignStop): a user's
// table (inet myfw), firewalld's or ufw's.
type nftForeignDrop struct {
	table *nft.Table
	chain *nft.Chain // the base chain
	rule  *nft.Rule  // nil: the chain's policy
	in    *nft.Chain // the chain holding rule
}

// describe names the table, chain and rule: `table inet myfw chain
// forward (priority filter - 1) rule 1 (handle 2): meta l4proto tcp ...
// drop`.
func (d *nftForeignDrop) describe() string {
	s := "table " + string(d.table.Family) + " " + d.table.Name + " chain " + d.chain.Name + " (hook forward priority " + d.chain.PriorityText() + ")"
	if d.rule == nil {
		return s + ": policy drop"
	}
	if d.in != d.chain {
		s += " via chain " + d.in.Name
	}
	return s + " rule " + strconv.Itoa(d.rule.Index+1) + " (handle " + strconv.Itoa(d.rule.Handle) + "): " + d.rule.Spec()
}

// iptablesForwardDrop is an iptables filter FORWARD chain (either
// backend: both hook the kernel) whose policy DROP (or an unconditional
// DROP/REJECT) drops what docker-bridges accepts: Docker's nftables
// backend writes no iptables rule, so nothing there admits its traffic.
// Returns the dump's backend and a description, "" when none drops it.
func iptablesForwardDrop(s *snapshot.Snapshot, family, bridge string) (backend, why string) {
	for _, d := range s.Rules {
		if d.Family != family || d.Ruleset == nil {
			continue
		}
		fwd := d.Ruleset.Table(parse.TableFilter).Chain(parse.ChainForward)
		if fwd == nil {
			continue
		}
		decided := false
		for _, r := range fwd.Rules {
			if r.InIface.Value != "" || r.Source.Value != "" || r.Destination.Value != "" || len(r.Matches) > 0 || r.Protocol.Value != "" {
				if r.OutIface.Value == bridge && !r.OutIface.Negated && r.Target == parse.TargetAccept && len(r.Matches) == 0 {
					decided = true // an admin's ACCEPT -o BRIDGE
					break
				}
				continue
			}
			if r.OutIface.Value != "" && (r.OutIface.Value != bridge || r.OutIface.Negated) {
				continue
			}
			switch r.Target {
			case parse.TargetAccept:
				decided = true
			case parse.TargetDrop, parse.TargetReject:
				return d.Backend, "rule " + strconv.Itoa(r.Position) + " of iptables filter FORWARD (" + r.Spec() + ")"
			default:
				continue
			}
			break
		}
		if !decided && fwd.Policy == "DROP" {
			b := d.Backend
			if b == "" {
				b = s.IptablesBackend
			}
			return b, "the iptables filter FORWARD policy DROP (" + b + " backend)"
		}
	}
	return "", ""
}
