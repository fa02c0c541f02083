package diagnose

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/trace"
)

// One judgement: the path of every published port is the packet-path
// engine's (package trace), the same walk `iptscope trace` shows, so that
// doctor and trace can never disagree. What diagnose adds is words: the
// engine says which rule stopped the connection, this file says it in
// Docker's terms (which of Docker's rules is missing, whose policy drops
// it) from Docker's expected rules.

// portJudgement is the engine's verdict on one published port, in words.
type portJudgement struct {
	path   PortPath
	reason string
	// stop is the rule that stops the connection (broken paths only;
	// zero for a kernel decision or none).
	stop ruleStop
	// dnatTo is where the connection was translated to ("" when it
	// was not).
	dnatTo netip.Addr
	// family is the binding's ("ipv4", "ipv6"), network the network of
	// the endpoint the connection was translated to ("" for none). Why
	// not the whole Subject: 33,000 of them were 4 MB.
	family, network string
}

// subject is the port j judges, of container c.
func (j *portJudgement) subject(c *snapshot.Container, pb *snapshot.PortBinding) Subject {
	return Subject{Family: j.family, Network: j.network, Container: c.Name, Port: portName(pb)}
}

// ruleStop is a rule of a walked chain, by position.
type ruleStop struct {
	table string // "filter", "nat", or an nftables table ("ip docker-bridges"); "" for none
	chain string
	rule  int // 1-based; 0 for the chain's policy
}

// stoppedBy returns, by rule position (0: the policy), the published
// ports of a family whose connection from another machine the engine
// shows stopped in table's chain, in the snapshot's order.
func (e *Env) stoppedBy(family, table, chain string) map[int][]Subject {
	out := map[int][]Subject{}
	s := e.S
	if s == nil || s.Docker == nil {
		return out
	}
	js := e.judgements()
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		for bi := range c.Ports {
			pb := &c.Ports[bi]
			j := js[keyOfBinding(c.Name, *pb)]
			if j == nil || j.path != PathBroken || j.family != family || j.stop.table != table || j.stop.chain != chain {
				continue
			}
			if sub := j.subject(c, pb); !slices.Contains(out[j.stop.rule], sub) {
				out[j.stop.rule] = append(out[j.stop.rule], sub)
			}
		}
	}
	return out
}

// bindingKey is one published port of one container.
type bindingKey struct {
	container string
	hostIP    string // as Docker reports it
	hostPort  int
	proto     string // lower case
	ctrPort   int
}

func keyOfBinding(c string, pb snapshot.PortBinding) bindingKey {
	return bindingKey{c, pb.HostIP, pb.HostPort, strings.ToLower(proto(pb)), pb.ContainerPort}
}

// portJudgements are the engine's verdicts for every published port of
// the snapshot, traced once per Env (the ports table and the checks that
// say which ports a rule stops share them). The traces need nothing of
// the analysis, so they are taken while it is built (startTracing); only
// their words need it (judgements).
type portJudgements struct {
	traceOnce sync.Once
	traced    []tracedPort
	once      sync.Once
	by        map[bindingKey]*portJudgement
}

// startTracing traces the ports in the background (the analysis the
// words need is built meanwhile).
func (e *Env) startTracing() { go e.trace() }

// trace traces the ports, once per Env. Why apart from tracedPorts: the
// background tracer must not read traced, which judgements clears.
func (e *Env) trace() {
	e.paths.traceOnce.Do(func() { e.paths.traced = tracePorts(e) })
}

func (e *Env) tracedPorts() []tracedPort {
	e.trace()
	return e.paths.traced
}

func (e *Env) judgements() map[bindingKey]*portJudgement {
	e.paths.once.Do(func() {
		e.paths.by = judgePorts(e, e.tracedPorts())
		e.paths.traced = nil // the words are all that is kept
	})
	return e.paths.by
}

// judgementOf is the engine's verdict on a binding, or nil when it was
// not traced (not running, no host port).
func (e *Env) judgementOf(container string, pb snapshot.PortBinding) *portJudgement {
	return e.judgements()[keyOfBinding(container, pb)]
}

