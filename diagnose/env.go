package diagnose

import (
	"slices"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Env is the analysis environment the checks run on: one snapshot and what
// is derived from it, computed at most once per Env (the expected rules
// and their comparison with the dump, per family, and their indexes). It
// replaces recomputation per check (about 1 s of CPU on a 1,000-port host)
// without any global state: an Env lives as long as the caller keeps it.
//
// An Env must not be shared between snapshots, and the snapshot must not
// change while the Env is in use. It is safe for concurrent use.
type Env struct {
	// S is the snapshot (with an inferred Docker view when the API could
	// not be read: see NewReport).
	S *snapshot.Snapshot
	// RulesOnly: S was built from a raw iptables dump (no links, sysctls,
	// processes); the Docker view, if any, was inferred from the rules.
	RulesOnly bool
	// Inference is what a raw dump's Docker view was inferred from
	// (RulesOnly only; nil when the rules show no Docker layout).
	Inference *RuleInference

	fam [2]envFamily

	proxyOnce sync.Once
	proxyIdx  *proxyIndex

	unservedOnce sync.Once
	unserved     []unservedPort

	nftOnce sync.Once // Docker's nftables tables compared (nft_analysis.go)
	nftAs   []nftAnalysis

	paths portJudgements // the engine's verdicts on the ports (port_paths.go)
}

// proxies returns the index of the snapshot's docker-proxy processes,
// built once.
func (e *Env) proxies() *proxyIndex {
	e.proxyOnce.Do(func() { e.proxyIdx = indexProxies(e.S) })
	return e.proxyIdx
}

// proxyIndex finds the docker-proxy processes of a binding without a
// scan of every process per binding (quadratic at scale: 1 s at 10,000
// ports).
type proxyIndex struct {
	// byPort holds, per protocol and host port, the window of procs
	// with its processes when they are next to each other in the
	// snapshot (one process a port: the usual case), else -1 and the
	// processes in more. Why not a slice per port: 4 MB at 33,000 ports.
	byPort map[proxyPortKey][2]int32
	more   map[proxyPortKey][]*snapshot.Proxy
	procs  []*snapshot.Proxy
	ranges []*snapshot.Proxy // -host-port-end: few, scanned
}

type proxyPortKey struct {
	proto string
	port  int
}

func indexProxies(s *snapshot.Snapshot) *proxyIndex {
	x := &proxyIndex{byPort: map[proxyPortKey][2]int32{}}
	if s == nil {
		return x
	}
	x.procs = make([]*snapshot.Proxy, len(s.Proxies))
	for i := range s.Proxies {
		p := &s.Proxies[i]
		x.procs[i] = p
		if p.HostPortEnd > p.HostPort {
			x.ranges = append(x.ranges, p)
			continue
		}
		k := proxyPortKey{p.Proto, p.HostPort}
		w, ok := x.byPort[k]
		switch {
		case !ok:
			x.byPort[k] = [2]int32{int32(i), int32(i + 1)}
		case w[0] >= 0 && w[1] == int32(i):
			x.byPort[k] = [2]int32{w[0], w[1] + 1}
		default:
			if x.more == nil {
				x.more = map[proxyPortKey][]*snapshot.Proxy{}
			}
			if w[0] >= 0 {
				x.more[k] = append([]*snapshot.Proxy(nil), x.procs[w[0]:w[1]]...)
				x.byPort[k] = [2]int32{-1, -1}
			}
			x.more[k] = append(x.more[k], p)
		}
	}
	return x
}

// onPort returns the processes that serve the binding's protocol and host
// port (proxyOnPort), in the snapshot's order. The slice is shared:
// callers must not change it.
func (x *proxyIndex) onPort(pb *snapshot.PortBinding) []*snapshot.Proxy {
	k := proxyPortKey{proto(*pb), pb.HostPort}
	var out []*snapshot.Proxy
	if w, ok := x.byPort[k]; ok {
		if w[0] < 0 {
			out = x.more[k]
		} else {
			out = x.procs[w[0]:w[1]:w[1]]
		}
	}
	if len(x.ranges) == 0 {
		return out
	}
	out = append([]*snapshot.Proxy(nil), out...)
	for _, p := range x.ranges {
		if proxyOnPort(p, pb) {
			out = append(out, p)
		}
	}
	return out
}

type envFamily struct {
	once sync.Once
	a    analysis
	ok   bool

	expOnce sync.Once
	exp     *Expected
	expErr  error

	gwOnce sync.Once
	gw     map[string]string
}

// gatewayMode is GatewayMode(S, network, family), from a map built once
// (the ports table asks once per port).
func (e *Env) gatewayMode(network, family string) string {
	f := &e.fam[0]
	if family == snapshot.FamilyIPv6 {
		f = &e.fam[1]
	}
	f.gwOnce.Do(func() {
		f.gw = map[string]string{}
		if e.S == nil || e.S.Docker == nil {
			return
		}
		v, _ := ParseVersion(e.S.Docker.Version)
		for _, n := range e.S.Docker.Networks {
			if _, dup := f.gw[n.Name]; !dup {
				f.gw[n.Name] = gatewayMode(n, family, v)
			}
		}
	})
	return f.gw[network]
}

// NewEnv returns the environment of s (nil s: an Env in which every check
// stays silent).
func NewEnv(s *snapshot.Snapshot) *Env { return &Env{S: s} }

// analysis returns the comparison of one family (snapshot.FamilyIPv4 or
// IPv6), computed once. ok is false when there is nothing to compare (no
// Docker view, era not modelled, Docker writes no rules of that family, no
// usable dump): checks then stay silent for the family.
func (e *Env) analysis(family string) (analysis, bool) {
	i := 0
	if family == snapshot.FamilyIPv6 {
		i = 1
	}
	f := &e.fam[i]
	f.once.Do(func() {
		f.a, f.ok = computeAnalysis(e, family)
	})
	return f.a, f.ok
}

// expected returns Expect(S, family), computed once (the report's layout
// and notes and the analysis share it).
func (e *Env) expected(family string) (*Expected, error) {
	f := &e.fam[0]
	if family == snapshot.FamilyIPv6 {
		f = &e.fam[1]
	}
	f.expOnce.Do(func() { f.exp, f.expErr = Expect(e.S, family) })
	return f.exp, f.expErr
}

// v4 is the IPv4 analysis.
func (e *Env) v4() (analysis, bool) { return e.analysis(snapshot.FamilyIPv4) }

// analyses returns the analyses of the families with something to
// compare: IPv4, then IPv6 when Docker writes ip6tables rules here.
func (e *Env) analyses() []analysis {
	var out []analysis
	for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
		if a, ok := e.analysis(fam); ok {
			out = append(out, a)
		}
	}
	return out
}

