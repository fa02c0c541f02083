package diagnose

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// PortPath says how a connection from another machine reaches a
// published port today.
type PortPath string

const (
	// PathNAT: the DNAT rule is in place and reached from nat PREROUTING,
	// nothing shadows it, ip_forward is on and the filter table admits the
	// translated packets (Docker's ACCEPT, or a FORWARD policy of ACCEPT).
	PathNAT PortPath = "nat"
	// PathProxyOnly: the NAT path is broken before DNAT (chain, jump or
	// DNAT rule missing) but a docker-proxy listens on the host address
	// and port: the port answers, the container sees the bridge gateway
	// instead of the client, and it stops answering when the proxy goes.
	PathProxyOnly PortPath = "proxy-only"
	// PathBroken: connections from other machines do not reach the
	// container.
	PathBroken PortPath = "broken"
	// PathLocalOnly: the port is bound to a loopback address; other
	// machines cannot reach it by design, so a path from outside does not
	// apply.
	PathLocalOnly PortPath = "local-only"
	// PathUnknown: the rules cannot be judged (Docker's layout not
	// modelled, no usable dump, IPv6 NAT not inspected).
	PathUnknown PortPath = "unknown"
)

// PortReport is one published port and the path it takes today. The JSON
// field names are part of iptscope.doctor/v1 and stable.
type PortReport struct {
	// HostIP is the address the port is bound to as Docker reports it
	// ("0.0.0.0", "127.0.0.1", "::"); HostPort and Proto the host side.
	HostIP   string `json:"host_ip"`
	HostPort int    `json:"host_port"`
	Proto    string `json:"proto"`
	// Container, ContainerIP and ContainerPort are where Docker sends it;
	// Network is the network of that endpoint. ContainerIP and Network
	// are "" when the container has no endpoint on a bridge network.
	Container     string   `json:"container"`
	ContainerIP   string   `json:"container_ip"`
	ContainerPort int      `json:"container_port"`
	Network       string   `json:"network"`
	Path          PortPath `json:"path"`
	// Reason says in words why the path is what it is.
	Reason string `json:"reason"`
	// AlsoIPv6 is true when the same port is also published on "::"
	// (docker-proxy serves that binding alone for containers without
	// IPv6; it is folded into this row).
	AlsoIPv6 bool `json:"also_ipv6,omitempty"`
}

// HostAddr renders the host side: "0.0.0.0:8080/tcp", "[::]:8080/tcp".
func (p PortReport) HostAddr() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("%s:%d/%s", ip, p.HostPort, p.Proto)
}

// Ports returns, for every published port of every running container, the
// path a connection from another machine takes today (see PortPath), in
// container-name then host-port order. It is pure and never guesses: when
// the rules cannot be judged the path is PathUnknown with the reason.
//
// The judgement follows a packet from another machine:
//
//	raw/mangle ... nat PREROUTING -> DOCKER (DNAT to container)
//	     |                     \ no jump / chain / DNAT: packet stays for the host
//	     |                       -> INPUT -> docker-proxy if one listens (proxy-only)
//	routing: ip_forward=1 needed
//	filter FORWARD -> [DOCKER-USER] -> DOCKER-FORWARD -> DOCKER-BRIDGE -> DOCKER (ACCEPT)
//	      (20.10-27: FORWARD -o BR -j DOCKER -> ACCEPT)          else FORWARD policy
//
// Once DNAT has rewritten the destination, docker-proxy cannot help: a
// forwarding problem after DNAT is PathBroken even with userland-proxy on
// (real captures: ip-forward-off and stale-dnat with the proxy on).
func Ports(s *snapshot.Snapshot) []PortReport { return portsOf(NewEnv(s)) }

