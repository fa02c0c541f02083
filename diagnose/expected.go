package diagnose

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Docker's chain names.
const (
	ChainDocker       parse.ChainName = "DOCKER"
	ChainDockerUser   parse.ChainName = "DOCKER-USER"
	ChainDockerFwd    parse.ChainName = "DOCKER-FORWARD"
	ChainDockerBridge parse.ChainName = "DOCKER-BRIDGE"
	ChainDockerCT     parse.ChainName = "DOCKER-CT"
	ChainDockerIntern parse.ChainName = "DOCKER-INTERNAL"
	ChainIsolation1   parse.ChainName = "DOCKER-ISOLATION-STAGE-1"
	ChainIsolation2   parse.ChainName = "DOCKER-ISOLATION-STAGE-2"
)

// Kind says what an expected rule is for; checks select rules by kind.
type Kind string

const (
	// KindJump: a jump from a built-in chain to one of Docker's chains
	// (nat PREROUTING/OUTPUT -> DOCKER, FORWARD -> DOCKER-USER, ...).
	KindJump Kind = "jump"
	// KindSkeleton: Docker's fixed rules inside its own chains
	// (DOCKER-FORWARD -> DOCKER-CT, DOCKER-USER -j RETURN, ...).
	KindSkeleton Kind = "skeleton"
	// KindNetworkPath: per-network filter rules that let traffic in and
	// out of a bridge (conntrack ACCEPT, -o BRIDGE -j DOCKER, -i BRIDGE
	// -j ACCEPT, the unpublished-port DROP).
	KindNetworkPath Kind = "network-path"
	// KindIsolation: the inter-network isolation rules.
	KindIsolation Kind = "isolation"
	// KindMasquerade: a network's outbound MASQUERADE or SNAT.
	KindMasquerade Kind = "masquerade"
	// KindHairpinMasq: the proxy-off "-o BRIDGE --src-type LOCAL" MASQUERADE.
	KindHairpinMasq Kind = "hairpin-masquerade"
	// KindNATReturn: nat "DOCKER -i BRIDGE -j RETURN".
	KindNATReturn Kind = "nat-return"
	// KindDNAT: a published port's DNAT.
	KindDNAT Kind = "dnat"
	// KindPortAccept: a published port's filter ACCEPT.
	KindPortAccept Kind = "port-accept"
	// KindPortMasq: a published port's self-MASQUERADE (hairpin).
	KindPortMasq Kind = "port-masquerade"
	// KindRawEndpoint: 28.x raw per-endpoint (or per-port) direct-access DROP.
	KindRawEndpoint Kind = "raw-endpoint-drop"
	// KindRawLoopback: 28.x raw DROP of remote traffic to a 127.0.0.1 port.
	KindRawLoopback Kind = "raw-loopback-drop"
)

// ExpectedRule is one rule Docker would have written: an intent with its
// canonical text. Why not a parsed rule: a 33,000-port host expects about
// 130,000 rules, and parsing each one made 75 MB of pointer-rich heap that
// only a few checks ever look into (Rule parses on demand).
type ExpectedRule struct {
	// Table and Chain the rule goes into; Target is its -j or -g target
	// (Goto for -g).
	Table  parse.TableName
	Chain  parse.ChainName
	Target parse.Target
	Goto   bool
	Kind   Kind
	// Network, Container and Port say what the rule is for ("" / nil when
	// it is part of the skeleton).
	Network   string
	Bridge    string
	Container string
	Port      *snapshot.PortBinding
	// Order inside the chain: a rule must come before every rule of its
	// chain with a higher Rank, and before the rules of the same Rank and
	// Group with a higher Seq. Rules of the same rank in different groups
	// (or with no group) may come in any order: Docker's order between
	// networks depends on when each was (re)created.
	Rank  int
	Group string
	Seq   int
	// Alt groups alternatives: when Docker's choice cannot be known (the
	// gateway endpoint of a container on several networks), each choice
	// is listed with the same Alt and one of them is enough.
	Alt string
	// spec is the canonical text (what parse.Rule.Spec gives for it).
	spec string
	// id numbers the rules of one Expect (Diff.Found is indexed by it);
	// parsed holds the rules Rule parsed, by id.
	id     int32
	parsed *parsedRules
}

// Spec is the rule's canonical text without "-A CHAIN".
func (e ExpectedRule) Spec() string { return e.spec }

// JumpsToChain reports whether the rule jumps or goes to a chain.
func (e ExpectedRule) JumpsToChain() bool {
	return e.Target != "" && !e.Target.IsVerdictOrExtension()
}

// NATTo is the NAT target's destination or source ("172.17.0.2:80"), as
// parse.Rule.NATTo gives it; "" for other targets.
func (e ExpectedRule) NATTo() string {
	switch e.Target {
	case parse.TargetDNAT, parse.TargetSNAT, parse.TargetRedirect, parse.TargetMasquerade:
		return e.Rule().NATTo()
	}
	return ""
}

// Rule is the rule parsed from its text, once per Expect and shared: do
// not change it. A text that does not parse (never one the builder
// writes; TestExpectedRulesAreCanonical holds that) gives a rule with only
// its table, chain and target.
func (e ExpectedRule) Rule() *parse.Rule {
	if e.parsed == nil {
		return e.parse()
	}
	slot := &e.parsed.rules[e.id]
	if r := slot.Load(); r != nil {
		return r
	}
	slot.CompareAndSwap(nil, e.parse())
	return slot.Load()
}

func (e ExpectedRule) parse() *parse.Rule {
	r, err := parse.ParseRuleSpec(e.Table, e.Chain, e.spec)
	if err != nil {
		return &parse.Rule{Table: e.Table, Chain: e.Chain, Target: e.Target, Goto: e.Goto}
	}
	return r
}

// parsedRules is the lazily parsed form of every rule of one Expect.
type parsedRules struct {
	rules []atomic.Pointer[parse.Rule]
}

// specTarget finds the -j or -g target of a canonical rule text, skipping
// quoted words (comments).
func specTarget(spec string) (parse.Target, bool) {
	inQuote := false
	for i := 0; i+2 < len(spec); i++ {
		switch ch := spec[i]; {
		case ch == '"' && (i == 0 || spec[i-1] != '\\'):
			inQuote = !inQuote
		case inQuote || ch != '-' || (i > 0 && spec[i-1] != ' '):
		case (spec[i+1] == 'j' || spec[i+1] == 'g') && spec[i+2] == ' ':
			rest := spec[i+3:]
			if j := strings.IndexByte(rest, ' '); j >= 0 {
				rest = rest[:j]
			}
			return parse.Target(rest), spec[i+1] == 'g'
		}
	}
	return "", false
}

// ProxyMode is the userland-proxy setting and how it was found.
type ProxyMode struct {
	// State is snapshot.ProxyOn or snapshot.ProxyOff.
	State string
	// Source says how: "daemon API", "docker-proxy processes", "nat OUTPUT
	// jump", or "default (not observable)".
	Source string
	// Guessed is true unless the daemon said it.
	Guessed bool
}

