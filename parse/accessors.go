package parse

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Typed accessors for the matches and targets Docker and kube-proxy use.
// All are nil-safe (a nil *Rule gives the zero value) and read the first
// match or option that gives the value unless stated otherwise.

// protoCanonical maps the protocol numbers iptables may print (or users may
// write) to the names iptables uses, taken from iptables' own table
// (xtables_chain_protos) so that both input formats compare equal.
var protoCanonical = map[string]string{
	"1":   "icmp",
	"2":   "igmp",
	"4":   "ipencap",
	"6":   "tcp",
	"17":  "udp",
	"41":  "ipv6",
	"47":  "gre",
	"50":  "esp",
	"51":  "ah",
	"58":  "ipv6-icmp",
	"132": "sctp",
	"136": "udplite",
	// iptables accepts "icmpv6" and prints "ipv6-icmp" (the
	// /etc/protocols name) in both ip6tables-save and ip6tables -L.
	"icmpv6": "ipv6-icmp",
	"0":      "",
	"all":    "",
}

// Proto returns the rule's "-p" protocol as a lower-case iptables name:
// numbers become names ("6" -> "tcp", "58" -> "ipv6-icmp"), "icmpv6"
// becomes "ipv6-icmp", and "0", "all" or no -p give "". Unknown numbers
// and names are returned lower-cased. Negation is ignored: check
// r.Protocol.Negated.
func (r *Rule) Proto() string {
	if r == nil {
		return ""
	}
	p := strings.ToLower(r.Protocol.Value)
	if n, ok := protoCanonical[p]; ok {
		return n
	}
	return p
}

// PortRange is an inclusive range of ports; From == To for one port.
type PortRange struct{ From, To uint16 }

// String renders the range as iptables does: "8080" or "7000:7002".
func (p PortRange) String() string {
	if p.From == p.To {
		return strconv.Itoa(int(p.From))
	}
	return strconv.Itoa(int(p.From)) + ":" + strconv.Itoa(int(p.To))
}

// portMatches are the matches whose --dport/--sport options give ports.
var portMatches = map[string]bool{"tcp": true, "udp": true, "sctp": true, "udplite": true, "dccp": true}

// DestPorts returns the destination ports the rule matches: from
// --dport/--destination-port of a tcp, udp, sctp, udplite or dccp match
// (explicit or implicit), or --dports/--destination-ports/--ports of a
// multiport match (--ports matches either direction, so it counts for
// both DestPorts and SourcePorts). The first such option wins; negated is
// its "!". Nil ports means the rule does not restrict them. "a:" and ":b"
// ranges are open ended (to 65535, from 0); entries that are not numbers
// (service names never appear in iptables-save output) are skipped.
func (r *Rule) DestPorts() (ports []PortRange, negated bool) {
	return r.ports("dport", "destination-port", "dports", "destination-ports")
}

// SourcePorts is DestPorts for source ports: --sport/--source-port and
// multiport --sports/--source-ports/--ports.
func (r *Rule) SourcePorts() (ports []PortRange, negated bool) {
	return r.ports("sport", "source-port", "sports", "source-ports")
}

func (r *Rule) ports(single, singleLong, multi, multiLong string) ([]PortRange, bool) {
	if r == nil {
		return nil, false
	}
	for _, m := range r.Matches {
		for _, o := range m.Options {
			var ok bool
			switch {
			case portMatches[m.Name]:
				ok = o.Name == single || o.Name == singleLong
			case m.Name == "multiport":
				ok = o.Name == multi || o.Name == multiLong || o.Name == "ports"
			}
			if ok {
				return parsePortList(o.Value()), o.Negated
			}
		}
	}
	return nil, false
}

// parsePortList reads "80", "7000:7002", "80,443,8000:8010".
func parsePortList(s string) []PortRange {
	var out []PortRange
	for item := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(item), ":")
		var pr PortRange
		var ok bool
		switch {
		case !isRange:
			pr.From, ok = parsePort(from)
			pr.To = pr.From
		case from == "" && to == "":
			continue
		default:
			ok = true
			pr.To = 65535
			if from != "" {
				pr.From, ok = parsePort(from)
			}
			if to != "" && ok {
				pr.To, ok = parsePort(to)
			}
		}
		if ok && pr.From <= pr.To {
			out = append(out, pr)
		}
	}
	return out
}

func parsePort(s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err == nil
}

// matchOption returns the first option named opt of the first match named
// one of names that has it, as a Negatable; zero when absent.
func (r *Rule) matchOption(opt string, names ...string) Negatable {
	if r == nil {
		return Negatable{}
	}
	for _, m := range r.Matches {
		for _, n := range names {
			if m.Name != n {
				continue
			}
			if o := m.Option(opt); o != nil {
				return Negatable{Value: o.Value(), Negated: o.Negated}
			}
		}
	}
	return Negatable{}
}

// AddrType returns the addrtype match's --src-type and --dst-type (e.g.
// "LOCAL", or "LOCAL,UNICAST"), each zero when absent.
func (r *Rule) AddrType() (src, dst Negatable) {
	return r.matchOption("src-type", "addrtype"), r.matchOption("dst-type", "addrtype")
}

// CTState returns the connection states matched by conntrack --ctstate or
// state --state (e.g. "RELATED,ESTABLISHED"), zero when absent.
func (r *Rule) CTState() Negatable {
	if n := r.matchOption("ctstate", "conntrack"); !n.IsZero() {
		return n
	}
	return r.matchOption("state", "state")
}