// portsOf is Ports on an environment whose analyses the checks share.
func portsOf(env *Env) []PortReport {
	s := env.S
	if s == nil || s.Docker == nil {
		return nil
	}
	a, ok := env.v4()
	ok = ok && dockerElsewhere(s) == ""
	var why string
	if !ok {
		why = unjudgedReason(env)
	}
	unserved := proxyUnservedSet(env)
	// Containers with IPv6 NAT rules of their own (Docker's IPv6
	// networks): their "::" bindings get a row judged on the ip6tables
	// rules. Other containers' "::" bindings are served by docker-proxy
	// alone and folded into the IPv4 row.
	a6, ok6 := env.analysis(snapshot.FamilyIPv6)
	v6NAT := map[string]bool{}
	if ok6 {
		for _, er := range a6.exp.RulesOf(parse.TableNAT, ChainDocker) {
			if er.Kind == KindDNAT {
				v6NAT[er.Container] = true
			}
		}
	}
	var out []PortReport
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if !c.Running {
			continue
		}
		v4 := map[string]bool{}
		for _, pb := range c.Ports {
			if pb.HostPort > 0 && isUnspecified4(pb.HostIP) {
				v4[fmt.Sprintf("%d/%s/%d", pb.HostPort, proto(pb), pb.ContainerPort)] = true
			}
		}
		for _, pb := range c.Ports {
			if pb.HostPort == 0 {
				continue
			}
			key := fmt.Sprintf("%d/%s/%d", pb.HostPort, proto(pb), pb.ContainerPort)
			if pb.HostIP == "::" && v4[key] && !v6NAT[c.Name] {
				continue // folded into the 0.0.0.0 row below
			}
			r := PortReport{HostIP: pb.HostIP, HostPort: pb.HostPort, Proto: proto(pb), Container: c.Name, ContainerPort: pb.ContainerPort}
			if r.HostIP == "" {
				r.HostIP = "0.0.0.0"
			}
			if isUnspecified4(pb.HostIP) && !v6NAT[c.Name] {
				for _, q := range c.Ports {
					if q.HostIP == "::" && fmt.Sprintf("%d/%s/%d", q.HostPort, proto(q), q.ContainerPort) == key {
						r.AlsoIPv6 = true
					}
				}
			}
			pb := pb
			if ha, err := netip.ParseAddr(pb.HostIP); err == nil && ha.Is6() && v6NAT[c.Name] {
				judgePort(env, a6, true, "", c, &pb, &r)
				if r.Path != PathLocalOnly {
					r.Reason = "ip6tables: " + r.Reason
				}
			} else {
				judgePort(env, a, ok, why, c, &pb, &r)
			}
			if unserved[unservedKey(c.Name, proto(pb), pb.HostPort, pb.ContainerPort)] {
				// The path from other machines is what it is; what the
				// proxy carries (loopback, same-bridge, IPv6) is refused.
				r.Reason += "; its docker-proxy is not running: connections from the host itself are refused (proxy-missing)"
			}
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Container != out[j].Container {
			return out[i].Container < out[j].Container
		}
		if out[i].HostPort != out[j].HostPort {
			return out[i].HostPort < out[j].HostPort
		}
		return out[i].HostIP < out[j].HostIP
	})
	return out
}

func isUnspecified4(ip string) bool { return ip == "" || ip == "0.0.0.0" }

// unjudgedReason says why the rules of a snapshot cannot be judged.
func unjudgedReason(env *Env) string {
	s := env.S
	if why := dockerElsewhere(s); why != "" {
		return "the Docker daemon that answered does not run in this network namespace"
	}
	if s.Docker == nil || s.Docker.Error != "" && len(s.Docker.Networks) == 0 {
		return "Docker's view of its networks is missing"
	}
	if e, err := env.expected(snapshot.FamilyIPv4); err == nil && !e.Modelled && len(e.Notes) > 0 {
		return e.Notes[len(e.Notes)-1]
	}
	if _, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); err != nil {
		return err.Error()
	}
	return "the rules cannot be compared with Docker's layout"
}

