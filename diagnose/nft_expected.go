package diagnose

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// Docker 29's nftables firewall backend (docker-facts.md §2.5; moby
// daemon/libnetwork/drivers/bridge/internal/nftabler): one table per
// family, base chains on four hooks, four verdict maps keyed by bridge
// name, and four chains per bridge that the maps jump to.
//
//	filter-FORWARD ─ oifname vmap @filter-forward-in-jumps ──▶ filter-forward-in__BR
//	               └ iifname vmap @filter-forward-out-jumps ─▶ filter-forward-out__BR
//	nat-PREROUTING ─ fib daddr type local ─▶ nat-prerouting-and-output (the DNATs)
//	nat-OUTPUT ────┘
//	nat-POSTROUTING ─ iifname vmap @nat-postrouting-out-jumps ─▶ nat-postrouting-out__BR (MASQUERADE)
//	                └ oifname vmap @nat-postrouting-in-jumps ──▶ nat-postrouting-in__BR (proxy off: hairpin)
//	raw-PREROUTING (DROP DIRECT ACCESS, DROP REMOTE LOOPBACK)
const (
	NftDockerTable     = "docker-bridges"
	NftFilterForward   = "filter-FORWARD"
	NftNATOutput       = "nat-OUTPUT"
	NftNATPostrouting  = "nat-POSTROUTING"
	NftNATPrerouting   = "nat-PREROUTING"
	NftNATPreAndOutput = "nat-prerouting-and-output"
	NftRawPrerouting   = "raw-PREROUTING"
	NftMapFwdIn        = "filter-forward-in-jumps"
	NftMapFwdOut       = "filter-forward-out-jumps"
	NftMapPostIn       = "nat-postrouting-in-jumps"
	NftMapPostOut      = "nat-postrouting-out-jumps"
)

// NftBridgeChains are the per-bridge chain names for bridge br, in the
// order of the maps NftMapFwdIn, NftMapFwdOut, NftMapPostIn, NftMapPostOut.
func NftBridgeChains(br string) [4]string {
	return [4]string{"filter-forward-in__" + br, "filter-forward-out__" + br, "nat-postrouting-in__" + br, "nat-postrouting-out__" + br}
}

var nftBridgeMaps = [4]string{NftMapFwdIn, NftMapFwdOut, NftMapPostIn, NftMapPostOut}

// NftChainSpec is a chain Docker creates: a base chain with its hook, or
// a regular chain (Hook ""). Network is set for a per-bridge chain.
type NftChainSpec struct {
	Name     string
	Type     string
	Hook     string
	Priority int
	Policy   string
	Network  string
	Bridge   string
}

// Decl is the chain as `nft -f` declares it (what repair writes).
func (c NftChainSpec) Decl(family nft.Family) string {
	if c.Hook == "" {
		return fmt.Sprintf("add chain %s %s %s", family, NftDockerTable, c.Name)
	}
	return fmt.Sprintf("add chain %s %s %s { type %s hook %s priority %d; policy %s; }", family, NftDockerTable, c.Name, c.Type, c.Hook, c.Priority, c.Policy)
}

// NftElementSpec is a verdict-map element Docker adds per bridge.
type NftElementSpec struct {
	Map, Key, Target string
	Network          string
}

// NftRule is one rule Docker 29 writes with its nftables backend: an
// intent (Kind, Network, Container, Port) with its nftables encoding
// (Chain and Spec, exactly as Docker writes it: comments included, a bare
// `counter`), which nft.Rule.Spec gives back for the rule in the kernel.
type NftRule struct {
	Kind      Kind
	Chain     string
	Spec      string
	Network   string
	Bridge    string
	Container string
	Port      *snapshot.PortBinding
	// Seq is the rule's place among the expected rules of its chain.
	Seq int
	// Alt groups alternatives (as ExpectedRule.Alt): a container on
	// several networks gets its port's rules on one of them, which the
	// snapshot does not say; one found of a kind is enough.
	Alt string
}

// NftExpected is what Docker's nftables backend writes for one family.
type NftExpected struct {
	Family nft.Family
	// SnapFamily is snapshot.FamilyIPv4 or FamilyIPv6.
	SnapFamily string
	Version    Version
	Proxy      ProxyMode
	Chains     []NftChainSpec
	Maps       []string
	Elements   []NftElementSpec
	Rules      []NftRule
	// Optional: the table need not exist (ip6 with no IPv6 network: 29
	// creates it, but nothing depends on it).
	Optional bool
	// Notes list what was guessed or not modelled.
	Notes []string
}