// On reports whether the proxy is (taken to be) on.
func (p ProxyMode) On() bool { return p.State != snapshot.ProxyOff }

// Expected is the ruleset Docker would have written for one family.
type Expected struct {
	Version Version
	Era     Era
	Family  string
	Proxy   ProxyMode
	// Chains are Docker's own chains per table, in Docker's declaration
	// order.
	Chains map[parse.TableName][]parse.ChainName
	// Rules per table and chain, in Docker's order.
	Rules map[parse.TableName]map[parse.ChainName][]ExpectedRule
	// Notes list what was guessed or left out.
	Notes []string
	// Modelled is false when the era is not modelled (unknown, 28.0.0,
	// 29 nftables): then Rules is empty and checks must stay silent.
	Modelled bool
	// IPTablesOff: the daemon runs with iptables=false and writes no rule
	// (Modelled, with no chain or rule expected).
	IPTablesOff bool
	// Assumed: the version is newer than every known layout and is judged
	// with the newest one (a note says so).
	Assumed bool

	// all caches All() (nil: not cached, e.g. an Expected built by
	// hand). A copy whose Rules change must get a fresh one.
	all *allCache
	// parsed holds the parsed form of each rule, by id (see
	// ExpectedRule.Rule); a copy shares it.
	parsed *parsedRules
}

// size is how many ids the rules of e use (Diff.Found's length).
func (e *Expected) size() int {
	if e.parsed != nil {
		return len(e.parsed.rules)
	}
	n := 0
	for _, r := range e.All() {
		n = max(n, int(r.id)+1)
	}
	return n
}

type allCache struct {
	once  sync.Once
	rules []ExpectedRule
}

// keeping is a copy of e with only the rules keep keeps (ids and parsed
// forms shared), held once in All's order with each chain's rules a
// window of it, as the builder files them (see finish). When keep keeps
// every rule it is e itself: a raw dump that holds every table keeps all
// (a copy cost 20 MB at 100,000 rules).
func (e *Expected) keeping(keep func(ExpectedRule) bool) *Expected {
	all := e.All()
	n := 0
	for _, er := range all {
		if keep(er) {
			n++
		}
	}
	filed := 0
	for _, chains := range e.Rules {
		for _, rules := range chains {
			filed += len(rules)
		}
	}
	if n == len(all) && n == filed {
		return e
	}
	c := *e
	kept := make([]ExpectedRule, 0, n)
	for _, er := range all {
		if keep(er) {
			kept = append(kept, er)
		}
	}
	c.Rules = map[parse.TableName]map[parse.ChainName][]ExpectedRule{}
	for i := 0; i < len(kept); {
		j := i
		for j < len(kept) && kept[j].Table == kept[i].Table && kept[j].Chain == kept[i].Chain {
			j++
		}
		if c.Rules[kept[i].Table] == nil {
			c.Rules[kept[i].Table] = map[parse.ChainName][]ExpectedRule{}
		}
		c.Rules[kept[i].Table][kept[i].Chain] = kept[i:j:j]
		i = j
	}
	c.all = &allCache{}
	c.all.once.Do(func() { c.all.rules = kept })
	return &c
}

// RulesOf returns the expected rules of one chain in order.
func (e *Expected) RulesOf(t parse.TableName, c parse.ChainName) []ExpectedRule {
	return e.Rules[t][c]
}

// All returns every expected rule, table by table (raw, nat, filter) and
// chain by chain.
//
// The slice is shared: callers must not change it.
func (e *Expected) All() []ExpectedRule {
	if e.all == nil {
		return e.collect()
	}
	e.all.once.Do(func() { e.all.rules = e.collect() })
	return e.all.rules
}

func (e *Expected) collect() []ExpectedRule {
	n := 0
	for _, chains := range e.Rules {
		for _, rules := range chains {
			n += len(rules)
		}
	}
	out := make([]ExpectedRule, 0, n)
	for _, t := range parse.KnownTables {
		chains := make([]string, 0, len(e.Rules[t]))
		for c := range e.Rules[t] {
			chains = append(chains, string(c))
		}
		sort.Strings(chains)
		for _, c := range chains {
			out = append(out, e.Rules[t][parse.ChainName(c)]...)
		}
	}
	return out
}

// IsDockerChain reports whether c is one of Docker's chains of table t in
// this layout.
func (e *Expected) IsDockerChain(t parse.TableName, c parse.ChainName) bool {
	return slices.Contains(e.Chains[t], c)
}

// builder accumulates expected rules.
type builder struct {
	e   *Expected
	s   *snapshot.Snapshot
	err error
	// pending are the rules added, in order, in chunks; finish files
	// them into e.Rules, one array for all chains (appending chain by
	// chain copied 80 MB of rules at 33,000 ports). Why chunks: one
	// slice sized from the ports held twice the rules (40 MB at 33,000
	// ports) next to the array they are filed into.
	pending  [][]ExpectedRule
	npending int
	// texts are the dump's rule texts by themselves (dumpSpecs): finish
	// files a rule's spec as the dump's copy of the same text when there
	// is one.
	texts map[string]string
}

// dumpSpecs returns the set of the texts after "-A CHAIN " of the rules
// of rs (substrings of their lines), nil for none. Why: most expected
// rules are in the dump, and a spec that is the dump's own substring
// holds no second copy of the text (11 MB at 33,000 ports); equal text
// is all that is needed, whether or not the line is canonical.
func dumpSpecs(rs *parse.Ruleset) map[string]string {
	if rs == nil {
		return nil
	}
	n := 0
	for _, t := range rs.Tables {
		n += t.RuleCount()
	}
	m := make(map[string]string, n)
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				raw := r.Raw
				if raw != "" && raw[0] == '[' {
					if i := strings.IndexByte(raw, ' '); i >= 0 {
						raw = raw[i+1:]
					}
				}
				name := string(c.Name)
				if len(raw) > 4+len(name) && raw[:3] == "-A " && raw[3:3+len(name)] == name && raw[3+len(name)] == ' ' {
					sp := raw[4+len(name):]
					m[sp] = sp
				}
			}
		}
	}
	return m
}