// tracedPort is what the words of a port's verdict need of its trace,
// read while the trace is at hand (the Result is reused for the next
// port). Why so compact: a 33,000-port host holds 33,000 of them while
// its analysis is built.
type tracedPort struct {
	c    *snapshot.Container
	pb   *snapshot.PortBinding // in c.Ports
	path trace.PortPath
	// dnat is the step that translated the destination in PREROUTING
	// (rule 0: none); final the destination after the walk.
	dnat  stepRef
	final netip.AddrPort
	// admitted is, on a nat path, the step that admitted the translated
	// connection (see admittedIn).
	admitted admission
	// more is the rest, for any other path than nat.
	more *tracedMore
}

// tracedMore is what a verdict other than nat needs of its trace.
type tracedMore struct {
	reason  string // the verdict's
	traced  bool   // false: no trace (local-only, no client)
	verdict trace.Verdict
	reaches trace.Reach
	// deciding is the step that decided a broken or unknown path;
	// replyStop the rule that drops the replies of a delivered one.
	deciding, replyStop *trace.Step
	answeredBy          string
	// viaNATDocker: the walk jumped from nat PREROUTING to DOCKER.
	viaNATDocker bool
}

// stepRef is a rule of a walked chain (rule 0: none).
type stepRef struct {
	rule  int
	table parse.TableName
	chain parse.ChainName
}

// tracePorts traces a connection from another machine to every published
// port (trace.Tracer.ScanPortsParallel) and keeps, of each trace, what
// its words need (tracedPort), in the snapshot's order.
func tracePorts(env *Env) []tracedPort {
	s := env.S
	if s == nil || s.Docker == nil {
		return nil
	}
	byName := make(map[string]*snapshot.Container, len(s.Docker.Containers))
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if _, dup := byName[c.Name]; !dup {
			byName[c.Name] = c
		}
	}
	n := 0
	for _, c := range s.Docker.Containers {
		for _, pb := range c.Ports {
			if c.Running && pb.HostPort > 0 {
				n++ // what ScanPortsParallel traces
			}
		}
	}
	got := make([]tracedPort, 0, n)
	var mu sync.Mutex
	// Why in parallel: at 33,000 ports the traces are most of a doctor
	// run's time, and they are independent.
	trace.New(engineSnapshot(env)).ScanPortsParallel(runtime.GOMAXPROCS(0), func(i int, v trace.PortVerdict) {
		c := byName[v.Container]
		if c == nil {
			return
		}
		for bi := range c.Ports {
			pb := &c.Ports[bi]
			if pb.HostPort != v.HostPort || pb.ContainerPort != v.ContainerPort || pb.HostIP != v.HostIP || !strings.EqualFold(proto(*pb), v.Proto) {
				continue
			}
			tp := tracedPortOf(c, pb, v)
			mu.Lock()
			if len(got) <= i {
				got = append(got, make([]tracedPort, i+1-len(got))...)
			}
			got[i] = tp
			mu.Unlock()
			return
		}
	})
	return got
}

// tracedPortOf reads what the words need of v's trace.
func tracedPortOf(c *snapshot.Container, pb *snapshot.PortBinding, v trace.PortVerdict) tracedPort {
	tp := tracedPort{c: c, pb: pb, path: v.Path}
	tr := v.Trace
	if v.Path != trace.PortNAT || tr == nil {
		tp.more = &tracedMore{reason: v.Reason}
	}
	if tr == nil {
		return tp
	}
	tp.final = netip.AddrPortFrom(tr.Final.Dst, tr.Final.DstPort)
	if st := dnatStepOf(tr); st != nil {
		tp.dnat = stepRef{st.Rule, st.Table, st.Chain}
	}
	if tp.more == nil {
		tp.admitted = admittedIn(tr)
		return tp
	}
	m := tp.more
	m.traced, m.verdict, m.reaches, m.answeredBy = true, tr.Verdict, tr.Reaches, tr.AnsweredBy
	m.replyStop = tr.ReplyStop
	if d := v.Deciding(); d != nil {
		m.deciding = ptrTo(*d)
	}
	m.viaNATDocker = slices.ContainsFunc(tr.Steps, func(st trace.Step) bool {
		return st.Hook == trace.HookPrerouting && st.Table == parse.TableNAT && st.Target == string(ChainDocker)
	})
	return tp
}

func ptrTo[T any](v T) *T { return &v }

