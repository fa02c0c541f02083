package diagnose

import (
	"fmt"
	"net/netip"

	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftJudgePort judges a published port on Docker's nftables path, the
// way judgePort does on iptables, and reports whether it did (false: not
// an nftables-backend host with its ruleset read; judgePort goes on):
//
//	raw-PREROUTING ─ nat-PREROUTING ─ nat-prerouting-and-output (DNAT)
//	   │ no table / jump / DNAT: the packet stays for the host -> docker-proxy if one listens
//	ip_forward=1
//	forward hook: every base chain must accept: docker-bridges filter-FORWARD
//	   (-> filter-forward-in__BR: port accept before UNPUBLISHED PORT DROP),
//	   iptables filter FORWARD (its policy), users' tables (their drops)
func nftJudgePort(env *Env, c *snapshot.Container, pb *snapshot.PortBinding, r *PortReport) bool {
	s := env.S
	addr, err := netip.ParseAddr(r.HostIP)
	family := snapshot.FamilyIPv4
	if err == nil && addr.Is6() && !addr.IsUnspecified() || r.HostIP == "::" {
		family = snapshot.FamilyIPv6
	}
	var a nftAnalysis
	ok := false
	for _, x := range nftAnalyses(env) {
		if x.family() == family {
			a, ok = x, true
		}
	}
	if !ok {
		if !nftablesBackendOf(s) || !s.NftRead() || family == snapshot.FamilyIPv4 {
			return false
		}
		// An IPv6 binding with no ip6 docker-bridges rules for it: only
		// docker-proxy serves it.
	}
	// The DNAT Docker writes for this binding.
	var dnat *NftRule
	if ok {
		for i := range a.exp.Rules {
			x := &a.exp.Rules[i]
			if x.Kind == KindDNAT && x.Container == c.Name && x.Port != nil && *x.Port == *pb {
				dnat = x
				break
			}
		}
	}
	if dnat != nil {
		r.Network = dnat.Network
		for _, ep := range c.Endpoints {
			if ep.Network == dnat.Network {
				r.ContainerIP = epIP(ep, family)
			}
		}
	} else {
		for _, ep := range c.Endpoints {
			if ip := epIP(ep, snapshot.FamilyIPv4); ip != "" && r.ContainerIP == "" {
				r.ContainerIP, r.Network = ip, ep.Network
			}
		}
	}
	switch {
	case err == nil && addr.IsLoopback():
		r.Path = PathLocalOnly
		r.Reason = "bound to " + r.HostIP + ": only the host itself can connect; a path from other machines does not apply"
		return true
	case dnat == nil:
		if px := proxiesFor(env.proxies(), pb); len(px) > 0 {
			r.Path = PathProxyOnly
			r.Reason = fmt.Sprintf("no nftables DNAT is expected for this binding; docker-proxy pid %d serves it", px[0].PID)
		} else {
			r.Path, r.Reason = PathUnknown, "the container has no address on a bridge network Docker publishes ports for"
		}
		return true
	}
	if why := linkProblem(s, c, r.Network); why != "" {
		r.Path, r.Reason = PathBroken, why
		return true
	}
	tbl := string(a.exp.Family) + " " + NftDockerTable
	// 1. Before DNAT.
	var natBroken string
	var got *nft.Rule
	if g := a.found(*dnat); len(g) > 0 {
		got = g[0]
	}
	pre := NftRule{Chain: NftNATPrerouting, Spec: "fib daddr type local counter jump " + NftNATPreAndOutput}
	switch {
	case a.table == nil:
		natBroken = "table " + tbl + " is gone"
	case a.chain(NftNATPrerouting) == nil:
		natBroken = "chain " + NftNATPrerouting + " of " + tbl + " is missing"
	case len(a.found(pre)) == 0:
		natBroken = NftNATPrerouting + " of " + tbl + " does not jump to " + NftNATPreAndOutput
	case got == nil:
		natBroken = "no DNAT rule for it in " + tbl + " " + NftNATPreAndOutput
	}
	if natBroken == "" {
		// A stale DNAT above it for the same port wins.
		for _, st := range a.staleDNATs() {
			if st.Index < got.Index && nftSamePort(st, pb) {
				n, _ := st.NAT()
				r.Path = PathBroken
				r.Reason = fmt.Sprintf("a stale DNAT (rule %d of %s %s, to %s:%s) matches first and sends connections there", st.Index+1, tbl, NftNATPreAndOutput, n.Addr, n.Port)
				return true
			}
		}
	}
	if natBroken != "" {
		if px := proxiesFor(env.proxies(), pb); len(px) > 0 {
			r.Path = PathProxyOnly
			r.Reason = fmt.Sprintf("%s; docker-proxy pid %d answers on the host port instead (clients' addresses are lost)", natBroken, px[0].PID)
			return true
		}
		r.Path = PathBroken
		r.Reason = natBroken + " and no docker-proxy listens on the port"
		return true
	}
	// 2. After DNAT: forwarding, then every base chain on the forward hook.
	fwd := "net.ipv4.ip_forward"
	if family == snapshot.FamilyIPv6 {
		fwd = "net.ipv6.conf.all.forwarding"
	}
	if v, read := sysctl(s, fwd); read && v == "0" {
		r.Path = PathBroken
		r.Reason = "DNAT is in place but " + fwd + "=0: the kernel drops the translated packets (docker-proxy never sees them)"
		return true
	}
	pkt := nftPacket{bridge: dnat.Bridge, family: family, proto: proto(*pb), dstIP: r.ContainerIP, dstPort: pb.ContainerPort, origPort: pb.HostPort}
	in := a.chain(NftBridgeChains(dnat.Bridge)[0])
	admitted := "the forward hook's policy accepts (Docker's per-bridge filtering is not reached)"
	if in != nil && len(a.missingElements()) == 0 && a.chain(NftFilterForward) != nil {
		v, _ := pkt.walk(a.table, in, 0)
		switch {
		case v.verdict == "drop":
			r.Path = PathBroken
			r.Reason = fmt.Sprintf("rule %d of %s %s (%s) drops it: Docker's accept for the port is missing", v.rule.Index+1, tbl, in.Name, v.rule.Spec())
			return true
		case v.verdict == "accept":
			admitted = fmt.Sprintf("admitted by rule %d of %s %s", v.rule.Index+1, tbl, in.Name)
		default:
			admitted = fmt.Sprintf("admitted by the forward hook's policy (%s %s has no verdict for it)", tbl, in.Name)
		}
	}
	if _, why := iptablesForwardDrop(s, family, dnat.Bridge); why != "" {
		r.Path = PathBroken
		r.Reason = why + " drops it after Docker's nftables table accepts it (forward-blocked)"
		return true
	}
	if d := nftForwardDrop(s, pkt); d != nil {
		r.Path = PathBroken
		r.Reason = d.describe() + " drops every connection to it: the administrator's policy (docker-user-drop)"
		return true
	}
	r.Path = PathNAT
	r.Reason = fmt.Sprintf("DNAT rule %d of %s %s, forwarded and %s", got.Index+1, tbl, NftNATPreAndOutput, admitted)
	return true
}

// nftSamePort reports whether a DNAT rule takes the binding's host port.
func nftSamePort(r *nft.Rule, pb *snapshot.PortBinding) bool {
	m := r.Match(proto(*pb) + " dport")
	return m != nil && m.Op != "!=" && nftPortIn(m.Right.Value, pb.HostPort)
}