// judgePort fills the endpoint, path and reason of one binding.
func judgePort(env *Env, a analysis, ok bool, why string, c *snapshot.Container, pb *snapshot.PortBinding, r *PortReport) {
	if nftJudgePort(env, c, pb, r) {
		return // Docker's nftables backend (nft_ports.go)
	}
	s := env.S
	// The endpoint Docker programs: the one whose DNAT is found, else the
	// first non-internal bridge endpoint with an address.
	var dnat ExpectedRule
	haveDNAT := false
	if ok {
		for _, er := range a.dnatsOf(c.Name, *pb) {
			if !haveDNAT || a.diff.Got(er) != nil && a.diff.Got(dnat) == nil {
				dnat, haveDNAT = er, true
			}
		}
	}
	fam := a.family() // IPv4 when a is not usable
	if haveDNAT {
		r.Network = dnat.Network
		for _, ep := range c.Endpoints {
			if ep.Network == dnat.Network {
				r.ContainerIP = epIP(ep, fam)
			}
		}
	} else {
		for _, ep := range c.Endpoints {
			if ip := epIP(ep, fam); ip != "" && r.ContainerIP == "" {
				r.ContainerIP, r.Network = ip, ep.Network
			}
		}
	}

	addr, err := netip.ParseAddr(r.HostIP)
	switch {
	case err == nil && addr.IsLoopback():
		r.Path = PathLocalOnly
		r.Reason = "bound to " + r.HostIP + ": only the host itself can connect; a path from other machines does not apply"
		return
	case err == nil && addr.Is6() && fam != snapshot.FamilyIPv6:
		// Why: Docker writes no ip6tables rule for a host IPv6 binding of
		// a container without IPv6 (port_mapping "allow proxying host
		// IPv6 traffic"): docker-proxy is its only path, by design. Such a
		// row shows alone when the IPv4 binding has no host port (a routed
		// IPv4 network) or is not on 0.0.0.0.
		if px := proxiesFor(env.proxies(), pb); len(px) > 0 {
			r.Path = PathProxyOnly
			r.Reason = fmt.Sprintf("IPv6 binding of a container without IPv6: docker-proxy pid %d serves it, Docker's only path for it (no ip6tables rule by design)", px[0].PID)
			return
		}
		r.Path, r.Reason = PathUnknown, "IPv6 binding of a container without IPv6: only docker-proxy could serve it, and none listens"
		return
	}
	if !ok {
		r.Path, r.Reason = PathUnknown, "not judged: "+why
		return
	}
	if a.exp.IPTablesOff {
		// No NAT rule by configuration: docker-proxy is the only path.
		if why := linkProblem(s, c, r.Network); why != "" {
			r.Path, r.Reason = PathBroken, why
		} else if px := proxiesFor(env.proxies(), pb); len(px) > 0 {
			r.Path = PathProxyOnly
			r.Reason = fmt.Sprintf("Docker runs with iptables=false: no NAT rules by configuration; docker-proxy pid %d answers on the host port", px[0].PID)
		} else {
			r.Path, r.Reason = PathBroken, "Docker runs with iptables=false (no NAT rules) and no docker-proxy listens on the port"
		}
		return
	}
	if r.ContainerIP == "" || !haveDNAT {
		r.Path, r.Reason = PathUnknown, "the container has no address on a bridge network Docker publishes ports for"
		return
	}
	if dnat.Network != "" && env.gatewayMode(dnat.Network, fam) == "routed" {
		// The daemon's version decides: 20.10 ignores the option.
		r.Path, r.Reason = PathUnknown, "network "+dnat.Network+" uses gateway mode routed: not modelled"
		return
	}

	// 0. The links: no rule helps when the bridge or the container's veth
	// is gone or down (not even docker-proxy reaches the container).
	if why := linkProblem(s, c, r.Network); why != "" {
		r.Path, r.Reason = PathBroken, why
		return
	}

	// 1. Before DNAT: is the DNAT rule reached, and is it the one that
	// matches first?
	got := foundAny(a, dnat)
	if got != nil {
		for _, u := range a.diff.Unexpected {
			if u.Table != parse.TableNAT || u.Chain != ChainDocker || u.Target != parse.TargetDNAT {
				continue
			}
			for _, sh := range shadows(a, u) {
				if sh.Actual == got {
					r.Path = PathBroken
					r.Reason = fmt.Sprintf("a stale DNAT (rule %d of nat DOCKER, to %s) matches first and sends connections there", u.Position, u.NATTo())
					return
				}
			}
		}
	} else if u := overriddenBy(a, dnat); u != nil && a.chainExists(parse.TableNAT, ChainDocker) && jumpFound(a, parse.TableNAT, parse.ChainPrerouting, ChainDocker) {
		// Docker's DNAT is gone and another one takes the port: the
		// packet is translated there and never reaches docker-proxy.
		r.Path = PathBroken
		r.Reason = fmt.Sprintf("its DNAT rule is missing and a stale DNAT (rule %d of nat DOCKER, to %s) takes the port", u.Position, u.NATTo())
		return
	}
	var natBroken string
	switch {
	case !a.chainExists(parse.TableNAT, ChainDocker):
		natBroken = "nat chain DOCKER is missing"
	case !jumpFound(a, parse.TableNAT, parse.ChainPrerouting, ChainDocker):
		natBroken = "nat PREROUTING does not jump to DOCKER"
	case got == nil:
		natBroken = "no DNAT rule for it in nat DOCKER"
	}
	if natBroken != "" {
		if px := proxiesFor(env.proxies(), pb); len(px) > 0 {
			r.Path = PathProxyOnly
			r.Reason = fmt.Sprintf("%s; docker-proxy pid %d answers on the host port instead (clients' addresses are lost)", natBroken, px[0].PID)
			return
		}
		r.Path = PathBroken
		r.Reason = natBroken + " and no docker-proxy listens on the port"
		return
	}

	// 2. After DNAT: the kernel must forward, the filter table admit.
	fwd := "net.ipv4.ip_forward"
	if fam == snapshot.FamilyIPv6 {
		fwd = "net.ipv6.conf.all.forwarding"
	}
	if v, read := sysctl(s, fwd); read && v == "0" {
		r.Path = PathBroken
		r.Reason = "DNAT is in place but " + fwd + "=0: the kernel drops the translated packets (docker-proxy never sees them)"
		return
	}
	if why := forwardProblem(a, dnat); why != "" {
		r.Path, r.Reason = PathBroken, why
		return
	}
	if u := userDropOf(s, a, dnat); u != nil {
		verb := "drops"
		if u.Target == parse.TargetReject {
			verb = "rejects"
		}
		r.Path = PathBroken
		r.Reason = fmt.Sprintf("rule %d of filter DOCKER-USER (%s) %s every connection to it: the administrator's policy (docker-user-drop)", u.Position, u.Spec(), verb)
		return
	}
	r.Path = PathNAT
	r.Reason = fmt.Sprintf("DNAT rule %d of nat DOCKER, forwarded and admitted%s", got.Position, admittedBy(a, dnat))
}

