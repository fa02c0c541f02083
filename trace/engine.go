package trace

import (
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// dumpRef is one iptables ruleset the kernel applies (one backend).
type dumpRef struct {
	backend string
	rs      *parse.Ruleset
}

// Tracer traces packets over one snapshot. It holds what every trace
// needs (the addresses and routes, the chains by name, Docker's names) so
// that many traces over one snapshot (a ports table) pay for it once. It
// is safe for concurrent use; the snapshot must not change while it is in
// use.
type Tracer struct {
	snap *snapshot.Snapshot
	net  *netView
	// chains indexes each table's chains by name (Table.Chain is linear).
	chains    map[*parse.Table]map[parse.ChainName]*parse.Chain
	names     map[netip.Addr]string
	endpoints map[netip.Addr]endpointRef
	ruleCount int
	// index holds, per chain, a cheap test per rule that proves it cannot
	// match and the rules by the destination port or address they demand
	// (see chainIndex), made when a chain is entered the second time: a
	// single trace does not pay for it, a ports table does once.
	mu      sync.Mutex
	index   map[*parse.Chain]*chainIndex
	entered map[*parse.Chain]int
	bases   sync.Map // baseKey -> []baseChain
	picks   sync.Map // family -> *picked
	// nftIndex and nftEntered are index and entered for native chains.
	nftIndex   map[*nft.Chain]*chainIndex
	nftEntered map[*nft.Chain]int
	// Docker's networks by subnet and by bridge, the docker-proxies by
	// protocol and host port, the published host ports: looked up once or
	// more per trace, so a ports table costs no walk over all of them.
	netPrefixes []netPrefix
	// netByPrefix is the first subnet of each masked prefix, netBits the
	// subnets' lengths (dockerNetworkOf).
	netByPrefix map[netip.Prefix]int
	netBits     []int
	netByLink   map[string]*snapshot.Network
	// proxyFirst is the first single-port proxy of a protocol and port,
	// proxyNext the next one of the same after each (-1: none): in order.
	proxyFirst  map[protoPort]int32
	proxyNext   []int32
	proxyRanges []int // proxies of a port range
	published   map[protoPort]publishedRef
	// texts caches policyText (*parse.Chain -> string) and endText.
	texts sync.Map
	// built holds index's entries for a lock-free lookup.
	built sync.Map
	// prepared: every chain is indexed (index and nftIndex are no longer
	// written): see prepare.
	prepared atomic.Bool
}

// prepare readies the Tracer for many traces, on several workers (a
// ports table): every chain of every ruleset is indexed up front, and
// the walks read the indices without a lock.
func (t *Tracer) prepare() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.prepared.Load() {
		return
	}
	type job struct {
		c      *parse.Chain
		chains map[parse.ChainName]*parse.Chain
		nc     *nft.Chain
		ix     *chainIndex
	}
	var jobs []job
	for tab, chains := range t.chains {
		for _, c := range tab.Chains {
			if _, ok := t.index[c]; !ok {
				jobs = append(jobs, job{c: c, chains: chains})
			}
		}
	}
	for _, v4 := range []bool{true, false} {
		for _, tab := range t.nftTables(v4) {
			for _, c := range tab.Chains {
				if _, ok := t.nftIndex[c]; !ok {
					jobs = append(jobs, job{nc: c})
				}
			}
		}
	}
	// Why on every core: Docker's three big chains (raw PREROUTING, nat
	// and filter DOCKER) hold a rule per published port each, and the
	// ports table waits for their indices.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), len(jobs))) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(jobs); i = int(next.Add(1) - 1) {
				if j := &jobs[i]; j.c != nil {
					j.ix = newChainIndex(j.c, j.chains)
				} else {
					j.ix = newNftChainIndex(j.nc)
				}
			}
		})
	}
	wg.Wait()
	for _, j := range jobs {
		if j.c != nil {
			t.index[j.c] = j.ix
		} else {
			t.nftIndex[j.nc] = j.ix
		}
	}
	t.prepared.Store(true)
}

// netPrefix is a Docker network's subnet, parsed.
type netPrefix struct {
	p netip.Prefix
	n *snapshot.Network
}

// protoPort keys a host port: a protocol (protoCodeOf) and a port, in
// one word (why: a struct with padding hashed slowly, a tenth of a
// 100,000-rule Tracer's making).
type protoPort uint64

func protoPortOf(proto uint8, port int) protoPort {
	return protoPort(uint64(proto)<<32 | uint64(uint32(port)))
}

// publishedRef is the first running container that publishes a host port.
type publishedRef struct {
	b    *snapshot.PortBinding
	name string
}

// indexDocker fills the network, proxy and published-port indices.
func (t *Tracer) indexDocker() {
	s := t.snap
	t.netByLink = map[string]*snapshot.Network{}
	t.proxyFirst = make(map[protoPort]int32, len(s.Proxies))
	t.proxyNext = make([]int32, len(s.Proxies))
	n := 0
	if s.Docker != nil {
		for _, c := range s.Docker.Containers {
			n += len(c.Ports)
		}
	}
	t.published = make(map[protoPort]publishedRef, n)
	if s.Docker != nil {
		for i := range s.Docker.Networks {
			n := &s.Docker.Networks[i]
			for _, sub := range n.Subnets {
				if p, err := netip.ParsePrefix(sub); err == nil {
					t.netPrefixes = append(t.netPrefixes, netPrefix{p, n})
				}
			}
			if _, dup := t.netByLink[n.BridgeName]; !dup {
				t.netByLink[n.BridgeName] = n
			}
		}
		t.netByPrefix = make(map[netip.Prefix]int, len(t.netPrefixes))
		for i, np := range t.netPrefixes {
			if k := np.p.Masked(); !slices.Contains(t.netBits, k.Bits()) {
				t.netBits = append(t.netBits, k.Bits())
			}
			if _, dup := t.netByPrefix[np.p.Masked()]; !dup {
				t.netByPrefix[np.p.Masked()] = i
			}
		}
		for ci := range s.Docker.Containers {
			c := &s.Docker.Containers[ci]
			if !c.Running {
				continue
			}
			for i := range c.Ports {
				b := &c.Ports[i]
				k := protoPortOf(protoCodeOf(strings.ToLower(b.Proto)), b.HostPort)
				if _, dup := t.published[k]; !dup {
					t.published[k] = publishedRef{b, c.Name}
				}
			}
		}
	}
	// Why backwards: each proxy goes in front of its key's list, so the
	// lists come out in the snapshot's order.
	for i := len(s.Proxies) - 1; i >= 0; i-- {
		px := &s.Proxies[i]
		if px.HostPortEnd > px.HostPort {
			continue
		}
		k := protoPortOf(protoCodeOf(strings.ToLower(px.Proto)), px.HostPort)
		next, ok := t.proxyFirst[k]
		if !ok {
			next = -1
		}
		t.proxyNext[i], t.proxyFirst[k] = next, int32(i)
	}
	for i := range s.Proxies {
		if px := &s.Proxies[i]; px.HostPortEnd > px.HostPort {
			t.proxyRanges = append(t.proxyRanges, i)
		}
	}
}