// computeAnalysis derives and compares the rules of one family of the
// backend Docker writes to. For a raw dump (rulesOnly) the expected rules
// of tables the input does not hold are dropped: a pasted `iptables -t nat
// -L` says nothing about the filter table, so nothing there can be missing.
func computeAnalysis(env *Env, family string) (analysis, bool) {
	s, rulesOnly := env.S, env.RulesOnly
	if s == nil || s.Docker == nil || s.Docker.Error != "" && len(s.Docker.Networks) == 0 {
		return analysis{}, false
	}
	e, err := env.expected(family)
	if err != nil || !e.Modelled {
		return analysis{}, false
	}
	d, err := s.PickDump(snapshot.BackendAuto, family)
	if err != nil {
		return analysis{}, false
	}
	if rulesOnly {
		e = onlyTablesOf(e, d.Ruleset)
	}
	diff := Compare(e, d.Ruleset)
	if rulesOnly && d.Ruleset.Table(parse.TableFilter) == nil {
		// Why: without the filter table the layout is a guess, and
		// whether Docker writes per-port hairpin MASQUERADEs (20.10-27
		// always, 28+ with the proxy off), nat RETURNs (not 29) or the
		// proxy-off hairpin depends on it. Expect such rules only when
		// the dump shows Docker writes them (one of the kind is there).
		e = withoutAbsentKinds(e, diff, KindPortMasq, KindNATReturn, KindHairpinMasq)
		diff = Compare(e, d.Ruleset)
	}
	return analysis{exp: e, rs: d.Ruleset, diff: diff, dump: d, snap: s, idx: &analysisIndex{}}, true
}

// withoutAbsentKinds returns e without the expected rules of those kinds
// of which diff found none.
func withoutAbsentKinds(e *Expected, diff *Diff, kinds ...Kind) *Expected {
	found := map[Kind]bool{}
	for _, er := range e.All() {
		if diff.Got(er) != nil {
			found[er.Kind] = true
		}
	}
	return e.keeping(func(er ExpectedRule) bool { return !slices.Contains(kinds, er.Kind) || found[er.Kind] })
}

// onlyTablesOf returns e without the tables rs does not hold (e itself
// when it holds them all).
func onlyTablesOf(e *Expected, rs *parse.Ruleset) *Expected {
	c := e.keeping(func(er ExpectedRule) bool { return rs.Table(er.Table) != nil })
	chains := map[parse.TableName][]parse.ChainName{}
	for t, cs := range e.Chains {
		if rs.Table(t) != nil {
			chains[t] = cs
		}
	}
	if c == e {
		if len(chains) == len(e.Chains) {
			return e
		}
		cp := *e // the same rules: All's cache and the parsed forms are shared
		c = &cp
	}
	c.Chains = chains
	return c
}