// RulesOf returns the expected rules of a chain in order.
func (e *NftExpected) RulesOf(chain string) []NftRule {
	var out []NftRule
	for _, r := range e.Rules {
		if r.Chain == chain {
			out = append(out, r)
		}
	}
	return out
}

// nftablesBackendOf reports whether Docker runs with its nftables firewall
// backend, from the daemon's own word (docker info FirewallBackend).
func nftablesBackendOf(s *snapshot.Snapshot) bool {
	return s != nil && s.Docker != nil && s.Docker.Info != nil && strings.HasPrefix(s.Docker.Info.FirewallBackend, "nftables")
}

// nftFamily maps a snapshot family to the nftables family of Docker's
// table.
func nftFamily(family string) nft.Family {
	if family == snapshot.FamilyIPv6 {
		return nft.FamilyIP6
	}
	return nft.FamilyIP
}

// ExpectNft derives the table Docker 29's nftables backend writes for
// family from the snapshot's Docker view. nil when Docker's view is
// missing or the daemon does not use that backend.
//
// Modelled from real 29.8.1 captures (fixtures/docker-29-nftables-*,
// including every shape of e2e/testbed/shapes.sh: icc=false, ip-masq=false,
// host_ipv4 SNAT, routed and nat-unprotected gateway modes, internal
// networks, trusted host interfaces, containers on two networks, IPv6 and
// IPv6-only networks) and moby's nftabler. The isolated gateway mode, and
// routed on IPv6, get their chains and map elements expected but not their
// rules (a note says so). A version newer than 29 is judged with 29's
// layout, noted as an assumption.
func ExpectNft(s *snapshot.Snapshot, family string) *NftExpected {
	if !nftablesBackendOf(s) || s.Docker.Version == "" {
		return nil
	}
	v, err := ParseVersion(s.Docker.Version)
	if err != nil {
		return nil
	}
	e := &NftExpected{Family: nftFamily(family), SnapFamily: family, Version: v, Proxy: proxyMode(s)}
	// The layouts table (layout.go) says whether this is an assumption.
	if _, assumed, ok := LayoutFor(v, BackendNftables); !ok {
		e.Notes = append(e.Notes, fmt.Sprintf("Docker %s with the nftables backend: judged with 29's layout (an assumption)", v))
	} else if assumed != "" {
		e.Notes = append(e.Notes, assumed)
	}
	if e.Proxy.Guessed {
		e.Notes = append(e.Notes, fmt.Sprintf("userland-proxy taken as %s from %s", e.Proxy.State, e.Proxy.Source))
	}
	nets := bridgeNets(s, family)
	if family == snapshot.FamilyIPv6 && len(nets) == 0 {
		e.Optional = true
	}
	e.base()
	seq := map[string]int{}
	add := func(r NftRule) {
		r.Seq = seq[r.Chain]
		seq[r.Chain]++
		e.Rules = append(e.Rules, r)
	}
	e.baseRules(add)
	ports := publishedPorts(s, nets, family)
	portsOf := map[string][]port{}
	for _, p := range ports {
		portsOf[p.bn.bridge] = append(portsOf[p.bn.bridge], p)
	}
	ip := "ip"
	if family == snapshot.FamilyIPv6 {
		ip = "ip6"
	}
	// DNATs, in container then binding order (Docker's order is that of
	// the container starts; compared as a set).
	for _, p := range ports {
		// Why routed and isolated only: a nat-unprotected network's
		// ports are DNATed like any other (29.8.1 capture).
		if p.bn.gwMode == "routed" || p.bn.gwMode == "isolated" || p.pb.HostPort == 0 {
			continue
		}
		add(NftRule{Kind: KindDNAT, Chain: NftNATPreAndOutput, Spec: e.dnatSpec(p, ip), Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name, Port: p.binding(), Alt: p.alt})
	}
	// raw: per endpoint, then the loopback bindings.
	for _, p := range endpointsOf(s, nets, family) {
		add(NftRule{Kind: KindRawEndpoint, Chain: NftRawPrerouting, Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name,
			Spec: fmt.Sprintf(`%s daddr %s iifname != %s counter drop comment "DROP DIRECT ACCESS"`, ip, p.ip, directAccessIfaces(p.bn))})
	}
	seenLo := map[string]bool{}
	for _, p := range ports {
		if family != snapshot.FamilyIPv4 || p.hostIP == "" || !isLoopback(p.hostIP) || p.bn.gwMode != "" {
			continue
		}
		k := p.hostIP + "/" + proto(p.pb) + "/" + itoa(p.pb.HostPort)
		if seenLo[k] {
			continue
		}
		seenLo[k] = true
		add(NftRule{Kind: KindRawLoopback, Chain: NftRawPrerouting, Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name, Port: p.binding(),
			Spec: fmt.Sprintf(`iifname != "lo" ip daddr %s %s dport %d counter drop comment "DROP REMOTE LOOPBACK"`, p.hostIP, proto(p.pb), p.pb.HostPort)})
	}
	extra := map[string][]port{}
	for _, p := range otherFamilyBindings(s, nets, family) {
		extra[p.bn.bridge] = append(extra[p.bn.bridge], p)
	}
	for _, bn := range nets {
		e.bridge(bn, portsOf[bn.bridge], extra[bn.bridge], ip, add)
	}
	return e
}