// foundAny returns the dump rule matching er or, for an alternative, any
// of its group.
func foundAny(a analysis, er ExpectedRule) *parse.Rule {
	if got := a.diff.Got(er); got != nil || er.Alt == "" {
		return got
	}
	for _, x := range a.exp.RulesOf(er.Table, er.Chain) {
		if x.Alt == er.Alt && a.diff.Got(x) != nil {
			return a.diff.Got(x)
		}
	}
	return nil
}

// jumpFound reports whether chain from of table t has a rule jumping to
// to (any matches).
func jumpFound(a analysis, t parse.TableName, from, to parse.ChainName) bool {
	c := a.rs.Table(t).Chain(from)
	if c == nil {
		return false
	}
	for _, r := range c.Rules {
		if r.Target == parse.Target(to) {
			return true
		}
	}
	return false
}

// forwardPolicy is filter FORWARD's policy ("ACCEPT" when unknown).
func forwardPolicy(a analysis) string {
	if c := a.rs.Table(parse.TableFilter).Chain(parse.ChainForward); c != nil && c.Policy != "" {
		return string(c.Policy)
	}
	return "ACCEPT"
}

// pathRules are the expected filter rules a connection to the port of
// dnat meets on its way in and out: the jumps that lead to filter DOCKER,
// the network's outward ACCEPT and the port's ACCEPT. Conntrack, intra-
// bridge and DROP rules are left out: published-port traffic does not
// need them.
func pathRules(a analysis, dnat ExpectedRule) (need []*ExpectedRule, drop []*ExpectedRule) {
	// Why an index: a scan of every expected rule per port was quadratic
	// (about 1 s at 1,000 published ports); see index.go.
	return a.pathIdx().pathRulesOf(dnat)
}