// finish moves the pending rules into e.Rules, chain order kept. Every
// rule lives once, in the order All gives (table by table, chain by chain
// by name); each chain's rules are a window of that one slice. Why: a
// chain-by-chain copy plus All's own copy held 40 MB of rules at 33,000
// ports.
func (b *builder) finish() {
	type tc struct {
		t parse.TableName
		c parse.ChainName
	}
	// Each rule's chain as a slot: one map lookup per run of rules of
	// the same chain, not two per rule.
	slotOf := map[tc]int{}
	var keys []tc
	var count []int
	slots := make([]int32, 0, b.npending)
	last := -1
	for _, chunk := range b.pending {
		for i := range chunk {
			k := tc{chunk[i].Table, chunk[i].Chain}
			if last < 0 || keys[last] != k {
				sl, ok := slotOf[k]
				if !ok {
					sl = len(keys)
					slotOf[k] = sl
					keys, count = append(keys, k), append(count, 0)
				}
				last = sl
			}
			count[last]++
			slots = append(slots, int32(last))
		}
	}
	rank := func(t parse.TableName) int {
		if i := slices.Index(parse.KnownTables, t); i >= 0 {
			return i
		}
		return len(parse.KnownTables)
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		kx, ky := keys[x], keys[y]
		return cmp.Or(cmp.Compare(rank(kx.t), rank(ky.t)), cmp.Compare(kx.t, ky.t), cmp.Compare(kx.c, ky.c))
	})
	start, next := make([]int, len(keys)), make([]int, len(keys))
	off, known := 0, 0
	for _, sl := range order {
		start[sl], next[sl] = off, off
		off += count[sl]
		if rank(keys[sl].t) < len(parse.KnownTables) {
			known = off
		}
	}
	all := make([]ExpectedRule, off)
	b.e.parsed = &parsedRules{rules: make([]atomic.Pointer[parse.Rule], b.npending)}
	id := 0
	for ci, chunk := range b.pending {
		for _, er := range chunk {
			er.id, er.parsed = int32(id), b.e.parsed
			if t, ok := b.texts[er.spec]; ok {
				// The target too: it is a part of the spec, and one part
				// keeps the whole text alive.
				er.spec = t
				er.Target, er.Goto = specTarget(t)
			}
			sl := slots[id]
			all[next[sl]] = er
			next[sl]++
			id++
		}
		b.pending[ci] = nil // filed: its memory can go
	}
	for _, sl := range order {
		k := keys[sl]
		if b.e.Rules[k.t] == nil {
			b.e.Rules[k.t] = map[parse.ChainName][]ExpectedRule{}
		}
		b.e.Rules[k.t][k.c] = all[start[sl]:next[sl]:next[sl]]
	}
	b.e.all = &allCache{}
	b.e.all.once.Do(func() { b.e.all.rules = all[:known:known] })
	b.pending, b.npending = nil, 0
}

// pendingChunk bounds the chunks of builder.pending.
const pendingChunk = 4096

func (b *builder) add(t parse.TableName, c parse.ChainName, spec string, er ExpectedRule) {
	er.Table, er.Chain, er.spec = t, c, spec
	er.Target, er.Goto = specTarget(spec)
	if n := len(b.pending); n == 0 || len(b.pending[n-1]) == cap(b.pending[n-1]) {
		b.pending = append(b.pending, make([]ExpectedRule, 0, min(max(64, b.npending), pendingChunk)))
	}
	last := &b.pending[len(b.pending)-1]
	*last = append(*last, er)
	b.npending++
}

// bridgeNet is a bridge-driver network reduced to what the rules need.
type bridgeNet struct {
	net      snapshot.Network
	bridge   string
	subnet   string // the first subnet of the family, "" if none
	internal bool
	masq     bool
	icc      bool
	snatIP   string
	gwMode   string
}

// port is one published port, placed on the endpoint Docker programs it
// for.
type port struct {
	ct *snapshot.Container
	ep snapshot.Endpoint
	bn *bridgeNet
	pb snapshot.PortBinding
	// pbRef is pb held once for every expected rule of the port
	// (ExpectedRule.Port); nil for a port built elsewhere (binding).
	pbRef  *snapshot.PortBinding
	hostIP string // "" for 0.0.0.0 (or :: in IPv6)
	alt    string
	// ip is the endpoint's address of the family (ep.IP or ep.IPv6).
	ip string
}

// binding returns the port's binding for ExpectedRule.Port. Why not
// &p.pb of the loop's copy: that moved every port (240 bytes) to the heap
// once per loop over the ports, 16 MB at 33,000 ports.
func (p *port) binding() *snapshot.PortBinding {
	if p.pbRef != nil {
		return p.pbRef
	}
	pb := p.pb
	return &pb
}

// epIP returns an endpoint's address of the family ("" if it has none).
func epIP(ep snapshot.Endpoint, family string) string {
	if family == snapshot.FamilyIPv6 {
		return ep.IPv6
	}
	return ep.IP
}

// Expect derives the rules Docker would have written for family
// (snapshot.FamilyIPv4 or FamilyIPv6) from the snapshot's Docker view.
// It returns an error only when an expected rule cannot be built (a bug).
// When the Docker view is missing or the era is not modelled the result
// has Modelled false and a note saying why.
//
// IPv6 (docker-facts.md §2.1, §2.3): the same layout in ip6tables, for
// the networks created with --ipv6 only, with the IPv6 forms of the rules
// (see portSpecs, isolation). Whether Docker writes ip6tables rules at all
// is decided by ip6tablesOn; when it does not, the result has Modelled
// false and a note, and checks stay silent for IPv6.
func Expect(s *snapshot.Snapshot, family string) (*Expected, error) {
	e := &Expected{
		all:    &allCache{},
		Family: family,
		Chains: map[parse.TableName][]parse.ChainName{},
		Rules:  map[parse.TableName]map[parse.ChainName][]ExpectedRule{},
	}
	if s.Docker == nil || s.Docker.Version == "" {
		e.Notes = append(e.Notes, "no Docker version in the snapshot: expected rules not derived")
		return e, nil
	}
	v, err := ParseVersion(s.Docker.Version)
	if err != nil {
		e.Notes = append(e.Notes, err.Error())
		return e, nil
	}
	layout, assumed, ok := LayoutFor(v, BackendIPTables)
	e.Version, e.Era = v, layout.Era
	switch {
	case !ok:
		e.Notes = append(e.Notes, fmt.Sprintf("Docker %s is older than 20.10: its layout is not modelled", v))
		return e, nil
	case layout.Era == Era2800:
		e.Notes = append(e.Notes, "Docker 28.0.0 (ipset layout) is not modelled: upgrade to 28.0.1 or later")
		return e, nil
	}
	if assumed != "" {
		e.Assumed = true
		e.Notes = append(e.Notes, assumed)
	}
	if nftablesBackendOf(s) {
		return expectNftablesBackend(e, s), nil // nft_expected.go
	}
	e.Proxy = proxyMode(s)
	if off, src := iptablesOff(s); off {
		// Nothing to compare: Docker manages no rule (docker-iptables-disabled).
		e.IPTablesOff = true
		e.Modelled = true
		e.Notes = append(e.Notes, "Docker runs with iptables=false ("+src+"): it writes no iptables rules, so none is expected")
		return e, nil
	}
	if e.Proxy.Guessed {
		e.Notes = append(e.Notes, fmt.Sprintf("userland-proxy taken as %s from %s", e.Proxy.State, e.Proxy.Source))
	}
	b := &builder{e: e, s: s}
	nets := bridgeNets(s, family)
	ports := publishedPorts(s, nets, family)
	if family == snapshot.FamilyIPv6 {
		on, why := ip6tablesOn(s, v)
		if !on {
			e.Notes = append(e.Notes, why)
			return e, nil
		}
		if why != "" {
			e.Notes = append(e.Notes, why)
		}
		if e.Era == EraClassic {
			e.Notes = append(e.Notes, "Docker "+v.String()+"'s ip6tables rules are modelled from moby's code (docker-facts.md §2.1), not from a capture")
		}
	}
	e.Modelled = true
	for t, cs := range layout.Chains {
		e.Chains[t] = append([]parse.ChainName(nil), cs...)
	}
	layout.build(b, nets, ports)
	if d, err := s.PickDump(snapshot.BackendAuto, family); err == nil {
		b.texts = dumpSpecs(d.Ruleset)
	}
	b.finish()
	return e, b.err
}