// indexFor returns c's (of table tab) index, or nil while c was entered
// only once.
func (t *Tracer) indexFor(tab *parse.Table, c *parse.Chain) *chainIndex {
	// Why lock-free looks: a ports table enters a dozen chains per trace
	// on two workers, and the chains are indexed after the first trace
	// (all of them before the first, when prepared).
	if t.prepared.Load() {
		return t.index[c]
	}
	if ix, ok := t.built.Load(c); ok {
		return ix.(*chainIndex)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ix, ok := t.index[c]; ok || t.prepared.Load() {
		return ix
	}
	if t.entered[c]++; t.entered[c] < 2 {
		return nil
	}
	ix := newChainIndex(c, t.chains[tab])
	t.index[c] = ix
	t.built.Store(c, ix)
	return ix
}

// chainIndex sorts a chain's rules by what they demand of the packet, so
// that a walk over 1,000 DNATs (each for one host port) or 1,000 ACCEPTs
// (each for one container address) looks at the few that can match:
// byPort holds the rules that demand one destination port, byDst (of the
// others) those that demand one destination address, rest every other
// rule. A rule left out of a packet's candidates cannot match it; a
// candidate still passes its quick test and the full evaluation.
type chainIndex struct {
	q []quickRule
	// small: the chain is walked rule by rule, each rule's quick test
	// first (no maps below): see smallChain.
	small bool
	// jumps holds each rule's jump or goto target (nil for other rules).
	jumps []*parse.Chain
	// order holds every rule's index once, list after list (see span).
	order  []int32
	byPort map[uint16]span
	byDst  map[netip.Addr]span
	// Of the rules that demand neither: byIn and byOut those that demand
	// one input or output interface, bySrc (by the prefix, srcBits its
	// lengths) those that demand a source prefix. Why: Docker writes a few
	// such rules per network into chains every packet crosses (nat
	// DOCKER's RETURNs, the isolation chains, DOCKER-CT, DOCKER-BRIDGE,
	// POSTROUTING's MASQUERADEs); at 132 networks they were 650 rules per
	// trace, most of the ports table's time at 33,000 ports.
	byIn, byOut map[string]span
	bySrc       map[netip.Prefix]span
	srcBits     []int
	rest        span
}

// newChainIndex indexes c, whose table's chains are chains.
func newChainIndex(c *parse.Chain, chains map[parse.ChainName]*parse.Chain) *chainIndex {
	q := make([]quickRule, len(c.Rules))
	var jumps []*parse.Chain
	for i, r := range c.Rules {
		q[i] = compileQuick(r)
		if r.JumpsToChain() {
			if jumps == nil {
				jumps = make([]*parse.Chain, len(c.Rules))
			}
			jumps[i] = chains[parse.ChainName(r.Target)]
		}
	}
	ix := indexQuick(q)
	ix.jumps = jumps
	return ix
}

// smallChain is the most rules a chain has to be walked rule by rule
// (each rule's quick test first) rather than through its candidates: a
// packet's candidates cost half a dozen map lookups, and nearly every
// chain a trace enters (DOCKER-USER, DOCKER-CT, FORWARD, the isolation
// chains of a few networks) has fewer rules than that costs.
const smallChain = 8

// indexQuick sorts rules by their quick tests (see chainIndex).
func indexQuick(q []quickRule) *chainIndex {
	if len(q) <= smallChain {
		return &chainIndex{q: q, small: true}
	}
	onePort := func(q *quickRule) bool { return q.hasPorts && q.portLo == q.portHi }
	oneDst := func(q *quickRule) bool { return q.dst.single() && !q.dst.negated }
	np, nd := 0, 0
	for i := range q {
		if onePort(&q[i]) {
			np++
		}
		if oneDst(&q[i]) {
			nd++
		}
	}
	// Why sized: a chain of 33,000 DNATs or ACCEPTs grew its maps by
	// rehashing, 8 % of a 33,000-port doctor's CPU.
	ports, dsts := make(map[uint16]int, np), make(map[netip.Addr]int, nd)
	for i := range q {
		if onePort(&q[i]) {
			ports[q[i].portLo]++
		}
		if oneDst(&q[i]) {
			dsts[q[i].dst.prefix().Addr()]++
		}
	}
	// Each rule goes to one list; the lists are windows of one array
	// (why: a map of 33,000 slices was 7 MB and as many allocations).
	const (
		inPort = iota
		inDst
		inIn
		inOut
		inSrc
		inRest
	)
	kind := make([]uint8, len(q))
	ix := &chainIndex{q: q, order: make([]int32, len(q)), byPort: make(map[uint16]span, np), byDst: make(map[netip.Addr]span, nd),
		byIn: map[string]span{}, byOut: map[string]span{}, bySrc: map[netip.Prefix]span{}}
	for i := range ix.q {
		q := &ix.q[i]
		// A rule that demands both goes where it has fewer neighbours:
		// Docker's filter ACCEPTs share the container port (80) and differ
		// in address, its DNATs for 127.0.0.1 share the address.
		switch p, d := onePort(q), oneDst(q); {
		case p && (!d || ports[q.portLo] <= dsts[q.dst.prefix().Addr()]):
			kind[i] = inPort
			ix.byPort[q.portLo] = ix.byPort[q.portLo].grown()
		case d:
			kind[i] = inDst
			a := q.dst.prefix().Addr()
			ix.byDst[a] = ix.byDst[a].grown()
		case q.in.name != "" && !q.in.negated:
			kind[i] = inIn
			ix.byIn[q.in.name] = ix.byIn[q.in.name].grown()
		case q.out.name != "" && !q.out.negated:
			kind[i] = inOut
			ix.byOut[q.out.name] = ix.byOut[q.out.name].grown()
		case q.src.ok && !q.src.negated:
			kind[i] = inSrc
			k := q.src.prefix().Masked()
			if !slices.Contains(ix.srcBits, k.Bits()) {
				ix.srcBits = append(ix.srcBits, k.Bits())
			}
			ix.bySrc[k] = ix.bySrc[k].grown()
		default:
			kind[i] = inRest
			ix.rest = ix.rest.grown()
		}
	}
	// Each list's window, then its rules in order.
	at := int32(0)
	ix.byPort, at = placed(ix.byPort, at)
	ix.byDst, at = placed(ix.byDst, at)
	ix.byIn, at = placed(ix.byIn, at)
	ix.byOut, at = placed(ix.byOut, at)
	ix.bySrc, at = placed(ix.bySrc, at)
	ix.rest = span{lo: at}
	for i := range ix.q {
		q := &ix.q[i]
		switch kind[i] {
		case inPort:
			ix.byPort[q.portLo] = ix.byPort[q.portLo].put(ix.order, i)
		case inDst:
			a := q.dst.prefix().Addr()
			ix.byDst[a] = ix.byDst[a].put(ix.order, i)
		case inIn:
			ix.byIn[q.in.name] = ix.byIn[q.in.name].put(ix.order, i)
		case inOut:
			ix.byOut[q.out.name] = ix.byOut[q.out.name].put(ix.order, i)
		case inSrc:
			k := q.src.prefix().Masked()
			ix.bySrc[k] = ix.bySrc[k].put(ix.order, i)
		default:
			ix.rest = ix.rest.put(ix.order, i)
		}
	}
	return ix
}

// span is a window of a chainIndex's order: n rules from lo.
type span struct{ lo, n int32 }

// grown is s counting one more rule (while the rules are counted).
func (s span) grown() span { s.n++; return s }

// put writes rule i as s's next rule (while the rules are placed: n
// counts those placed so far).
func (s span) put(order []int32, i int) span {
	order[s.lo+s.n] = int32(i)
	s.n++
	return s
}

// placed gives each counted span of m its window from at on (n back to
// 0, for put) and returns where the next window starts.
func placed[K comparable](m map[K]span, at int32) (map[K]span, int32) {
	for k, s := range m {
		m[k] = span{lo: at}
		at += s.n
	}
	return m, at
}

// list is the rules of s, in order.
func (ix *chainIndex) list(s span) []int32 { return ix.order[s.lo : s.lo+s.n] }

// candidates are the indexes (ascending, from from on) of the rules that
// may match pk.
func (ix *chainIndex) candidates(pk *pkt, from int) []int32 {
	lists := make([][]int32, 0, 6)
	add := func(l []int32) {
		if l = after(l, from); len(l) > 0 {
			lists = append(lists, l)
		}
	}
	add(ix.list(ix.byPort[pk.dport]))
	add(ix.list(ix.byDst[pk.dst]))
	if pk.in != "" {
		add(ix.list(ix.byIn[pk.in]))
	}
	if pk.out != "" {
		add(ix.list(ix.byOut[pk.out]))
	}
	for _, bits := range ix.srcBits {
		if p, err := pk.src.Prefix(bits); err == nil {
			add(ix.list(ix.bySrc[p]))
		}
	}
	add(ix.list(ix.rest))
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0] // one list alone needs no merge (the caller only reads it)
	}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]int32, 0, n)
	for {
		m, at := int32(math.MaxInt32), -1
		for i, l := range lists {
			if len(l) > 0 && l[0] < m {
				m, at = l[0], i
			}
		}
		if at < 0 {
			return out
		}
		out = append(out, m)
		lists[at] = lists[at][1:]
	}
}

// after is the part of the ascending list l from from on.
func after(l []int32, from int) []int32 {
	i, _ := slices.BinarySearch(l, int32(from))
	return l[i:]
}

// quickRule is what a rule demands of the protocol and destination port,
// read once: a walk over 1,000 DNATs rejects 999 without evaluating them.
// It only ever proves a mismatch; a rule it passes is evaluated in full.
//
// Why so compact (96 bytes): a Tracer holds one per rule of every chain
// it indexes, 100,000 on a host of 33,000 published ports.
type quickRule struct {
	in, out        quickIface
	src, dst       quickAddr
	portLo, portHi uint16
	proto          uint8 // protoAny when any (or negated); see protoCodeOf
	hasPorts       bool  // one --dport range (not negated) of a tcp/udp/sctp match
}

// Protocols of a quick test: what the tracer follows, and the rest.
const (
	protoAny = iota
	protoTCP
	protoUDP
	protoOther // any other protocol: never a packet the tracer follows
)

// protoCodeOf is a protocol's code ("" is any).
func protoCodeOf(p string) uint8 {
	switch p {
	case "":
		return protoAny
	case "tcp":
		return protoTCP
	case "udp":
		return protoUDP
	}
	return protoOther
}

// quickIface is -i or -o read once: an exact name (a "+" wildcard is left
// to the full evaluation). Why: Docker writes a few rules per network into
// chains every packet crosses (isolation, DOCKER-FORWARD, DOCKER-CT); with
// 132 networks each published port's trace evaluated 500 of them in full.
type quickIface struct {
	name    string
	negated bool
}

func quickIfaceOf(n parse.Negatable) quickIface {
	if n.Value == "" || strings.HasSuffix(n.Value, "+") {
		return quickIface{}
	}
	return quickIface{n.Value, n.Negated}
}

// rejects reports whether the rule certainly does not match a packet on
// interface x ("" when the hook has none: undecided here).
func (f quickIface) rejects(x string) bool {
	return f.name != "" && x != "" && (f.name == x) == f.negated
}

// quickAddr is -s or -d parsed once, as 16 bytes and a length (20 bytes
// where a netip.Prefix takes 32); ok is false when absent or not a number.
type quickAddr struct {
	a       [16]byte // an IPv4 address as IPv4-mapped
	bits    uint8    // of the prefix, as written (IPv4: 0-32)
	v4      bool
	negated bool
	ok      bool
}

func quickAddrOf(n parse.Negatable) quickAddr {
	if n.Value == "" {
		return quickAddr{}
	}
	p, ok := parsePrefix(n.Value)
	if !ok {
		return quickAddr{}
	}
	q := quickAddrOfPrefix(p)
	q.negated = n.Negated
	return q
}

func quickAddrOfPrefix(p netip.Prefix) quickAddr {
	if !p.IsValid() || p.Addr().Zone() != "" {
		return quickAddr{}
	}
	return quickAddr{a: p.Addr().As16(), bits: uint8(p.Bits()), v4: p.Addr().Is4(), ok: true}
}

// prefix is a as a netip.Prefix.
func (a quickAddr) prefix() netip.Prefix {
	if a.v4 {
		return netip.PrefixFrom(netip.AddrFrom16(a.a).Unmap(), int(a.bits))
	}
	return netip.PrefixFrom(netip.AddrFrom16(a.a), int(a.bits))
}

// single reports whether a is one address (a /32 or /128).
func (a quickAddr) single() bool {
	return a.ok && (a.v4 && a.bits == 32 || !a.v4 && a.bits == 128)
}

// contains is netip.Prefix.Contains over the 16 bytes.
func (a quickAddr) contains(x netip.Addr) bool {
	if !a.ok || !x.IsValid() || x.Zone() != "" || a.v4 != x.Is4() {
		return false
	}
	n := int(a.bits)
	if a.v4 {
		n += 96
	}
	b := x.As16()
	for i := 0; n > 0; i++ {
		if n >= 8 {
			if a.a[i] != b[i] {
				return false
			}
			n -= 8
			continue
		}
		m := byte(0xff) << (8 - n)
		return a.a[i]&m == b[i]&m
	}
	return true
}

// match is addrMatch of the address a was read from (a.ok).
func (a quickAddr) match(x netip.Addr) tri {
	if a.v4 != x.Is4() {
		return no.negate(a.negated)
	}
	return triOf(a.contains(x)).negate(a.negated)
}

func (a quickAddr) rejects(x netip.Addr) bool {
	if !a.ok || a.v4 != x.Is4() {
		return false // addrMatch decides the odd cases
	}
	return a.contains(x) == a.negated
}

// compileQuick reads what r demands. It allocates nothing: New runs it
// over every rule.
func compileQuick(r *parse.Rule) quickRule {
	q := quickRule{src: quickAddrOf(r.Source), dst: quickAddrOf(r.Destination), in: quickIfaceOf(r.InIface), out: quickIfaceOf(r.OutIface)}
	if !r.Protocol.Negated {
		q.proto = protoCodeOf(r.Proto())
	}
	for mi := range r.Matches {
		m := &r.Matches[mi]
		if m.Name != "tcp" && m.Name != "udp" && m.Name != "sctp" {
			continue
		}
		if q.proto == protoAny {
			q.proto = protoCodeOf(m.Name) // the match itself fails on another protocol
		}
		for _, o := range m.Options {
			if (o.Name != "dport" && o.Name != "destination-port") || o.Negated || len(o.Values) != 1 || q.hasPorts {
				continue
			}
			from, to, isRange := strings.Cut(o.Values[0], ":")
			lo, err1 := strconv.ParseUint(from, 10, 16)
			hi := lo
			var err2 error
			if isRange {
				hi, err2 = strconv.ParseUint(to, 10, 16)
			}
			if err1 == nil && err2 == nil && lo <= hi {
				q.hasPorts, q.portLo, q.portHi = true, uint16(lo), uint16(hi)
			}
		}
	}
	return q
}

// rejects reports whether the rule certainly does not match pk.
func (q *quickRule) rejects(pk *pkt) bool {
	return q.proto != protoAny && q.proto != protoCodeOf(pk.proto) ||
		q.hasPorts && (pk.dport < q.portLo || pk.dport > q.portHi) ||
		q.dst.rejects(pk.dst) || q.src.rejects(pk.src) || q.in.rejects(pk.in) || q.out.rejects(pk.out)
}

