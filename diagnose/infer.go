package diagnose

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Infer builds a best-effort Docker view for a snapshot whose Docker API
// could not be read (s.Docker nil or with Error), from what the host
// itself shows. It returns nil and the reason when there is nothing to
// infer from. The view has Inferred set and keeps the API's Error, so
// docker-unreachable still reports and checks that need a complete view
// (dnat-stale, bridge-down) stay silent.
//
// What is inferred, and from what:
//
//	layout     filter DOCKER-INTERNAL => 29; DOCKER-FORWARD => 28 (28.2+ unless
//	           DOCKER-USER still ends in RETURN); another Docker chain => classic
//	networks   bridges named docker0 or br-*, or named by Docker's rules; the
//	           subnet from the bridge's IPv4 address. Internal when the
//	           isolation rules say so, external when a MASQUERADE, nat RETURN,
//	           "-o BR -j DOCKER" rule or a published port shows it; a bridge
//	           with neither is left out (its rules cannot be judged).
//	           Masquerade on when its MASQUERADE or (proxy on) its nat
//	           "-i BR -j RETURN" is there; icc off when "-i BR -o BR -j DROP" is.
//	ports      docker-proxy arguments (proto, host address and port,
//	           container address and port), and DNAT rules in nat DOCKER
//	containers one per container address: those of the ports, and the
//	           neighbours of a bridge that has a veth attached
//
// Why so careful: a false alarm is as bad as a missed problem, and the
// view misses whatever left no trace (a network whose rules are all gone,
// a container whose neighbour entry expired). Every guess errs towards
// expecting less.
func Infer(s *snapshot.Snapshot) (*snapshot.Docker, string) {
	if s == nil {
		return nil, "no snapshot"
	}
	d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
	if err != nil {
		return nil, err.Error()
	}
	rs := d.Ruleset
	nat := rs.Table(parse.TableNAT)
	version, why := layoutVersion(rs)
	if version == "" {
		return nil, "no Docker chain in the " + d.Backend + " IPv4 rules: " + why
	}
	if !linksRead(s) {
		return nil, "the namespace's links were not read"
	}

	dk := &snapshot.Docker{Version: version + " (inferred from the rule layout)", Inferred: true, Networks: []snapshot.Network{}, Containers: []snapshot.Container{}}
	if s.Docker != nil {
		dk.Host, dk.Error = s.Docker.Host, s.Docker.Error
	}
	if dk.Error == "" {
		dk.Error = "the snapshot has no Docker section"
	}
	all := allRules(rs)

	// Bridges Docker's rules name.
	named := map[string]bool{}
	for _, r := range all {
		if !dockerRule(r) {
			continue
		}
		for _, ifc := range []parse.Negatable{r.InIface, r.OutIface} {
			if ifc.Value != "" && !strings.HasSuffix(ifc.Value, "+") {
				named[ifc.Value] = true
			}
		}
	}
	type inet struct {
		n      *snapshot.Network
		prefix netip.Prefix
	}
	var nets []inet
	for _, l := range s.Links {
		if l.Kind != "bridge" || !(l.Name == "docker0" || strings.HasPrefix(l.Name, "br-") || named[l.Name]) {
			continue
		}
		var pfx netip.Prefix
		for _, a := range s.Addrs {
			if a.Link != l.Name || a.Family != snapshot.FamilyIPv4 {
				continue
			}
			if p, err := netip.ParsePrefix(a.CIDR); err == nil {
				pfx = p
				break
			}
		}
		if !pfx.IsValid() {
			continue
		}
		name := l.Name
		if name == "docker0" {
			name = "bridge"
		}
		n := &snapshot.Network{ID: "inferred-" + l.Name, Name: name, Driver: "bridge", BridgeName: l.Name,
			Subnets: []string{pfx.Masked().String()}, Gateways: []string{pfx.Addr().String()}, Options: map[string]string{}}
		nets = append(nets, inet{n, pfx.Masked()})
	}
	netOf := func(ip string) *inet {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil
		}
		for i := range nets {
			if nets[i].prefix.Contains(a) {
				return &nets[i]
			}
		}
		return nil
	}

	// Published ports: docker-proxy first, then DNAT rules.
	type key struct {
		cip string
		pb  snapshot.PortBinding
	}
	var bindings []key
	seen := map[key]bool{}
	addBinding := func(k key) {
		if !seen[k] {
			seen[k] = true
			bindings = append(bindings, k)
		}
	}
	for _, p := range s.Proxies {
		if p.ContainerIP == "" || p.HostPort == 0 {
			continue
		}
		addBinding(key{p.ContainerIP, snapshot.PortBinding{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Proto: p.Proto}})
	}
	var dnatBindings []key
	// Why: a DNAT the rules themselves prove stale (another DNAT for the
	// port goes where Docker's ACCEPT does, or it was re-pointed to a port
	// the container's rules do not publish) is not a published port.
	staleRule := map[*parse.Rule]bool{}
	if ri, _ := InferFromRules(rs, snapshot.FamilyIPv4); ri != nil {
		for _, st := range ri.Stale {
			staleRule[st.Rule] = true
		}
	}
	if c := nat.Chain(ChainDocker); c != nil {
		for _, r := range c.Rules {
			if r.Target != parse.TargetDNAT || staleRule[r] {
				continue
			}
			dest, err := parse.ParseNATDest(r.NATTo())
			ports, neg := r.DestPorts()
			if err != nil || neg || len(ports) != 1 || ports[0].From != ports[0].To || dest.PortFrom == 0 {
				continue
			}
			hostIP := "0.0.0.0"
			if r.Destination.Value != "" {
				if r.Destination.Negated {
					continue
				}
				p, err := netip.ParsePrefix(parse.CanonicalAddr(r.Destination.Value))
				if err != nil || !p.IsSingleIP() {
					continue
				}
				hostIP = p.Addr().String()
			}
			pr := r.Proto()
			if pr == "" {
				pr = "tcp"
			}
			dnatBindings = append(dnatBindings, key{dest.IP, snapshot.PortBinding{HostIP: hostIP, HostPort: int(ports[0].From), ContainerPort: int(dest.PortFrom), Proto: pr}})
		}
	}

	// Containers: one per address.
	ctByIP := map[string]*snapshot.Container{}
	var order []string
	addCt := func(ip string) *snapshot.Container {
		if c := ctByIP[ip]; c != nil {
			return c
		}
		in := netOf(ip)
		if in == nil {
			return nil
		}
		c := &snapshot.Container{ID: "inferred-" + ip, Name: "<" + ip + ">", State: "running", Running: true,
			Endpoints: []snapshot.Endpoint{{Network: in.n.Name, NetworkID: in.n.ID, IP: ip, IPPrefixLen: in.prefix.Bits()}}}
		ctByIP[ip] = c
		order = append(order, ip)
		return c
	}
	external := map[string]string{} // bridge -> why it is taken as external
	for _, b := range bindings {
		c := addCt(b.cip)
		if c == nil {
			continue
		}
		if b.pb.HostIP != "::" {
			external[c.Endpoints[0].Network] = "published port"
		}
		c.Ports = append(c.Ports, b.pb)
	}
	attached := map[string]bool{}
	for _, l := range s.Links {
		if l.Kind == "veth" && l.Master != "" && l.Up {
			attached[l.Master] = true
		}
	}
	for _, nb := range s.Neighbors {
		switch nb.State {
		case "FAILED", "INCOMPLETE", "NOARP", "NONE":
			continue
		}
		if !attached[nb.Link] {
			continue
		}
		if in := netOf(nb.IP); in != nil && in.n.BridgeName == nb.Link && nb.IP != in.n.Gateways[0] {
			addCt(nb.IP)
		}
	}

	// Why only for known addresses: a DNAT rule to an address no proxy
	// and no neighbour knows may be stale (restored from a saved ruleset);
	// taking it as a container would expect its filter ACCEPT too.
	for _, b := range dnatBindings {
		if c := ctByIP[b.cip]; c != nil && !seen[b] {
			seen[b] = true
			c.Ports = append(c.Ports, b.pb)
			external[c.Endpoints[0].Network] = "published port"
		}
	}

	// What the rules say about each network.
	for _, in := range nets {
		n, br, sub := in.n, in.n.BridgeName, in.prefix.String()
		internal := false
		for _, r := range all {
			if !dockerRule(r) {
				continue
			}
			spec := r.Spec()
			switch {
			case spec == "! -s "+sub+" -o "+br+" -j DROP" || spec == "! -d "+sub+" -i "+br+" -j DROP":
				internal = true
			case r.Table == parse.TableNAT && r.Chain == parse.ChainPostrouting && (spec == "-s "+sub+" ! -o "+br+" -j MASQUERADE" ||
				strings.HasPrefix(spec, "-s "+sub+" ! -o "+br+" -j SNAT")):
				external[n.Name] = "MASQUERADE"
				n.Options["com.docker.network.bridge.enable_ip_masquerade"] = "true"
			case r.Table == parse.TableNAT && r.Chain == ChainDocker && spec == "-i "+br+" -j RETURN":
				external[n.Name] = "nat RETURN"
				n.Options["com.docker.network.bridge.enable_ip_masquerade"] = "true"
			case r.Table == parse.TableFilter && spec == "-o "+br+" -j DOCKER":
				external[n.Name] = "jump to DOCKER"
			case r.Table == parse.TableFilter && spec == "-i "+br+" -o "+br+" -j DROP":
				n.Options["com.docker.network.bridge.enable_icc"] = "false"
			}
		}
		if internal {
			n.Internal = true
		} else if external[n.Name] == "" {
			continue
		}
		if n.Options["com.docker.network.bridge.enable_ip_masquerade"] == "" {
			n.Options["com.docker.network.bridge.enable_ip_masquerade"] = "false"
		}
		dk.Networks = append(dk.Networks, *n)
	}
	sort.Strings(order)
	for _, ip := range order {
		c := ctByIP[ip]
		if findNetworkByID(dk.Networks, c.Endpoints[0].NetworkID) {
			dk.Containers = append(dk.Containers, *c)
		}
	}
	return dk, ""
}