// ip6tablesOn says whether Docker writes ip6tables rules on this host, and
// why when that is not plain to see. The daemon's ip6tables setting is not
// in the Engine API, so it is read from Docker's own state:
//
//   - Docker's chains in the ip6tables dump: on (20.10-26 with
//     --experimental --ip6tables, or 27+ by default: 28.5 writes its
//     IPv6 skeleton even with no IPv6 network);
//   - none, while the IPv4 dump still has Docker's chains: off (the
//     default before 27, or --ip6tables=false): nothing is expected;
//   - none in either family on 27+: every Docker chain was wiped (a
//     firewall reload), and ip6tables is taken as on, Docker's default.
//
// Never from a fixture list or a host name.
func ip6tablesOn(s *snapshot.Snapshot, v Version) (bool, string) {
	if on, src := daemonSetting(s, "ip6tables"); on != nil {
		if !*on {
			return false, "IPv6 rules not checked: ip6tables=false (" + src + ")"
		}
		return true, ""
	}
	has6, err := dockerChainsIn(s, snapshot.FamilyIPv6)
	if err != nil {
		return false, "IPv6 rules not checked: " + err.Error()
	}
	if has6 {
		return true, ""
	}
	if v.AtLeast(27, 0, 0) {
		if has4, err := dockerChainsIn(s, snapshot.FamilyIPv4); err == nil && !has4 {
			return true, "no Docker chain in either family: ip6tables taken as on (Docker " + v.String() + "'s default)"
		}
	}
	return false, "IPv6 rules not checked: the ip6tables dump has none of Docker's chains (ip6tables is off: the default before Docker 27, or --ip6tables=false)"
}

// dockerChainsIn reports whether the family's dump (of the backend
// PickDump chooses) holds Docker's chains. An empty dump (no table
// loaded: ip6tables-save prints nothing) holds none; a dump that is
// missing or did not parse is an error.
func dockerChainsIn(s *snapshot.Snapshot, family string) (bool, error) {
	d, err := s.PickDump(snapshot.BackendAuto, family)
	if err == nil {
		return hasDockerChain(d.Ruleset), nil
	}
	for _, x := range s.Rules {
		if x.Family == family && x.Raw == "" && x.Error == "" {
			return false, nil
		}
	}
	return false, err
}

// hasDockerChain reports whether rs holds one of the chains Docker creates
// at start in every layout (DOCKER-USER is left out: administrators create
// it by hand where Docker does not).
func hasDockerChain(rs *parse.Ruleset) bool {
	if rs == nil {
		return false
	}
	for _, tc := range []struct {
		t parse.TableName
		c parse.ChainName
	}{{parse.TableNAT, ChainDocker}, {parse.TableFilter, ChainDocker}, {parse.TableFilter, ChainDockerFwd}, {parse.TableFilter, ChainIsolation1}} {
		if rs.Table(tc.t).Chain(tc.c) != nil {
			return true
		}
	}
	return false
}

// proxyDefaultSource is ProxyMode.Source when nothing in the snapshot
// shows the setting.
const proxyDefaultSource = "Docker's default (nothing in the snapshot shows it)"

// proxyMode finds the userland-proxy setting: from the daemon (29.5+),
// else from the shape of the nat OUTPUT jump (Docker writes it the same
// way in every version: "! -d 127.0.0.0/8" with the proxy on), else from
// docker-proxy processes when ports are published, else Docker's default
// (on). The jump comes before the processes: killed proxies must not turn
// the mode off (proxy-missing).
func proxyMode(s *snapshot.Snapshot) ProxyMode {
	if i := s.Docker.Info; i != nil && (i.UserlandProxy == snapshot.ProxyOn || i.UserlandProxy == snapshot.ProxyOff) {
		return ProxyMode{State: i.UserlandProxy, Source: "daemon API"}
	}
	if on, src := daemonSetting(s, "userland-proxy"); on != nil {
		state := snapshot.ProxyOff
		if *on {
			state = snapshot.ProxyOn
		}
		return ProxyMode{State: state, Source: "daemon configuration (" + src + ")"}
	}
	// Why both families: after the IPv4 jumps are deleted, Docker's
	// ip6tables OUTPUT jump (! -d ::1/128 with the proxy on) still tells.
	for _, fam := range []struct{ name, loop, tool string }{
		{snapshot.FamilyIPv4, "127.0.0.0/8", "nat"},
		{snapshot.FamilyIPv6, "::1/128", "ip6tables nat"},
	} {
		d, err := s.PickDump(snapshot.BackendAuto, fam.name)
		if err != nil {
			continue
		}
		if c := d.Ruleset.Table(parse.TableNAT).Chain(parse.ChainOutput); c != nil {
			for _, r := range c.Rules {
				if r.Target != parse.Target(ChainDocker) {
					continue
				}
				if r.Destination.Negated && r.Destination.Value == fam.loop {
					return ProxyMode{State: snapshot.ProxyOn, Source: fam.tool + " OUTPUT jump (! -d " + fam.loop + ")", Guessed: true}
				}
				return ProxyMode{State: snapshot.ProxyOff, Source: fam.tool + " OUTPUT jump (no loopback exclusion)", Guessed: true}
			}
		}
	}
	published := false
	for _, c := range s.Docker.Containers {
		for _, p := range c.Ports {
			if c.Running && p.HostPort > 0 {
				published = true
			}
		}
	}
	proxiesRead := true
	for _, pe := range s.Errors {
		if pe.Part == "proxies" {
			proxiesRead = false
		}
	}
	if published && proxiesRead {
		if len(s.Proxies) > 0 {
			return ProxyMode{State: snapshot.ProxyOn, Source: "docker-proxy processes", Guessed: true}
		}
		return ProxyMode{State: snapshot.ProxyOff, Source: "no docker-proxy process for the published ports", Guessed: true}
	}
	return ProxyMode{State: snapshot.ProxyOn, Source: proxyDefaultSource, Guessed: true}
}