// endpointRef is a container's endpoint, by address.
type endpointRef struct {
	c  *snapshot.Container
	ep *snapshot.Endpoint
}

// New prepares a Tracer for s (nil: an empty snapshot).
func New(s *snapshot.Snapshot) *Tracer {
	if s == nil {
		s = &snapshot.Snapshot{}
	}
	nc := 0
	if s.Docker != nil {
		nc = len(s.Docker.Containers)
	}
	t := &Tracer{snap: s, net: newNetView(s), chains: map[*parse.Table]map[parse.ChainName]*parse.Chain{}, endpoints: make(map[netip.Addr]endpointRef, nc),
		index: map[*parse.Chain]*chainIndex{}, entered: map[*parse.Chain]int{},
		nftIndex: map[*nft.Chain]*chainIndex{}, nftEntered: map[*nft.Chain]int{}}
	for _, d := range s.Rules {
		if d.Ruleset == nil {
			continue
		}
		for _, tab := range d.Ruleset.Tables {
			m := make(map[parse.ChainName]*parse.Chain, len(tab.Chains))
			for _, c := range tab.Chains {
				if _, dup := m[c.Name]; !dup {
					m[c.Name] = c
				}
				t.ruleCount += len(c.Rules)
			}
			t.chains[tab] = m
		}
	}
	if s.Docker != nil {
		for i := range s.Docker.Containers {
			c := &s.Docker.Containers[i]
			for j := range c.Endpoints {
				ep := &c.Endpoints[j]
				for _, a := range []string{ep.IP, ep.IPv6} {
					if a == "" {
						continue // why: ParseAddr's error allocates
					}
					if ip, err := netip.ParseAddr(a); err == nil {
						if _, dup := t.endpoints[ip]; !dup {
							t.endpoints[ip] = endpointRef{c, ep}
						}
					}
				}
			}
		}
	}
	t.indexDocker()
	t.nameAddrs()
	return t
}

// engine is one trace in progress.
type engine struct {
	*Tracer
	proto string
	v4    bool
	dumps []dumpRef
	res   *Result
	// natDone: a NAT binding of this kind (dst, src) is set up; later nat
	// tables on the hook are not consulted (nf_nat_inet_fn).
	natDst, natSrc bool
	// replay: the nat steps are the connection's first packet's.
	budget int
	// nftPending: Docker's native nftables tables also see the packet,
	// and the tracer does not walk them (yet).
	nftPending string
	// noConntrack: nothing tracks connections; nat chains are skipped.
	noConntrack bool
	// lean: the trace records no texts but rules' and its reason (see
	// Result.lean).
	lean bool
	// pick is what pickDumps chose.
	pick *picked
}

// outcome of walking a chain, a table or a hook.
type outcome int

const (
	outContinue outcome = iota // accepted by this table: go on
	outDrop
	outReject
	outUnknown
)

// Bounds of one trace. A real path meets each rule at most once per chain
// entry; the budget (evaluations per rule of the rulesets, plus a floor)
// stops a goto loop iptables itself would refuse to load, and a jump tree
// that fans out exponentially, both reported as unknown.
const (
	evaluationsPerRule = 4
	minEvaluations     = 10000
	maxSteps           = 10000
)

// Trace follows p through the snapshot's rules and returns where it goes.
// It walks the iptables rules of every backend that holds rules of p's
// family (the one Docker uses first: both apply in the kernel). It never
// fails: what it cannot decide makes the verdict Unknown with a reason.
func Trace(s *snapshot.Snapshot, p Packet) *Result { return New(s).Trace(p) }

// Trace follows p (see the package function Trace).
func (t *Tracer) Trace(p Packet) *Result { return t.trace(p, nil) }

// trace is Trace into res when it is not nil: res is reset and its
// slices and map reused (a ports table traces thousands of packets and
// keeps a few words of each).
func (t *Tracer) trace(p Packet, res *Result) *Result {
	p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
	if p.State == "" {
		p.State = StateNew
	}
	if res == nil {
		res = &Result{Names: map[string]string{}, Steps: make([]Step, 0, 32)}
	} else {
		clear(res.Names)
		*res = Result{Names: res.Names, Steps: res.Steps[:0], Notes: res.Notes[:0], Backends: res.Backends[:0], scratch: res.scratch, lean: res.lean}
	}
	res.Packet, res.Final, res.Decider = p, p, -1
	e := &engine{
		Tracer: t,
		proto:  strings.ToLower(p.Proto),
		v4:     p.Dst.Is4(),
		res:    res,
		lean:   res.lean,
	}
	e.pickDumps(p.Family())
	e.budget = minEvaluations + evaluationsPerRule*t.ruleCount
	if why := e.check(p); why != "" {
		e.res.Verdict, e.res.Reaches, e.res.Reason = Unknown, ReachUnknown, why
		return e.res
	}
	e.run(p)
	if e.nftPending != "" && e.res.Verdict == Accept {
		e.res.Verdict, e.res.Reaches, e.res.Container, e.res.AnsweredBy, e.res.Answers = Unknown, ReachUnknown, "", "", nil
		e.res.Reason = e.nftPending
	}
	return e.res
}

// check refuses a packet the tracer cannot follow at all.
func (e *engine) check(p Packet) string {
	switch {
	case e.proto != "tcp" && e.proto != "udp":
		return fmt.Sprintf("protocol %q: the tracer follows tcp and udp packets", p.Proto)
	case !p.Src.IsValid() || !p.Dst.IsValid():
		return "the packet needs a source and a destination address"
	case p.Src.Is4() != p.Dst.Is4():
		return fmt.Sprintf("%s and %s are of different families", p.Src, p.Dst)
	case p.State != StateNew && p.State != StateEstablished:
		return fmt.Sprintf("state %q: use new or established", p.State)
	}
	return ""
}

// picked is what pickDumps chooses for a family (the snapshot alone
// decides it: the Tracer keeps it).
type picked struct {
	dumps      []dumpRef
	backends   []string
	notes      []string
	nftPending string
	// noConntrack: no rule of the family needs conntrack, so the kernel
	// tracks nothing in the namespace and no nat chain is consulted.
	noConntrack bool
	// blind is Tracer.sourceBlind of the dumps, made on first use (only
	// a lean trace asks).
	blindOnce sync.Once
	blind     bool
}

// sourceBlind is Tracer.sourceBlind of the picked dumps.
func (pd *picked) sourceBlind(t *Tracer, v4 bool) bool {
	pd.blindOnce.Do(func() { pd.blind = t.sourceBlind(pd.dumps, v4) })
	return pd.blind
}

// pickDumps chooses the rulesets to walk: the backend PickDump chooses
// first, then every other backend with rules of the family.
func (e *engine) pickDumps(family string) {
	// Why lock-free: every trace of a ports table on every worker asks.
	var pd *picked
	if v, ok := e.picks.Load(family); ok {
		pd = v.(*picked)
	} else {
		v, _ := e.picks.LoadOrStore(family, e.Tracer.pick(family, e.v4))
		pd = v.(*picked)
	}
	e.dumps, e.nftPending, e.noConntrack, e.pick = pd.dumps, pd.nftPending, pd.noConntrack, pd
	e.res.Backends = append(e.res.Backends, pd.backends...)
	e.res.Notes = append(e.res.Notes, pd.notes...)
}

func (t *Tracer) pick(family string, v4 bool) *picked {
	pd := &picked{}
	first := ""
	if d, err := t.snap.PickDump(snapshot.BackendAuto, family); err == nil {
		first = d.Backend
		pd.dumps = append(pd.dumps, dumpRef{d.Backend, d.Ruleset})
	}
	for _, d := range t.snap.Rules {
		if d.Family != family || d.Ruleset == nil || d.Backend == first || len(d.Ruleset.Tables) == 0 {
			continue
		}
		if !hasRules(d.Ruleset) && len(pd.dumps) > 0 {
			continue // an empty other backend changes nothing
		}
		pd.dumps = append(pd.dumps, dumpRef{d.Backend, d.Ruleset})
	}
	for _, d := range pd.dumps {
		pd.backends = append(pd.backends, d.backend)
	}
	if pd.noConntrack = t.conntrackUnused(family, v4); pd.noConntrack {
		pd.notes = append(pd.notes, "no rule needs conntrack (no NAT, no state match): the kernel tracks no connection here, so no nat chain is consulted")
	}
	if len(pd.dumps) > 1 {
		// Why "assumed": among base chains of equal priority the kernel
		// runs the one registered last first (nf_hook_entries_grow), and
		// the snapshot does not say which backend's table came last; the
		// kernel's trace of the testbed's legacy-leftovers (a legacy copy
		// loaded after Docker's iptables-nft rules) ran the legacy nat
		// chain first, which bound the DNAT. A backend switch leaves the
		// old backend's tables registered first, so Docker's runs first.
		pd.notes = append(pd.notes, "both iptables backends hold rules; the kernel applies both. The one Docker uses is walked first on each hook, as after a switch of backends: the kernel runs the table registered last first, which the snapshot does not show, so where both nat tables have a rule for the packet the other one may bind its NAT (the same NAT when the rules are copies)")
	}
	nt := t.nftTables(v4)
	if len(pd.dumps) == 0 && len(nt) == 0 {
		pd.notes = append(pd.notes, "the input has no iptables rules of this family: every hook accepts")
	}
	if len(nt) > 0 {
		pd.backends = append(pd.backends, BackendNftables)
	} else if info := dockerInfo(t.snap); info != nil && strings.HasPrefix(info.FirewallBackend, "nftables") && !t.snap.NftRead() {
		pd.nftPending = "Docker uses its nftables firewall backend and the snapshot does not hold the nftables ruleset (a bundle from before iptscope read it): Docker's tables are not walked"
	}
	return pd
}

// conntrackUnused reports whether no rule of the family makes the kernel
// track connections in the namespace: conntrack's hooks are registered
// only while a rule needs them (nf_ct_netns_get: NAT targets, conntrack
// and state matches, CT, CONNMARK, nft's ct and nat statements), and nat
// chains are consulted only for a tracked packet (nf_nat_inet_fn). Legacy
// iptables' nat table stays registered when a firewall reload flushes
// it, and its chains are then skipped. It is false whenever a rule has
// something this does not know to be free of conntrack, or when the
// snapshot does not hold the nftables ruleset (native tables unknown).
func (t *Tracer) conntrackUnused(family string, v4 bool) bool {
	if !t.snap.NftRead() {
		return false
	}
	for _, d := range t.snap.Rules {
		if d.Family != family || d.Ruleset == nil {
			continue
		}
		for _, tab := range d.Ruleset.Tables {
			for _, c := range tab.Chains {
				for _, r := range c.Rules {
					if needsConntrack(tab, r) {
						return false
					}
				}
			}
		}
	}
	for _, tab := range t.nftTables(v4) {
		for _, c := range tab.Chains {
			for _, r := range c.Rules {
				raw := string(r.Raw)
				for _, k := range []string{`"ct"`, `"ct helper"`, `"dnat"`, `"snat"`, `"masquerade"`, `"redirect"`, `"notrack"`, `"tproxy"`, `"synproxy"`, `"flow"`, `"xt"`, `"ct timeout"`, `"ct expectation"`} {
					if strings.Contains(raw, k) {
						return false
					}
				}
			}
		}
	}
	return true
}

