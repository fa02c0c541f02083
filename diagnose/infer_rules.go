package diagnose

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// RuleInference is what InferFromRules read from a raw dump: the Docker
// view and, for each fact, the rule it rests on, so that findings on a
// pasted dump can show why iptscope believes a port is published.
type RuleInference struct {
	// Docker is the inferred view (Inferred set, Error saying it came
	// from a raw dump).
	Docker *snapshot.Docker
	// Family of the dump.
	Family string
	// Orphans are published container ports that Docker's filter
	// ACCEPT, hairpin MASQUERADE or raw rules still name but that no
	// DNAT sends traffic to: their DNAT is gone.
	Orphans []OrphanPort
	// Stale are DNATs for a host port that another DNAT maps to a
	// container Docker's other rules name, while nothing names theirs.
	Stale []StaleDNAT
	// Ambiguous are DNATs for a host port that an earlier DNAT already
	// takes, when the dump does not tell which one is Docker's (Live is
	// the earlier one, Admits nil).
	Ambiguous []StaleDNAT
	// Notes say what was inferred and from what.
	Notes []string
}

// OrphanPort is a container port whose DNAT is gone.
type OrphanPort struct {
	ContainerIP   string
	ContainerPort int
	Proto         string
	Network       string
	// From are the rules that show the port is published.
	From []*parse.Rule
}

// StaleDNAT is a DNAT that a raw dump proves stale.
type StaleDNAT struct {
	Rule *parse.Rule
	// Live is the DNAT for the same host port whose destination Docker's
	// other rules name, and Admits one such rule.
	Live, Admits *parse.Rule
}

// endpointKey is a container port as Docker's per-port rules name it.
type endpointKey struct {
	ip    string
	port  int
	proto string
}

