//go:build linux

package collect

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/iptscope/iptscope/snapshot"
)

// HostStateHash hashes what the checks read besides the rules and
// Docker's API, and what has no event stream: the links (name, kind,
// master, up, operational state, hairpin), the addresses, the forwarding
// and bridge sysctls, and the docker-proxy processes (PID and arguments)
// of the namespace named as Options.NetNS names it. Neighbours, routes,
// counters and the proxies' memory are left out: they change with
// traffic. It costs a few netlink dumps and a walk of /proc, next to
// nothing beside a full check on a big host: watch calls it every
// --interval and runs the full check only when the hash changes.
func HostStateHash(ctx context.Context, o Options) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	t, err := resolveNetNS(o.NetNS)
	if err != nil {
		return sum, needsRoot(err)
	}
	h, err := netHandle(t)
	if err != nil {
		return sum, err
	}
	st := readNetState(h, !t.other)
	h.Close()
	if len(st.errs) > 0 {
		return sum, st.errs[0]
	}
	var bridges, uplinks []string
	links := make([]snapshot.Link, len(st.links))
	for i, l := range st.links {
		l.PeerNetNSID, l.MTU, l.MAC = 0, 0, ""
		links[i] = l
		switch {
		case l.Kind == "bridge":
			bridges = append(bridges, l.Name)
		case l.Master == "" && l.Name != "lo":
			uplinks = append(uplinks, l.Name)
		}
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Index < links[j].Index })
	var sys map[string]snapshot.Sysctl
	if err := InNetNS(o.NetNS, func() error {
		var err error
		sys, err = readSysctls(sysctlNames(bridges, uplinks))
		return err
	}); err != nil && sys == nil {
		return sum, fmt.Errorf("reading sysctls: %w", err)
	}
	ps, _ := readProxies("/proc", t.inode)
	type proxy struct {
		PID  int
		Args []string
	}
	var proxies []proxy
	for _, p := range ps {
		proxies = append(proxies, proxy{p.PID, p.Args})
	}
	sort.Slice(proxies, func(i, j int) bool { return proxies[i].PID < proxies[j].PID })
	b, err := json.Marshal(struct {
		Links   []snapshot.Link
		Addrs   []snapshot.Addr
		Sysctls map[string]snapshot.Sysctl
		Proxies []proxy
	}{links, st.addrs, sys, proxies})
	if err != nil {
		return sum, err
	}
	return sha256.Sum256(b), nil
}