// ctFreeMatches and ctFreeTargets need no conntrack entry.
var (
	ctFreeMatches = map[string]bool{
		"tcp": true, "udp": true, "udplite": true, "sctp": true, "icmp": true, "icmp6": true, "multiport": true,
		"addrtype": true, "iprange": true, "physdev": true, "pkttype": true, "comment": true, "mark": true,
		"set": true, "mac": true, "limit": true, "hashlimit": true, "length": true, "ttl": true, "tos": true,
		"dscp": true, "owner": true, "u32": true, "string": true, "statistic": true, "time": true,
		"recent": true, "devgroup": true, "ecn": true, "ah": true, "esp": true,
	}
	ctFreeTargets = map[parse.Target]bool{
		"": true, parse.TargetAccept: true, parse.TargetDrop: true, parse.TargetReturn: true, "REJECT": true,
		"LOG": true, "NFLOG": true, "TRACE": true, "MARK": true, "CHECKSUM": true, "TCPMSS": true, "TOS": true,
		"DSCP": true, "TTL": true, "HL": true, "CLASSIFY": true, "AUDIT": true,
	}
)

// needsConntrack reports whether rule r of tab may make the kernel track
// connections (anything not known to be free of it does).
func needsConntrack(tab *parse.Table, r *parse.Rule) bool {
	for _, m := range r.Matches {
		if !ctFreeMatches[m.Name] {
			return true
		}
	}
	if len(r.Unparsed) > 0 {
		return true
	}
	if ctFreeTargets[r.Target] {
		return false
	}
	// A jump or goto to a chain of the table.
	return tab.Chain(parse.ChainName(r.Target)) == nil
}

func hasRules(rs *parse.Ruleset) bool {
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if len(c.Rules) > 0 || (c.Builtin && c.Policy != "" && c.Policy != parse.TargetAccept) {
				return true
			}
		}
	}
	return false
}

func dockerInfo(s *snapshot.Snapshot) *snapshot.DockerInfo {
	if s.Docker == nil {
		return nil
	}
	return s.Docker.Info
}

func (e *engine) note(s string) { e.res.Notes = append(e.res.Notes, s) }

// finish ends the trace.
func (e *engine) finish(v Verdict, reach Reach, reason string) {
	e.res.Verdict, e.res.Reaches, e.res.Reason = v, reach, reason
	if v == Drop || v == Reject {
		// A rejected packet gets an RST or an ICMP error, not a service.
		e.res.Answers = ptr(false)
	}
}

// kernelStepText is kernelStep with a text made only when the trace is
// not lean (see Result.lean).
func (e *engine) kernelStepText(target string, decides bool, text func() string) {
	s := ""
	if !e.lean {
		s = text()
	}
	e.kernelStep(target, s, decides)
}

// decide records a kernel step that decides the verdict.
func (e *engine) kernelStep(target, text string, decides bool) {
	if e.lean {
		text = ""
	}
	e.res.Steps = append(e.res.Steps, Step{Target: target, Text: text})
	if decides {
		e.res.Decider = len(e.res.Steps) - 1
	}
}

func (e *engine) run(p Packet) {
	pk := &pkt{
		proto: e.proto, src: p.Src, dst: p.Dst, sport: p.SrcPort, dport: p.DstPort,
		state: p.State, origSrc: p.Src, origDst: p.Dst, origSport: p.SrcPort, origDport: p.DstPort,
		ctmarkKnown: p.State == StateNew,
	}
	defer func() {
		e.res.Final = Packet{Proto: p.Proto, Src: pk.src, SrcPort: pk.sport, Dst: pk.dst, DstPort: pk.dport, InIface: p.InIface, State: p.State}
	}()
	if p.InIface == "" {
		if e.net.known && !e.net.isLocal(p.Src) {
			e.finish(Unknown, ReachUnknown, fmt.Sprintf("no --in interface, but %s is not one of the host's addresses: give the interface the packet arrives on", p.Src))
			return
		}
		e.fromHost(pk)
		return
	}
	in := p.InIface
	if br := e.net.bridgeOf(in); br != "" && br != in {
		e.note(fmt.Sprintf("%s is a port of bridge %s: iptables sees the packet come in on %s", in, br, br))
		in = br
	}
	pk.in = in
	e.inbound(pk)
}

// inbound is a packet that arrives on pk.in.
func (e *engine) inbound(pk *pkt) {
	if !e.net.known {
		e.note("the input has no addresses or routes (a raw dump): the routing decision cannot be made")
	}
	bridged := e.switched(pk)
	if bridged {
		on, known := e.brNetfilter()
		if known && !on {
			e.kernelStep("BRIDGE", fmt.Sprintf("bridge %s switches the frame to %s without iptables (br_netfilter does not pass bridged traffic to iptables)", pk.in, pk.dst), false)
			e.res.Route = &Route{Kind: "bridged", Out: pk.in}
			pk.out = pk.in
			e.deliverOut(pk)
			return
		}
		if !known {
			e.kernelStep("BRIDGE", fmt.Sprintf("bridge %s switches the frame to %s; whether br_netfilter passes it to iptables is not in the snapshot", pk.in, pk.dst), true)
			e.finish(Unknown, ReachUnknown, "the frame is bridged and the snapshot does not say whether br_netfilter is on (net.bridge.bridge-nf-call-iptables)")
			return
		}
		pk.bridged = true
	}
	pk.hook = HookPrerouting
	if e.hook(HookPrerouting, pk, parse.TableRaw, parse.TableMangle, parse.TableNAT) != outContinue {
		return
	}
	// The routing decision (br_netfilter re-routes a bridged packet only
	// when DNAT changed its destination).
	if pk.bridged && pk.dst == pk.origDst {
		e.res.Route = &Route{Kind: "bridged", Out: pk.in, Via: "bridge " + pk.in}
		e.kernelStepText("BRIDGE", false, func() string {
			return fmt.Sprintf("bridge %s switches the frame to %s; br_netfilter passes it to FORWARD", pk.in, e.addrName(pk.dst))
		})
		pk.out = pk.in
		e.forward(pk)
		return
	}
	if !e.net.known {
		e.kernelStep("ROUTE", "routing decision: the input has no addresses or routes", true)
		e.finish(Unknown, ReachUnknown, "the routing decision needs the host's addresses and routes (a bundle from iptscope collect, not a raw dump)")
		return
	}
	if pk.dst.IsLoopback() && pk.in != "lo" {
		if v, ok := e.net.sysctl("net.ipv4.conf." + pk.in + ".route_localnet"); e.v4 && (!ok || v != "1") {
			if !ok {
				e.kernelStep("ROUTE", fmt.Sprintf("routing decision: %s is a loopback address arriving on %s; route_localnet of %s is not in the snapshot", pk.dst, pk.in, pk.in), true)
				e.finish(Unknown, ReachUnknown, "a loopback destination from outside is dropped unless route_localnet is on; the snapshot does not have it")
				return
			}
			e.kernelStep("ROUTE", fmt.Sprintf("routing decision: %s is a loopback address arriving on %s (martian: route_localnet=0): dropped", pk.dst, pk.in), true)
			e.finish(Drop, ReachNowhere, fmt.Sprintf("the kernel drops a packet to %s that arrives on %s (net.ipv4.conf.%s.route_localnet=0)", pk.dst, pk.in, pk.in))
			return
		}
	}
	if e.net.isLocal(pk.dst) {
		e.res.Route = &Route{Kind: "local", Out: "lo", Via: "local address " + pk.dst.String()}
		e.kernelStepText("ROUTE", false, func() string { return fmt.Sprintf("routing decision: %s is local: INPUT", e.addrName(pk.dst)) })
		pk.hook = HookInput
		if e.hook(HookInput, pk, parse.TableMangle, parse.TableFilter, parse.TableSecurity, parse.TableNAT) != outContinue {
			return
		}
		e.deliverLocal(pk)
		return
	}
	r, ok := e.net.lookup(pk.dst)
	if !ok {
		e.kernelStep("ROUTE", fmt.Sprintf("routing decision: no route to %s", pk.dst), true)
		e.res.Route = &Route{Kind: "none"}
		e.finish(Drop, ReachNowhere, fmt.Sprintf("the host has no route to %s", e.addrName(pk.dst)))
		return
	}
	e.res.Route = &Route{Kind: "forward", Out: r.dev, Via: r.text}
	if !pk.bridged && pk.dst != pk.origDst && r.dev == pk.in && r.gw == "" {
		// Why: with br_netfilter, a frame that came in on a bridge and
		// whose DNAT'd destination is on that same bridge is switched, not
		// routed (br_nf_pre_routing_finish's "bridged DNAT"): no
		// ip_forward, and POSTROUTING sees no input interface. A
		// container's connection to a published port of its own bridge
		// takes this path.
		if l, ok := e.net.links[pk.in]; ok && l.Kind == "bridge" {
			if on, known := e.brNetfilter(); on && known {
				pk.bridged = true
			}
		}
	}
	if pk.bridged && r.dev == pk.in {
		e.res.Route.Kind = "bridged"
		if e.hairpinStops(pk, r.dev) {
			return
		}
	} else {
		on, known, name := e.net.forwarding(pk.in, e.v4)
		switch {
		case !known:
			e.kernelStep("ROUTE", fmt.Sprintf("routing decision: %s via %s, but the snapshot does not say whether forwarding is on", pk.dst, r.text), true)
			e.finish(Unknown, ReachUnknown, "forwarding sysctls are not in the snapshot")
			return
		case !on:
			e.kernelStep("ROUTE", fmt.Sprintf("routing decision: %s via %s, but %s=0: the kernel does not forward", pk.dst, r.text, name), true)
			e.finish(Drop, ReachNowhere, fmt.Sprintf("forwarding is off (%s=0): the kernel drops the packet to %s", name, e.addrName(pk.dst)))
			return
		}
	}
	e.kernelStepText("ROUTE", false, func() string { return "routing decision: " + e.addrName(pk.dst) + " via " + r.text + ": FORWARD" })
	pk.out = r.dev
	e.forward(pk)
}

// replyDropped is the rule that drops the reply of a container's
// connection to a container of another network (sn to dn) that was not
// masqueraded, or "": the reply comes back in on the destination's bridge
// addressed to the sender's own address, and the chains before conntrack
// (raw PREROUTING: Docker 28's and 29's per-endpoint DROP of a
// container's address arriving on another interface) see it before the
// connection's NAT is undone.
func (e *engine) replyDropped(pk *pkt, sn, dn *snapshot.Network) string {
	if sn == nil || dn == nil || sn == dn || e.endpoints[pk.src].c == nil {
		return ""
	}
	// Why not lean: the reason quotes the dropping step's text.
	sub := e.replyEngine(&Result{Decider: -1, Names: map[string]string{}}, false)
	r := replyOf(pk, HookPrerouting)
	bcs := sub.baseChains(HookPrerouting, []parse.TableName{parse.TableRaw})
	for i := range bcs {
		if bcs[i].priority >= -200 {
			continue // conntrack's: the NAT is undone from here on
		}
		if sub.walkBase(HookPrerouting, &bcs[i], r, false) == outDrop {
			if d := sub.res.Decider; d >= 0 && d < len(sub.res.Steps) {
				st := sub.res.Steps[d]
				if st.Rule > 0 {
					return fmt.Sprintf("%s %s rule %d (%s)", st.Table, st.Chain, st.Rule, st.Text)
				}
				return fmt.Sprintf("%s %s %s", st.Table, st.Chain, st.Text)
			}
			return "a raw PREROUTING rule"
		}
	}
	return ""
}