// InferFromRules builds a Docker view from a raw iptables dump alone (a
// pasted `iptables-save` or `iptables -L -n -v`), for the rule checks to
// run on. It returns nil and the reason when the rules show no Docker
// layout. What is inferred, and from what (every guess errs towards
// expecting less, as Infer does):
//
//	layout      the chain names (layoutVersion)
//	networks    bridges named in Docker's chains and in nat POSTROUTING's
//	            "-s SUBNET ! -o BRIDGE -j MASQUERADE"; the subnet from that
//	            rule or an --internal network's DROPs. A network whose
//	            subnet no rule shows gets no MASQUERADE expected.
//	containers  one per address that a DNAT sends to, or that filter DOCKER's
//	            "-d IP ! -i BR -o BR ... -j ACCEPT", a hairpin "-s IP -d IP
//	            ... -j MASQUERADE" or 28's raw "-d IP ! -i BR -j DROP" names
//	ports       the DNATs (host address and port, container port)
//
// A DNAT is stale (not taken as a port) when another DNAT for the same
// host port goes to a container port that Docker's other rules name and
// its own destination is named by none of them. A container port that
// those rules name but no DNAT reaches is an orphan: its DNAT is gone.
func InferFromRules(rs *parse.Ruleset, family string) (*RuleInference, string) {
	if rs == nil {
		return nil, "no rules"
	}
	version, why := layoutVersion(rs)
	var guessed string
	if version == "" && rs.Table(parse.TableFilter) == nil && dockerMasquerade(rs) != nil {
		// Why: a pasted `iptables -t nat -L` of a host whose nat DOCKER
		// chain was deleted shows no Docker chain, but Docker's
		// MASQUERADE for its bridge is still there. The nat rules are
		// the same in every layout but for details the checks that run
		// on nat alone do not depend on.
		version = "20.10.0"
		guessed = fmt.Sprintf("no Docker chain in the nat table, but Docker's MASQUERADE for its bridge (rule %d of nat POSTROUTING) shows Docker ran here: the layout is a guess", dockerMasquerade(rs).Position)
	}
	if version == "" {
		return nil, "no Docker chain in the rules: " + why
	}
	inf := &RuleInference{Family: family}
	if guessed != "" {
		inf.Notes = append(inf.Notes, guessed)
	}
	dk := &snapshot.Docker{Version: version + " (inferred from the rule layout)", Inferred: true,
		Error: "not in the input: a raw iptables dump has no Docker view", Networks: []snapshot.Network{}, Containers: []snapshot.Container{}}
	inf.Docker = dk
	all := allRules(rs)

	// Networks: bridges and subnets.
	type inet struct {
		n      *snapshot.Network
		prefix netip.Prefix
		facts  []string
	}
	nets := map[string]*inet{}
	var order []string
	netOf := func(br string) *inet {
		if br == "" || strings.HasSuffix(br, "+") || br == "lo" {
			return nil
		}
		if n := nets[br]; n != nil {
			return n
		}
		name := br
		if br == "docker0" {
			name = "bridge"
		}
		n := &inet{n: &snapshot.Network{ID: "inferred-" + br, Name: name, Driver: "bridge", BridgeName: br, Options: map[string]string{}}}
		nets[br] = n
		order = append(order, br)
		return n
	}
	setSubnet := func(br, sub string) {
		n := netOf(br)
		if n == nil || n.prefix.IsValid() {
			return
		}
		p, err := netip.ParsePrefix(parse.CanonicalAddr(sub))
		if err != nil || p.Addr().Is4() != (family == snapshot.FamilyIPv4) || p.IsSingleIP() {
			return
		}
		n.prefix = p.Masked()
	}
	for _, r := range all {
		if !dockerRule(r) {
			continue
		}
		if r.Chain == parse.ChainPostrouting {
			// Only Docker's shapes: another tool's POSTROUTING rules
			// name interfaces that are not Docker's bridges.
			if (r.Target == parse.TargetMasquerade || r.Target == parse.TargetSNAT) && r.OutIface.Negated && r.Source.Value != "" && !r.Source.Negated {
				setSubnet(r.OutIface.Value, r.Source.Value)
			}
			continue
		}
		for _, ifc := range []parse.Negatable{r.InIface, r.OutIface} {
			netOf(ifc.Value)
		}
		if r.Target == parse.TargetDrop && r.OutIface.Value != "" && !r.OutIface.Negated && r.Source.Negated {
			setSubnet(r.OutIface.Value, r.Source.Value) // --internal: ! -s SUBNET -o BR -j DROP
		}
	}

	// Per-port evidence: filter ACCEPTs, hairpin MASQUERADEs, raw DROPs.
	// Sized first: Docker writes about one rule per published port in
	// each of filter DOCKER, raw PREROUTING and nat DOCKER, and the maps
	// grew by doubling (0.3 s and 140 MB allocated at 33,000 ports).
	perPortRules := chainLen(rs.Table(parse.TableFilter).Chain(ChainDocker)) + chainLen(rs.Table(parse.TableRaw).Chain(parse.ChainPrerouting))
	named := make(map[endpointKey][]*parse.Rule, perPortRules/2) // container port -> rules naming it
	ipNamed := make(map[string][]*parse.Rule, perPortRules/2)    // container address -> rules naming it
	bridgeOfIP := make(map[string]string, perPortRules/2)
	hostAddr := func(n parse.Negatable) (string, bool) {
		if n.Value == "" || n.Negated {
			return "", false
		}
		if ip, ok := singleIPv4(n.Value); ok {
			return ip, true
		}
		p, err := netip.ParsePrefix(parse.CanonicalAddr(n.Value))
		if err != nil || !p.IsSingleIP() {
			if a, err := netip.ParseAddr(n.Value); err == nil {
				return a.String(), true
			}
			return "", false
		}
		return p.Addr().String(), true
	}
	singlePort := func(r *parse.Rule) (int, bool) {
		ports, neg := r.DestPorts()
		if neg || len(ports) != 1 || ports[0].From != ports[0].To {
			return 0, false
		}
		return int(ports[0].From), true
	}
	for _, r := range all {
		switch {
		case r.Table == parse.TableFilter && r.Chain == ChainDocker && r.Target == parse.TargetAccept &&
			r.OutIface.Value != "" && !r.OutIface.Negated && r.InIface.Negated:
			ip, ok := hostAddr(r.Destination)
			port, okp := singlePort(r)
			if ok && okp {
				k := endpointKey{ip, port, protoOf(r)}
				named[k] = append(named[k], r)
				ipNamed[ip] = append(ipNamed[ip], r)
				bridgeOfIP[ip] = r.OutIface.Value
			}
		case r.Table == parse.TableNAT && r.Chain == parse.ChainPostrouting && r.Target == parse.TargetMasquerade:
			src, ok1 := hostAddr(r.Source)
			dst, ok2 := hostAddr(r.Destination)
			port, okp := singlePort(r)
			if ok1 && ok2 && okp && src == dst {
				k := endpointKey{src, port, protoOf(r)}
				named[k] = append(named[k], r)
				ipNamed[src] = append(ipNamed[src], r)
			}
		case r.Table == parse.TableRaw && r.Chain == parse.ChainPrerouting && r.Target == parse.TargetDrop &&
			r.InIface.Negated && r.InIface.Value != "" && r.InIface.Value != "lo":
			if ip, ok := hostAddr(r.Destination); ok {
				ipNamed[ip] = append(ipNamed[ip], r)
				bridgeOfIP[ip] = r.InIface.Value
			}
		}
	}

	// DNATs: bindings, grouped by host binding.
	type dnat struct {
		r    *parse.Rule
		cip  string
		pb   snapshot.PortBinding
		bind bindKey
	}
	var dnats []dnat
	natDockerLen := chainLen(rs.Table(parse.TableNAT).Chain(ChainDocker))
	dnatBridge := make(map[string]string, natDockerLen) // container address -> "! -i BR" of its DNAT
	if c := rs.Table(parse.TableNAT).Chain(ChainDocker); c != nil {
		dnats = make([]dnat, 0, len(c.Rules))
		for _, r := range c.Rules {
			if r.Target != parse.TargetDNAT {
				continue
			}
			dest, err := parse.ParseNATDest(r.NATTo())
			hport, okp := singlePort(r)
			if err != nil || !okp || dest.PortFrom == 0 || dest.IP == "" {
				continue
			}
			hostIP := "0.0.0.0"
			if family == snapshot.FamilyIPv6 {
				hostIP = "::"
			}
			if r.Destination.Value != "" {
				ip, ok := hostAddr(r.Destination)
				if !ok {
					continue
				}
				hostIP = ip
			}
			cip := canonIP(dest.IP)
			pb := snapshot.PortBinding{HostIP: hostIP, HostPort: hport, ContainerPort: int(dest.PortFrom), Proto: protoOf(r)}
			dnats = append(dnats, dnat{r: r, cip: cip, pb: pb, bind: bindKey{hostIP, hport, pb.Proto}})
			if r.InIface.Negated {
				netOf(r.InIface.Value)
				dnatBridge[cip] = r.InIface.Value
			}
		}
	}
	// Why per-port evidence when the filter table is there (or the
	// address's hairpin MASQUERADEs): Docker writes one ACCEPT (and, with
	// the proxy off or before 28, one hairpin MASQUERADE) per published
	// container port, so a DNAT to a port none names is not Docker's when
	// another DNAT for the same host port goes to one that is.
	// portsNamed: the address has per-port rules (filter ACCEPTs, hairpin
	// MASQUERADEs), so its DNATs are judged port by port.
	portsNamed := make(map[string]bool, len(ipNamed))
	for k := range named {
		portsNamed[k.ip] = true
	}
	perPort := func(ip string) bool { return rs.Table(parse.TableFilter) != nil || portsNamed[ip] }
	evidenced := func(d dnat) (*parse.Rule, bool) {
		if rr := named[endpointKey{d.cip, d.pb.ContainerPort, d.pb.Proto}]; len(rr) > 0 {
			return rr[0], true
		}
		if perPort(d.cip) {
			return nil, false
		}
		if rr := ipNamed[d.cip]; len(rr) > 0 {
			return rr[0], true
		}
		return nil, false
	}
	stale := map[*parse.Rule]bool{}
	byBind := make(map[bindKey][]dnat, len(dnats))
	for _, d := range dnats {
		byBind[d.bind] = append(byBind[d.bind], d)
	}
	dnatEnds := make(map[endpointKey]bool, len(dnats))
	for _, d := range dnats {
		dnatEnds[endpointKey{d.cip, d.pb.ContainerPort, d.pb.Proto}] = true
	}
	for _, d := range dnats {
		if _, ok := evidenced(d); ok {
			continue
		}
		// Re-pointed: a DNAT to a port of a container that Docker's rules
		// do not publish, while a port they do publish on that container
		// has no DNAT: what a container re-created with another mapping
		// leaves behind (Docker's DNAT for it gone, the old one kept).
		if perPort(d.cip) {
			if k, ok := orphanOf(named, dnatEnds, d.cip, d.pb.Proto); ok {
				stale[d.r] = true
				inf.Stale = append(inf.Stale, StaleDNAT{Rule: d.r, Admits: named[k][0]})
				continue
			}
		}
		for _, other := range byBind[d.bind] {
			if other.r == d.r {
				continue
			}
			if admits, ok := evidenced(other); ok {
				stale[d.r] = true
				inf.Stale = append(inf.Stale, StaleDNAT{Rule: d.r, Live: other.r, Admits: admits})
				break
			}
		}
	}

	// The same host port DNAT'd twice where the dump cannot tell which is
	// Docker's: the first one wins.
	// In the order of the binding's text ("HOST:PORT/PROTO"); only a
	// binding of two DNATs or more can be ambiguous.
	var multi []bindKey
	for k, ds := range byBind {
		if len(ds) > 1 {
			multi = append(multi, k)
		}
	}
	slices.SortFunc(multi, func(a, b bindKey) int { return strings.Compare(a.String(), b.String()) })
	for _, bind := range multi {
		var live []dnat
		for _, d := range byBind[bind] {
			if !stale[d.r] {
				live = append(live, d)
			}
		}
		for _, d := range live[min(1, len(live)):] {
			if d.cip != live[0].cip || d.pb.ContainerPort != live[0].pb.ContainerPort {
				inf.Ambiguous = append(inf.Ambiguous, StaleDNAT{Rule: d.r, Live: live[0].r})
			}
		}
	}

	// Containers: one per address.
	cts := make(map[string]*snapshot.Container, len(bridgeOfIP)+len(dnatBridge))
	ips := make([]string, 0, len(bridgeOfIP)+len(dnatBridge))
	addCt := func(ip, br string) *snapshot.Container {
		if c := cts[ip]; c != nil {
			return c
		}
		if br == "" {
			// Why: a hairpin MASQUERADE names the address but no bridge;
			// the subnet that holds it does.
			if a, err := netip.ParseAddr(ip); err == nil {
				for _, b := range order {
					if nets[b].prefix.IsValid() && nets[b].prefix.Contains(a) {
						br = b
						break
					}
				}
			}
		}
		n := netOf(br)
		if n == nil {
			return nil
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Is4() != (family == snapshot.FamilyIPv4) {
			return nil
		}
		ep := snapshot.Endpoint{Network: n.n.Name, NetworkID: n.n.ID}
		if family == snapshot.FamilyIPv6 {
			ep.IPv6 = ip
		} else {
			ep.IP = ip
		}
		if n.prefix.IsValid() && family == snapshot.FamilyIPv4 {
			ep.IPPrefixLen = n.prefix.Bits()
		}
		c := &snapshot.Container{ID: "inferred-" + ip, Name: "<" + ip + ">", State: "running", Running: true, Endpoints: []snapshot.Endpoint{ep}}
		cts[ip] = c
		ips = append(ips, ip)
		return c
	}
	for ip, br := range bridgeOfIP {
		addCt(ip, br)
	}
	dnatTo := make(map[endpointKey]bool, len(dnats))
	for _, d := range dnats {
		if stale[d.r] {
			continue
		}
		br := bridgeOfIP[d.cip]
		if br == "" {
			br = dnatBridge[d.cip]
		}
		c := addCt(d.cip, br)
		if c == nil {
			continue
		}
		c.Ports = append(c.Ports, d.pb)
		dnatTo[endpointKey{d.cip, d.pb.ContainerPort, d.pb.Proto}] = true
	}
	keys := make([]endpointKey, 0, len(named))
	for k := range named {
		keys = append(keys, k)
	}
	sortByAddr(keys, func(k endpointKey) string { return k.ip }, func(a, b endpointKey) int {
		return cmp.Or(cmp.Compare(a.port, b.port), cmp.Compare(a.proto, b.proto))
	})
	natDocker := rs.Table(parse.TableNAT).Chain(ChainDocker) != nil
	for _, k := range keys {
		if dnatTo[k] || !natDocker {
			continue
		}
		c := addCt(k.ip, bridgeOfIP[k.ip])
		if c == nil {
			continue
		}
		inf.Orphans = append(inf.Orphans, OrphanPort{ContainerIP: k.ip, ContainerPort: k.port, Proto: k.proto, Network: c.Endpoints[0].Network, From: named[k]})
	}

	// What the rules say about each network (as Infer does). Every rule
	// below names the bridge with -i or -o: Docker's rules are indexed by
	// those names, each Spec rendered once (a scan of every rule per
	// bridge was 13 million renders, 7 s, on a 100,000-rule dump).
	type specRule struct {
		r    *parse.Rule
		spec string
	}
	byIface := map[string][]specRule{}
	for _, r := range all {
		in, out := r.InIface.Value, r.OutIface.Value
		if (in == "" && out == "") || !dockerRule(r) {
			continue
		}
		// No shape below has a destination that is not negated, or a
		// DNAT: the per-port ACCEPTs, raw DROPs and DNATs (nearly every
		// rule of a big host) are not rendered.
		if (r.Destination.Value != "" && !r.Destination.Negated) || r.Target == parse.TargetDNAT {
			continue
		}
		x := specRule{r, r.Spec()}
		if in != "" {
			byIface[in] = append(byIface[in], x)
		}
		if out != "" && out != in {
			byIface[out] = append(byIface[out], x)
		}
	}
	publishing := map[string]bool{} // network IDs with a container that publishes
	for _, c := range cts {
		if len(c.Ports) > 0 {
			publishing[c.Endpoints[0].NetworkID] = true
		}
	}
	for _, br := range order {
		in := nets[br]
		n := in.n
		internal, external := false, false
		sub := ""
		if in.prefix.IsValid() {
			sub = in.prefix.String()
			n.Subnets = []string{sub}
			if family == snapshot.FamilyIPv6 {
				n.EnableIPv6 = true
			}
		}
		masq := false
		// The shapes, rendered once per bridge.
		internalOut, internalIn := "! -s "+sub+" -o "+br+" -j DROP", "! -d "+sub+" -i "+br+" -j DROP"
		masqSpec, snatSpec := "-s "+sub+" ! -o "+br+" -j MASQUERADE", "-s "+sub+" ! -o "+br+" -j SNAT"
		returnSpec, jumpSpec := "-i "+br+" -j RETURN", "-o "+br+" -j DOCKER"
		iccSpec, unprotSpec := "-i "+br+" -o "+br+" -j DROP", "! -i "+br+" -o "+br+" -j ACCEPT"
		icmpSpec, icmp6Spec := "-o "+br+" -p icmp -j ACCEPT", "-o "+br+" -p ipv6-icmp -j ACCEPT"
		for _, x := range byIface[br] {
			r, spec := x.r, x.spec
			switch {
			case sub != "" && (spec == internalOut || spec == internalIn):
				internal = true
			case sub != "" && r.Table == parse.TableNAT && r.Chain == parse.ChainPostrouting && (spec == masqSpec ||
				strings.HasPrefix(spec, snatSpec)):
				external, masq = true, true
			case r.Table == parse.TableNAT && r.Chain == ChainDocker && spec == returnSpec:
				external = true
				masq = masq || sub != ""
			case r.Table == parse.TableFilter && spec == jumpSpec:
				external = true
			case r.Table == parse.TableFilter && spec == iccSpec:
				n.Options["com.docker.network.bridge.enable_icc"] = "false"
			case r.Table == parse.TableFilter && r.Chain == ChainDocker && spec == icmpSpec,
				r.Table == parse.TableFilter && r.Chain == ChainDocker && spec == icmp6Spec:
				// Why: 28+ admits ICMP to a routed network's containers;
				// a NAT'd one gets no such rule (docker-facts §2.3).
				external = true
				n.Options[gwModeOption(family)] = "routed"
			case r.Table == parse.TableFilter && r.Chain == ChainDocker && spec == unprotSpec:
				// 28+: nat-unprotected accepts every port instead of
				// dropping the unpublished ones.
				n.Options[gwModeOption(family)] = "nat-unprotected"
			}
		}
		if publishing[n.ID] {
			external = true
		}
		if internal {
			n.Internal = true
		} else if !external {
			continue
		}
		n.Options["com.docker.network.bridge.enable_ip_masquerade"] = fmt.Sprint(masq)
		dk.Networks = append(dk.Networks, *n)
	}
	// A routed network's published ports have an ACCEPT and no DNAT by
	// design: not orphans.
	routed := map[string]bool{}
	for _, br := range order {
		if n := nets[br].n; n.Options[gwModeOption(family)] == "routed" {
			routed[n.Name] = true
		}
	}
	kept := inf.Orphans[:0]
	for _, o := range inf.Orphans {
		if !routed[o.Network] {
			kept = append(kept, o)
		}
	}
	inf.Orphans = kept
	sortByAddr(ips, func(ip string) string { return ip }, func(a, b string) int { return 0 })
	nports := 0
	// One allocation: appending doubled the list (6 MB at 33,000
	// containers).
	dk.Containers = slices.Grow(dk.Containers, len(ips))
	netIDs := make(map[string]bool, len(dk.Networks))
	for _, n := range dk.Networks {
		netIDs[n.ID] = true
	}
	for _, ip := range ips {
		c := cts[ip]
		if netIDs[c.Endpoints[0].NetworkID] {
			dk.Containers = append(dk.Containers, *c)
			nports += len(c.Ports)
		}
	}
	layout := "layout " + string(EraOf(mustVersion(dk.Version)))
	if rs.Table(parse.TableFilter) == nil {
		layout = "layout unknown (no filter table)"
	}
	inf.Notes = append(inf.Notes, fmt.Sprintf("Docker's view was inferred from the rules alone: %s, %d bridge network(s), %d container address(es), %d published port(s) with their DNAT, %d without",
		layout, len(dk.Networks), len(dk.Containers), nports, len(inf.Orphans)))
	return inf, ""
}

// chainLen is the number of rules of a chain, 0 for none.
func chainLen(c *parse.Chain) int {
	if c == nil {
		return 0
	}
	return len(c.Rules)
}

// bindKey is a host binding of a DNAT: address, port and protocol.
type bindKey struct {
	ip    string
	port  int
	proto string
}

// String is the binding as "HOST:PORT/PROTO".
func (k bindKey) String() string { return k.ip + ":" + strconv.Itoa(k.port) + "/" + k.proto }

// singleIPv4 is the address of an IPv4 "A.B.C.D/32" as its text, without
// parsing it into a prefix and printing it again: an IPv4 address that
// netip parses is in its canonical form already (no leading zeros).
func singleIPv4(s string) (string, bool) {
	i := strings.IndexByte(s, '/')
	if i < 0 || s[i+1:] != "32" {
		return "", false
	}
	a, err := netip.ParseAddr(s[:i])
	if err != nil || !a.Is4() {
		return "", false
	}
	return s[:i], true
}

// gwModeOption is the network option of the family's gateway mode.
func gwModeOption(family string) string {
	if family == snapshot.FamilyIPv6 {
		return "com.docker.network.bridge.gateway_mode_ipv6"
	}
	return "com.docker.network.bridge.gateway_mode_ipv4"
}

// orphanOf returns a port of container address ip that Docker's rules
// name (named) but no DNAT reaches (dnatEnds), the lowest one.
func orphanOf(named map[endpointKey][]*parse.Rule, dnatEnds map[endpointKey]bool, ip, proto string) (endpointKey, bool) {
	var best endpointKey
	found := false
	for k := range named {
		if k.ip == ip && k.proto == proto && !dnatEnds[k] && (!found || k.port < best.port) {
			best, found = k, true
		}
	}
	return best, found
}

// dockerMasquerade returns the first nat POSTROUTING rule of Docker's
// shape for one of its bridges ("-s SUBNET ! -o docker0|br-ID -j
// MASQUERADE"), or nil.
func dockerMasquerade(rs *parse.Ruleset) *parse.Rule {
	c := rs.Table(parse.TableNAT).Chain(parse.ChainPostrouting)
	if c == nil {
		return nil
	}
	for _, r := range c.Rules {
		br := r.OutIface.Value
		if r.Target == parse.TargetMasquerade && r.OutIface.Negated && r.Source.Value != "" && !r.Source.Negated &&
			(br == "docker0" || strings.HasPrefix(br, "br-")) && len(r.Matches) == 0 {
			return r
		}
	}
	return nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// protoOf is a rule's protocol, tcp when it names none.
func protoOf(r *parse.Rule) string {
	if p := r.Proto(); p != "" {
		return p
	}
	return "tcp"
}

// sortByAddr sorts xs by addr(x), numerically (in text order when one
// of two does not parse), then by tie, with each
// address parsed once (parsing in the comparator cost 0.07 s on a
// 100,000-rule dump).
func sortByAddr[T any](xs []T, addr func(T) string, tie func(a, b T) int) {
	type item struct {
		a  netip.Addr
		ok bool
		s  string
		x  T
	}
	items := make([]item, len(xs))
	allOK := true
	for i, x := range xs {
		a, err := netip.ParseAddr(addr(x))
		items[i] = item{a, err == nil, addr(x), x}
		allOK = allOK && err == nil
	}
	order := func(p, q item) int {
		if p.ok && q.ok {
			if c := p.a.Compare(q.a); c != 0 {
				return c
			}
		} else if c := strings.Compare(p.s, q.s); c != 0 {
			return c
		}
		return tie(p.x, q.x)
	}
	// Why not always stable: the stable sort was most of the cost of
	// inferring a 33,000-port host (0.06 s). When every address parses
	// the order is total, and with no two items equal an unstable sort
	// gives the stable one's result; two equal items (or an address
	// that does not parse, where text and numeric order mix) take the
	// stable sort from the start.
	if allOK {
		slices.SortFunc(items, order)
		for i := 1; i < len(items) && allOK; i++ {
			allOK = order(items[i-1], items[i]) != 0
		}
		if !allOK {
			for i, x := range xs {
				items[i].x, items[i].s = x, addr(x)
				items[i].a, _ = netip.ParseAddr(items[i].s)
				items[i].ok = true
			}
		}
	}
	if !allOK {
		slices.SortStableFunc(items, order)
	}
	for i := range items {
		xs[i] = items[i].x
	}
}