// CTOrigDst returns conntrack --ctorigdst (the original destination
// address before DNAT), zero when absent.
func (r *Rule) CTOrigDst() Negatable { return r.matchOption("ctorigdst", "conntrack") }

// CTOrigDstPort returns conntrack --ctorigdstport (the original
// destination port, "80" or "80:90"), zero when absent.
func (r *Rule) CTOrigDstPort() Negatable { return r.matchOption("ctorigdstport", "conntrack") }

// Comment returns the text of the rule's comment matches (--comment),
// several joined by " ", "" when there is none.
func (r *Rule) Comment() string {
	if r == nil {
		return ""
	}
	var parts []string
	for _, m := range r.Matches {
		if m.Name != "comment" {
			continue
		}
		for _, o := range m.Options {
			if o.Name == "comment" {
				parts = append(parts, o.Value())
			}
		}
	}
	return strings.Join(parts, " ")
}

// Mark returns mark --mark ("0x4000/0x4000"), zero when absent.
func (r *Rule) Mark() Negatable { return r.matchOption("mark", "mark") }

// NATTo returns the address a NAT target rewrites to, as written: DNAT
// --to-destination, SNAT --to-source, REDIRECT or MASQUERADE --to-ports.
// It is "" for other targets and when the option is absent (MASQUERADE
// usually has none). Parse DNAT/SNAT values with ParseNATDest.
func (r *Rule) NATTo() string {
	if r == nil {
		return ""
	}
	var opt string
	switch r.Target {
	case TargetDNAT:
		opt = "to-destination"
	case TargetSNAT:
		opt = "to-source"
	case TargetRedirect, TargetMasquerade:
		opt = "to-ports"
	default:
		return ""
	}
	if o := r.TargetOption(opt); o != nil {
		return o.Value()
	}
	return ""
}

// IsMasquerade reports whether the rule's target is MASQUERADE.
func (r *Rule) IsMasquerade() bool { return r != nil && r.Target == TargetMasquerade }

// RejectWith returns a REJECT rule's --reject-with as written (e.g.
// "icmp-port-unreachable"); "" for other targets or when absent.
func (r *Rule) RejectWith() string {
	if r == nil || r.Target != TargetReject {
		return ""
	}
	if o := r.TargetOption("reject-with"); o != nil {
		return o.Value()
	}
	return ""
}

// NATDest is a DNAT --to-destination or SNAT --to-source value. IP is the
// address or "first-last" range as written without brackets ("" when only
// ports are given); PortFrom and PortTo are 0 when no port is given and
// equal for one port.
type NATDest struct {
	IP               string
	PortFrom, PortTo uint16
}

// ParseNATDest parses "[ip[-ip]][:port[-port]]" with IPv6 addresses in
// brackets when a port follows: "172.17.0.2:80", "[fd00::2]:80",
// "10.0.0.1-10.0.0.5:80-90", "172.17.0.2", "fd00::2". It returns an
// error for anything else (bad address, port 0 or out of range, reversed
// port range).
func ParseNATDest(s string) (NATDest, error) {
	var d NATDest
	addr, ports := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return d, fmt.Errorf("bad NAT destination %q: missing ]", s)
		}
		addr, ports = s[1:end], s[end+1:]
		if ports != "" {
			if ports[0] != ':' {
				return d, fmt.Errorf("bad NAT destination %q: expected :port after ]", s)
			}
			ports = ports[1:]
		}
	case strings.Count(s, ":") > 1: // bare IPv6 address(es), no port
	default:
		if i := strings.IndexByte(s, ':'); i >= 0 {
			addr, ports = s[:i], s[i+1:]
		}
	}
	if addr != "" {
		first, last, isRange := strings.Cut(addr, "-")
		a, err := netip.ParseAddr(first)
		if err != nil {
			return d, fmt.Errorf("bad NAT destination %q: %w", s, err)
		}
		if isRange {
			b, err := netip.ParseAddr(last)
			if err != nil {
				return d, fmt.Errorf("bad NAT destination %q: %w", s, err)
			}
			if a.Is4() != b.Is4() || b.Less(a) {
				return d, fmt.Errorf("bad NAT destination %q: bad address range", s)
			}
		}
		d.IP = addr
	}
	if ports == "" {
		if addr == "" {
			return d, fmt.Errorf("bad NAT destination %q: empty", s)
		}
		return d, nil
	}
	from, to, isRange := strings.Cut(ports, "-")
	var ok bool
	if d.PortFrom, ok = parsePort(from); !ok || d.PortFrom == 0 {
		return NATDest{}, fmt.Errorf("bad NAT destination %q: bad port %q", s, from)
	}
	d.PortTo = d.PortFrom
	if isRange {
		if d.PortTo, ok = parsePort(to); !ok || d.PortTo < d.PortFrom {
			return NATDest{}, fmt.Errorf("bad NAT destination %q: bad port range %q", s, ports)
		}
	}
	return d, nil
}

// CanonicalAddr normalises an address as -s/-d print it, so that list-
// and save-format rules compare equal: a bare address gets its host
// prefix ("172.17.0.2" -> "172.17.0.2/32", "fd00::1" -> "fd00::1/128"),
// the any-address ("0.0.0.0/0", "::/0") becomes "", and everything else
// (networks, dotted masks, names, "") is returned unchanged.
func CanonicalAddr(s string) string {
	switch s {
	case "0.0.0.0/0", "::/0":
		return ""
	}
	if strings.IndexByte(s, '/') >= 0 {
		return s
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return s
	}
	if a.Is4() {
		return s + "/32"
	}
	return s + "/128"
}
