package diagnose

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftPacket is a connection from another machine to a published port,
// after DNAT, as the forward hook sees it: in on an uplink (any interface
// but the bridge), out on the bridge, to the container's address and
// port, with conntrack's original destination port the host port.
type nftPacket struct {
	bridge   string
	family   string // snapshot.FamilyIPv4 / IPv6
	proto    string
	dstIP    string // the container's address
	dstPort  int    // the container port
	origPort int    // the host port
}

// nftMatchResult: a match holds, does not, or cannot be told.
type nftMatchResult int

const (
	nftNo nftMatchResult = iota
	nftYes
	nftUnknown
)

// matches judges one match against the packet. What the packet does not
// fix (the client's address, marks, the input interface's name) is
// unknown, except that the input interface is not the bridge; a source
// address match only narrows whom a rule hits and is taken as holding
// (as docker-user-drop does with -s on iptables).
func (p nftPacket) matches(m *nft.Match) nftMatchResult {
	neg := m.Op == "!="
	var r nftMatchResult
	v := m.Right.Value
	switch m.Left.Selector {
	case "oifname":
		r = nftBool(nftValueHas(v, p.bridge))
	case "iifname":
		if nftValueHas(v, p.bridge) {
			r = nftNo
		} else {
			r = nftUnknown
			if neg {
				return nftYes // != the bridge: an uplink is not the bridge
			}
		}
	case "ip daddr", "ip6 daddr":
		if (m.Left.Selector == "ip6 daddr") != (p.family == snapshot.FamilyIPv6) {
			return nftNo
		}
		r = nftBool(nftAddrIn(v, p.dstIP))
	case "ip saddr", "ip6 saddr":
		if neg {
			return nftUnknown
		}
		return nftYes
	case "tcp dport", "udp dport", "sctp dport":
		if strings.SplitN(m.Left.Selector, " ", 2)[0] != p.proto {
			return nftNo
		}
		r = nftBool(nftPortIn(v, p.dstPort))
	case "th dport":
		r = nftBool(nftPortIn(v, p.dstPort))
	case "ct original proto-dst":
		r = nftBool(nftPortIn(v, p.origPort))
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		r = nftBool(nftValueHas(v, p.proto))
	case "ct state":
		r = nftBool(nftValueHas(v, "new"))
	case "meta nfproto":
		want := "ipv4"
		if p.family == snapshot.FamilyIPv6 {
			want = "ipv6"
		}
		r = nftBool(nftValueHas(v, want))
	default:
		return nftUnknown
	}
	if r == nftUnknown {
		return r
	}
	if neg {
		if r == nftYes {
			return nftNo
		}
		return nftYes
	}
	return r
}

func nftBool(b bool) nftMatchResult {
	if b {
		return nftYes
	}
	return nftNo
}

// nftItems splits a literal: "{ a, b }" or "a,b" into its items, without
// the quotes of interface names.
func nftItems(v string) []string {
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "{"), "}"))
	var out []string
	for _, it := range strings.Split(v, ",") {
		if it = strings.Trim(strings.TrimSpace(it), `"`); it != "" {
			out = append(out, it)
		}
	}
	return out
}

func nftValueHas(v, want string) bool {
	for _, it := range nftItems(v) {
		if it == want {
			return true
		}
	}
	return false
}

func nftPortIn(v string, port int) bool {
	for _, it := range nftItems(v) {
		if lo, hi, ok := strings.Cut(it, "-"); ok {
			if a, b := parsePort(lo), parsePort(hi); port >= a && port <= b {
				return true
			}
			continue
		}
		if parsePort(it) == port {
			return true
		}
	}
	return false
}

func nftAddrIn(v, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, it := range nftItems(v) {
		if p, err := netip.ParsePrefix(it); err == nil && p.Contains(a) {
			return true
		}
		if b, err := netip.ParseAddr(it); err == nil && b == a {
			return true
		}
	}
	return false
}