// hairpinStops reports whether bridge br stops a bridged frame that goes
// back out of the port it came in on (a container's DNAT to itself): the
// bridge sends it there only when that port's hairpin mode is on, and it
// decides before its FORWARD hook. A routed packet leaves from the
// bridge's own device, where hairpin mode plays no part.
func (e *engine) hairpinStops(pk *pkt, br string) bool {
	dst, src := e.endpointAt(pk.dst), e.endpointAt(pk.origSrc)
	if dst == nil || src == nil || dst.HostVeth == "" || dst.HostVeth != src.HostVeth {
		return false
	}
	name := e.endpoints[pk.dst].c.Name
	l, ok := e.net.links[dst.HostVeth]
	switch {
	case !ok || l.Hairpin == nil:
		e.kernelStep("BRIDGE", fmt.Sprintf("bridge %s would send the frame back out of %s, where it came in; its hairpin mode is not in the snapshot", br, dst.HostVeth), true)
		e.finish(Unknown, ReachUnknown, "the packet goes back to the container it came from (hairpin); the snapshot does not have the port's hairpin mode")
		return true
	case !*l.Hairpin:
		e.kernelStep("BRIDGE", fmt.Sprintf("bridge %s does not send the frame back out of %s, where it came in (hairpin off): dropped", br, dst.HostVeth), true)
		e.finish(Drop, ReachNowhere, fmt.Sprintf("the packet goes back to %s, the container it came from, and hairpin mode is off on %s", name, dst.HostVeth))
		return true
	}
	e.kernelStep("BRIDGE", fmt.Sprintf("bridge %s sends the frame back out of %s (hairpin on)", br, dst.HostVeth), false)
	return false
}

// switched reports whether the packet is switched by the bridge it
// arrives on rather than routed: its destination is on that bridge's
// link and is not one of the host's addresses.
func (e *engine) switched(pk *pkt) bool {
	l, ok := e.net.links[pk.in]
	if !ok || l.Kind != "bridge" || e.net.isLocal(pk.dst) {
		return false
	}
	r, ok := e.net.lookup(pk.dst)
	return ok && r.dev == pk.in && r.gw == ""
}

// brNetfilter reports whether bridged traffic of the family passes
// iptables (net.bridge.bridge-nf-call-iptables; absent: the module is
// not loaded, so it does not).
func (e *engine) brNetfilter() (on, known bool) {
	name := "net.bridge.bridge-nf-call-iptables"
	if !e.v4 {
		name = "net.bridge.bridge-nf-call-ip6tables"
	}
	s, ok := e.snap.Sysctls[name]
	if !ok {
		return false, false
	}
	if !s.Present {
		return false, true
	}
	return strings.TrimSpace(s.Value) == "1", true
}

// forward is FORWARD and POSTROUTING, then the wire.
func (e *engine) forward(pk *pkt) {
	pk.hook = HookForward
	if e.hook(HookForward, pk, parse.TableMangle, parse.TableFilter, parse.TableSecurity) != outContinue {
		return
	}
	pk.hook = HookPostrouting
	if pk.bridged {
		// Why: br_netfilter runs POSTROUTING from the bridge's own
		// post-routing hook with no input device (br_nf_post_routing):
		// `iifname` matches nothing there.
		pk.in = ""
	}
	if e.hook(HookPostrouting, pk, parse.TableMangle, parse.TableNAT) != outContinue {
		return
	}
	e.deliverOut(pk)
}

// fromHost is a packet the host sends itself.
func (e *engine) fromHost(pk *pkt) {
	if !e.net.known {
		e.finish(Unknown, ReachUnknown, "a packet the host sends needs the host's addresses and routes (a bundle from iptscope collect, not a raw dump)")
		return
	}
	pk.hook = HookOutput
	if !e.routeOut(pk) {
		return
	}
	before := pk.dst
	if e.hook(HookOutput, pk, parse.TableRaw, parse.TableMangle, parse.TableNAT) != outContinue {
		return
	}
	if pk.dst != before {
		// Why: after a NAT rewrite in OUTPUT the kernel routes again
		// (ip_route_me_harder).
		if !e.routeOut(pk) {
			return
		}
	}
	if e.hook(HookOutput, pk, parse.TableFilter, parse.TableSecurity) != outContinue {
		return
	}
	pk.hook = HookPostrouting
	if e.hook(HookPostrouting, pk, parse.TableMangle, parse.TableNAT) != outContinue {
		return
	}
	if pk.out != "lo" {
		e.deliverOut(pk)
		return
	}
	// Loopback: the packet comes back in on lo. nat is not consulted
	// again (the connection's NAT is set up).
	pk.in, pk.out = "lo", ""
	pk.hook = HookPrerouting
	e.natDst = true
	if e.hook(HookPrerouting, pk, parse.TableRaw, parse.TableMangle) != outContinue {
		return
	}
	pk.hook = HookInput
	e.natSrc = true
	if e.hook(HookInput, pk, parse.TableMangle, parse.TableFilter, parse.TableSecurity) != outContinue {
		return
	}
	e.deliverLocal(pk)
}

// routeOut is the output route of a packet the host sends.
func (e *engine) routeOut(pk *pkt) bool {
	if e.net.isLocal(pk.dst) {
		pk.out = "lo"
		e.res.Route = &Route{Kind: "local", Out: "lo", Via: "local address " + pk.dst.String()}
		return true
	}
	r, ok := e.net.lookup(pk.dst)
	if !ok {
		e.kernelStep("ROUTE", fmt.Sprintf("output route: no route to %s", pk.dst), true)
		e.res.Route = &Route{Kind: "none"}
		e.finish(Drop, ReachNowhere, fmt.Sprintf("the host has no route to %s", e.addrName(pk.dst)))
		return false
	}
	pk.out = r.dev
	e.res.Route = &Route{Kind: "forward", Out: r.dev, Via: r.text}
	if pk.src.IsLoopback() && e.v4 {
		// Why here: the output route itself fails (__mkroute_output), so
		// a packet whose DNAT in nat OUTPUT sends it out of a bridge is
		// dropped by the re-route, before filter OUTPUT.
		v, ok := e.net.sysctl("net.ipv4.conf." + pk.out + ".route_localnet")
		switch {
		case !ok:
			e.kernelStep("ROUTE", fmt.Sprintf("%s leaves on %s with a loopback source; route_localnet of %s is not in the snapshot", e.addrName(pk.dst), pk.out, pk.out), true)
			e.finish(Unknown, ReachUnknown, "a loopback source may leave the host only with route_localnet on; the snapshot does not have it")
			return false
		case v != "1":
			e.kernelStep("ROUTE", fmt.Sprintf("%s would leave on %s with source %s: martian (route_localnet=0), dropped", e.addrName(pk.dst), pk.out, pk.src), true)
			e.finish(Drop, ReachNowhere, fmt.Sprintf("the kernel does not send a packet from %s out of %s (net.ipv4.conf.%s.route_localnet=0)", pk.src, pk.out, pk.out))
			return false
		}
	}
	return true
}

// deliverLocal is a packet that reaches the host's own sockets.
func (e *engine) deliverLocal(pk *pkt) {
	e.finish(Accept, ReachHost, "")
	e.res.Container = ""
	if px := e.proxyFor(pk); px != nil {
		e.res.AnsweredBy = fmt.Sprintf("docker-proxy pid %d", px.PID)
		c := e.containerAt(px.ContainerIP)
		switch {
		case c != nil && c.Running:
			e.res.Answers = ptr(true)
			e.res.Reason = fmt.Sprintf("delivered to the host, where docker-proxy (pid %d) listens on %s/%s and relays to %s (%s); the container sees the connection come from the host", px.PID, hostPort(px.HostIP, int(pk.dport)), e.proto, hostPort(px.ContainerIP, px.ContainerPort), c.Name)
		case c != nil:
			e.res.Answers = ptr(false)
			e.res.Reason = fmt.Sprintf("docker-proxy (pid %d) accepts on port %d but relays to %s, which is not running", px.PID, pk.dport, c.Name)
		default:
			e.res.Reason = fmt.Sprintf("docker-proxy (pid %d) accepts on port %d and relays to %s, which no container of the snapshot has", px.PID, pk.dport, hostPort(px.ContainerIP, px.ContainerPort))
		}
		e.kernelStepText("SOCKET", false, func() string {
			return fmt.Sprintf("socket: docker-proxy pid %d listens on %s/%s", px.PID, hostPort(px.HostIP, int(pk.dport)), e.proto)
		})
		return
	}
	if b, c := e.publishedHostPort(pk.dport); b != nil {
		// Why: with userland-proxy off, dockerd 28.5 and 29 (and 20.10's
		// dummy proxy) still hold a listening socket on every published
		// port to reserve it; it is never served.
		e.res.Answers = ptr(false)
		owner := "dockerd"
		if dockerInfo(e.snap) == nil && e.snap.Docker == nil {
			owner = "Docker"
		}
		e.res.AnsweredBy = owner + " (placeholder: it reserves the port and never serves it)"
		e.res.Reason = fmt.Sprintf("delivered to the host on port %d, which %s publishes (%s), and no docker-proxy listens there: nothing serves the connection", pk.dport, c, hostPort(hostIP(b.HostIP), b.HostPort))
		e.kernelStep("SOCKET", fmt.Sprintf("socket: no docker-proxy on %s/%s (the port is Docker's: %s publishes it)", netip.AddrPortFrom(pk.dst, pk.dport), e.proto, c), false)
		return
	}
	e.res.Reason = fmt.Sprintf("delivered to the host on port %d; the snapshot does not list the host's own sockets", pk.dport)
	e.kernelStep("SOCKET", fmt.Sprintf("socket: whatever listens on %s/%s on the host (not in the snapshot)", netip.AddrPortFrom(pk.dst, pk.dport), e.proto), false)
}

// hostPort is "1.2.3.4:80" or "[fd00::1]:80".
func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func hostIP(s string) string {
	if s == "" {
		return "0.0.0.0"
	}
	return s
}

// proxyFor is the docker-proxy that listens where the packet goes: the
// first of the snapshot's that does.
func (e *engine) proxyFor(pk *pkt) *snapshot.Proxy {
	single, ok := e.proxyFirst[protoPortOf(protoCodeOf(e.proto), int(pk.dport))]
	if !ok {
		single = -1
	}
	ranges := e.proxyRanges
	for single >= 0 || len(ranges) > 0 {
		var i int
		if len(ranges) == 0 || single >= 0 && int(single) < ranges[0] {
			i, single = int(single), e.proxyNext[single]
		} else {
			i, ranges = ranges[0], ranges[1:]
		}
		px := &e.snap.Proxies[i]
		if !strings.EqualFold(px.Proto, e.proto) {
			continue
		}
		end := px.HostPort
		if px.HostPortEnd > end {
			end = px.HostPortEnd
		}
		if int(pk.dport) < px.HostPort || int(pk.dport) > end {
			continue
		}
		a, err := netip.ParseAddr(px.HostIP)
		if err != nil {
			continue
		}
		// Why: Docker binds 0.0.0.0 and :: separately (IPV6_V6ONLY), so
		// "::" does not take IPv4 connections.
		if a.IsUnspecified() && a.Is4() == pk.dst.Is4() || a.Unmap() == pk.dst {
			return px
		}
	}
	return nil
}