// bridgeNets returns the bridge-driver networks Docker programs rules for
// in family, sorted by bridge name, with the network options the daemon's
// version honours (gatewayMode, hostSNAT).
func bridgeNets(s *snapshot.Snapshot, family string) []*bridgeNet {
	var out []*bridgeNet
	v, _ := ParseVersion(s.Docker.Version)
	for _, n := range s.Docker.Networks {
		if n.Driver != "bridge" || n.BridgeName == "" {
			continue
		}
		if family == snapshot.FamilyIPv6 && !n.EnableIPv6 {
			// Why: Docker programs ip6tables only for networks created
			// with --ipv6 (28.5: docker0 without IPv6 has no ip6tables rule).
			continue
		}
		if family == snapshot.FamilyIPv4 && !hasIPv4(n) {
			// Why: an IPv6-only network (28+: --ipv6 --ipv4=false) gets
			// no IPv4 rule at all: the bridge driver sets up iptables
			// per enabled family (bridge_linux.go, EnableIPv4).
			continue
		}
		bn := &bridgeNet{net: n, bridge: n.BridgeName, internal: n.Internal, masq: true, icc: true}
		for _, sub := range n.Subnets {
			p, err := netip.ParsePrefix(sub)
			if err != nil {
				continue
			}
			if p.Addr().Is4() == (family == snapshot.FamilyIPv4) && bn.subnet == "" {
				bn.subnet = p.Masked().String()
			}
		}
		if opt := n.Options["com.docker.network.bridge.enable_ip_masquerade"]; opt == "false" {
			bn.masq = false
		}
		if opt := n.Options["com.docker.network.bridge.enable_icc"]; opt == "false" {
			bn.icc = false
		}
		bn.snatIP = hostSNAT(n, family, v)
		bn.gwMode = gatewayMode(n, family, v)
		if family == snapshot.FamilyIPv6 && bn.subnet == "" {
			continue
		}
		if bn.gwMode == "isolated" {
			// Why: 28's "isolated" is an internal network for that
			// family (no address on the bridge, no route out).
			bn.internal, bn.gwMode = true, ""
		}
		out = append(out, bn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].bridge < out[j].bridge })
	return out
}

// hasIPv4 reports whether a network has IPv4: an IPv4 subnet, or no
// subnet known at all and no enable_ipv4=false (a snapshot without IPAM
// data keeps the IPv4 rules expected, as every network had IPv4 before
// Docker 28; a daemon that ignores enable_ipv4 gives the network an IPv4
// subnet anyway).
func hasIPv4(n snapshot.Network) bool {
	known := false
	for _, sub := range n.Subnets {
		p, err := netip.ParsePrefix(sub)
		if err != nil {
			continue
		}
		if p.Addr().Is4() {
			return true
		}
		known = true
	}
	return !known && n.Options["com.docker.network.enable_ipv4"] != "false"
}

// gatewayMode returns the gateway mode the daemon applies to network n in
// family ("" for Docker's default, nat). Why the version: older daemons
// accept any -o option and ignore the ones they do not know, so a network
// created with a newer option keeps the default layout: "routed" exists
// from 27.0, "nat-unprotected" and "isolated" from 28.0 (moby
// libnetwork/drivers/bridge gwMode constants; 20.10 with
// gateway_mode_ipv4=routed NATs the network, seen on a real 20.10).
func gatewayMode(n snapshot.Network, family string, v Version) string {
	opt := "com.docker.network.bridge.gateway_mode_ipv4"
	if family == snapshot.FamilyIPv6 {
		opt = "com.docker.network.bridge.gateway_mode_ipv6"
	}
	switch m := n.Options[opt]; m {
	case "routed":
		if v.AtLeast(27, 0, 0) {
			return m
		}
	case "nat-unprotected", "isolated":
		if v.AtLeast(28, 0, 0) {
			return m
		}
	}
	return ""
}

// hostSNAT returns the SNAT source address the daemon applies to network
// n in family, "" for MASQUERADE: host_ipv4 is known to every modelled
// version, host_ipv6 from 25.0.
func hostSNAT(n snapshot.Network, family string, v Version) string {
	if family == snapshot.FamilyIPv6 {
		if !v.AtLeast(25, 0, 0) {
			return ""
		}
		return n.Options["com.docker.network.host_ipv6"]
	}
	return n.Options["com.docker.network.host_ipv4"]
}

// GatewayMode is the gateway mode Docker applies to the named network in
// family on this snapshot's daemon ("" for nat, the default, or when the
// network is unknown); see gatewayMode.
func GatewayMode(s *snapshot.Snapshot, network, family string) string {
	if s == nil || s.Docker == nil {
		return ""
	}
	v, _ := ParseVersion(s.Docker.Version)
	for _, n := range s.Docker.Networks {
		if n.Name == network {
			return gatewayMode(n, family, v)
		}
	}
	return ""
}

// publishedPorts lists the running containers' published ports of the
// family, each on the endpoint Docker programs it for. A container on
// several non-internal bridge networks gets one alternative per network:
// which one is its gateway is not in the snapshot.
func publishedPorts(s *snapshot.Snapshot, nets []*bridgeNet, family string) []port {
	// Bounds of the ports and bindings below: the running containers'
	// bindings, per endpoint with an address of the family (none on a
	// host without IPv6: a bound of every binding cost 9 MB for nothing
	// at 33,000 ports).
	n, nb := 0, 0
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		eps := 0
		for _, ep := range c.Endpoints {
			if epIP(ep, family) != "" {
				eps++
			}
		}
		if c.Running && eps > 0 {
			n += eps * len(c.Ports)
			nb += len(c.Ports)
		}
	}
	out := make([]port, 0, n)
	// The bindings the expected rules point at, one array.
	pbs := make([]snapshot.PortBinding, 0, nb)
	var eps []snapshot.Endpoint // of one container, reused (out holds copies)
	var bns []*bridgeNet
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if !c.Running {
			continue
		}
		eps, bns = eps[:0], bns[:0]
		for _, ep := range c.Endpoints {
			bn := findNet(nets, ep)
			if bn == nil || bn.internal || epIP(ep, family) == "" {
				continue
			}
			eps = append(eps, ep)
			bns = append(bns, bn)
		}
		if len(eps) == 0 {
			continue // no port of it in this family
		}
		for _, pb := range c.Ports {
			if pb.HostPort == 0 && !slices.ContainsFunc(bns, func(bn *bridgeNet) bool { return bn.gwMode == "routed" }) {
				// Why the exception: a routed network's bindings have no
				// host port (Docker zeroes it: nothing to DNAT) but still
				// get the filter ACCEPT of the container port.
				continue
			}
			hostIP := pb.HostIP
			if hostIP != "" {
				a, err := netip.ParseAddr(hostIP)
				if err != nil || a.Is4() != (family == snapshot.FamilyIPv4) {
					// Why: a "::" binding of an IPv4-only container is
					// served by docker-proxy alone (no ip6tables rule).
					continue
				}
				if a.IsUnspecified() {
					hostIP = ""
				}
			}
			alt := ""
			if len(eps) > 1 {
				alt = fmt.Sprintf("%s/%d/%s/%s", c.Name, pb.HostPort, pb.Proto, hostIP)
			}
			pbs = append(pbs, pb)
			ref := &pbs[len(pbs)-1]
			for k := range eps {
				if pb.HostPort == 0 && bns[k].gwMode != "routed" {
					continue
				}
				out = append(out, port{ct: c, ep: eps[k], bn: bns[k], pb: pb, pbRef: ref, hostIP: hostIP, alt: alt, ip: epIP(eps[k], family)})
			}
		}
	}
	return out
}

// proto returns the protocol name Docker passes to -p and -m.
func proto(p snapshot.PortBinding) string {
	if p.Proto == "" {
		return "tcp"
	}
	return p.Proto
}

func itoa(n int) string { return strconv.Itoa(n) }

