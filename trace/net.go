package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/iptscope/iptscope/snapshot"
)

// netView is what the routing decision and addrtype need from a snapshot:
// the local addresses, the main table's routes, the links and the bridges.
type netView struct {
	// known is false when the snapshot has no addresses at all (a raw
	// dump): then nothing about addresses can be decided.
	known      bool
	local      map[netip.Addr]string // address -> link
	localNets  []netip.Prefix        // 127.0.0.0/8: every address is local
	broadcasts map[netip.Addr]bool
	addrsOf    map[string][]netip.Prefix // link -> its addresses, in order
	routes     []route
	links      map[string]snapshot.Link
	sysctls    map[string]snapshot.Sysctl
}

type route struct {
	dst  netip.Prefix
	dev  string
	gw   string
	text string
}

func newNetView(s *snapshot.Snapshot) *netView {
	v := &netView{
		local:      map[netip.Addr]string{},
		broadcasts: map[netip.Addr]bool{},
		addrsOf:    map[string][]netip.Prefix{},
		links:      map[string]snapshot.Link{},
		sysctls:    s.Sysctls,
	}
	for _, l := range s.Links {
		v.links[l.Name] = l
	}
	for _, a := range s.Addrs {
		p, err := netip.ParsePrefix(a.CIDR)
		if err != nil {
			continue
		}
		v.known = true
		v.local[p.Addr()] = a.Link
		v.addrsOf[a.Link] = append(v.addrsOf[a.Link], p)
		if p.Addr().Is4() {
			if p.Addr().IsLoopback() {
				// Why: the kernel's local table holds the whole loopback
				// prefix of lo's address (127.0.0.0/8) as local.
				v.localNets = append(v.localNets, p.Masked())
			} else if p.Bits() < 31 {
				v.broadcasts[lastAddr(p)] = true
			}
		}
	}
	for _, r := range s.Routes {
		if r.Table != 0 && r.Table != 254 {
			continue
		}
		var p netip.Prefix
		var err error
		if r.Dst == "default" {
			continue // added below once the family is known
		}
		if p, err = netip.ParsePrefix(r.Dst); err != nil {
			a, err2 := netip.ParseAddr(r.Dst)
			if err2 != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		v.routes = append(v.routes, route{dst: p, dev: r.Dev, gw: r.Gateway, text: routeText(r)})
	}
	for _, r := range s.Routes {
		if r.Dst != "default" || (r.Table != 0 && r.Table != 254) {
			continue
		}
		fam := netip.MustParsePrefix("0.0.0.0/0")
		if g, err := netip.ParseAddr(r.Gateway); err == nil && g.Is6() {
			fam = netip.MustParsePrefix("::/0")
		}
		v.routes = append(v.routes, route{dst: fam, dev: r.Dev, gw: r.Gateway, text: routeText(r)})
	}
	// Why: longest prefix first (stable: among equal prefixes the first
	// listed wins, as before), so that lookup takes the first that holds
	// the address instead of comparing them all.
	slices.SortStableFunc(v.routes, func(a, b route) int { return b.dst.Bits() - a.dst.Bits() })
	return v
}

func routeText(r snapshot.Route) string {
	s := r.Dst
	if r.Gateway != "" {
		s += " via " + r.Gateway
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

// lastAddr is a prefix's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}

// isLocal reports whether a is one of the host's addresses.
func (v *netView) isLocal(a netip.Addr) bool {
	if _, ok := v.local[a]; ok {
		return true
	}
	for _, p := range v.localNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrType is the kernel's type of an address (addrtype's --src-type,
// --dst-type): LOCAL, BROADCAST, MULTICAST or UNICAST, the way
// inet_addr_type reads the local table.
func (v *netView) addrType(a netip.Addr) string {
	switch {
	case a.IsMulticast():
		return "MULTICAST"
	case a.Is4() && (a == netip.IPv4Unspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || v.broadcasts[a]):
		return "BROADCAST"
	case v.isLocal(a):
		return "LOCAL"
	}
	return "UNICAST"
}

// lookup is the main table's longest-prefix route to a, or false.
func (v *netView) lookup(a netip.Addr) (route, bool) {
	for _, r := range v.routes {
		if r.dst.Addr().Is4() == a.Is4() && r.dst.Contains(a) {
			return r, true // the longest: routes are sorted so
		}
	}
	return route{}, false
}

// bridgeOf returns the bridge an interface is a port of, the interface
// itself when it is a bridge, or "".
func (v *netView) bridgeOf(iface string) string {
	l, ok := v.links[iface]
	if !ok {
		return ""
	}
	if l.Kind == "bridge" {
		return iface
	}
	if m, ok := v.links[l.Master]; ok && m.Kind == "bridge" {
		return l.Master
	}
	return ""
}

// primaryAddr is the first address of a family on a link (what
// MASQUERADE and REDIRECT use), or false.
func (v *netView) primaryAddr(link string, v4 bool) (netip.Addr, bool) {
	for _, p := range v.addrsOf[link] {
		if p.Addr().Is4() == v4 && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// sysctl returns a sysctl's value and whether the snapshot has it.
func (v *netView) sysctl(name string) (string, bool) {
	s, ok := v.sysctls[name]
	if !ok || !s.Present {
		return "", false
	}
	return strings.TrimSpace(s.Value), true
}

// forwarding reports whether the kernel forwards packets that arrive on
// iface (IPv4: the interface's forwarding, which ip_forward sets for all;
// IPv6: conf.all.forwarding), and the sysctl that said so; known is false
// when the snapshot has neither.
func (v *netView) forwarding(iface string, v4 bool) (on, known bool, name string) {
	var names [3]string
	if v4 {
		names = [3]string{"net.ipv4.conf." + iface + ".forwarding", "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"}
	} else {
		names = [3]string{"net.ipv6.conf.all.forwarding"}
	}
	for _, n := range names {
		if n == "" {
			break
		}
		if val, ok := v.sysctl(n); ok {
			return val == "1", true, n
		}
	}
	return false, false, names[0]
}

// DefaultInIface is the interface of the route back to src: the interface
// a packet from src arrives on. It is "" when src is one of the host's own
// addresses (the host sends the packet) and an error when the snapshot
// has no route to src. A bridge port is read as its bridge.
func DefaultInIface(s *snapshot.Snapshot, src netip.Addr) (string, error) {
	v := newNetView(s)
	if !v.known {
		return "", fmt.Errorf("the input has no addresses or routes (a raw dump): give --in")
	}
	if v.isLocal(src) {
		return "", nil
	}
	r, ok := v.lookup(src)
	if !ok {
		return "", fmt.Errorf("no route back to %s in the snapshot: give --in", src)
	}
	return r.dev, nil
}