// publishedHostPort finds the first running container that publishes host
// port port/proto.
func (e *engine) publishedHostPort(port uint16) (*snapshot.PortBinding, string) {
	ref, ok := e.published[protoPortOf(protoCodeOf(e.proto), int(port))]
	if !ok {
		return nil, ""
	}
	return ref.b, ref.name
}

// containerAt is the container with an endpoint at addr, or nil.
func (t *Tracer) containerAt(addr string) *snapshot.Container {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	return t.endpoints[a.Unmap()].c
}

// endpointAt is the endpoint with address a, or nil.
func (t *Tracer) endpointAt(a netip.Addr) *snapshot.Endpoint {
	return t.endpoints[a].ep
}

// deliverOut is a packet that leaves on pk.out.
func (e *engine) deliverOut(pk *pkt) {
	e.finish(Accept, ReachElsewhere, "")
	if c := e.endpoints[pk.dst].c; c != nil {
		if why := e.linkProblem(pk.out, e.endpointAt(pk.dst)); why != "" {
			e.kernelStep("BRIDGE", why+": the frame does not reach "+c.Name, true)
			e.finish(Drop, ReachNowhere, fmt.Sprintf("the packet to %s (%s) goes nowhere: %s", pk.dst, c.Name, why))
			return
		}
		e.res.Reaches, e.res.Container = ReachContainer, c.Name
		sn, dn := e.dockerNetworkOf(pk.src), e.dockerNetworkOnLink(pk.out)
		switch {
		case !c.Running:
			e.res.Answers = ptr(false)
			e.res.Reason = fmt.Sprintf("forwarded to %s, which is not running", c.Name)
		case !pk.bridged && pk.dst != pk.origDst && sn != nil && sn == dn && e.endpoints[pk.src].c != nil && pk.src != pk.dst:
			// Why: routed back onto the bridge it came from (br_netfilter
			// off) and not masqueraded, the packet reaches c, whose reply
			// to a neighbour on its own bridge is switched without passing
			// the host's conntrack: the DNAT is never undone, and the
			// sender sees an answer from an address it did not call.
			e.res.Answers = ptr(false)
			e.res.Reason = fmt.Sprintf("forwarded to %s (%s), whose reply to %s goes straight over bridge %s without the host's conntrack (br_netfilter off): the DNAT is not undone, so the sender gets no answer from %s",
				netip.AddrPortFrom(pk.dst, pk.dport), c.Name, e.addrName(pk.src), pk.out, netip.AddrPortFrom(pk.origDst, pk.origDport))
		case e.replyDropped(pk, sn, dn) != "":
			e.res.Answers = ptr(false)
			e.res.Reason = fmt.Sprintf("forwarded to %s (%s), but its reply to %s (not masqueraded) comes back in on %s and is dropped before conntrack: %s",
				netip.AddrPortFrom(pk.dst, pk.dport), c.Name, e.addrName(pk.src), pk.out, e.replyDropped(pk, sn, dn))
		case e.replyForwardStop(pk) != nil:
			st := e.res.ReplyStop
			verb := "dropped"
			if st.Target == string(parse.TargetReject) {
				verb = "rejected"
			}
			where := fmt.Sprintf("%s %s %s rule %d (%s)", st.Hook, st.Table, st.Chain, st.Rule, st.Text)
			if st.Rule == 0 {
				where = fmt.Sprintf("the policy of %s %s %s", st.Hook, st.Table, st.Chain)
			}
			e.res.Answers = ptr(false)
			e.res.Reason = fmt.Sprintf("forwarded to %s (%s), but its reply (in on %s) is %s by %s", netip.AddrPortFrom(pk.dst, pk.dport), c.Name, pk.out, verb, where)
		case publishes(c, pk.dport, e.proto):
			e.res.Answers = ptr(true)
			e.res.AnsweredBy = c.Name
			e.res.Reason = "forwarded to " + netip.AddrPortFrom(pk.dst, pk.dport).String() + " (" + c.Name + "), a port it publishes"
		default:
			e.res.Reason = fmt.Sprintf("forwarded to %s (%s); whether something listens on that port is not in the snapshot", netip.AddrPortFrom(pk.dst, pk.dport), c.Name)
		}
		e.kernelStepText("OUT", false, func() string { return "out on " + pk.out + " to " + e.addrName(pk.dst) })
		return
	}
	if n := e.dockerNetworkOf(pk.dst); n != nil {
		e.res.Reaches = ReachNowhere
		if e.snap.Docker != nil && !e.snap.Docker.Inferred && e.snap.Docker.Error == "" {
			e.res.Answers = ptr(false)
		}
		e.res.Reason = fmt.Sprintf("forwarded on %s to %s, an address of network %s that no container has", pk.out, pk.dst, n.Name)
		e.kernelStep("OUT", fmt.Sprintf("out on %s to %s: no container has that address", pk.out, pk.dst), false)
		return
	}
	e.res.Reason = fmt.Sprintf("forwarded on %s to %s", pk.out, e.addrName(pk.dst))
	if n := e.dockerNetworkOf(pk.src); n != nil && e.dockerNetworkOnLink(pk.out) == nil {
		e.res.Answers = ptr(false)
		e.res.Reason += fmt.Sprintf(" with source %s (network %s, not masqueraded): replies have no route back to it", pk.src, n.Name)
	}
	e.kernelStepText("OUT", false, func() string { return fmt.Sprintf("out on %s to %s", pk.out, e.addrName(pk.dst)) })
}

// linkProblem says why a frame sent out on bridge out cannot reach the
// endpoint ep: the bridge is down, or the endpoint's host-side veth is
// missing, down or not a port of that bridge (what diagnose's
// bridge-down and veth-detached report). "" when the links are fine or
// the snapshot has none.
func (e *engine) linkProblem(out string, ep *snapshot.Endpoint) string {
	if len(e.net.links) == 0 {
		return ""
	}
	br, ok := e.net.links[out]
	if !ok || br.Kind != "bridge" {
		return ""
	}
	if !br.Up || br.OperState == "DOWN" {
		return "bridge " + out + " is down"
	}
	if ep == nil || ep.HostVeth == "" {
		return ""
	}
	switch l, ok := e.net.links[ep.HostVeth]; {
	case !ok:
		return "the container's veth " + ep.HostVeth + " does not exist"
	case !l.Up:
		return "the container's veth " + ep.HostVeth + " is down"
	case l.Master != out:
		return "the container's veth " + ep.HostVeth + " is not a port of " + out
	}
	return ""
}

func publishes(c *snapshot.Container, port uint16, proto string) bool {
	for _, b := range c.Ports {
		if b.ContainerPort == int(port) && strings.EqualFold(b.Proto, proto) {
			return true
		}
	}
	return false
}