// The specs portSpecs renders.
const (
	wantDNAT = 1 << iota
	wantAccept
	wantMasq
)

// portSpecs returns the DNAT, filter ACCEPT and self-MASQUERADE specs of a
// published port (docker-facts.md §2.1 "Published port", §2.3), those
// that want asks for ("" for the others: a caller needs one or two, and
// rendering all three was 17 MB of garbage at 33,000 ports).
//
// IPv6 (28.5 capture in diagnose/testdata): "! -s fe80::/10" first on 28+
// (link-local sources are not translated) and "[CIP6]:CPORT".
func portSpecs(p port, proxyOn bool, family string, v Version, want int) (dnat, accept, masq string) {
	pr := proto(p.pb)
	var b strings.Builder
	if want&wantDNAT != 0 {
		b.Grow(128)
		if family == snapshot.FamilyIPv6 && v.AtLeast(28, 0, 0) {
			b.WriteString("! -s fe80::/10 ")
		}
		if p.hostIP != "" {
			b.WriteString("-d ")
			b.WriteString(parse.CanonicalAddr(p.hostIP))
			b.WriteByte(' ')
		}
		if proxyOn {
			// Why: with the proxy off Docker drops "! -i BRIDGE" so that
			// containers reach published ports through the host (hairpin).
			b.WriteString("! -i ")
			b.WriteString(p.bn.bridge)
			b.WriteByte(' ')
		}
		b.WriteString("-p ")
		b.WriteString(pr)
		b.WriteString(" -m ")
		b.WriteString(pr)
		b.WriteString(" --dport ")
		b.WriteString(itoa(p.pb.HostPort))
		b.WriteString(" -j DNAT --to-destination ")
		if family == snapshot.FamilyIPv6 {
			b.WriteString("[" + p.ip + "]")
		} else {
			b.WriteString(p.ip)
		}
		b.WriteByte(':')
		b.WriteString(itoa(p.pb.ContainerPort))
		dnat = b.String()
	}
	if want&(wantAccept|wantMasq) == 0 {
		return dnat, "", ""
	}
	cip := parse.CanonicalAddr(p.ip)
	if want&wantAccept != 0 {
		accept = "-d " + cip + " ! -i " + p.bn.bridge + " -o " + p.bn.bridge + " -p " + pr + " -m " + pr +
			" --dport " + itoa(p.pb.ContainerPort) + " -j ACCEPT"
	}
	if want&wantMasq != 0 {
		masq = "-s " + cip + " -d " + cip + " -p " + pr + " -m " + pr + " --dport " + itoa(p.pb.ContainerPort) + " -j MASQUERADE"
	}
	return dnat, accept, masq
}

func isLoopback(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && a.IsLoopback()
}

// natRules adds the nat table rules common to both layouts.
func natRules(b *builder, nets []*bridgeNet, ports []port, selfMasq, natReturn bool) {
	e := b.e
	proxyOn := e.Proxy.On()
	hasExternal := false
	for _, n := range nets {
		if !n.internal {
			hasExternal = true
		}
	}
	if hasExternal || e.Era != EraClassic {
		// Why: ≤27 adds the jumps with the first non-internal bridge; 28+
		// at daemon start (also seen in 28.5's IPv6 dump with no IPv6
		// network).
		b.add(parse.TableNAT, parse.ChainPrerouting, "-m addrtype --dst-type LOCAL -j DOCKER", ExpectedRule{Kind: KindJump})
		loop := "127.0.0.0/8"
		if e.Family == snapshot.FamilyIPv6 {
			loop = "::1/128"
		}
		out := "! -d " + loop + " -m addrtype --dst-type LOCAL -j DOCKER"
		if !proxyOn {
			out = "-m addrtype --dst-type LOCAL -j DOCKER"
		}
		b.add(parse.TableNAT, parse.ChainOutput, out, ExpectedRule{Kind: KindJump})
	}
	// Per network (setupIPTablesInternal ≤27, setupNonInternalNetworkRules
	// 28+): the subnet's MASQUERADE (or SNAT to host_ipv4/6) with
	// masquerade on and, 28+, not in routed mode; the early RETURN with
	// masquerade on and the proxy on (28 writes it in routed mode too); the
	// hairpin MASQUERADE (or SNAT) of local sources with the proxy off,
	// whatever the masquerade setting.
	for _, n := range nets {
		if n.internal || n.subnet == "" {
			continue
		}
		to := "-j MASQUERADE"
		if n.snatIP != "" {
			to = "-j SNAT --to-source " + n.snatIP
		}
		if n.masq && n.gwMode != "routed" {
			b.add(parse.TableNAT, parse.ChainPostrouting, "-s "+n.subnet+" ! -o "+n.bridge+" "+to,
				ExpectedRule{Kind: KindMasquerade, Network: n.net.Name, Bridge: n.bridge})
		}
		if !proxyOn {
			b.add(parse.TableNAT, parse.ChainPostrouting, "-o "+n.bridge+" -m addrtype --src-type LOCAL "+to,
				ExpectedRule{Kind: KindHairpinMasq, Network: n.net.Name, Bridge: n.bridge})
		}
		if natReturn && proxyOn && n.masq {
			b.add(parse.TableNAT, ChainDocker, "-i "+n.bridge+" -j RETURN",
				ExpectedRule{Kind: KindNATReturn, Network: n.net.Name, Bridge: n.bridge, Rank: 0})
		}
	}
	for _, p := range ports {
		if p.bn.gwMode == "routed" {
			continue
		}
		want := wantDNAT
		if selfMasq {
			want |= wantMasq
		}
		dnat, _, masq := portSpecs(p, proxyOn, e.Family, e.Version, want)
		er := ExpectedRule{Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name, Port: p.binding(), Alt: p.alt}
		if selfMasq {
			m := er
			m.Kind = KindPortMasq
			b.add(parse.TableNAT, parse.ChainPostrouting, masq, m)
		}
		d := er
		d.Kind, d.Rank = KindDNAT, 1
		b.add(parse.TableNAT, ChainDocker, dnat, d)
	}
}

