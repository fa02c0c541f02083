package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
)

// BackendNftables names the native nftables tables in Step.Backend.
const BackendNftables = "nftables"

// nftTables are the native nftables tables that see a packet of the
// family: ip (or ip6) and inet tables, without iptables-nft's own (those
// are walked from iptables-nft-save, rule for rule).
func (t *Tracer) nftTables(v4 bool) []*nft.Table {
	if !t.snap.NftRead() {
		return nil
	}
	fam := nft.FamilyIP
	if !v4 {
		fam = nft.FamilyIP6
	}
	var out []*nft.Table
	for _, tab := range t.snap.Nftables.Ruleset.Tables {
		if tab.Family != fam && tab.Family != nft.FamilyInet {
			continue
		}
		if tab.Family != nft.FamilyInet && (parse.TableName(tab.Name).IsKnown() || tab.HasXT()) {
			continue // iptables-nft's table
		}
		out = append(out, tab)
	}
	return out
}

// nftBaseChains are the native base chains on h (as baseChain entries),
// with a priority in (lo, hi].
func (e *engine) nftBaseChains(h Hook, lo, hi int) []baseChain {
	var out []baseChain
	for _, tab := range e.nftTables(e.v4) {
		for _, c := range tab.Chains {
			if !c.IsBase() || !strings.EqualFold(c.Hook, string(h)) || c.Priority <= lo || c.Priority > hi {
				continue
			}
			if c.Type != "filter" && c.Type != "nat" {
				continue // route chains re-route on a mark change only
			}
			out = append(out, baseChain{priority: c.Priority, nat: c.Type == "nat", ntab: tab, nc: c})
		}
	}
	return out
}

type nftFrame struct {
	c *nft.Chain
	cursor
}

func (e *engine) nftFrame(c *nft.Chain) nftFrame {
	return nftFrame{c: c, cursor: cursor{ix: e.nftIndexFor(c), n: len(c.Rules)}}
}