// otherFamilyBindings are the bindings of running containers to a host
// address of the other family (`-p [::1]:9301:80` of an IPv4-only
// container): no DNAT of this family, but 29.8.1 still admits the
// container port in the network's in-chain (healthy-shapes-all capture).
func otherFamilyBindings(s *snapshot.Snapshot, nets []*bridgeNet, family string) []port {
	var out []port
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			bn := findNet(nets, ep)
			if bn == nil || bn.internal || epIP(ep, family) == "" {
				continue
			}
			for _, pb := range c.Ports {
				a, err := netip.ParseAddr(pb.HostIP)
				if pb.HostPort == 0 || err != nil || a.Is4() == (family == snapshot.FamilyIPv4) {
					continue
				}
				out = append(out, port{ct: c, ep: ep, bn: bn, pb: pb, ip: epIP(ep, family)})
			}
		}
	}
	return out
}

// base adds the base chains, the regular DNAT chain and the four maps.
func (e *NftExpected) base() {
	e.Chains = append(e.Chains,
		NftChainSpec{Name: NftFilterForward, Type: "filter", Hook: "forward", Priority: 0, Policy: "accept"},
		NftChainSpec{Name: NftNATOutput, Type: "nat", Hook: "output", Priority: -100, Policy: "accept"},
		NftChainSpec{Name: NftNATPostrouting, Type: "nat", Hook: "postrouting", Priority: 100, Policy: "accept"},
		NftChainSpec{Name: NftNATPrerouting, Type: "nat", Hook: "prerouting", Priority: -100, Policy: "accept"},
		NftChainSpec{Name: NftNATPreAndOutput},
		NftChainSpec{Name: NftRawPrerouting, Type: "filter", Hook: "prerouting", Priority: -300, Policy: "accept"},
	)
	e.Maps = []string{NftMapFwdIn, NftMapFwdOut, NftMapPostIn, NftMapPostOut}
}

// baseRules adds the base chains' rules (KindJump: what reaches Docker's
// other chains).
func (e *NftExpected) baseRules(add func(NftRule)) {
	add(NftRule{Kind: KindJump, Chain: NftFilterForward, Spec: "oifname vmap @" + NftMapFwdIn})
	add(NftRule{Kind: KindJump, Chain: NftFilterForward, Spec: "iifname vmap @" + NftMapFwdOut})
	out := "fib daddr type local counter jump " + NftNATPreAndOutput
	if e.Proxy.On() {
		// Why: with the proxy on, docker-proxy serves the host's own
		// loopback connections (29.8.1 captures).
		if e.Family == nft.FamilyIP6 {
			out = "ip6 daddr != ::1 " + out
		} else {
			out = "ip daddr != 127.0.0.0/8 " + out
		}
	}
	add(NftRule{Kind: KindJump, Chain: NftNATOutput, Spec: out})
	add(NftRule{Kind: KindJump, Chain: NftNATPostrouting, Spec: "iifname vmap @" + NftMapPostOut})
	add(NftRule{Kind: KindJump, Chain: NftNATPostrouting, Spec: "oifname vmap @" + NftMapPostIn})
	add(NftRule{Kind: KindJump, Chain: NftNATPrerouting, Spec: "fib daddr type local counter jump " + NftNATPreAndOutput})
}