// forwardProblem says why the filter table drops the translated packets
// of dnat's port, or "" when it admits them.
func forwardProblem(a analysis, dnat ExpectedRule) string {
	if r, where := catchAllDrop(a, dnat.Bridge); r != nil {
		return fmt.Sprintf("rule %d of filter %s (%s) drops forwarded traffic before Docker's rules", r.Position, where, r.Spec())
	}
	need, drop := pathRules(a, dnat)
	var missing []*ExpectedRule
	for _, er := range need {
		if foundAny(a, *er) == nil {
			missing = append(missing, er)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	policy := forwardPolicy(a)
	first := missing[0]
	if policy != "ACCEPT" {
		return fmt.Sprintf("filter rule missing (%s %s); the FORWARD policy %s drops the translated packets", first.Chain, first.Spec(), policy)
	}
	// Policy ACCEPT: traffic passes unless it meets the network's DROP in
	// filter DOCKER (28+: "! -i BR -o BR -j DROP") without the port's
	// ACCEPT above it.
	for _, d := range drop {
		got := a.diff.Got(*d)
		if got == nil {
			continue
		}
		portAcceptMissing := false
		reached := true
		for _, m := range missing {
			if m.Kind == KindPortAccept {
				portAcceptMissing = true
			} else {
				reached = false
			}
		}
		if portAcceptMissing && reached {
			return fmt.Sprintf("no ACCEPT for the port in filter DOCKER; rule %d (%s) drops it", got.Position, got.Spec())
		}
	}
	return ""
}

// userDropOf returns the first DOCKER-USER rule, reached from FORWARD,
// that drops or rejects every connection to dnat's port: one that
// docker-user-drop reports for the port (userRuleHits) and that does not
// narrow whom it hits (no -s, -i or --ctorigdst). Rules after an
// unconditional RETURN are dead. nil when there is none.
func userDropOf(s *snapshot.Snapshot, a analysis, dnat ExpectedRule) *parse.Rule {
	c := a.rs.Table(parse.TableFilter).Chain(ChainDockerUser)
	if c == nil || dnat.Port == nil || !jumpFound(a, parse.TableFilter, parse.ChainForward, ChainDockerUser) {
		return nil
	}
	bridges := a.bridgeNames()
	for _, r := range c.Rules {
		if r.Target == parse.TargetReturn && len(r.Matches) == 0 && r.Source.IsZero() && r.Destination.IsZero() &&
			r.InIface.IsZero() && r.OutIface.IsZero() && r.Protocol.IsZero() {
			return nil
		}
		if (r.Target != parse.TargetDrop && r.Target != parse.TargetReject) || !r.Source.IsZero() || !r.InIface.IsZero() {
			continue
		}
		narrow := false
		for _, m := range r.Matches {
			for _, o := range m.Options {
				if o.Name == "ctorigdst" {
					narrow = true
				}
			}
		}
		if !narrow && userRuleHits(r, dnat, bridges) {
			return r
		}
	}
	return nil
}

// admittedBy names what admits the port's packets in filter: the port's
// ACCEPT, else (gateway mode nat-unprotected, which has none) the
// network's "! -i BR -o BR -j ACCEPT" in filter DOCKER.
func admittedBy(a analysis, dnat ExpectedRule) string {
	need, _ := pathRules(a, dnat)
	for _, er := range need {
		if er.Kind == KindPortAccept {
			if got := foundAny(a, *er); got != nil {
				return fmt.Sprintf(" (rule %d of filter DOCKER)", got.Position)
			}
		}
	}
	for _, er := range need {
		if er.Kind == KindNetworkPath && er.Chain == ChainDocker && er.Target == parse.TargetAccept {
			if got := foundAny(a, *er); got != nil {
				return fmt.Sprintf(" (rule %d of filter DOCKER, the network's: gateway mode nat-unprotected)", got.Position)
			}
		}
	}
	return " (FORWARD policy ACCEPT: Docker's filter rules are incomplete)"
}

// catchAllDrop finds a DROP or REJECT in filter FORWARD above Docker's
// jumps, or in DOCKER-USER, that matches every forwarded packet of the
// port's connections in one direction (no address, protocol or match):
//
//	client -> container: no -i (the uplink is not known), -o absent or the bridge
//	container -> client: -i the bridge, -o absent (the replies: dropping
//	                     them breaks the port as surely; seen on 20.10
//	                     and 28.5 with "-I FORWARD 1 -i docker0 -j REJECT")
//
// Narrower rules are left to forward-blocked and docker-user-drop: this
// is only what certainly drops the port.
func catchAllDrop(a analysis, bridge string) (*parse.Rule, parse.ChainName) {
	f := a.rs.Table(parse.TableFilter)
	matchesAll := func(r *parse.Rule) bool {
		if r.Target != parse.TargetDrop && r.Target != parse.TargetReject {
			return false
		}
		if !r.Source.IsZero() || !r.Destination.IsZero() || !r.Protocol.IsZero() || !r.Fragment.IsZero() || len(r.Matches) > 0 || len(r.Unparsed) > 0 {
			return false
		}
		if r.InIface.Negated || r.OutIface.Negated {
			return false
		}
		in, out := r.InIface.Value, r.OutIface.Value
		switch {
		case in == "": // inbound packets
			return out == "" || ifaceMatches(out, bridge)
		case ifaceMatches(in, bridge): // replies
			return out == ""
		}
		return false
	}
	if c := f.Chain(parse.ChainForward); c != nil {
		for _, r := range c.Rules {
			if r.JumpsToChain() && strings.HasPrefix(string(r.Target), "DOCKER") {
				break
			}
			if matchesAll(r) {
				return r, parse.ChainForward
			}
		}
	}
	if c := f.Chain(ChainDockerUser); c != nil {
		for _, r := range c.Rules {
			if matchesAll(r) {
				return r, ChainDockerUser
			}
		}
	}
	return nil, ""
}

// proxiesFor returns the docker-proxy processes listening for a binding
// (proxyListensOn).
func proxiesFor(px *proxyIndex, pb *snapshot.PortBinding) []snapshot.Proxy {
	var out []snapshot.Proxy
	for _, x := range px.onPort(pb) {
		if proxyListensOn(x, pb) {
			out = append(out, *x)
		}
	}
	return out
}

// proxyOnPort reports whether docker-proxy x serves the binding's protocol
// and host port (a range proxy, -host-port-end, serves each of its ports).
// Pointers: callers test every proxy against every binding.
func proxyOnPort(x *snapshot.Proxy, pb *snapshot.PortBinding) bool {
	return (x.HostPort == pb.HostPort || x.HostPort < pb.HostPort && pb.HostPort <= x.HostPortEnd) && x.Proto == proto(*pb)
}

// proxyListensOn reports whether docker-proxy x listens for the binding:
// its protocol and port, on its host address or the wildcard of its
// family.
func proxyListensOn(x *snapshot.Proxy, pb *snapshot.PortBinding) bool {
	if !proxyOnPort(x, pb) {
		return false
	}
	want := pb.HostIP
	if want == "" {
		want = "0.0.0.0"
	}
	wa, _ := netip.ParseAddr(want)
	xa, err := netip.ParseAddr(x.HostIP)
	return err == nil && (xa == wa || xa.IsUnspecified() && xa.Is4() == wa.Is4())
}