func (e *engine) dockerNetworkOf(a netip.Addr) *snapshot.Network {
	// The first subnet in order that holds a: of a's prefixes of each
	// length a subnet has, the one of the earliest subnet. Why not a walk
	// over the subnets: at 33,000 ports on 132 networks it was 4 million
	// tests per ports table.
	if a.Zone() != "" {
		return nil // netip.Prefix.Contains never holds such an address
	}
	best := -1
	for _, bits := range e.netBits {
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if i, ok := e.netByPrefix[p]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	return e.netPrefixes[best].n
}

func (e *engine) dockerNetworkOnLink(link string) *snapshot.Network {
	return e.netByLink[link]
}

func ptr[T any](v T) *T { return &v }

// tablePriority is the priority each iptables table registers its hooks
// with (NF_IP_PRI_*); nat's depends on the hook: dstnat on PREROUTING and
// OUTPUT, srcnat on INPUT and POSTROUTING.
func tablePriority(t parse.TableName, h Hook) int {
	switch t {
	case parse.TableRaw:
		return -300
	case parse.TableMangle:
		return -150
	case parse.TableNAT:
		if h == HookPrerouting || h == HookOutput {
			return -100
		}
		return 100
	case parse.TableSecurity:
		return 50
	}
	return 0 // filter
}

// baseChain is one chain registered on a hook: today an iptables built-in
// chain of one backend. The seam for native nftables (parse/nft, issue
// 14): each base chain of an nftables table joins this list by its hook
// and priority, with a walk over its rules and verdict maps; an nftables
// accept, like an iptables one, ends only its own base chain.
type baseChain struct {
	priority int
	nat      bool
	// An iptables chain (tab, c of backend) or a native one (ntab, nc).
	tab     *parse.Table
	c       *parse.Chain
	backend string
	ntab    *nft.Table
	nc      *nft.Chain
}

// baseKey names a list of base chains: a hook, the tables asked for and
// the family (which decides the dumps and native tables).
type baseKey uint32

// keyOf packs a hook, up to five tables and the family into a baseKey
// (cheaper to hash than their names).
func keyOf(h Hook, tables []parse.TableName, v4 bool) baseKey {
	hooks := []Hook{HookPrerouting, HookInput, HookForward, HookOutput, HookPostrouting}
	tabs := []parse.TableName{parse.TableRaw, parse.TableMangle, parse.TableNAT, parse.TableFilter, parse.TableSecurity}
	k := baseKey(slices.Index(hooks, h) + 1)
	for i, t := range tables {
		k |= baseKey(slices.Index(tabs, t)+1) << (3 + 3*i)
	}
	if v4 {
		k |= 1 << 31
	}
	return k
}

// baseChains lists the chains registered on h for the given tables, in the
// order the kernel calls them: by priority, then (at equal priority) in
// the backends' order. The list depends on the snapshot alone: the
// Tracer keeps it.
func (e *engine) baseChains(h Hook, tables []parse.TableName) []baseChain {
	k := keyOf(h, tables, e.v4)
	if v, ok := e.bases.Load(k); ok {
		return v.([]baseChain)
	}
	var out []baseChain
	for _, t := range tables {
		for _, d := range e.dumps {
			tab := d.rs.Table(t)
			c := e.chain(tab, parse.ChainName(h))
			if c == nil {
				continue
			}
			out = append(out, baseChain{priority: tablePriority(t, h), nat: t == parse.TableNAT, tab: tab, c: c, backend: d.backend})
		}
	}
	// Native nftables base chains join by priority. OUTPUT is walked in
	// two parts (the kernel routes again after its nat): the first takes
	// the chains up to nat's priority, the second the rest.
	lo, hi := math.MinInt, math.MaxInt
	if h == HookOutput && len(tables) > 0 {
		switch {
		case tables[0] == parse.TableFilter:
			lo = tablePriority(parse.TableNAT, h)
		case tables[len(tables)-1] == parse.TableNAT:
			hi = tablePriority(parse.TableNAT, h)
		}
	}
	out = append(out, e.nftBaseChains(h, lo, hi)...)
	slices.SortStableFunc(out, func(a, b baseChain) int { return a.priority - b.priority })
	v, _ := e.bases.LoadOrStore(k, out)
	return v.([]baseChain)
}

// walkBase walks one base chain.
func (e *engine) walkBase(h Hook, bc *baseChain, pk *pkt, replay bool) outcome {
	if bc.nc != nil {
		return e.walkNft(h, bc.ntab, bc.nc, pk, replay)
	}
	return e.walk(h, bc.tab, bc.c, bc.backend, pk, replay)
}

// hook walks the chains registered on h for the given tables, in
// priority order, over every backend. It returns outContinue when the
// packet goes on.
func (e *engine) hook(h Hook, pk *pkt, tables ...parse.TableName) outcome {
	isDst := h == HookPrerouting || h == HookOutput
	bcs := e.baseChains(h, tables)
	for i := range bcs {
		bc := &bcs[i]
		replay := false
		if bc.nat {
			switch {
			case pk.untracked, e.noConntrack:
				continue
			case isDst && e.natDst, !isDst && e.natSrc:
				// A bound connection: later nat chains are not consulted
				// (nf_nat_inet_fn).
				continue
			case pk.state != StateNew:
				replay = true
			}
		}
		if o := e.walkBase(h, bc, pk, replay); o != outContinue {
			return o
		}
	}
	return outContinue
}

func (t *Tracer) chain(tab *parse.Table, name parse.ChainName) *parse.Chain {
	if tab == nil {
		return nil
	}
	return t.chains[tab][name]
}

type frame struct {
	c *parse.Chain
	cursor
	via []parse.ChainName // chains this frame went to by goto
}

// cursor walks a chain's rules: every rule in turn, or (with an index)
// the rules that may match the packet.
type cursor struct {
	ix *chainIndex // nil: every rule in turn
	n  int         // the chain's rules
	i  int         // the next rule's index
	// cands are the rules of ix that may match (from the ci-th on), for
	// the packet's destination and port when they were made.
	cands []int32
	ci    int
	// for is what the candidates were made for.
	forDst, forSrc netip.Addr
	forPort        uint16
	forIn, forOut  string
	made           bool
}

// next returns the index of the next rule that may match pk and moves
// past it, or -1 at the chain's end.
func (f *cursor) next(pk *pkt) int {
	if f.ix == nil {
		if f.i >= f.n {
			return -1
		}
		f.i++
		return f.i - 1
	}
	if f.ix.small {
		for ; f.i < f.n; f.i++ {
			if !f.ix.q[f.i].rejects(pk) {
				f.i++
				return f.i - 1
			}
		}
		return -1
	}
	if !f.made || f.forDst != pk.dst || f.forPort != pk.dport || f.forSrc != pk.src || f.forIn != pk.in || f.forOut != pk.out {
		// Why the check: a rule may rewrite the packet in the middle of a
		// chain (a NAT target ends its chain, but be safe).
		f.cands, f.ci = f.ix.candidates(pk, f.i), 0
		f.forDst, f.forPort, f.forSrc, f.forIn, f.forOut, f.made = pk.dst, pk.dport, pk.src, pk.in, pk.out, true
	}
	if f.ci >= len(f.cands) {
		f.i = f.n
		return -1
	}
	i := int(f.cands[f.ci])
	f.ci++
	f.i = i + 1
	return i
}

// jumpTarget is the chain rule ri (r) of the frame's chain jumps to, or
// nil: read from the chain's index when it has one.
func (f *frame) jumpTarget(e *engine, tab *parse.Table, ri int, r *parse.Rule) *parse.Chain {
	if f.ix == nil || f.ix.jumps == nil {
		return e.chain(tab, parse.ChainName(r.Target))
	}
	return f.ix.jumps[ri]
}

// end moves the cursor past the last rule.
func (f *cursor) end() { f.i, f.ci, f.cands = f.n, 0, nil }

// harmless targets neither end the walk nor change anything the trace
// decides on: a rule with such a target that cannot be decided is passed.
var harmless = map[parse.Target]bool{
	"": true, "LOG": true, "NFLOG": true, "ULOG": true, "TRACE": true, "AUDIT": true,
	"CHECKSUM": true, "TCPMSS": true, "TCPOPTSTRIP": true, "TOS": true, "DSCP": true, "TTL": true,
	"HL": true, "ECN": true, "CLASSIFY": true, "IDLETIMER": true, "LED": true, "SECMARK": true,
	"CONNSECMARK": true, "RATEEST": true,
}

// walk traverses one base chain and the chains it jumps to.
func (e *engine) walk(h Hook, tab *parse.Table, base *parse.Chain, backend string, pk *pkt, replay bool) outcome {
	step := func(c *parse.Chain, r *parse.Rule, target, text, note string) *Step {
		if e.lean {
			text, note = "", ""
		}
		s := Step{Hook: h, Table: tab.Name, Chain: c.Name, Backend: backend, Target: target, Text: text, Note: note, Replay: replay}
		if r != nil {
			s.Rule, s.Line = r.Position, r.Line
			if s.Text == "" {
				s.Text = ruleText(r)
			}
		}
		e.res.Steps = append(e.res.Steps, s)
		return &e.res.Steps[len(e.res.Steps)-1]
	}
	decide := func(v Verdict, reach Reach, reason string) {
		e.res.Decider = len(e.res.Steps) - 1
		e.finish(v, reach, reason)
	}
	unknown := func(c *parse.Chain, r *parse.Rule, why string) outcome {
		s := step(c, r, string(r.Target), "", "")
		s.Unknown = why
		decide(Unknown, ReachUnknown, fmt.Sprintf("%s %s %s rule %d: %s", h, tab.Name, c.Name, r.Position, why))
		return outUnknown
	}
	stack := make([]frame, 1, 8)
	stack[0] = frame{c: base, cursor: cursor{ix: e.indexFor(tab, base), n: len(base.Rules)}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		ri := f.next(pk)
		if ri < 0 {
			if len(stack) == 1 {
				return e.policy(h, tab, base, backend, replay, step, decide)
			}
			text := ""
			if !e.lean {
				text = e.endText(f.c, stack[len(stack)-2].c)
			}
			step(f.c, nil, "RETURN", text, "")
			stack = stack[:len(stack)-1]
			continue
		}
		r := f.c.Rules[ri]
		if e.budget--; e.budget < 0 || len(e.res.Steps) > maxSteps {
			return unknown(f.c, r, "the walk does not end in a sensible number of steps (a goto loop, or jumps that fan out)")
		}
		var q *quickRule
		if f.ix != nil {
			if q = &f.ix.q[ri]; q.rejects(pk) {
				continue
			}
		}
		t, why := e.evalRule(r, q, pk)
		if t == no {
			continue
		}
		if t == maybe {
			if harmless[r.Target] {
				continue
			}
			return unknown(f.c, r, why)
		}
		switch tg := r.Target; {
		case tg == "":
			// A rule without a target only counts; the kernel's trace
			// still shows it (verdict continue).
			step(f.c, r, "", "", "")
		case tg == parse.TargetAccept:
			step(f.c, r, string(tg), "", "")
			return outContinue
		case tg == parse.TargetDrop:
			step(f.c, r, string(tg), "", "")
			decide(Drop, ReachNowhere, fmt.Sprintf("dropped by %s %s %s rule %d", h, tab.Name, f.c.Name, r.Position))
			return outDrop
		case tg == parse.TargetReject:
			step(f.c, r, string(tg), "", "")
			decide(Reject, ReachNowhere, fmt.Sprintf("rejected by %s %s %s rule %d", h, tab.Name, f.c.Name, r.Position))
			return outReject
		case tg == parse.TargetReturn:
			if len(stack) == 1 {
				step(f.c, r, string(tg), "", "RETURN in a built-in chain: its policy applies")
				return e.policy(h, tab, base, backend, replay, step, decide)
			}
			note := ""
			if !e.lean {
				note = "back to " + string(stack[len(stack)-2].c.Name)
			}
			step(f.c, r, string(tg), "", note)
			stack = stack[:len(stack)-1]
		case r.JumpsToChain():
			next := f.jumpTarget(e, tab, ri, r)
			if next == nil {
				return unknown(f.c, r, fmt.Sprintf("jump to chain %s, which the table does not have", tg))
			}
			for _, fr := range stack {
				if fr.c == next || slices.Contains(fr.via, next.Name) {
					return unknown(f.c, r, fmt.Sprintf("jump loop: %s is already being walked", tg))
				}
			}
			if r.Goto {
				note := ""
				if !e.lean {
					note = "goto: " + string(tg) + " returns to " + callerOf(stack)
				}
				step(f.c, r, string(tg), "", note)
				via := append(f.via, f.c.Name)
				*f = frame{c: next, cursor: cursor{ix: e.indexFor(tab, next), n: len(next.Rules)}, via: via}
			} else {
				step(f.c, r, string(tg), "", "")
				stack = append(stack, frame{c: next, cursor: cursor{ix: e.indexFor(tab, next), n: len(next.Rules)}})
			}
		default:
			o, note, why := e.target(h, tab.Name, r, pk)
			if why != "" {
				return unknown(f.c, r, why)
			}
			step(f.c, r, string(tg), "", note)
			if o == outDrop {
				decide(Drop, ReachNowhere, fmt.Sprintf("dropped by %s %s %s rule %d", h, tab.Name, f.c.Name, r.Position))
				return o
			}
			if o == outContinue && isNATTarget(tg) {
				return outContinue // a NAT target ends the nat table
			}
		}
	}
	return outContinue
}

func callerOf(stack []frame) string {
	if len(stack) < 2 {
		return "the policy"
	}
	return string(stack[len(stack)-2].c.Name)
}

func isNATTarget(t parse.Target) bool {
	switch t {
	case parse.TargetDNAT, parse.TargetSNAT, parse.TargetMasquerade, parse.TargetRedirect, "NETMAP":
		return true
	}
	return false
}

// policy applies a built-in chain's policy.
func (e *engine) policy(h Hook, tab *parse.Table, c *parse.Chain, backend string, replay bool,
	step func(*parse.Chain, *parse.Rule, string, string, string) *Step, decide func(Verdict, Reach, string)) outcome {
	pol := c.Policy
	if pol == "" {
		pol = parse.TargetAccept
	}
	if pol == parse.TargetAccept && len(c.Rules) == 0 && !e.builtinExists(backend, tab.Name, c.Name) {
		// Why no step: an empty built-in chain that accepts changes
		// nothing, and iptables-nft does not create it until something
		// needs it (its -save prints every built-in chain of a table
		// anyway; the kernel's trace shows only the chains that exist).
		// An iptables-nft-restore of a whole table creates them all: the
		// snapshot's nftables ruleset says which exist. A legacy table
		// is on every hook of its built-in chains from the start.
		return outContinue
	}
	text := ""
	if !e.lean {
		text = e.policyText(tab, c, pol)
	}
	step(c, nil, string(pol), text, "")
	switch pol {
	case parse.TargetAccept:
		return outContinue
	case parse.TargetDrop:
		decide(Drop, ReachNowhere, fmt.Sprintf("dropped by the policy of %s %s (%s)", tab.Name, c.Name, pol))
		return outDrop
	}
	e.res.Steps[len(e.res.Steps)-1].Unknown = "policy " + string(pol) + " is not ACCEPT or DROP"
	decide(Unknown, ReachUnknown, fmt.Sprintf("policy %s of %s %s", pol, tab.Name, c.Name))
	return outUnknown
}

// builtinExists reports whether the built-in chain c of table tab is on
// its hook in the kernel: always for legacy iptables (ip_tables registers
// every built-in chain of a table it loads, and its trace shows their
// policies), as the snapshot's nftables ruleset says for iptables-nft.
func (e *engine) builtinExists(backend string, tab parse.TableName, c parse.ChainName) bool {
	return backend == "legacy" || e.nftChainExists(backend, tab, c)
}

// nftChainExists reports whether iptables-nft's chain c of table tab is
// in the kernel, as the snapshot's nftables ruleset shows (false when the
// snapshot has none, or for the legacy backend).
func (e *engine) nftChainExists(backend string, tab parse.TableName, c parse.ChainName) bool {
	if backend != "nft" || !e.snap.NftRead() {
		return false
	}
	fam := nft.FamilyIP
	if !e.v4 {
		fam = nft.FamilyIP6
	}
	t := e.snap.NftTable(fam, string(tab))
	return t != nil && t.Chain(string(c)) != nil
}

// target applies a target that is not a verdict or a chain: NAT, marks,
// conntrack. why is set when the tracer cannot follow it.
func (e *engine) target(h Hook, tab parse.TableName, r *parse.Rule, pk *pkt) (o outcome, note, why string) {
	switch r.Target {
	case parse.TargetDNAT:
		if tab != parse.TableNAT || (h != HookPrerouting && h != HookOutput) {
			return 0, "", "DNAT outside nat PREROUTING/OUTPUT"
		}
		d, err := parse.ParseNATDest(r.NATTo())
		if err != nil {
			return 0, "", fmt.Sprintf("DNAT %q: %v", r.NATTo(), err)
		}
		if strings.Contains(d.IP, "-") || d.PortFrom != d.PortTo {
			return 0, "", fmt.Sprintf("DNAT to a range (%s): the kernel picks one by hash", r.NATTo())
		}
		if d.IP != "" {
			a, _ := netip.ParseAddr(d.IP)
			pk.dst = a.Unmap()
		}
		if d.PortFrom != 0 {
			pk.dport = d.PortFrom
		}
		pk.dnatted, e.natDst = true, true
		if e.lean {
			return outContinue, "", ""
		}
		return outContinue, "DNAT → " + e.addrPort(pk.dst, pk.dport), ""
	case parse.TargetRedirect:
		if tab != parse.TableNAT {
			return 0, "", "REDIRECT outside the nat table"
		}
		a, ok := netip.MustParseAddr("127.0.0.1"), true
		if !e.v4 {
			a = netip.IPv6Loopback()
		}
		if h == HookPrerouting {
			a, ok = e.net.primaryAddr(pk.in, e.v4)
		}
		if !ok {
			return 0, "", fmt.Sprintf("REDIRECT: %s has no address in the snapshot", pk.in)
		}
		pk.dst = a
		if to := r.NATTo(); to != "" {
			from, rest, isRange := strings.Cut(to, "-")
			p, err := strconv.ParseUint(from, 10, 16)
			if err != nil || isRange && rest != from {
				return 0, "", fmt.Sprintf("REDIRECT --to-ports %s: a range or not a port", to)
			}
			pk.dport = uint16(p)
		}
		pk.dnatted, e.natDst = true, true
		return outContinue, "REDIRECT → " + e.addrPort(pk.dst, pk.dport), ""
	case parse.TargetSNAT, parse.TargetMasquerade:
		if tab != parse.TableNAT || (h != HookPostrouting && h != HookInput) {
			return 0, "", string(r.Target) + " outside nat POSTROUTING/INPUT"
		}
		var a netip.Addr
		if r.Target == parse.TargetSNAT {
			d, err := parse.ParseNATDest(r.NATTo())
			if err != nil || d.IP == "" || strings.Contains(d.IP, "-") {
				return 0, "", fmt.Sprintf("SNAT --to-source %q: not one address", r.NATTo())
			}
			a, _ = netip.ParseAddr(d.IP)
		} else {
			var ok bool
			if a, ok = e.net.primaryAddr(pk.out, e.v4); !ok {
				return 0, "", fmt.Sprintf("MASQUERADE: %s has no address in the snapshot", pk.out)
			}
		}
		pk.src, pk.snatted, e.natSrc = a.Unmap(), true, true
		if e.lean {
			return outContinue, "", ""
		}
		return outContinue, string(r.Target) + " → source " + e.addrName(pk.src), ""
	case parse.TargetMark:
		m, err := applyMark(r, pk.mark)
		if err != "" {
			return 0, "", err
		}
		pk.mark = m
		return outContinue, fmt.Sprintf("mark 0x%x", m), ""
	case "CONNMARK":
		return e.connmark(r, pk)
	case "NOTRACK":
		pk.untracked = true
		return outContinue, "untracked: nat is skipped", ""
	case "CT":
		if r.TargetOption("notrack") != nil {
			pk.untracked = true
			return outContinue, "untracked: nat is skipped", ""
		}
		for _, o := range r.TargetOptions {
			switch o.Name {
			case "helper", "zone", "zone-orig", "zone-reply", "ctevents", "expevents", "timeout":
			default:
				return 0, "", "CT --" + o.Name + " is not modelled"
			}
		}
		return outContinue, "", ""
	case parse.TargetQueue, "NFQUEUE":
		return 0, "", "the packet is queued to a userspace program, which decides"
	}
	if harmless[r.Target] {
		return outContinue, "", ""
	}
	return 0, "", fmt.Sprintf("target %s is not modelled", r.Target)
}

// applyMark applies MARK's options to mark.
func applyMark(r *parse.Rule, mark uint32) (uint32, string) {
	for _, o := range r.TargetOptions {
		switch o.Name {
		case "set-xmark", "set-mark":
			v, m, err := parseMark(o.Value())
			if err != nil {
				return 0, err.Error()
			}
			if o.Name == "set-xmark" {
				mark = (mark &^ m) ^ v
			} else {
				mark = (mark &^ m) | v
			}
		case "and-mark", "or-mark", "xor-mark":
			v, _, err := parseMark(o.Value())
			if err != nil {
				return 0, err.Error()
			}
			switch o.Name {
			case "and-mark":
				mark &= v
			case "or-mark":
				mark |= v
			default:
				mark ^= v
			}
		default:
			return 0, "MARK --" + o.Name + " is not modelled"
		}
	}
	return mark, ""
}

func (e *engine) connmark(r *parse.Rule, pk *pkt) (outcome, string, string) {
	nfmask, ctmask := uint32(0xffffffff), uint32(0xffffffff)
	for _, o := range r.TargetOptions {
		if o.Name == "nfmask" || o.Name == "ctmask" || o.Name == "mask" {
			v, _, err := parseMark(o.Value())
			if err != nil {
				return 0, "", err.Error()
			}
			switch o.Name {
			case "nfmask":
				nfmask = v
			case "ctmask":
				ctmask = v
			default:
				nfmask, ctmask = v, v
			}
		}
	}
	for _, o := range r.TargetOptions {
		switch o.Name {
		case "nfmask", "ctmask", "mask":
		case "set-xmark", "set-mark":
			v, m, err := parseMark(o.Value())
			if err != nil {
				return 0, "", err.Error()
			}
			if !pk.ctmarkKnown {
				pk.ctmark, pk.ctmarkKnown = 0, m == 0xffffffff
			}
			if o.Name == "set-xmark" {
				pk.ctmark = (pk.ctmark &^ m) ^ v
			} else {
				pk.ctmark = (pk.ctmark &^ m) | v
			}
		case "save-mark":
			if !pk.ctmarkKnown && ctmask != 0xffffffff {
				return 0, "", "CONNMARK --save-mark with a mask over a connection mark an earlier packet set"
			}
			pk.ctmark = (pk.ctmark &^ ctmask) ^ (pk.mark & nfmask)
			pk.ctmarkKnown = true
		case "restore-mark":
			if !pk.ctmarkKnown {
				return 0, "", "CONNMARK --restore-mark: the connection's mark was set by an earlier packet"
			}
			pk.mark = (pk.mark &^ nfmask) ^ (pk.ctmark & ctmask)
		default:
			return 0, "", "CONNMARK --" + o.Name + " is not modelled"
		}
	}
	return outContinue, fmt.Sprintf("mark 0x%x, connection mark 0x%x", pk.mark, pk.ctmark), ""
}

// ruleText is the rule as iptables-save prints it, without counters.
func ruleText(r *parse.Rule) string {
	s := strings.TrimSpace(r.Raw)
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			s = strings.TrimSpace(s[i+1:])
		}
	}
	return s
}