// dnatSpec is a published port's DNAT as 29 writes it:
//
//	[iifname != "BR"] [ip daddr HOSTIP] tcp dport HPORT counter dnat to CIP:CPORT comment "DNAT"
//
// (the iifname test with the proxy on only; IPv6: ip6 daddr, [CIP]:CPORT).
func (e *NftExpected) dnatSpec(p port, ip string) string {
	var b strings.Builder
	if e.Proxy.On() {
		fmt.Fprintf(&b, "iifname != %q ", p.bn.bridge)
	}
	if ip == "ip6" {
		// Why: 29 keeps link-local sources from being DNATed (29.8.1
		// capture of an IPv6 network).
		b.WriteString("ip6 saddr != fe80::/10 ")
	}
	if p.hostIP != "" {
		fmt.Fprintf(&b, "%s daddr %s ", ip, p.hostIP)
	}
	to := p.ip + ":" + itoa(p.pb.ContainerPort)
	if ip == "ip6" {
		to = "[" + p.ip + "]:" + itoa(p.pb.ContainerPort)
	}
	fmt.Fprintf(&b, "%s dport %d counter dnat to %s comment \"DNAT\"", proto(p.pb), p.pb.HostPort, to)
	return b.String()
}

// bridge adds one bridge's chains, map elements and rules.
func (e *NftExpected) bridge(bn *bridgeNet, ports, acceptOnly []port, ip string, add func(NftRule)) {
	names := NftBridgeChains(bn.bridge)
	for i, n := range names {
		e.Chains = append(e.Chains, NftChainSpec{Name: n, Network: bn.net.Name, Bridge: bn.bridge})
		e.Elements = append(e.Elements, NftElementSpec{Map: nftBridgeMaps[i], Key: bn.bridge, Target: n, Network: bn.net.Name})
	}
	in, out, postIn, postOut := names[0], names[1], names[2], names[3]
	r := func(kind Kind, chain, spec string) NftRule {
		return NftRule{Kind: kind, Chain: chain, Spec: spec, Network: bn.net.Name, Bridge: bn.bridge}
	}
	if bn.gwMode == "isolated" || bn.gwMode == "routed" && ip == "ip6" {
		e.Notes = append(e.Notes, fmt.Sprintf("network %s (%s): its nftables rules are not modelled for gateway mode %s; only its chains and map elements are checked", bn.net.Name, bn.bridge, bn.gwMode))
		return
	}
	const est = "ct state established,related counter accept"
	icc := "accept"
	if !bn.icc {
		icc = "drop"
	}
	if bn.internal {
		// 29.8.1: the ICC rule of an internal network names no bridge.
		add(r(KindNetworkPath, in, est))
		add(r(KindNetworkPath, in, fmt.Sprintf(`iifname != %q counter drop comment "INTERNAL NETWORK INGRESS"`, bn.bridge)))
		add(r(KindNetworkPath, in, `counter `+icc+` comment "ICC"`))
		add(r(KindNetworkPath, out, est))
		add(r(KindNetworkPath, out, fmt.Sprintf(`oifname != %q counter drop comment "INTERNAL NETWORK EGRESS"`, bn.bridge)))
		return
	}
	add(r(KindNetworkPath, in, est))
	if bn.gwMode == "routed" {
		// Routed: ICMP admitted first, no DNAT and no masquerade.
		add(r(KindNetworkPath, in, `ip protocol icmp counter accept comment "ICMP"`))
	}
	add(r(KindNetworkPath, in, fmt.Sprintf(`iifname %q counter %s comment "ICC"`, bn.bridge, icc)))
	if bn.gwMode == "nat-unprotected" {
		// nat-unprotected: every port admitted, no per-port accept.
		add(r(KindNetworkPath, in, `counter accept comment "UNPROTECTED"`))
	} else {
		seen := map[string]bool{}
		for _, p := range append(append([]port(nil), ports...), acceptOnly...) {
			spec := fmt.Sprintf("%s daddr %s %s dport %d counter accept", ip, p.ip, proto(p.pb), p.pb.ContainerPort)
			if seen[spec] {
				continue
			}
			seen[spec] = true
			pr := r(KindPortAccept, in, spec)
			pr.Container, pr.Port, pr.Alt = p.ct.Name, p.binding(), p.alt
			add(pr)
		}
		add(r(KindNetworkPath, in, `counter drop comment "UNPUBLISHED PORT DROP"`))
	}
	add(r(KindNetworkPath, out, est))
	add(r(KindNetworkPath, out, `counter accept comment "OUTGOING"`))
	if !e.Proxy.On() && bn.gwMode != "routed" {
		// Why proxy off only: with the proxy on, docker-proxy carries
		// the host's and the containers' own connections to the port.
		add(r(KindHairpinMasq, postIn, `fib saddr type local counter masquerade comment "MASQUERADE FROM HOST"`))
		seenM := map[string]bool{}
		for _, p := range ports {
			spec := fmt.Sprintf(`%s saddr %s %s daddr %s %s dport %d counter masquerade comment "MASQ TO OWN PORT"`, ip, p.ip, ip, p.ip, proto(p.pb), p.pb.ContainerPort)
			if seenM[spec] {
				continue
			}
			seenM[spec] = true
			pm := r(KindPortMasq, postIn, spec)
			pm.Container, pm.Port, pm.Alt = p.ct.Name, p.binding(), p.alt
			add(pm)
		}
	}
	switch {
	case bn.subnet == "" || !bn.masq || bn.gwMode == "routed":
		// ip-masq=false or routed: no source NAT (29.8.1 captures).
	case bn.snatIP != "":
		add(r(KindMasquerade, postOut, fmt.Sprintf(`oifname != %q %s saddr %s counter snat to %s comment "SNAT"`, bn.bridge, ip, bn.subnet, bn.snatIP)))
	default:
		add(r(KindMasquerade, postOut, fmt.Sprintf(`oifname != %q %s saddr %s counter masquerade comment "MASQUERADE"`, bn.bridge, ip, bn.subnet)))
	}
}

