package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// tri is a match's answer: yes, no, or cannot tell.
type tri int

const (
	no tri = iota
	yes
	maybe
)

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

// negate applies an explicit "!" to an answer.
func (t tri) negate(neg bool) tri {
	if !neg || t == maybe {
		return t
	}
	if t == yes {
		return no
	}
	return yes
}

// pkt is the packet as it is at one point of the walk.
type pkt struct {
	proto            string
	src, dst         netip.Addr
	sport, dport     uint16
	in, out          string // "" when the hook has none
	state            State
	untracked        bool
	mark, ctmark     uint32
	ctmarkKnown      bool
	origSrc, origDst netip.Addr
	origSport        uint16
	origDport        uint16
	dnatted, snatted bool
	bridged          bool // switched by a bridge (br_netfilter)
	hook             Hook
}

// evalRule decides whether r matches p; for maybe, why not. q is r's
// quick test when its chain is indexed (nil otherwise): its addresses
// are parsed already.
func (e *engine) evalRule(r *parse.Rule, q *quickRule, p *pkt) (tri, string) {
	res := yes
	why := ""
	add := func(t tri, reason string) {
		switch t {
		case no:
			res = no
		case maybe:
			if res == yes {
				res, why = maybe, reason
			}
		}
	}
	// Cheapest first: most rules fail on an interface, address or port.
	if !r.InIface.IsZero() {
		add(ifaceMatch(r.InIface, p.in), "")
	}
	if res == no {
		return no, ""
	}
	if !r.OutIface.IsZero() {
		add(ifaceMatch(r.OutIface, p.out), "")
	}
	if res == no {
		return no, ""
	}
	if !r.Protocol.IsZero() {
		add(e.protoMatch(r), "")
	}
	if !r.Source.IsZero() {
		if q != nil && q.src.ok {
			add(q.src.match(p.src), "")
		} else {
			t, w := addrMatch(r.Source, p.src)
			add(t, w)
		}
	}
	if !r.Destination.IsZero() {
		if q != nil && q.dst.ok {
			add(q.dst.match(p.dst), "")
		} else {
			t, w := addrMatch(r.Destination, p.dst)
			add(t, w)
		}
	}
	if res == no {
		return no, ""
	}
	if !r.Fragment.IsZero() {
		// The traced packet is never a fragment.
		add(triOf(false).negate(r.Fragment.Negated), "")
	}
	for i := range r.Matches {
		if res == no {
			return no, ""
		}
		t, w := e.evalMatch(r, &r.Matches[i], p)
		add(t, w)
	}
	if len(r.Unparsed) > 0 {
		add(maybe, fmt.Sprintf("the rule has text iptscope does not parse (%s)", strings.Join(r.Unparsed, " ")))
	}
	return res, why
}

func (e *engine) protoMatch(r *parse.Rule) tri {
	p := r.Proto()
	return triOf(p == "" || p == e.proto).negate(r.Protocol.Negated)
}

// ifaceMatch is -i/-o: "docker0", "veth+" (a prefix), negated with "!".
// A hook without that interface (OUTPUT has no -i) never matches it.
func ifaceMatch(n parse.Negatable, have string) tri {
	want := n.Value
	var m bool
	switch {
	case have == "":
		m = false
	case strings.HasSuffix(want, "+"):
		m = strings.HasPrefix(have, strings.TrimSuffix(want, "+"))
	default:
		m = have == want
	}
	return triOf(m).negate(n.Negated)
}

// addrMatch is -s/-d: an address, a prefix, or an address with a dotted
// mask. A host name cannot be decided.
func addrMatch(n parse.Negatable, a netip.Addr) (tri, string) {
	p, ok := parsePrefix(n.Value)
	if !ok {
		return maybe, fmt.Sprintf("address %q is not a number", n.Value)
	}
	if p.Addr().Is4() != a.Is4() {
		return no.negate(n.Negated), ""
	}
	return triOf(p.Contains(a)).negate(n.Negated), ""
}