// nameAddrs gives the addresses that are not a container's Docker's
// names (a container's name comes from the endpoints index).
func (e *Tracer) nameAddrs() {
	e.names = map[netip.Addr]string{}
	if d := e.snap.Docker; d != nil {
		for _, n := range d.Networks {
			for _, g := range n.Gateways {
				if a, err := netip.ParseAddr(g); err == nil {
					e.names[a] = "gateway of " + n.Name
				}
			}
		}
	}
	for a, link := range e.net.local {
		if _, ok := e.names[a]; !ok && !a.IsLoopback() && e.endpoints[a].c == nil {
			e.names[a] = "host, " + link
		}
	}
}

// nameOf is Docker's name for a: a network's gateway, a container, the
// host.
func (t *Tracer) nameOf(a netip.Addr) (string, bool) {
	if n, ok := t.names[a]; ok && strings.HasPrefix(n, "gateway of ") {
		return n, true
	}
	if ep, ok := t.endpoints[a]; ok {
		return ep.c.Name, true
	}
	n, ok := t.names[a]
	return n, ok
}

// addrName is "172.17.0.2 (web)", or the bare address.
func (e *engine) addrName(a netip.Addr) string {
	at := e.addrText(a)
	if at.name != "" {
		e.res.Names[at.plain] = at.name
		return at.named
	}
	return at.plain
}

func (e *engine) addrPort(a netip.Addr, port uint16) string {
	at := e.addrText(a)
	s := at.plain
	if a.Is6() {
		s = "[" + s + "]"
	}
	s += ":" + strconv.Itoa(int(port))
	if at.name != "" {
		e.res.Names[at.plain] = at.name
		return s + " (" + at.name + ")"
	}
	return s
}

// endText is the text of the step that returns from the end of chain c
// to caller, made once per pair.
func (t *Tracer) endText(c, caller *parse.Chain) string {
	k := [2]*parse.Chain{c, caller}
	if v, ok := t.texts.Load(k); ok {
		return v.(string)
	}
	s := "end of " + string(c.Name) + ": back to " + string(caller.Name)
	t.texts.Store(k, s)
	return s
}

// policyText is a policy step's text, made once per chain.
func (t *Tracer) policyText(tab *parse.Table, c *parse.Chain, pol parse.Target) string {
	if v, ok := t.texts.Load(c); ok {
		return v.(string)
	}
	s := "policy " + string(pol) + " of " + string(tab.Name) + " " + string(c.Name)
	t.texts.Store(c, s)
	return s
}

// addrTexts are an address's texts: the address, its Docker name, both.
type addrTexts struct {
	plain, name, named string
}

// addrText returns a's texts. Why not cached: at scale nearly every
// address a ports table names is a different container's.
func (t *Tracer) addrText(a netip.Addr) addrTexts {
	at := addrTexts{plain: a.String()}
	if n, ok := t.nameOf(a); ok {
		at.name, at.named = n, at.plain+" ("+n+")"
	}
	return at
}
