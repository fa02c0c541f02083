package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// TestCollectMatchesWhatDockerReports starts real Docker daemons (20.10,
// 28.5 and 29, nft and legacy backends) with the fixtures' layout, collects a
// bundle from outside their namespace with --netns, and checks it against
// what Docker itself and the kernel report: every container's address,
// MAC and host-side veth, every bridge network with its subnet and bridge,
// every published port, every docker-proxy process, and the rules of the
// backend in use.
func TestCollectMatchesWhatDockerReports(t *testing.T) {
	for _, version := range versions {
		for _, backend := range []string{"nft", "legacy"} {
			name := "ec" + strings.ReplaceAll(version, ".", "") + backend[:1]
			t.Run("docker "+version+" "+backend, func(t *testing.T) {
				h := startDockerHost(t, name, version, backend, "on")
				_, data := h.collectBundle(t)
				snap, err := snapshot.Load(data)
				if err != nil {
					t.Fatal(err)
				}
				checkBundle(t, h, snap)
			})
		}
	}
}

func checkBundle(t *testing.T, h *dockerHost, snap *snapshot.Snapshot) {
	t.Helper()
	if snap.Docker == nil || snap.Docker.Error != "" {
		t.Fatalf("docker part: %+v", snap.Docker)
	}
	if !strings.HasPrefix(snap.Docker.Version, h.Version) {
		t.Errorf("docker version %q, want %s.x", snap.Docker.Version, h.Version)
	}
	if h.Firewall == "nftables" {
		// Docker writes no iptables rule, so no iptables backend is Docker's.
		if snap.IptablesBackend != h.Backend {
			t.Errorf("iptables backend %q, want %s", snap.IptablesBackend, h.Backend)
		}
	} else if snap.IptablesBackend != h.Backend || snap.DockerBackend != h.Backend {
		t.Errorf("backends: iptables %q, docker %q; want %s", snap.IptablesBackend, snap.DockerBackend, h.Backend)
	}
	if snap.Host.NetNSInode != netnsInode(t, h.NetNS) {
		t.Errorf("bundle is of netns inode %d, want %d", snap.Host.NetNSInode, netnsInode(t, h.NetNS))
	}
	links := map[string]snapshot.Link{}
	byIndex := map[int]snapshot.Link{}
	for _, l := range snap.Links {
		links[l.Name] = l
		byIndex[l.Index] = l
	}
	if _, ok := links["tbhost0"]; !ok {
		t.Errorf("the host's veth to the client, tbhost0, is not in the bundle's links")
	}

	t.Run("every bridge network has its bridge, subnet and gateway address", func(t *testing.T) {
		nets := map[string]snapshot.Network{}
		for _, n := range snap.Docker.Networks {
			nets[n.ID] = n
		}
		for _, want := range h.inspectNetworks(t) {
			if want.Driver != "bridge" {
				continue
			}
			got, ok := nets[want.ID]
			if !ok {
				t.Errorf("network %s missing from the bundle", want.Name)
				continue
			}
			bridge := "br-" + want.ID[:12]
			if b := want.Options["com.docker.network.bridge.name"]; b != "" {
				bridge = b
			}
			if got.BridgeName != bridge || got.Internal != want.Internal {
				t.Errorf("network %s: bridge %q internal %v, want %q %v", want.Name, got.BridgeName, got.Internal, bridge, want.Internal)
			}
			if l, ok := links[bridge]; !ok || l.Kind != "bridge" {
				t.Errorf("network %s: bridge link %s missing or not a bridge: %+v", want.Name, bridge, l)
			}
			for _, c := range want.IPAM.Config {
				if !slices.Contains(got.Subnets, c.Subnet) {
					t.Errorf("network %s: subnet %s not in %v", want.Name, c.Subnet, got.Subnets)
				}
				if c.Gateway != "" && !hasAddr(snap, bridge, c.Gateway) {
					t.Errorf("network %s: gateway %s is not an address of %s", want.Name, c.Gateway, bridge)
				}
			}
		}
	})

	t.Run("every running container has its address, MAC and host-side veth", func(t *testing.T) {
		got := map[string]snapshot.Container{}
		for _, c := range snap.Docker.Containers {
			got[c.ID] = c
		}
		for _, want := range h.inspectContainers(t) {
			c, ok := got[want.ID]
			if !ok {
				t.Errorf("container %s missing from the bundle", want.Name)
				continue
			}
			if c.Running != want.State.Running || !want.State.Running {
				t.Errorf("container %s: running %v, docker says %v", want.Name, c.Running, want.State.Running)
				continue
			}
			for netName, wn := range want.NetworkSettings.Networks {
				var ep *snapshot.Endpoint
				for i := range c.Endpoints {
					if c.Endpoints[i].NetworkID == wn.NetworkID {
						ep = &c.Endpoints[i]
					}
				}
				if ep == nil {
					t.Errorf("container %s: no endpoint on %s", want.Name, netName)
					continue
				}
				if ep.IP != wn.IPAddress || !strings.EqualFold(ep.MAC, wn.MacAddress) {
					t.Errorf("container %s on %s: ip %s mac %s, docker says %s %s", want.Name, netName, ep.IP, ep.MAC, wn.IPAddress, wn.MacAddress)
				}
				veth, ok := links[ep.HostVeth]
				if !ok || veth.Kind != "veth" || veth.Index != ep.HostVethIndex {
					t.Errorf("container %s on %s: host veth %q (index %d) not a veth of the host: %+v", want.Name, netName, ep.HostVeth, ep.HostVethIndex, veth)
					continue
				}
				// Independent check: the container's interface with that IP
				// has the host veth as its link peer.
				if idx := containerPeerIndex(t, h, want.State.Pid, wn.IPAddress); idx != veth.Index {
					t.Errorf("container %s on %s: its interface's peer is ifindex %d, bundle says %s (%d)", want.Name, netName, idx, veth.Name, veth.Index)
				}
				if bridgeOf(snap, wn.NetworkID) != veth.Master {
					t.Errorf("container %s: veth %s is attached to %q, want %q", want.Name, veth.Name, veth.Master, bridgeOf(snap, wn.NetworkID))
				}
			}
		}
	})

	t.Run("every published port is in the bundle", func(t *testing.T) {
		var want, got []string
		for _, ci := range h.inspectContainers(t) {
			for port, binds := range ci.NetworkSettings.Ports {
				for _, b := range binds {
					want = append(want, fmt.Sprintf("%s %s:%s", port, b.HostIp, b.HostPort))
				}
			}
		}
		for _, c := range snap.Docker.Containers {
			for _, p := range c.Ports {
				got = append(got, fmt.Sprintf("%d/%s %s:%d", p.ContainerPort, p.Proto, p.HostIP, p.HostPort))
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) || len(want) < 6 {
			t.Errorf("ports:\n got %v\nwant %v", got, want)
		}
	})

	t.Run("every docker-proxy of the namespace is in the bundle", func(t *testing.T) {
		want := proxiesIn(t, h.NetNS)
		var got []string
		for _, p := range snap.Proxies {
			got = append(got, fmt.Sprintf("%s %s:%d -> %s:%d", p.Proto, p.HostIP, p.HostPort, p.ContainerIP, p.ContainerPort))
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) || (h.Proxy == "on" && len(want) < 6) {
			t.Errorf("proxies:\n got %v\nwant %v", got, want)
		}
	})

	t.Run("the rules of the backend in use are iptables-save's, read over netlink on nft", func(t *testing.T) {
		for _, fam := range []struct{ family, tool string }{{snapshot.FamilyIPv4, "iptables-save"}, {snapshot.FamilyIPv6, "ip6tables-save"}} {
			d := snap.Dump(h.Backend, fam.family)
			if d == nil || d.Error != "" {
				t.Fatalf("%s dump of %s: %+v", fam.family, h.Backend, d)
			}
			// iptables-nft's rules are read over netlink, not with the
			// tool (collect/nftsave.go): on Docker's real rules the reader
			// must know every one, and print what the tool prints.
			if h.Backend == "nft" && d.Reader != snapshot.ReaderNetlink {
				t.Errorf("%s rules of nft were read by %q, not over netlink", fam.family, d.Reader)
			}
			live := h.ipt(t, fam.tool)
			if rulesWithoutCounters(d.Raw) != rulesWithoutCounters(live) {
				t.Errorf("%s rules differ from %s:\n%s\n---\n%s", fam.family, fam.tool, d.Raw, live)
			}
			if fam.family == snapshot.FamilyIPv4 && h.Firewall != "nftables" && (d.Ruleset == nil || d.Ruleset.Table("nat").Chain("DOCKER") == nil) {
				t.Errorf("the parsed IPv4 rules have no nat DOCKER chain")
			}
		}
	})

	t.Run("sysctls are read in the host's namespace", func(t *testing.T) {
		fwd, ok := snap.Sysctls["net.ipv4.ip_forward"]
		if !ok || !fwd.Present || fwd.Value != strings.TrimSpace(h.ipt(t, "cat", "/proc/sys/net/ipv4/ip_forward")) {
			t.Errorf("net.ipv4.ip_forward = %+v", fwd)
		}
	})
}

// containerPeerIndex returns the peer ifindex (iflink) of the container's
// interface that holds ip, read with `ip -o addr` and /sys inside the
// container's namespace.
func containerPeerIndex(t *testing.T, h *dockerHost, pid int, ip string) int {
	t.Helper()
	ns := "--net=/proc/" + strconv.Itoa(pid) + "/ns/net"
	out := h.ipt(t, "nsenter", ns, "ip", "-o", "-4", "addr", "show")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], ip+"/") {
			dev := f[1]
			link := h.ipt(t, "nsenter", ns, "ip", "-o", "link", "show", "dev", dev)
			// "12: eth0@if13: <...>": the peer's index follows "@if".
			if i := strings.Index(link, "@if"); i >= 0 {
				rest := link[i+3:]
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ':')])
				return n
			}
		}
	}
	return -1
}

func hasAddr(snap *snapshot.Snapshot, link, ip string) bool {
	for _, a := range snap.Addrs {
		if a.Link == link && strings.HasPrefix(a.CIDR, ip+"/") {
			return true
		}
	}
	return false
}

func bridgeOf(snap *snapshot.Snapshot, networkID string) string {
	for _, n := range snap.Docker.Networks {
		if n.ID == networkID {
			return n.BridgeName
		}
	}
	return ""
}

// rulesWithoutCounters keeps the table, chain and rule lines of a save
// dump, without counters and "#" comments (they carry times).
func rulesWithoutCounters(save string) string {
	var b strings.Builder
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if strings.HasPrefix(l, "[") {
			if i := strings.Index(l, "] "); i > 0 {
				l = l[i+2:]
			}
		}
		if strings.HasPrefix(l, ":") {
			if i := strings.LastIndex(l, " ["); i > 0 {
				l = l[:i]
			}
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