// parsePrefix reads "1.2.3.4", "1.2.3.0/24", "1.2.3.0/255.255.255.0",
// "fd00::/64".
func parsePrefix(s string) (netip.Prefix, bool) {
	addr, bits, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if !hasBits {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	if n, err := strconv.Atoi(bits); err == nil {
		p, err := a.Prefix(n)
		return p, err == nil
	}
	m, err := netip.ParseAddr(bits)
	if err != nil || !m.Is4() || !a.Is4() {
		return netip.Prefix{}, false
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return netip.Prefix{}, false // not a contiguous mask
	}
	p, err := a.Prefix(ones)
	return p, err == nil
}

// noop matches: they never change whether a rule matches.
var alwaysMatches = map[string]bool{"comment": true, "nfacct": true}

// evalMatch decides one -m module.
func (e *engine) evalMatch(r *parse.Rule, m *parse.Match, p *pkt) (tri, string) {
	if alwaysMatches[m.Name] {
		return yes, ""
	}
	unknownOpt := func(o parse.Option) (tri, string) {
		return maybe, fmt.Sprintf("-m %s --%s is not modelled", m.Name, o.Name)
	}
	res := yes
	why := ""
	add := func(t tri, w string) {
		switch t {
		case no:
			res = no
		case maybe:
			if res == yes {
				res, why = maybe, w
			}
		}
	}
	switch m.Name {
	case "tcp", "udp", "sctp", "udplite", "dccp":
		if m.Name != p.proto {
			return no, ""
		}
		for _, o := range m.Options {
			switch o.Name {
			case "dport", "destination-port":
				add(portsMatch(o, p.dport), "")
			case "sport", "source-port":
				add(portsMatch(o, p.sport), "")
			case "syn":
				add(triOf(p.state == StateNew).negate(o.Negated), "")
			case "tcp-flags":
				add(tcpFlags(o, p.state), "")
			default:
				add(unknownOpt(o))
			}
		}
	case "multiport":
		for _, o := range m.Options {
			switch o.Name {
			case "dports", "destination-ports":
				add(portsMatch(o, p.dport), "")
			case "sports", "source-ports":
				add(portsMatch(o, p.sport), "")
			case "ports":
				t := triOf(portsMatch(parse.Option{Values: o.Values}, p.dport) == yes || portsMatch(parse.Option{Values: o.Values}, p.sport) == yes)
				add(t.negate(o.Negated), "")
			default:
				add(unknownOpt(o))
			}
		}
	case "addrtype":
		for _, o := range m.Options {
			switch o.Name {
			case "src-type", "dst-type":
				if !e.net.known {
					add(maybe, "addrtype needs the host's addresses, which the input does not have (a raw dump)")
					continue
				}
				a := p.src
				if o.Name == "dst-type" {
					a = p.dst
				}
				typ := e.net.addrType(a)
				add(triOf(inList(o.Value(), typ)).negate(o.Negated), "")
			default:
				add(unknownOpt(o))
			}
		}
	case "conntrack", "state":
		for _, o := range m.Options {
			t, w := e.conntrackOpt(m.Name, o, p)
			add(t, w)
		}
	case "mark":
		for _, o := range m.Options {
			if o.Name != "mark" {
				add(unknownOpt(o))
				continue
			}
			add(markMatch(o, p.mark))
		}
	case "connmark":
		for _, o := range m.Options {
			if o.Name != "mark" {
				add(unknownOpt(o))
				continue
			}
			if !p.ctmarkKnown {
				add(maybe, "the connection's mark was set by an earlier packet")
				continue
			}
			add(markMatch(o, p.ctmark))
		}
	case "set":
		t, w := e.setMatch(m, p)
		add(t, w)
	case "iprange":
		for _, o := range m.Options {
			var a netip.Addr
			switch o.Name {
			case "src-range":
				a = p.src
			case "dst-range":
				a = p.dst
			default:
				add(unknownOpt(o))
				continue
			}
			lo, hi, _ := strings.Cut(o.Value(), "-")
			l, err1 := netip.ParseAddr(lo)
			h, err2 := netip.ParseAddr(hi)
			if err1 != nil || err2 != nil {
				add(maybe, fmt.Sprintf("bad address range %q", o.Value()))
				continue
			}
			add(triOf(a.Is4() == l.Is4() && l.Compare(a) <= 0 && a.Compare(h) <= 0).negate(o.Negated), "")
		}
	case "physdev":
		for _, o := range m.Options {
			switch o.Name {
			case "physdev-is-bridged":
				add(triOf(p.bridged && (p.hook == HookForward || p.hook == HookPostrouting)).negate(o.Negated), "")
			case "physdev-is-in":
				if !p.bridged {
					add(triOf(false).negate(o.Negated), "")
				} else {
					add(maybe, "physdev: the bridge port the packet came in on is not modelled")
				}
			case "physdev-in", "physdev-out", "physdev-is-out":
				if !p.bridged {
					add(triOf(false).negate(o.Negated), "")
				} else {
					add(maybe, "physdev: bridge ports are not modelled")
				}
			default:
				add(unknownOpt(o))
			}
		}
	case "pkttype":
		for _, o := range m.Options {
			if o.Name != "pkt-type" {
				add(unknownOpt(o))
				continue
			}
			typ := "unicast"
			if e.net.known {
				switch e.net.addrType(p.dst) {
				case "BROADCAST":
					typ = "broadcast"
				case "MULTICAST":
					typ = "multicast"
				}
			}
			add(triOf(strings.EqualFold(o.Value(), typ)).negate(o.Negated), "")
		}
	case "icmp", "icmp6", "icmpv6":
		return no, "" // the traced packet is TCP or UDP
	default:
		return maybe, fmt.Sprintf("-m %s is not modelled", m.Name)
	}
	return res, why
}

// portsMatch is one port option: "80", "7000:7002", "80,443" (multiport).
// Hot: every rule with a port meets it, so it allocates nothing.
func portsMatch(o parse.Option, port uint16) tri {
	v := o.Value()
	hit := false
	for v != "" && !hit {
		item := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		from, to, isRange := strings.Cut(item, ":")
		f, err := strconv.ParseUint(from, 10, 16)
		if from == "" {
			f, err = 0, nil
		}
		if err != nil {
			continue
		}
		t := f
		if isRange {
			t = 65535
			if to != "" {
				if t, err = strconv.ParseUint(to, 10, 16); err != nil {
					continue
				}
			}
		}
		hit = uint64(port) >= f && uint64(port) <= t
	}
	return triOf(hit).negate(o.Negated)
}

// inList reports whether the comma-separated list holds want (any case).
func inList(list, want string) bool {
	for list != "" {
		item := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		if strings.EqualFold(item, want) {
			return true
		}
	}
	return false
}

// tcpFlags is --tcp-flags MASK COMP. A new packet is a SYN; an
// established one an ACK.
func tcpFlags(o parse.Option, st State) tri {
	if len(o.Values) != 2 {
		return maybe
	}
	bits := map[string]int{"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ECE": 64, "CWR": 128, "ALL": 255, "NONE": 0}
	read := func(s string) int {
		n := 0
		for f := range strings.SplitSeq(s, ",") {
			n |= bits[strings.ToUpper(f)]
		}
		return n
	}
	flags := 2
	if st == StateEstablished {
		flags = 16
	}
	mask, comp := read(o.Values[0]), read(o.Values[1])
	return triOf(flags&mask == comp).negate(o.Negated)
}

// markMatch is --mark VALUE[/MASK].
func markMatch(o parse.Option, mark uint32) (tri, string) {
	v, m, err := parseMark(o.Value())
	if err != nil {
		return maybe, err.Error()
	}
	return triOf(mark&m == v).negate(o.Negated), ""
}

func parseMark(s string) (value, mask uint32, err error) {
	vs, ms, hasMask := strings.Cut(s, "/")
	v, err := strconv.ParseUint(vs, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark %q", s)
	}
	m := uint64(0xffffffff)
	if hasMask {
		if m, err = strconv.ParseUint(ms, 0, 32); err != nil {
			return 0, 0, fmt.Errorf("bad mark %q", s)
		}
	}
	return uint32(v), uint32(m), nil
}

// conntrackOpt is one option of -m conntrack or -m state.
func (e *engine) conntrackOpt(mod string, o parse.Option, p *pkt) (tri, string) {
	addrOpt := func(a netip.Addr) (tri, string) {
		return addrMatch(parse.Negatable{Value: o.Value(), Negated: o.Negated}, a)
	}
	portOpt := func(port uint16) (tri, string) {
		// conntrack's port options take "80" or "80:90".
		return portsMatch(parse.Option{Values: []string{o.Value()}, Negated: o.Negated}, port), ""
	}
	switch {
	case (mod == "conntrack" && o.Name == "ctstate") || (mod == "state" && o.Name == "state"):
		states := map[string]bool{}
		switch {
		case p.untracked:
			states["UNTRACKED"] = true
		case p.state == StateNew:
			states["NEW"] = true
		default:
			states["ESTABLISHED"] = true
		}
		if mod == "conntrack" && p.dnatted {
			states["DNAT"] = true
		}
		if mod == "conntrack" && p.snatted {
			states["SNAT"] = true
		}
		hit := false
		for s := range strings.SplitSeq(o.Value(), ",") {
			if states[strings.ToUpper(s)] {
				hit = true
			}
		}
		return triOf(hit).negate(o.Negated), ""
	case mod != "conntrack":
		return maybe, fmt.Sprintf("-m %s --%s is not modelled", mod, o.Name)
	case p.untracked && o.Name != "ctstate":
		// Why: an untracked packet has no conntrack entry; every other
		// conntrack option fails on it.
		return triOf(false).negate(o.Negated), ""
	}
	switch o.Name {
	case "ctproto":
		return triOf(strings.EqualFold(o.Value(), p.proto) || o.Value() == protoNumber(p.proto)).negate(o.Negated), ""
	case "ctorigsrc":
		return addrOpt(p.origSrc)
	case "ctorigdst":
		return addrOpt(p.origDst)
	case "ctreplsrc":
		// The reply comes from where the packet goes (after DNAT).
		return addrOpt(p.dst)
	case "ctrepldst":
		if p.hook != HookPostrouting && p.hook != HookInput {
			return addrOpt(p.origSrc)
		}
		return addrOpt(p.src)
	case "ctorigsrcport":
		return portOpt(p.origSport)
	case "ctorigdstport":
		return portOpt(p.origDport)
	case "ctreplsrcport":
		return portOpt(p.dport)
	case "ctrepldstport":
		return portOpt(p.sport)
	case "ctdir":
		return triOf(strings.EqualFold(o.Value(), "ORIGINAL")).negate(o.Negated), ""
	case "ctstatus":
		have := map[string]bool{}
		if p.state == StateEstablished {
			have["SEEN_REPLY"], have["ASSURED"], have["CONFIRMED"] = true, true, true
		}
		hit := false
		for s := range strings.SplitSeq(o.Value(), ",") {
			if have[strings.ToUpper(s)] {
				hit = true
			}
		}
		return triOf(hit).negate(o.Negated), ""
	}
	return maybe, fmt.Sprintf("-m conntrack --%s is not modelled", o.Name)
}

func protoNumber(p string) string {
	switch p {
	case "tcp":
		return "6"
	case "udp":
		return "17"
	}
	return ""
}
