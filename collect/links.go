//go:build linux

package collect

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/iptscope/iptscope/snapshot"
)

// dumpRetries bounds the retries of a netlink dump that the kernel
// interrupted because the table changed under it. netlink v1.3.x returns
// partial results together with ErrDumpInterrupted; we retry and, if it
// keeps happening, keep the last partial result and report it.
const dumpRetries = 5

// retryDump calls f until it does not return ErrDumpInterrupted.
func retryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range dumpRetries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// netHandle opens a netlink handle bound to the target namespace (the
// kernel ties a netlink socket to the namespace it was created in).
func netHandle(t target) (*netlink.Handle, error) {
	if !t.other {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(t.path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", t.path, needsRoot(err))
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in %s: %w", t.path, needsRoot(err))
	}
	return h, nil
}

// netState is what netlink says about one namespace.
type netState struct {
	links     []snapshot.Link
	addrs     []snapshot.Addr
	routes    []snapshot.Route
	neighbors []snapshot.Neighbor
	errs      []error
}

func familyName(f int) string {
	if f == netlink.FAMILY_V6 {
		return snapshot.FamilyIPv6
	}
	return snapshot.FamilyIPv4
}

// readNetState dumps links, addresses, main-table routes and neighbours.
// sameNS says /sys/class/net describes the target (hairpin from sysfs);
// otherwise hairpin comes from bridge protinfo.
func readNetState(h *netlink.Handle, sameNS bool) netState {
	var st netState
	links, err := retryDump(h.LinkList)
	if err != nil {
		st.errs = append(st.errs, fmt.Errorf("listing links: %w", err))
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	bridgePorts := 0
	for _, l := range links {
		a := l.Attrs()
		sl := snapshot.Link{
			Name:        a.Name,
			Index:       a.Index,
			Kind:        l.Type(),
			MasterIndex: a.MasterIndex,
			Master:      names[a.MasterIndex],
			OperState:   a.OperState.String(),
			Up:          a.Flags&net.FlagUp != 0,
			MTU:         a.MTU,
		}
		if len(a.HardwareAddr) > 0 {
			sl.MAC = a.HardwareAddr.String()
		}
		if _, ok := l.(*netlink.Veth); ok {
			// IFLA_LINK of a veth is its peer's ifindex (in the peer's
			// namespace); IFLA_LINK_NETNSID says which namespace when
			// it is not this one. Same as netlink.VethPeerIndex, without
			// the ethtool ioctl (which would need this thread in the
			// namespace).
			sl.PeerIndex = a.ParentIndex
			if a.NetNsID >= 0 {
				sl.PeerNetNSID = a.NetNsID
			}
		}
		if a.MasterIndex != 0 {
			sl.Hairpin = hairpin(h, l, sameNS, &bridgePorts)
		}
		st.links = append(st.links, sl)
	}

	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		st.errs = append(st.errs, fmt.Errorf("listing addresses: %w", err))
	}
	for _, a := range addrs {
		fam := netlink.FAMILY_V4
		if a.IP.To4() == nil {
			fam = netlink.FAMILY_V6
		}
		st.addrs = append(st.addrs, snapshot.Addr{Link: names[a.LinkIndex], Family: familyName(fam), CIDR: a.IPNet.String()})
	}

	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		st.errs = append(st.errs, fmt.Errorf("listing routes: %w", err))
	}
	for _, r := range routes {
		sr := snapshot.Route{Dst: "default", Dev: names[r.LinkIndex], Table: r.Table, Protocol: r.Protocol.String(), Scope: r.Scope.String()}
		if r.Dst != nil {
			sr.Dst = r.Dst.String()
		}
		if r.Gw != nil {
			sr.Gateway = r.Gw.String()
		}
		st.routes = append(st.routes, sr)
	}

	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return h.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		st.errs = append(st.errs, fmt.Errorf("listing neighbours: %w", err))
	}
	for _, n := range neighs {
		if n.IP == nil {
			continue // bridge fdb entries
		}
		sn := snapshot.Neighbor{Link: names[n.LinkIndex], IP: n.IP.String(), State: neighState(n.State)}
		if len(n.HardwareAddr) > 0 {
			sn.MAC = n.HardwareAddr.String()
		}
		st.neighbors = append(st.neighbors, sn)
	}
	return st
}

// maxProtinfo bounds the per-port AF_BRIDGE dumps (each LinkGetProtinfo
// dumps every bridge port): beyond it hairpin is left unknown (nil).
const maxProtinfo = 256

// hairpin reads a bridge port's hairpin mode: /sys/class/net/X/brport/
// hairpin_mode when sysfs shows the target namespace (and the interface
// there has the same ifindex: under `nsenter --net` /sys is still the
// initial namespace's), else netlink protinfo. nil when unknown.
func hairpin(h *netlink.Handle, l netlink.Link, sameNS bool, n *int) *bool {
	if sameNS {
		dir := "/sys/class/net/" + l.Attrs().Name
		if idx, err := os.ReadFile(dir + "/ifindex"); err == nil && strings.TrimSpace(string(idx)) == strconv.Itoa(l.Attrs().Index) {
			if b, err := os.ReadFile(dir + "/brport/hairpin_mode"); err == nil {
				v := strings.TrimSpace(string(b)) == "1"
				return &v
			}
		}
	}
	if *n >= maxProtinfo {
		return nil
	}
	*n++
	pi, err := h.LinkGetProtinfo(l)
	if err != nil {
		return nil
	}
	v := pi.Hairpin
	return &v
}

// neighState names NUD_* states the way `ip neigh` does.
func neighState(s int) string {
	var out []string
	for _, x := range []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"},
		{netlink.NUD_STALE, "STALE"}, {netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"},
		{netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
	} {
		if s&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	if len(out) == 0 {
		return "NONE"
	}
	return strings.Join(out, ",")
}