// judgePorts puts every traced port's verdict in Docker's terms.
func judgePorts(env *Env, traced []tracedPort) map[bindingKey]*portJudgement {
	out := make(map[bindingKey]*portJudgement, len(traced))
	for i := range traced {
		tp := &traced[i]
		if tp.c == nil {
			continue
		}
		k := keyOfBinding(tp.c.Name, *tp.pb)
		if _, dup := out[k]; dup {
			continue
		}
		j := explainPort(env, tp)
		j.family = snapshot.FamilyIPv4
		if ip, err := netip.ParseAddr(tp.pb.HostIP); err == nil && ip.Is6() && !ip.Is4In6() {
			j.family = snapshot.FamilyIPv6
		}
		for _, ep := range tp.c.Endpoints {
			if j.dnatTo.IsValid() && endpointHas(ep, j.dnatTo) {
				j.network = ep.Network
			}
		}
		out[k] = j
	}
	return out
}

// explainPort puts the engine's verdict on a binding in Docker's terms.
func explainPort(env *Env, tp *tracedPort) *portJudgement {
	c, pb := tp.c, *tp.pb
	j := &portJudgement{path: PortPath(tp.path)}
	dnat := tp.dnat
	if dnat.rule > 0 {
		j.dnatTo = tp.final.Addr()
	}
	if tp.more == nil { // nat
		// Why not Sprintf: it is every published port's reason.
		j.reason = "DNAT rule " + strconv.Itoa(dnat.rule) + " of " + string(dnat.table) + " " + string(dnat.chain) + ", forwarded and admitted" + tp.admitted.String()
		return j
	}
	m := tp.more
	if d := m.deciding; d != nil && d.Table != "" {
		j.stop = ruleStop{string(d.Table), string(d.Chain), d.Rule}
	} else if tp.path == trace.PortBroken && m.replyStop != nil {
		d := m.replyStop
		j.stop = ruleStop{string(d.Table), string(d.Chain), d.Rule}
	}
	switch tp.path {
	case trace.PortLocalOnly:
		host := pb.HostIP
		j.reason = "bound to " + host + ": only the host itself can connect; a path from other machines does not apply"
	case trace.PortUnknown:
		j.reason = "not judged: " + m.reason
		if m.traced && dnat.rule > 0 && translatedElsewhere(c, pb, tp.final) {
			j.reason = fmt.Sprintf("a stale DNAT (rule %d of %s %s, to %s) matches first and sends connections there; where they end is not judged: %s",
				dnat.rule, dnat.table, dnat.chain, tp.final, m.reason)
		}
	case trace.PortNAT:
		// no trace at all: what the engine said
		j.reason = m.reason
	case trace.PortProxyOnly:
		if why := proxyByDesign(env, c, pb); why != "" {
			j.reason = fmt.Sprintf(why, m.answeredBy)
			break
		}
		j.reason = fmt.Sprintf("%s; %s answers on the host port instead (clients' addresses are lost)", natMissing(env, tp), m.answeredBy)
	default: // broken
		j.reason = brokenReason(env, tp)
	}
	return j
}

// dnatStepOf is the step of the trace that translated the destination in
// PREROUTING (nil when none did).
func dnatStepOf(tr *trace.Result) *trace.Step {
	if tr == nil {
		return nil
	}
	for i := range tr.Steps {
		st := &tr.Steps[i]
		if st.Target == string(parse.TargetDNAT) && st.Hook == trace.HookPrerouting && st.Rule > 0 {
			return st
		}
	}
	return nil
}

// admission is the rule that admitted the translated packets on the
// forward hook (see admittedIn).
type admission struct {
	how  uint8 // admittedNone, admittedDocker, admittedOther, admittedPolicy
	step stepRef
}

const (
	admittedNone = iota
	admittedDocker
	admittedOther
	admittedPolicy
)

// admittedIn finds the rule that admitted the translated packets on the
// forward hook: Docker's own accept when one did, else the first other
// rule, else the policy.
func admittedIn(tr *trace.Result) admission {
	var first, policy *trace.Step
	for i := range tr.Steps {
		st := &tr.Steps[i]
		if st.Hook != trace.HookForward || st.Target != string(parse.TargetAccept) || st.Table == "" {
			continue
		}
		if st.Rule == 0 {
			if policy == nil {
				policy = st
			}
			continue
		}
		if dockerChain(string(st.Table), string(st.Chain)) {
			return admission{admittedDocker, stepRef{st.Rule, st.Table, st.Chain}}
		}
		if first == nil {
			first = st
		}
	}
	switch {
	case first != nil:
		return admission{admittedOther, stepRef{first.Rule, first.Table, first.Chain}}
	case policy != nil:
		return admission{admittedPolicy, stepRef{0, policy.Table, policy.Chain}}
	}
	return admission{}
}