// expectClassic adds the 20.10–27 layout (docker-facts.md §2.1).
//
//	FORWARD -> DOCKER-USER (-j RETURN)
//	        -> DOCKER-ISOLATION-STAGE-1 -> DOCKER-ISOLATION-STAGE-2
//	        -o BR conntrack ACCEPT, -o BR -> DOCKER, -i BR ! -o BR ACCEPT, -i BR -o BR ACCEPT
func expectClassic(b *builder, nets []*bridgeNet, ports []port) {
	e := b.e
	natRules(b, nets, ports, true, true)
	f := parse.TableFilter
	// Why: 20.10 sets DOCKER-USER up for IPv4 only ("TODO IPv6 support",
	// moby/moby#44451); 23.0+ for each family.
	user := e.Family == snapshot.FamilyIPv4 || e.Version.AtLeast(23, 0, 0)
	if !user {
		e.Chains[f] = slices.DeleteFunc(e.Chains[f], func(c parse.ChainName) bool { return c == ChainDockerUser })
	}
	if user {
		b.add(f, parse.ChainForward, "-j DOCKER-USER", ExpectedRule{Kind: KindJump, Rank: 0})
	}
	if e.Family == snapshot.FamilyIPv4 || len(nets) > 0 {
		// Why: the ISOLATION-1 jump is (re)pinned when a network of the
		// family is programmed; docker0 always is for IPv4, IPv6 needs
		// an --ipv6 network. Why the DOCKER-USER jump's rank: Docker
		// puts DOCKER-USER first when it creates a network, but a daemon
		// restart re-pins the ISOLATION-1 jump above it (real 20.10 and
		// 26.1 after a live-restore restart): either order is Docker's.
		b.add(f, parse.ChainForward, "-j DOCKER-ISOLATION-STAGE-1", ExpectedRule{Kind: KindJump, Rank: 0})
	}
	for _, n := range nets {
		er := ExpectedRule{Network: n.net.Name, Bridge: n.bridge, Rank: 2, Group: n.bridge}
		seq := func(k Kind, i int) ExpectedRule { r := er; r.Kind, r.Seq = k, i; return r }
		br := n.bridge
		if n.internal {
			if n.icc {
				b.add(f, parse.ChainForward, "-i "+br+" -o "+br+" -j ACCEPT", seq(KindNetworkPath, 0))
			}
		} else {
			b.add(f, parse.ChainForward, "-o "+br+" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", seq(KindNetworkPath, 0))
			b.add(f, parse.ChainForward, "-o "+br+" -j DOCKER", seq(KindNetworkPath, 1))
			b.add(f, parse.ChainForward, "-i "+br+" ! -o "+br+" -j ACCEPT", seq(KindNetworkPath, 2))
			if n.icc {
				b.add(f, parse.ChainForward, "-i "+br+" -o "+br+" -j ACCEPT", seq(KindNetworkPath, 3))
			}
		}
		if !n.icc {
			// Why: icc off appends the DROP at the end of FORWARD.
			r := seq(KindNetworkPath, 0)
			r.Rank, r.Group = 3, ""
			b.add(f, parse.ChainForward, "-i "+br+" -o "+br+" -j DROP", r)
		}
	}
	isolation(b, nets, ChainIsolation1)
	for _, n := range nets {
		if !n.internal {
			b.add(f, ChainIsolation2, "-o "+n.bridge+" -j DROP", ExpectedRule{Kind: KindIsolation, Network: n.net.Name, Bridge: n.bridge})
		}
	}
	b.add(f, ChainIsolation1, "-j RETURN", ExpectedRule{Kind: KindSkeleton, Rank: 1})
	b.add(f, ChainIsolation2, "-j RETURN", ExpectedRule{Kind: KindSkeleton, Rank: 1})
	if user {
		b.add(f, ChainDockerUser, "-j RETURN", ExpectedRule{Kind: KindSkeleton, Rank: 1})
	}
	for _, p := range ports {
		_, accept, _ := portSpecs(p, e.Proxy.On(), e.Family, e.Version, wantAccept)
		b.add(f, ChainDocker, accept, ExpectedRule{Kind: KindPortAccept, Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name, Port: p.binding(), Alt: p.alt})
	}
}

// isolation adds the ISOLATION-STAGE-1 (≤28) or DOCKER-INTERNAL (29)
// per-network rules.
func isolation(b *builder, nets []*bridgeNet, chain parse.ChainName) {
	for _, n := range nets {
		er := ExpectedRule{Kind: KindIsolation, Network: n.net.Name, Bridge: n.bridge, Group: n.bridge}
		if n.internal {
			if n.subnet == "" {
				continue
			}
			in, out := "-o "+n.bridge, "-i "+n.bridge
			if b.e.Family == snapshot.FamilyIPv6 && b.e.Version.AtLeast(24, 0, 6) {
				// Why: ip6tables form from 24.0.6 (seen on 28.5):
				// "! -s SUBNET6 ! -i BR -o BR", "! -d SUBNET6 -i BR ! -o BR".
				in, out = "! -i "+n.bridge+" -o "+n.bridge, "-i "+n.bridge+" ! -o "+n.bridge
			}
			b.add(parse.TableFilter, chain, "! -s "+n.subnet+" "+in+" -j DROP", er)
			er.Seq = 1
			b.add(parse.TableFilter, chain, "! -d "+n.subnet+" "+out+" -j DROP", er)
		} else if chain == ChainIsolation1 {
			b.add(parse.TableFilter, chain, "-i "+n.bridge+" ! -o "+n.bridge+" -j DOCKER-ISOLATION-STAGE-2", er)
		}
	}
}

