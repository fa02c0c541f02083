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
// the path cannot be told it is PathUnknown with the reason.
//
// The path is the packet-path engine's (package trace, `iptscope trace`):
// a SYN from a neighbour on the host's uplink to the binding, walked
// through every table and hook the kernel would run, the routing decision,
// docker-proxy's sockets and the container's links (port_paths.go). Doctor
// and trace cannot disagree: there is one judgement. The reason says in
// Docker's terms what the walk met: the DNAT and the rule that admitted
// it, or which of Docker's rules is missing, or whose rule stopped it.
//
// A snapshot without addresses (a pasted dump) is traced on the network
// Docker's view implies (engineSnapshot), with forwarding taken as on.
func Ports(s *snapshot.Snapshot) []PortReport { return portsOf(NewEnv(s)) }

// portsOf is Ports on an environment whose analyses the checks share.
func portsOf(env *Env) []PortReport {
	s := env.S
	if s == nil || s.Docker == nil {
		return nil
	}
	// The traces need nothing of the analysis: they start while it is
	// built, when it is not yet. Why not earlier (when the doctor starts):
	// at 100,000 rules the Tracer's indices and the analysis's garbage
	// together lifted the doctor's memory budget (187 -> 258 MiB).
	env.startTracing()
	a, ok := env.v4()
	var why string
	if dockerElsewhere(s) != "" || !ok && !nftJudged(s) {
		if _, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); err != nil || dockerElsewhere(s) != "" {
			why = unjudgedReason(env)
		}
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
	n := 0
	for _, c := range s.Docker.Containers {
		n += len(c.Ports)
	}
	var out []PortReport // nil for none, as the report has it
	if n > 0 {
		out = make([]PortReport, 0, n)
	}
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if !c.Running {
			continue
		}
		// Why a struct and not a text: no formatting per binding (three
		// keys each).
		type bindingOf struct {
			hostPort      int
			proto         string
			containerPort int
		}
		v4 := map[bindingOf]bool{}
		for _, pb := range c.Ports {
			if pb.HostPort > 0 && isUnspecified4(pb.HostIP) {
				v4[bindingOf{pb.HostPort, proto(pb), pb.ContainerPort}] = true
			}
		}
		for _, pb := range c.Ports {
			if pb.HostPort == 0 {
				continue
			}
			key := bindingOf{pb.HostPort, proto(pb), pb.ContainerPort}
			if pb.HostIP == "::" && v4[key] && !v6NAT[c.Name] {
				continue // folded into the 0.0.0.0 row below
			}
			r := PortReport{HostIP: pb.HostIP, HostPort: pb.HostPort, Proto: proto(pb), Container: c.Name, ContainerPort: pb.ContainerPort}
			if r.HostIP == "" {
				r.HostIP = "0.0.0.0"
			}
			if isUnspecified4(pb.HostIP) && !v6NAT[c.Name] {
				for _, q := range c.Ports {
					if q.HostIP == "::" && (bindingOf{q.HostPort, proto(q), q.ContainerPort}) == key {
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
			if unserved[unservedKey{c.Name, proto(pb), pb.HostPort, pb.ContainerPort}] {
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

// judgePort fills the endpoint, path and reason of one binding. The path
// is the packet-path engine's (port_paths.go): diagnose does not judge a
// path of its own.
func judgePort(env *Env, a analysis, ok bool, why string, c *snapshot.Container, pb *snapshot.PortBinding, r *PortReport) {
	j := env.judgementOf(c.Name, *pb)
	fam := a.family() // IPv4 when a is not usable
	// The endpoint: the one the engine's trace was translated to, else
	// the one whose DNAT Docker programs, else the first bridge endpoint
	// with an address.
	if j != nil && j.network != "" {
		r.ContainerIP, r.Network = j.dnatTo.String(), j.network
	}
	if r.ContainerIP == "" && ok {
		for _, er := range a.dnatsOf(c.Name, *pb) {
			for _, ep := range c.Endpoints {
				if ep.Network == er.Network && r.ContainerIP == "" {
					r.ContainerIP, r.Network = epIP(ep, fam), er.Network
				}
			}
		}
	}
	if r.ContainerIP == "" {
		for _, ep := range c.Endpoints {
			if ip := epIP(ep, fam); ip != "" && r.ContainerIP == "" {
				r.ContainerIP, r.Network = ip, ep.Network
			}
		}
	}
	switch {
	case j != nil && j.path == PathLocalOnly:
		r.Path, r.Reason = j.path, j.reason
	case why != "":
		r.Path, r.Reason = PathUnknown, "not judged: "+why
	case j == nil:
		r.Path, r.Reason = PathUnknown, "not judged: the packet-path engine did not trace it"
	default:
		r.Path, r.Reason = j.path, j.reason
	}
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