// String names the admitting rule for a reason (" (rule 4 of filter
// DOCKER)"), or "".
func (a admission) String() string {
	switch a.how {
	case admittedDocker:
		return " (rule " + strconv.Itoa(a.step.rule) + " of " + string(a.step.table) + " " + string(a.step.chain) + ")"
	case admittedOther:
		return fmt.Sprintf(" (rule %d of %s %s, not Docker's)", a.step.rule, a.step.table, a.step.chain)
	case admittedPolicy:
		return fmt.Sprintf(" (the policy ACCEPT of %s %s: no rule of Docker's admits it)", a.step.table, a.step.chain)
	}
	return ""
}

// dockerChain reports whether a chain is one Docker writes.
func dockerChain(table, chain string) bool {
	return strings.HasPrefix(chain, "DOCKER") || strings.HasSuffix(table, " "+NftDockerTable)
}

// proxyByDesign is, for a binding docker-proxy serves because Docker
// writes no NAT rule for it at all, the reason with a %s for what answers
// ("" when Docker does write one).
func proxyByDesign(env *Env, c *snapshot.Container, pb snapshot.PortBinding) string {
	fam, v6 := bindingFamily(pb)
	if nftablesBackendOf(env.S) && env.S.NftRead() {
		if a, ok := nftAnalysisOf(env, fam); ok {
			for i := range a.exp.Rules {
				x := &a.exp.Rules[i]
				if x.Kind == KindDNAT && x.Container == c.Name && x.Port != nil && *x.Port == pb {
					return ""
				}
			}
		}
		return "no nftables DNAT is expected for this binding: %s serves it, Docker's only path for it (no nftables rule by design)"
	}
	a, ok := env.analysis(fam)
	if ok && a.exp.IPTablesOff {
		return "Docker runs with iptables=false: no NAT rules by configuration; %s answers on the host port"
	}
	if ok && len(a.dnatsOf(c.Name, pb)) > 0 {
		return ""
	}
	if v6 {
		return "IPv6 binding of a container without IPv6: %s serves it, Docker's only path for it (no ip6tables rule by design)"
	}
	return ""
}

// bindingFamily is the family of a binding's host address (IPv4 for
// "0.0.0.0" and an empty one).
func bindingFamily(pb snapshot.PortBinding) (family string, v6 bool) {
	if ip, err := netip.ParseAddr(pb.HostIP); err == nil && ip.Is6() {
		return snapshot.FamilyIPv6, true
	}
	return snapshot.FamilyIPv4, false
}

// nftAnalysisOf is the comparison of Docker's nftables table of a family.
func nftAnalysisOf(env *Env, family string) (nftAnalysis, bool) {
	for _, a := range nftAnalyses(env) {
		if a.family() == family {
			return a, true
		}
	}
	return nftAnalysis{}, false
}

// natMissing says which of Docker's NAT rules a connection that was not
// translated misses: the chain, the jump to it, or the port's DNAT.
func natMissing(env *Env, tp *tracedPort) string {
	fam, _ := bindingFamily(*tp.pb)
	if nftablesBackendOf(env.S) && env.S.NftRead() {
		if a, ok := nftAnalysisOf(env, fam); ok {
			tbl := string(a.exp.Family) + " " + NftDockerTable
			pre := NftRule{Chain: NftNATPrerouting, Spec: "fib daddr type local counter jump " + NftNATPreAndOutput}
			switch {
			case a.table == nil:
				return "table " + tbl + " is gone"
			case a.chain(NftNATPrerouting) == nil:
				return "chain " + NftNATPrerouting + " of " + tbl + " is missing"
			case len(a.found(pre)) == 0:
				return NftNATPrerouting + " of " + tbl + " does not jump to " + NftNATPreAndOutput
			}
			return "no DNAT rule for it in " + tbl + " " + NftNATPreAndOutput
		}
		return "no DNAT rule for it in Docker's nftables table"
	}
	if a, ok := env.analysis(fam); ok {
		switch {
		case !a.chainExists(parse.TableNAT, ChainDocker):
			return "nat chain DOCKER is missing"
		case !jumpFound(a, parse.TableNAT, parse.ChainPrerouting, ChainDocker):
			return "nat PREROUTING does not jump to DOCKER"
		}
		return "no DNAT rule for it in nat DOCKER"
	}
	// No model of Docker's rules: what the walk shows.
	if tp.more != nil && tp.more.viaNATDocker {
		return "no DNAT rule for it in nat DOCKER"
	}
	return "nat PREROUTING does not reach a DNAT for it"
}

