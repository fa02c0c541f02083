package synth

import (
	"fmt"
	"net/netip"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// DockerSnapshot returns the snapshot of the host DockerHost(ports)
// describes, with the Docker view its rules imply: Docker 28.5.2, userland
// proxy on, ip_forward 1, one network per 250 containers, one running
// container per published port (10000+p -> CIP:80). dump is the rules the
// snapshot holds (DockerHost(ports), or the same host after a change, e.g.
// nat DOCKER flushed); the Docker view always comes from DockerHost(ports).
// backend is "nft" or "legacy". It panics if dump does not parse.
func DockerSnapshot(ports int, dump []byte, backend string) *snapshot.Snapshot {
	healthy, err := parse.Parse(DockerHost(ports))
	if err != nil {
		panic(fmt.Sprintf("synth: parsing DockerHost(%d): %v", ports, err))
	}
	s := &snapshot.Snapshot{Schema: snapshot.Schema, DockerBackend: backend, IptablesBackend: backend,
		Sysctls: map[string]snapshot.Sysctl{"net.ipv4.ip_forward": {Value: "1", Present: true}},
		Docker:  &snapshot.Docker{Version: "28.5.2", Info: &snapshot.DockerInfo{UserlandProxy: snapshot.ProxyOn}}}
	nets := map[string]bool{}
	for _, r := range healthy.Table(parse.TableNAT).Chain("DOCKER").Rules {
		if r.Target != parse.TargetDNAT {
			continue
		}
		br := r.InIface.Value
		d, _ := parse.ParseNATDest(r.NATTo())
		dports, _ := r.DestPorts()
		if !nets[br] {
			nets[br] = true
			var sub string
			for _, m := range healthy.Table(parse.TableNAT).Chain("POSTROUTING").Rules {
				if m.OutIface.Value == br {
					sub = m.Source.Value
				}
			}
			s.Docker.Networks = append(s.Docker.Networks, snapshot.Network{ID: br, Name: br, Driver: "bridge", BridgeName: br, Subnets: []string{sub}})
		}
		name := fmt.Sprintf("c%d", dports[0].From)
		s.Docker.Containers = append(s.Docker.Containers, snapshot.Container{
			ID: name, Name: name, Running: true, State: "running",
			Endpoints: []snapshot.Endpoint{{Network: br, NetworkID: br, IP: d.IP, IPPrefixLen: 22}},
			Ports:     []snapshot.PortBinding{{HostPort: int(dports[0].From), ContainerPort: 80, Proto: "tcp"}},
		})
		// userland-proxy on: one docker-proxy per published port (about
		// 4 MiB resident each, as measured on 28.5).
		s.Proxies = append(s.Proxies, snapshot.Proxy{PID: 10000 + len(s.Proxies), RSSBytes: 4 << 20, Proto: "tcp", HostIP: "0.0.0.0",
			HostPort: int(dports[0].From), ContainerIP: d.IP, ContainerPort: 80, UseListenFD: true,
			Args: []string{"docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", fmt.Sprint(dports[0].From),
				"-container-ip", d.IP, "-container-port", "80", "-use-listen-fd"}})
	}
	rs, err := parse.Parse(dump)
	if err != nil {
		panic(fmt.Sprintf("synth: parsing the dump: %v", err))
	}
	s.Rules = []snapshot.RuleDump{{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(dump), Ruleset: rs}}
	return s
}

// FlushChain returns dump without the rules of chain in table (what
// `iptables -t TABLE -F CHAIN` leaves), the chain itself kept.
func FlushChain(dump []byte, table, chain string) []byte {
	var out []byte
	cur := ""
	prefix := "-A " + chain + " "
	for len(dump) > 0 {
		line := dump
		if i := indexByte(dump, '\n'); i >= 0 {
			line, dump = dump[:i+1], dump[i+1:]
		} else {
			dump = nil
		}
		l := string(line)
		if len(l) > 0 && l[0] == '*' {
			cur = l[1 : len(l)-1]
		}
		if cur == table && containsRule(l, prefix) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// containsRule reports whether a save line (with or without a counter
// prefix "[p:b] ") appends to the chain prefix names.
func containsRule(l, prefix string) bool {
	if len(l) > 0 && l[0] == '[' {
		for i := 0; i < len(l); i++ {
			if l[i] == ']' {
				l = l[i+1:]
				if len(l) > 0 && l[0] == ' ' {
					l = l[1:]
				}
				break
			}
		}
	}
	return len(l) >= len(prefix) && l[:len(prefix)] == prefix
}

// WithUplink gives s what a live host's bundle has for a connection from
// another machine: loopback, an uplink eth0 (198.51.100.1/24, the
// TEST-NET-2 range) with its route, and each Docker network's bridge, up,
// with its gateway address and route. Without them the packet-path engine
// (and so the ports table's engine judgement) has no address to trace to.
func WithUplink(s *snapshot.Snapshot) *snapshot.Snapshot {
	s.Addrs = []snapshot.Addr{{Link: "lo", Family: snapshot.FamilyIPv4, CIDR: "127.0.0.1/8"}, {Link: "eth0", Family: snapshot.FamilyIPv4, CIDR: "198.51.100.1/24"}}
	s.Routes = []snapshot.Route{{Dst: "198.51.100.0/24", Dev: "eth0", Table: 254}}
	s.Links = []snapshot.Link{{Name: "lo", Up: true}, {Name: "eth0", Up: true}}
	for _, n := range s.Docker.Networks {
		p, err := netip.ParsePrefix(n.Subnets[0])
		if err != nil {
			panic(fmt.Sprintf("synth: network %s: subnet %q: %v", n.Name, n.Subnets[0], err))
		}
		gw := p.Masked().Addr().Next()
		s.Addrs = append(s.Addrs, snapshot.Addr{Link: n.BridgeName, Family: snapshot.FamilyIPv4, CIDR: fmt.Sprintf("%s/%d", gw, p.Bits())})
		s.Routes = append(s.Routes, snapshot.Route{Dst: p.Masked().String(), Dev: n.BridgeName, Table: 254})
		s.Links = append(s.Links, snapshot.Link{Name: n.BridgeName, Kind: "bridge", Up: true})
	}
	return s
}