// layoutVersion infers the Docker version whose layout the rules show:
//
//	filter DOCKER-INTERNAL => 29; DOCKER-FORWARD => 28 (28.2+ unless
//	DOCKER-USER still ends in RETURN); another Docker chain => classic
//
// "" and why when no Docker chain is there.
func layoutVersion(rs *parse.Ruleset) (version, why string) {
	filter, nat := rs.Table(parse.TableFilter), rs.Table(parse.TableNAT)
	// The newest modelled iptables layout whose signature chain is in the
	// dump (layout.go).
	for i := len(layouts) - 1; i >= 0; i-- {
		l := layouts[i]
		if l.Backend != BackendIPTables || !l.Modelled() {
			continue
		}
		for _, c := range l.Signature {
			if filter.Chain(c) == nil {
				continue
			}
			if l.Era == Era28 && endsWithReturn(filter.Chain(ChainDockerUser)) {
				// Why: 28.0.1-28.2.1 end DOCKER-USER with RETURN.
				return "28.2.0", ""
			}
			return l.Sample, ""
		}
	}
	if filter.Chain(ChainDocker) != nil || nat.Chain(ChainDocker) != nil ||
		filter.Chain(ChainDockerUser) != nil || filter.Chain(ChainIsolation1) != nil {
		return layouts[0].Sample, "" // the classic layout has no chain of its own
	}
	// Why: no Docker chain in any table. A wiped ruleset, a daemon run
	// with --iptables=false and Docker 29's nftables backend all look like
	// this; without the API they cannot be told apart.
	return "", "without the API iptscope cannot tell a wiped ruleset from a daemon that does not write iptables rules (--iptables=false, the nftables backend)"
}