// directAccessIfaces is the iifname operand of a raw direct-access DROP:
// the bridge, or an anonymous set of the network's trusted host
// interfaces and the bridge (trusted_host_interfaces, 29.8.1 capture:
// `iifname != { "tbhost0", "br-X" }`).
func directAccessIfaces(bn *bridgeNet) string {
	t := bn.net.Options["com.docker.network.bridge.trusted_host_interfaces"]
	if t == "" {
		return strconv.Quote(bn.bridge)
	}
	var q []string
	for _, name := range strings.Split(t, ":") {
		if name = strings.TrimSpace(name); name != "" {
			q = append(q, strconv.Quote(name))
		}
	}
	return "{ " + strings.Join(append(q, strconv.Quote(bn.bridge)), ", ") + " }"
}

// nftPortName is "8080/tcp" or "127.0.0.1:9090/tcp" (as portName).
func nftPortName(pb *snapshot.PortBinding) string {
	if pb == nil {
		return ""
	}
	return portName(pb)
}

// parseUint is strconv.Atoi for ports in rule text ("8080").
func parsePort(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// expectNftablesBackend is Expect's answer for a daemon with the nftables
// backend: no iptables rule is expected (Modelled, empty), as the nft
// checks judge table docker-bridges; Modelled is false when the snapshot
// holds no nftables ruleset to judge.
func expectNftablesBackend(e *Expected, s *snapshot.Snapshot) *Expected {
	e.Era, e.Proxy = Era29Nftables, proxyMode(s)
	if !s.NftRead() {
		e.Notes = append(e.Notes, "Docker writes to its nftables backend (table docker-bridges), and the snapshot holds no nftables ruleset (collected by an iptscope that did not read it, or nft was missing)")
		return e
	}
	e.Modelled = true
	e.Notes = append(e.Notes, "Docker writes to its nftables backend: its rules are judged in table docker-bridges, no iptables rule is expected")
	if ne := ExpectNft(s, snapshot.FamilyIPv4); ne != nil {
		e.Notes = append(e.Notes, ne.Notes...)
	}
	return e
}