// expect28 adds the 28.0.1+ layout (docker-facts.md §2.3) and 29's
// iptables variant (§2.4).
//
//	FORWARD -> DOCKER-USER
//	        -> DOCKER-FORWARD -> DOCKER-CT      (-o BR conntrack ACCEPT)
//	                          -> DOCKER-ISOLATION-STAGE-1 | DOCKER-INTERNAL (29)
//	                          -> DOCKER-BRIDGE  (-o BR -> DOCKER: port ACCEPTs, then DROP)
//	                          -i BR -j ACCEPT
func expect28(b *builder, nets []*bridgeNet, ports []port) {
	e := b.e
	v := e.Version
	is29 := e.Era == Era29
	natRules(b, nets, ports, !e.Proxy.On(), !is29)
	f := parse.TableFilter
	middle := ChainIsolation1
	if is29 {
		middle = ChainDockerIntern
	}
	b.add(f, parse.ChainForward, "-j DOCKER-USER", ExpectedRule{Kind: KindJump, Rank: 0})
	b.add(f, parse.ChainForward, "-j DOCKER-FORWARD", ExpectedRule{Kind: KindJump, Rank: 1})
	b.add(f, ChainDockerFwd, "-j DOCKER-CT", ExpectedRule{Kind: KindSkeleton, Rank: 0})
	b.add(f, ChainDockerFwd, "-j "+string(middle), ExpectedRule{Kind: KindSkeleton, Rank: 1})
	b.add(f, ChainDockerFwd, "-j DOCKER-BRIDGE", ExpectedRule{Kind: KindSkeleton, Rank: 2})
	if v.AtLeast(28, 0, 1) && !v.AtLeast(28, 2, 2) {
		// Why: removed in 28.2.2 (moby commit dc519a0f18).
		b.add(f, ChainDockerUser, "-j RETURN", ExpectedRule{Kind: KindSkeleton, Rank: 1})
	}
	for _, n := range nets {
		br := n.bridge
		er := ExpectedRule{Kind: KindNetworkPath, Network: n.net.Name, Bridge: br, Rank: 3, Group: br}
		if n.internal {
			verdict := "ACCEPT"
			if !n.icc {
				verdict = "DROP"
			}
			b.add(f, ChainDockerFwd, "-i "+br+" -o "+br+" -j "+verdict, er)
			continue
		}
		if n.icc {
			b.add(f, ChainDockerFwd, "-i "+br+" -j ACCEPT", er)
		} else {
			b.add(f, ChainDockerFwd, "-i "+br+" -o "+br+" -j DROP", er)
			er.Seq = 1
			b.add(f, ChainDockerFwd, "-i "+br+" ! -o "+br+" -j ACCEPT", er)
		}
		er = ExpectedRule{Kind: KindNetworkPath, Network: n.net.Name, Bridge: br}
		b.add(f, ChainDockerBridge, "-o "+br+" -j DOCKER", er)
		b.add(f, ChainDockerCT, "-o "+br+" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", er)
		switch n.gwMode {
		case "nat-unprotected":
			b.add(f, ChainDocker, "! -i "+br+" -o "+br+" -j ACCEPT", ExpectedRule{Kind: KindNetworkPath, Network: n.net.Name, Bridge: br, Rank: 1})
		case "routed":
			// Why (iptabler setupNonInternalNetworkRules, setINC with
			// routed): ICMP is let in, appended before the bridge's DROP;
			// ≤28 also inserts, at the top of ISOLATION-1, the replies
			// from the network to whichever network asked and a RETURN
			// that lets every other network in (29 has no isolation
			// chains). Port ACCEPTs as for nat (no DNAT, no raw DROP).
			icmp := "icmp"
			if e.Family == snapshot.FamilyIPv6 {
				icmp = "ipv6-icmp" // how ip6tables-save prints -p icmpv6 (real 28.5)
			}
			// Both appended: after other networks' DROPs, before its own.
			b.add(f, ChainDocker, "-o "+br+" -p "+icmp+" -j ACCEPT", ExpectedRule{Kind: KindNetworkPath, Network: n.net.Name, Bridge: br, Rank: 1, Group: br})
			b.add(f, ChainDocker, "! -i "+br+" -o "+br+" -j DROP", ExpectedRule{Kind: KindNetworkPath, Network: n.net.Name, Bridge: br, Rank: 1, Group: br, Seq: 1})
			if !is29 {
				b.add(f, ChainIsolation1, "-i "+br+" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", ExpectedRule{Kind: KindIsolation, Network: n.net.Name, Bridge: br, Group: br, Seq: -2})
				b.add(f, ChainIsolation1, "-o "+br+" -j RETURN", ExpectedRule{Kind: KindIsolation, Network: n.net.Name, Bridge: br, Group: br, Seq: -1})
			}
		default:
			// Why: per-port ACCEPTs are inserted above the bridge's DROP.
			b.add(f, ChainDocker, "! -i "+br+" -o "+br+" -j DROP", ExpectedRule{Kind: KindNetworkPath, Network: n.net.Name, Bridge: br, Rank: 1})
		}
		if !is29 {
			b.add(f, ChainIsolation2, "-o "+br+" -j DROP", ExpectedRule{Kind: KindIsolation, Network: n.net.Name, Bridge: br})
		}
	}
	isolation(b, nets, middle)
	for _, p := range ports {
		if p.bn.gwMode == "nat-unprotected" {
			continue
		}
		_, accept, _ := portSpecs(p, e.Proxy.On(), e.Family, e.Version, wantAccept)
		b.add(f, ChainDocker, accept, ExpectedRule{Kind: KindPortAccept, Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name, Port: p.binding(), Alt: p.alt, Rank: 0})
	}
	rawRules(b, nets, ports)
}

// rawRules adds the 28.x raw PREROUTING DROPs: per endpoint (28.2+) or per
// port (28.0.1–28.1), and the remote-loopback DROP per 127.0.0.1 port.
func rawRules(b *builder, nets []*bridgeNet, ports []port) {
	e := b.e
	perEndpoint := e.Version.AtLeast(28, 2, 0)
	seen := map[string]bool{}
	for _, p := range ports {
		if p.bn.gwMode == "routed" || p.bn.gwMode == "nat-unprotected" {
			continue
		}
		er := ExpectedRule{Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name, Port: p.binding(), Alt: p.alt}
		if !perEndpoint {
			pr := proto(p.pb)
			r := er
			r.Kind = KindRawEndpoint
			b.add(parse.TableRaw, parse.ChainPrerouting, "-d "+parse.CanonicalAddr(p.ip)+" ! -i "+p.bn.bridge+" -p "+pr+" -m "+pr+" --dport "+itoa(p.pb.ContainerPort)+" -j DROP", r)
		}
		// Why IPv4 only: 28.5 writes no raw DROP for a [::1] binding
		// (capture in diagnose/testdata); ::1 is not routable from
		// outside anyway.
		if p.hostIP != "" && isLoopback(p.hostIP) && e.Family == snapshot.FamilyIPv4 && !seen["lo/"+p.hostIP+itoa(p.pb.HostPort)+p.pb.Proto] {
			seen["lo/"+p.hostIP+itoa(p.pb.HostPort)+p.pb.Proto] = true
			pr := proto(p.pb)
			r := er
			r.Kind = KindRawLoopback
			b.add(parse.TableRaw, parse.ChainPrerouting, "-d "+parse.CanonicalAddr(p.hostIP)+" ! -i lo -p "+pr+" -m "+pr+" --dport "+itoa(p.pb.HostPort)+" -j DROP", r)
		}
	}
	if !perEndpoint {
		return
	}
	// Per endpoint: every running container's endpoint on a nat-mode,
	// non-internal bridge (28.2+, moby PR #49829), published ports or not.
	// The snapshot does not say whether the daemon runs with
	// --allow-direct-routing or DOCKER_INSECURE_NO_IPTABLES_RAW; Compare
	// treats missing raw rules as such, not as breakage (see checks).
	for _, p := range endpointsOf(b.s, nets, e.Family) {
		b.add(parse.TableRaw, parse.ChainPrerouting, "-d "+parse.CanonicalAddr(p.ip)+" ! -i "+p.bn.bridge+" -j DROP",
			ExpectedRule{Kind: KindRawEndpoint, Network: p.bn.net.Name, Bridge: p.bn.bridge, Container: p.ct.Name})
	}
}

// endpointsOf lists the endpoints of running containers on non-internal
// bridge networks of nets, in container order (ports left zero).
func endpointsOf(s *snapshot.Snapshot, nets []*bridgeNet, family string) []port {
	n := 0
	for i := range s.Docker.Containers {
		n += len(s.Docker.Containers[i].Endpoints)
	}
	out := make([]port, 0, n)
	for i := range s.Docker.Containers {
		c := &s.Docker.Containers[i]
		if !c.Running {
			continue
		}
		for _, ep := range c.Endpoints {
			bn := findNet(nets, ep)
			if bn == nil || bn.internal || epIP(ep, family) == "" || bn.gwMode == "routed" || bn.gwMode == "nat-unprotected" {
				continue
			}
			out = append(out, port{ct: c, ep: ep, bn: bn, ip: epIP(ep, family)})
		}
	}
	return out
}

// findNet returns the network of an endpoint, by ID then by name.
func findNet(nets []*bridgeNet, ep snapshot.Endpoint) *bridgeNet {
	for _, n := range nets {
		if ep.NetworkID != "" && n.net.ID == ep.NetworkID {
			return n
		}
	}
	for _, n := range nets {
		if n.net.Name == ep.Network {
			return n
		}
	}
	return nil
}