// endsWithReturn reports whether chain c holds a bare "-j RETURN".
func endsWithReturn(c *parse.Chain) bool {
	if c == nil {
		return false
	}
	for _, r := range c.Rules {
		if r.Target == parse.TargetReturn && r.Spec() == "-j RETURN" {
			return true
		}
	}
	return false
}

// findNetworkByID reports whether a network of that ID is in nets.
func findNetworkByID(nets []snapshot.Network, id string) bool {
	for _, n := range nets {
		if n.ID == id {
			return true
		}
	}
	return false
}

// allRules returns every rule of a ruleset.
func allRules(rs *parse.Ruleset) []*parse.Rule {
	var out []*parse.Rule
	for _, t := range rs.Tables {
		out = append(out, tableRules(t)...)
	}
	return out
}

// dockerRule reports whether r is in one of Docker's chains or in a
// built-in chain Docker writes to (nat POSTROUTING, filter FORWARD).
func dockerRule(r *parse.Rule) bool {
	return strings.HasPrefix(string(r.Chain), "DOCKER") || r.Chain == parse.ChainForward || r.Chain == parse.ChainPostrouting
}

// withInferredDocker returns s itself when its Docker view is usable, else
// a shallow copy whose Docker view is inferred (see Infer), with a note
// saying what was done; nil view and the reason when nothing could be
// inferred.
func withInferredDocker(s *snapshot.Snapshot) (*snapshot.Snapshot, string) {
	if s.Docker != nil && s.Docker.Error == "" {
		return s, ""
	}
	dk, why := Infer(s)
	if dk == nil {
		return s, "partial: the Docker API could not be read and no Docker view could be inferred: " + why
	}
	c := *s
	c.Docker = dk
	nc := 0
	for _, x := range dk.Containers {
		nc += len(x.Ports)
	}
	return &c, fmt.Sprintf("partial: the Docker API could not be read; Docker's view was inferred from the host: layout %s, %d bridge network(s), %d container address(es), %d published port(s) (from docker-proxy arguments and DNAT rules). Networks and ports that left no trace are not checked, and no rule is called stale",
		EraOf(mustVersion(dk.Version)), len(dk.Networks), len(dk.Containers), nc)
}

func mustVersion(s string) Version {
	v, _ := ParseVersion(s)
	return v
}