// brokenReason says why a connection from another machine does not get
// an answer, from the step that decided.
func brokenReason(env *Env, tp *tracedPort) string {
	m := tp.more
	if !m.traced {
		return m.reason
	}
	c, pb, dnat := tp.c, *tp.pb, tp.dnat
	d := m.deciding
	if st := m.replyStop; st != nil && m.verdict == trace.Accept {
		verb := "drops"
		if st.Target == string(parse.TargetReject) {
			verb = "rejects"
		}
		where := fmt.Sprintf("rule %d of %s %s (%s)", st.Rule, st.Table, st.Chain, stepSpec(st))
		if st.Rule == 0 {
			where = fmt.Sprintf("the policy of %s %s", st.Table, st.Chain)
		}
		why := where + " " + verb + " the container's replies"
		if st.Chain == ChainDockerUser {
			why += ": the administrator's policy (docker-user-drop)"
		}
		if dnat.rule > 0 {
			return fmt.Sprintf("DNAT rule %d of %s %s, forwarded, but %s", dnat.rule, dnat.table, dnat.chain, why)
		}
		return why
	}
	if dnat.rule > 0 && translatedElsewhere(c, pb, tp.final) {
		// Translated, but not to this container: a DNAT above Docker's
		// (or in its place) for the same port.
		return fmt.Sprintf("a stale DNAT (rule %d of %s %s, to %s) matches first and sends connections there", dnat.rule, dnat.table, dnat.chain, tp.final)
	}
	if d != nil && d.Rule > 0 && d.Table != "" && (d.Target == string(parse.TargetDrop) || d.Target == string(parse.TargetReject)) {
		verb := "drops"
		if d.Target == string(parse.TargetReject) {
			verb = "rejects"
		}
		where := fmt.Sprintf("rule %d of %s %s (%s)", d.Rule, d.Table, d.Chain, stepSpec(d))
		switch {
		case d.Chain == ChainDockerUser:
			return where + " " + verb + " connections to it: the administrator's policy (docker-user-drop)"
		case d.Backend == trace.BackendNftables && !strings.HasSuffix(string(d.Table), " "+NftDockerTable):
			return where + " " + verb + " connections to it: the administrator's policy (docker-user-drop)"
		case dockerChain(string(d.Table), string(d.Chain)) && dnat.rule > 0:
			return where + " " + verb + " it: Docker's accept for the port is missing"
		case dnat.rule > 0:
			return where + " " + verb + " forwarded traffic before Docker's rules admit it"
		}
		return natMissing(env, tp) + "; " + where + " " + verb + " it"
	}
	if dnat.rule == 0 {
		if m.reaches == trace.ReachHost && (m.answeredBy == "" || strings.Contains(m.answeredBy, "placeholder")) {
			return natMissing(env, tp) + " and no docker-proxy listens on the port"
		}
		return natMissing(env, tp) + "; " + m.reason
	}
	return fmt.Sprintf("DNAT rule %d of %s %s, but %s", dnat.rule, dnat.table, dnat.chain, m.reason)
}

// stepSpec is a rule step's text without the "-A CHAIN" of a save line.
func stepSpec(st *trace.Step) string {
	t := st.Text
	if rest, ok := strings.CutPrefix(t, "-A "+string(st.Chain)+" "); ok {
		return rest
	}
	return t
}

// translatedElsewhere reports whether a trace's destination after DNAT
// is not the binding's: another address than c's, or another port.
func translatedElsewhere(c *snapshot.Container, pb snapshot.PortBinding, final netip.AddrPort) bool {
	return !containerHas(c, final.Addr()) || int(final.Port()) != pb.ContainerPort
}

// containerHas reports whether a is one of c's addresses.
func containerHas(c *snapshot.Container, a netip.Addr) bool {
	return slices.ContainsFunc(c.Endpoints, func(ep snapshot.Endpoint) bool { return endpointHas(ep, a) })
}