// nftVerdictOf is what one base chain does to the packet: its final
// accept or drop (rule nil for the policy), or "" when a rule that might
// match cannot be judged before any verdict (then the chain is not held
// against the port).
type nftChainVerdict struct {
	verdict string // "accept", "drop", ""
	rule    *nft.Rule
	chain   *nft.Chain // where the deciding rule is
}

// walk follows the packet through chain c of table t (jumps and gotos;
// verdict maps are not followed: unknown).
func (p nftPacket) walk(t *nft.Table, c *nft.Chain, depth int) (nftChainVerdict, bool) {
	if depth > 16 {
		return nftChainVerdict{}, false
	}
	for _, r := range c.Rules {
		res := nftYes
		for _, e := range r.Exprs {
			switch {
			case e.Match != nil:
				if m := p.matches(e.Match); m == nftNo {
					res = nftNo
				} else if m == nftUnknown && res == nftYes {
					res = nftUnknown
				}
			case e.VMap != nil:
				res = nftUnknown
			}
			if res == nftNo {
				break
			}
		}
		if res == nftNo {
			continue
		}
		v := r.Verdict()
		for _, e := range r.Exprs {
			if e.Kind == "reject" {
				v = &nft.Verdict{Kind: "drop"} // as final for the packet
			}
		}
		if v == nil {
			continue
		}
		if res == nftUnknown {
			if v.Kind == "drop" || v.Kind == "accept" || v.IsChainTarget() {
				return nftChainVerdict{}, false // cannot tell what happens
			}
			continue
		}
		switch v.Kind {
		case "accept", "drop":
			return nftChainVerdict{verdict: v.Kind, rule: r, chain: c}, true
		case "return":
			return nftChainVerdict{}, true
		case "jump", "goto":
			sub := t.Chain(v.Target)
			if sub == nil {
				return nftChainVerdict{}, false
			}
			got, ok := p.walk(t, sub, depth+1)
			if !ok {
				return got, false
			}
			if got.verdict != "" || v.Kind == "goto" {
				return got, true
			}
		}
	}
	return nftChainVerdict{}, true
}

// nftForeignDrop is the first base chain on the forward hook, outside
// Docker's table and outside the tables iptables makes (judged from
// the iptables dumps), that drops the packet: a user's table (inet myfw),
// firewalld's or ufw's.
type nftForeignDrop struct {
	table *nft.Table
	chain *nft.Chain // the base chain
	rule  *nft.Rule  // nil: the chain's policy
	in    *nft.Chain // the chain holding rule
}

func nftForwardDrop(s *snapshot.Snapshot, p nftPacket) *nftForeignDrop {
	if !s.NftRead() {
		return nil
	}
	fam := nft.FamilyIP
	if p.family == snapshot.FamilyIPv6 {
		fam = nft.FamilyIP6
	}
	type base struct {
		t *nft.Table
		c *nft.Chain
	}
	var bases []base
	for _, t := range s.Nftables.Ruleset.Tables {
		if t.Family != fam && t.Family != nft.FamilyInet {
			continue
		}
		if t.Name == NftDockerTable || t.HasXT() || (t.Family != nft.FamilyInet && parse.TableName(t.Name).IsKnown()) {
			continue
		}
		for _, c := range t.BaseChains() {
			if c.Hook == "forward" && c.Type == "filter" {
				bases = append(bases, base{t, c})
			}
		}
	}
	sort.SliceStable(bases, func(i, j int) bool { return bases[i].c.Priority < bases[j].c.Priority })
	for _, b := range bases {
		v, ok := p.walk(b.t, b.c, 0)
		if !ok {
			continue
		}
		if v.verdict == "drop" {
			return &nftForeignDrop{table: b.t, chain: b.c, rule: v.rule, in: v.chain}
		}
		if v.verdict == "" && b.c.Policy == "drop" {
			return &nftForeignDrop{table: b.t, chain: b.c}
		}
	}
	return nil
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