// nftIndexFor is indexFor for a native chain.
func (t *Tracer) nftIndexFor(c *nft.Chain) *chainIndex {
	if t.prepared.Load() {
		return t.nftIndex[c]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ix, ok := t.nftIndex[c]; ok || t.prepared.Load() {
		return ix
	}
	if t.nftEntered[c]++; t.nftEntered[c] < 2 {
		return nil
	}
	ix := newNftChainIndex(c)
	t.nftIndex[c] = ix
	return ix
}

// newNftChainIndex indexes a native chain.
func newNftChainIndex(c *nft.Chain) *chainIndex {
	q := make([]quickRule, len(c.Rules))
	for i, r := range c.Rules {
		q[i] = compileNftQuick(r)
	}
	return indexQuick(q)
}

// compileNftQuick reads what a native rule demands of the protocol, the
// destination port and address: from its matches up to the first
// statement that is not a match or a counter (a later match cannot undo
// what such a statement does), equalities with one literal only.
func compileNftQuick(r *nft.Rule) quickRule {
	var q quickRule
	for _, x := range r.Exprs {
		if x.Kind == nft.KindCounter {
			continue
		}
		if x.Kind != nft.KindMatch || x.Match == nil {
			break
		}
		m := x.Match
		if m.Op != "==" && m.Op != "" {
			continue
		}
		v := m.Right.Value
		switch sel := m.Left.Selector; sel {
		case "tcp dport", "udp dport", "th dport":
			if proto, _, _ := strings.Cut(sel, " "); proto != "th" {
				q.proto = protoCodeOf(proto)
			}
			if p, err := strconv.ParseUint(v, 10, 16); err == nil && !q.hasPorts {
				q.hasPorts, q.portLo, q.portHi = true, uint16(p), uint16(p)
			}
		case "ip daddr", "ip6 daddr":
			if a, err := netip.ParseAddr(v); err == nil && !q.dst.ok {
				q.dst = quickAddrOfPrefix(netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			}
		}
	}
	return q
}

// walkNft traverses one native base chain and the chains it enters. An
// accept ends only this base chain (the next one on the hook still sees
// the packet), as in the kernel.
func (e *engine) walkNft(h Hook, tab *nft.Table, base *nft.Chain, pk *pkt, replay bool) outcome {
	tname := parse.TableName(string(tab.Family) + " " + tab.Name)
	step := func(c *nft.Chain, r *nft.Rule, target, text, note string) *Step {
		if e.lean {
			text, note = "", ""
		}
		s := Step{Hook: h, Table: tname, Chain: parse.ChainName(c.Name), Backend: BackendNftables, Target: target, Text: text, Note: note, Replay: replay}
		if r != nil {
			s.Rule, s.Handle = r.Index+1, r.Handle
			if s.Text == "" {
				s.Text = r.Text()
			}
		}
		e.res.Steps = append(e.res.Steps, s)
		return &e.res.Steps[len(e.res.Steps)-1]
	}
	decide := func(v Verdict, reach Reach, reason string) {
		e.res.Decider = len(e.res.Steps) - 1
		e.finish(v, reach, reason)
	}
	where := func(c *nft.Chain, r *nft.Rule) string {
		return fmt.Sprintf("%s %s %s rule %d", h, tname, c.Name, r.Index+1)
	}
	unknown := func(c *nft.Chain, r *nft.Rule, why string) outcome {
		s := step(c, r, "", "", "")
		s.Unknown = why
		decide(Unknown, ReachUnknown, where(c, r)+": "+why)
		return outUnknown
	}
	stack := make([]nftFrame, 1, 8)
	stack[0] = e.nftFrame(base)
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		ri := f.next(pk)
		if ri < 0 {
			if len(stack) == 1 {
				pol := strings.ToUpper(base.Policy)
				if pol == "" {
					pol = "ACCEPT"
				}
				text := ""
				if !e.lean {
					text = "policy " + pol + " of " + string(tname) + " " + base.Name
				}
				step(base, nil, pol, text, "")
				if pol == "DROP" {
					decide(Drop, ReachNowhere, fmt.Sprintf("dropped by the policy of %s %s (drop)", tname, base.Name))
					return outDrop
				}
				return outContinue
			}
			text := ""
			if !e.lean {
				text = "end of " + f.c.Name + ": back to " + stack[len(stack)-2].c.Name
			}
			step(f.c, nil, "RETURN", text, "")
			stack = stack[:len(stack)-1]
			continue
		}
		r := f.c.Rules[ri]
		if f.ix != nil && f.ix.q[ri].rejects(pk) {
			continue
		}
		if e.budget--; e.budget < 0 || len(e.res.Steps) > maxSteps {
			return unknown(f.c, r, "the walk does not end in a sensible number of steps")
		}
		var v *nft.Verdict
		pending := ""
		matched := true
		for _, x := range r.Exprs {
			if !matched {
				break
			}
			switch x.Kind {
			case nft.KindMatch:
				t, why := e.nftMatch(tab, x.Match, pk)
				switch t {
				case no:
					matched = false
				case maybe:
					if pending == "" {
						pending = why
					}
				}
			case nft.KindCounter:
			case "log":
			case "mangle":
				// meta nftrace set 1 (a trace of the packet) changes
				// nothing; any other mangle (a mark, a field) is not
				// modelled.
				if !strings.Contains(string(x.Raw), `"nftrace"`) {
					return unknown(f.c, r, "statement mangle is not modelled")
				}
			case nft.KindAccept, nft.KindDrop, nft.KindReturn, nft.KindContinue, nft.KindJump, nft.KindGoto:
				v = x.Verdict
			case nft.KindVMap:
				if pending != "" {
					return unknown(f.c, r, pending)
				}
				key, ok := e.nftValue(x.VMap.Key.Selector, pk)
				if !ok {
					return unknown(f.c, r, "verdict map on "+x.VMap.Key.Selector+" is not modelled")
				}
				elems := x.VMap.Elements
				if x.VMap.Map != "" {
					m := tab.Set(x.VMap.Map)
					if m == nil {
						return unknown(f.c, r, "verdict map @"+x.VMap.Map+" is not in the table")
					}
					elems = m.Elements
				}
				v = nil
				for i := range elems {
					if elems[i].Key == key {
						v = elems[i].Verdict
					}
				}
				if v == nil {
					matched = false // no element: the rule does nothing
				}
			case nft.KindDNAT, nft.KindSNAT, nft.KindMasquerade, nft.KindRedirect:
				if pending != "" {
					return unknown(f.c, r, pending)
				}
				note, why := e.nftNAT(h, x, pk)
				if why != "" {
					return unknown(f.c, r, why)
				}
				step(f.c, r, strings.ToUpper(string(x.Kind)), "", note)
				return outContinue // a NAT statement ends the nat chain
			default:
				return unknown(f.c, r, fmt.Sprintf("statement %q is not modelled", x.Kind))
			}
		}
		if !matched {
			continue
		}
		if pending != "" {
			if v == nil {
				continue // a rule without a verdict changes nothing
			}
			return unknown(f.c, r, pending)
		}
		if v == nil {
			continue
		}
		switch v.Kind {
		case "accept":
			step(f.c, r, "ACCEPT", "", "")
			return outContinue
		case "drop":
			step(f.c, r, "DROP", "", "")
			decide(Drop, ReachNowhere, "dropped by "+where(f.c, r))
			return outDrop
		case "continue":
		case "return":
			step(f.c, r, "RETURN", "", "")
			if len(stack) == 1 {
				f.end() // the base chain's policy
				continue
			}
			stack = stack[:len(stack)-1]
		case "jump", "goto":
			next := tab.Chain(v.Target)
			if next == nil {
				return unknown(f.c, r, "jump to chain "+v.Target+", which the table does not have")
			}
			for _, fr := range stack {
				if fr.c == next {
					return unknown(f.c, r, "jump loop: "+v.Target+" is already being walked")
				}
			}
			note := ""
			if v.Kind == "goto" && !e.lean {
				note = "goto: " + v.Target + " returns to " + nftCaller(stack)
			}
			step(f.c, r, v.Target, "", note)
			if v.Kind == "goto" {
				*f = e.nftFrame(next)
			} else {
				stack = append(stack, e.nftFrame(next))
			}
		default:
			return unknown(f.c, r, "verdict "+v.Kind+" is not modelled")
		}
	}
	return outContinue
}

func nftCaller(stack []nftFrame) string {
	if len(stack) < 2 {
		return "the policy"
	}
	return stack[len(stack)-2].c.Name
}

// nftValue is what a selector reads from the packet, as nft prints it.
func (e *engine) nftValue(sel string, pk *pkt) (string, bool) {
	switch sel {
	case "iifname", "meta iifname":
		return pk.in, true
	case "oifname", "meta oifname":
		return pk.out, true
	case "ip saddr", "ip6 saddr":
		return pk.src.String(), true
	case "ip daddr", "ip6 daddr":
		return pk.dst.String(), true
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		return pk.proto, true
	}
	return "", false
}

// nftList reads a match's right side: one value, "{ a, b }", or a named
// set "@name".
func nftList(tab *nft.Table, v string) ([]string, bool) {
	if name, ok := strings.CutPrefix(v, "@"); ok {
		s := tab.Set(name)
		if s == nil || s.IsMap {
			return nil, false
		}
		var out []string
		for _, el := range s.Elements {
			out = append(out, el.Key)
		}
		return out, true
	}
	if inner, ok := strings.CutPrefix(v, "{"); ok {
		inner = strings.TrimSuffix(strings.TrimSpace(inner), "}")
		var out []string
		for _, it := range strings.Split(inner, ",") {
			out = append(out, strings.Trim(strings.TrimSpace(it), `"`))
		}
		return out, true
	}
	return []string{strings.Trim(v, `"`)}, true
}

// nftMatch decides one relational expression.
func (e *engine) nftMatch(tab *nft.Table, m *nft.Match, pk *pkt) (tri, string) {
	sel := m.Left.Selector
	vals, ok := nftList(tab, m.Right.Value)
	if !ok {
		return maybe, fmt.Sprintf("%s %s: the set is not in the table", sel, m.Right.Value)
	}
	neg := false
	switch m.Op {
	case "==", "in", "":
	case "!=":
		neg = true
	default:
		return maybe, fmt.Sprintf("%s %s %s: the comparison is not modelled", sel, m.Op, m.Right.Value)
	}
	any := func(f func(string) (bool, bool)) (tri, string) {
		hit := false
		for _, v := range vals {
			h, ok := f(v)
			if !ok {
				return maybe, fmt.Sprintf("%s %s: value %q cannot be read", sel, m.Right.Value, v)
			}
			hit = hit || h
		}
		return triOf(hit).negate(neg), ""
	}
	port := func(p uint16) func(string) (bool, bool) {
		return func(v string) (bool, bool) {
			lo, hi, isRange := strings.Cut(v, "-")
			l, err := strconv.ParseUint(lo, 10, 16)
			if err != nil {
				return false, false
			}
			u := l
			if isRange {
				if u, err = strconv.ParseUint(hi, 10, 16); err != nil {
					return false, false
				}
			}
			return uint64(p) >= l && uint64(p) <= u, true
		}
	}
	switch sel {
	case "iifname", "oifname", "meta iifname", "meta oifname":
		have, _ := e.nftValue(sel, pk)
		return any(func(v string) (bool, bool) {
			if p, ok := strings.CutSuffix(v, "*"); ok {
				return have != "" && strings.HasPrefix(have, p), true
			}
			return have == v, true
		})
	case "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr":
		if strings.HasPrefix(sel, "ip6") == e.v4 {
			return no, "" // the other family's header
		}
		a := pk.src
		if strings.HasSuffix(sel, "daddr") {
			a = pk.dst
		}
		return any(func(v string) (bool, bool) {
			if lo, hi, ok := strings.Cut(v, "-"); ok {
				l, err1 := netip.ParseAddr(lo)
				h, err2 := netip.ParseAddr(hi)
				return err1 == nil && err2 == nil && l.Compare(a) <= 0 && a.Compare(h) <= 0, err1 == nil && err2 == nil
			}
			p, ok := parsePrefix(v)
			return ok && p.Contains(a), ok
		})
	case "tcp dport", "udp dport", "th dport", "tcp sport", "udp sport", "th sport":
		proto, field, _ := strings.Cut(sel, " ")
		if proto != "th" && proto != pk.proto {
			return no, "" // the packet has no such header
		}
		p := pk.dport
		if field == "sport" {
			p = pk.sport
		}
		return any(port(p))
	case "ct original proto-dst":
		return any(port(pk.origDport))
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		return any(func(v string) (bool, bool) { return v == pk.proto || v == protoNumber(pk.proto), true })
	case "fib daddr type", "fib saddr type":
		if !e.net.known {
			return maybe, sel + " needs the host's addresses"
		}
		a := pk.dst
		if strings.HasPrefix(sel, "fib saddr") {
			a = pk.src
		}
		typ := strings.ToLower(e.net.addrType(a))
		return any(func(v string) (bool, bool) { return v == typ, true })
	case "ct state":
		state := "new"
		switch {
		case pk.untracked:
			state = "untracked"
		case pk.state == StateEstablished:
			state = "established"
		}
		return any(func(v string) (bool, bool) { return inList(v, state), true })
	case "ct status":
		return any(func(v string) (bool, bool) {
			return v == "dnat" && pk.dnatted || v == "snat" && pk.snatted, v == "dnat" || v == "snat"
		})
	case "meta mark":
		return any(func(v string) (bool, bool) {
			n, err := strconv.ParseUint(v, 0, 32)
			return err == nil && uint32(n) == pk.mark, err == nil
		})
	}
	return maybe, fmt.Sprintf("%s is not modelled", sel)
}

// nftNAT applies a dnat, snat, masquerade or redirect statement.
func (e *engine) nftNAT(h Hook, x nft.Expr, pk *pkt) (note, why string) {
	n := x.NAT
	switch x.Kind {
	case nft.KindDNAT, nft.KindRedirect:
		if h != HookPrerouting && h != HookOutput {
			return "", string(x.Kind) + " outside prerouting/output"
		}
		if x.Kind == nft.KindRedirect {
			return "", "redirect is not modelled"
		}
		if n.Addr != "" {
			a, err := netip.ParseAddr(n.Addr)
			if err != nil {
				return "", fmt.Sprintf("dnat to %q: not one address", n.Addr)
			}
			pk.dst = a.Unmap()
		}
		if n.Port != "" {
			p, err := strconv.ParseUint(n.Port, 10, 16)
			if err != nil {
				return "", fmt.Sprintf("dnat to port %q: not one port", n.Port)
			}
			pk.dport = uint16(p)
		}
		pk.dnatted, e.natDst = true, true
		if e.lean {
			return "", ""
		}
		return "DNAT → " + e.addrPort(pk.dst, pk.dport), ""
	default:
		if h != HookPostrouting && h != HookInput {
			return "", string(x.Kind) + " outside postrouting/input"
		}
		var a netip.Addr
		if x.Kind == nft.KindSNAT {
			var err error
			if a, err = netip.ParseAddr(n.Addr); err != nil {
				return "", fmt.Sprintf("snat to %q: not one address", n.Addr)
			}
		} else {
			var ok bool
			if a, ok = e.net.primaryAddr(pk.out, e.v4); !ok {
				return "", fmt.Sprintf("masquerade: %s has no address in the snapshot", pk.out)
			}
		}
		pk.src, pk.snatted, e.natSrc = a.Unmap(), true, true
		if e.lean {
			return "", ""
		}
		return strings.ToUpper(string(x.Kind)) + " → source " + e.addrName(pk.src), ""
	}
}