// endpointHas reports whether a is one of an endpoint's addresses.
func endpointHas(ep snapshot.Endpoint, a netip.Addr) bool {
	for _, s := range []string{ep.IP, ep.IPv6} {
		if s == "" {
			continue
		}
		if x, err := netip.ParseAddr(s); err == nil && x.Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// engineSnapshot is the snapshot the engine traces. A raw dump (or a
// snapshot of rules and Docker's view alone) has no addresses, routes or
// sysctls, so a connection from another machine could not be routed at
// all: the engine gets the network Docker's view implies (each network's
// bridge with its gateway and subnet, an uplink named as the rules name
// it, forwarding on when the snapshot does not say: a raw dump cannot,
// and the report lists the forwarding sysctls as not checked).
func engineSnapshot(env *Env) *snapshot.Snapshot {
	s := env.S
	if s.Docker == nil || len(s.Addrs) > 0 {
		return s
	}
	c := *s
	c.Links, c.Addrs, c.Routes = nil, nil, nil
	c.Sysctls = map[string]snapshot.Sysctl{}
	for k, v := range s.Sysctls {
		c.Sysctls[k] = v
	}
	set := func(name, val string) {
		if _, ok := c.Sysctls[name]; !ok {
			c.Sysctls[name] = snapshot.Sysctl{Value: val, Present: true}
		}
	}
	set("net.ipv4.ip_forward", "1")
	set("net.ipv6.conf.all.forwarding", "1")
	bridges := map[string]bool{}
	for _, n := range s.Docker.Networks {
		if n.BridgeName == "" {
			continue
		}
		bridges[n.BridgeName] = true
		c.Links = append(c.Links, snapshot.Link{Name: n.BridgeName, Kind: "bridge", Up: true, OperState: "UP"})
		for i, sub := range n.Subnets {
			p, err := netip.ParsePrefix(sub)
			if err != nil {
				continue
			}
			gw := p.Masked().Addr().Next()
			if i < len(n.Gateways) {
				if g, err := netip.ParseAddr(n.Gateways[i]); err == nil {
					gw = g
				}
			}
			fam := snapshot.FamilyIPv4
			if p.Addr().Is6() {
				fam = snapshot.FamilyIPv6
			}
			c.Addrs = append(c.Addrs, snapshot.Addr{Link: n.BridgeName, Family: fam, CIDR: netip.PrefixFrom(gw, p.Bits()).String()})
			c.Routes = append(c.Routes, snapshot.Route{Dst: p.Masked().String(), Dev: n.BridgeName, Table: 254})
		}
	}
	up := uplinkName(s, bridges)
	c.Links = append(c.Links, snapshot.Link{Name: "lo", Kind: "device", Up: true}, snapshot.Link{Name: up, Kind: "device", Up: true, OperState: "UP"})
	// Documentation prefixes (RFC 5737, RFC 3849): no real host's.
	c.Addrs = append(c.Addrs,
		snapshot.Addr{Link: "lo", Family: snapshot.FamilyIPv4, CIDR: "127.0.0.1/8"},
		snapshot.Addr{Link: "lo", Family: snapshot.FamilyIPv6, CIDR: "::1/128"},
		snapshot.Addr{Link: up, Family: snapshot.FamilyIPv4, CIDR: "203.0.113.1/24"},
		snapshot.Addr{Link: up, Family: snapshot.FamilyIPv6, CIDR: "2001:db8:113::1/64"})
	c.Routes = append(c.Routes,
		snapshot.Route{Dst: "203.0.113.0/24", Dev: up, Table: 254},
		snapshot.Route{Dst: "2001:db8:113::/64", Dev: up, Table: 254},
		snapshot.Route{Dst: "default", Gateway: "203.0.113.254", Dev: up, Table: 254},
		snapshot.Route{Dst: "default", Gateway: "2001:db8:113::fe", Dev: up, Table: 254})
	return &c
}

// uplinkName is the interface a raw dump's rules name most that is not a
// Docker bridge, a veth or loopback (the host's uplink: "-i eth0"), else
// "eth0".
func uplinkName(s *snapshot.Snapshot, bridges map[string]bool) string {
	count := map[string]int{}
	for _, d := range s.Rules {
		if d.Ruleset == nil {
			continue
		}
		for _, t := range d.Ruleset.Tables {
			for _, ch := range t.Chains {
				for _, r := range ch.Rules {
					for _, n := range []parse.Negatable{r.InIface, r.OutIface} {
						v := n.Value
						if v == "" || v == "lo" || bridges[v] || strings.HasPrefix(v, "veth") || strings.ContainsAny(v, "+*") {
							continue
						}
						count[v]++
					}
				}
			}
		}
	}
	best := "eth0"
	for name, n := range count {
		if n > count[best] || n == count[best] && name < best {
			best = name
		}
	}
	return best
}
