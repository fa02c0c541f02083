package diagnose

import (
	"hash/maphash"
	"sort"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// analysisIndex holds what is derived from an analysis on first use and
// shared by every copy of it (the analysis is passed by value).
type analysisIndex struct {
	pathOnce sync.Once
	paths    pathIndex
	overOnce sync.Once
	overs    overrideIndex
	dnatOnce sync.Once
	dnats    bindingIndex
	brOnce   sync.Once
	bridges  []string
}

// bridgeNames returns the bridges of Docker's networks of the analysis'
// family (bridgeNets), computed once.
func (a analysis) bridgeNames() []string {
	build := func() []string {
		var out []string
		if a.snap == nil {
			return out
		}
		for _, n := range bridgeNets(a.snap, a.family()) {
			out = append(out, n.bridge)
		}
		return out
	}
	if a.idx == nil {
		return build()
	}
	a.idx.brOnce.Do(func() { a.idx.bridges = build() })
	return a.idx.bridges
}

// dnatsOf returns the expected DNAT rules of a container's binding, in
// Docker's order (an index built on first use: scanning nat DOCKER per
// published port made the ports table quadratic, 1 s of CPU at 10,000
// ports). The slice is shared: callers must not change it.
func (a analysis) dnatsOf(container string, pb snapshot.PortBinding) []ExpectedRule {
	rules := a.exp.RulesOf(parse.TableNAT, ChainDocker)
	build := func() bindingIndex {
		return buildBindingIndex(rules, func(er *ExpectedRule) bool { return er.Kind == KindDNAT })
	}
	var x bindingIndex
	if a.idx == nil {
		x = build()
	} else {
		a.idx.dnatOnce.Do(func() { a.idx.dnats = build() })
		x = a.idx.dnats
	}
	s := x.of(rules, acceptKey{container, pb})
	if s.spill == nil {
		return rules[s.lo:s.hi:s.hi]
	}
	out := make([]ExpectedRule, len(s.spill))
	for k, i := range s.spill {
		out[k] = rules[i]
	}
	return out
}

// bindingIndex finds the expected rules of a container's binding in a
// slice of rules: for each binding, the window lo:hi of the slice when
// its rules are next to each other (Docker writes them so: one binding,
// then the next), else their indices in spill. Why not a map by binding
// to copies of the rules: 96 bytes a key and 224 a rule, 15 MB at 33,000
// ports; the map is keyed by a hash of the binding, checked against the
// rule found, and the bindings whose hashes collide are in exact.
type bindingIndex struct {
	seed  maphash.Seed
	m     map[uint64]span
	exact map[acceptKey]span // bindings of a hash two bindings have
}

// span is where one binding's rules are (see bindingIndex).
type span struct {
	lo, hi int32
	spill  []int32
}

func (s span) add(i int) span {
	switch {
	case s.spill == nil && s.hi == int32(i):
		s.hi++
	case s.spill == nil:
		for k := s.lo; k < s.hi; k++ {
			s.spill = append(s.spill, k)
		}
		fallthrough
	default:
		s.spill = append(s.spill, int32(i))
	}
	return s
}

func bindingOf(er *ExpectedRule) acceptKey { return acceptKey{er.Container, *er.Port} }

func (s span) first() int32 {
	if s.spill != nil {
		return s.spill[0]
	}
	return s.lo
}

// bindingHash is the hash of bindingIndex (a variable for the test of
// collisions).
var bindingHash = func(seed maphash.Seed, k acceptKey) uint64 { return maphash.Comparable(seed, k) }

// collided marks a hash of m whose bindings are in exact.
var collided = span{lo: -1}

// buildBindingIndex indexes the rules with a Port that want keeps.
func buildBindingIndex(rules []ExpectedRule, want func(*ExpectedRule) bool) bindingIndex {
	x := bindingIndex{seed: maphash.MakeSeed(), m: map[uint64]span{}}
	for i := range rules {
		er := &rules[i]
		if er.Port == nil || !want(er) {
			continue
		}
		k := bindingOf(er)
		h := bindingHash(x.seed, k)
		s, ok := x.m[h]
		switch {
		case !ok:
			x.m[h] = span{lo: int32(i), hi: int32(i + 1)}
		case s.lo == collided.lo:
			if e, ok := x.exact[k]; ok {
				x.exact[k] = e.add(i)
			} else {
				x.exact[k] = span{lo: int32(i), hi: int32(i + 1)}
			}
		case bindingOf(&rules[s.first()]) == k:
			x.m[h] = s.add(i)
		default:
			// Two bindings of one hash: both, and any later binding of
			// the hash, go to exact.
			if x.exact == nil {
				x.exact = map[acceptKey]span{}
			}
			x.exact[bindingOf(&rules[s.first()])] = s
			x.exact[k] = span{lo: int32(i), hi: int32(i + 1)}
			x.m[h] = collided
		}
	}
	return x
}

// of returns where the rules of binding k are in rules (the slice the
// index was built of); an empty span when it has none.
func (x bindingIndex) of(rules []ExpectedRule, k acceptKey) span {
	if x.m == nil {
		return span{}
	}
	s, ok := x.m[bindingHash(x.seed, k)]
	switch {
	case !ok:
		return span{}
	case s.lo == collided.lo:
		return x.exact[k]
	case bindingOf(&rules[s.first()]) != k:
		return span{}
	}
	return s
}

// overIdx returns the override index of a (dnat_stale.go), built on first
// use.
func (a analysis) overIdx() *overrideIndex {
	if a.idx == nil {
		x := buildOverrideIndex(a)
		return &x
	}
	a.idx.overOnce.Do(func() { a.idx.overs = buildOverrideIndex(a) })
	return &a.idx.overs
}

// pathIndex indexes the filter rules pathRules picks, by their position in
// Expected.All() so that a port's rules come back in that order.
type pathIndex struct {
	all []ExpectedRule
	// jumps: filter jumps to DOCKER-FORWARD / DOCKER-BRIDGE (every port).
	jumps []int
	// need and drop per network: its path rules and its DROPs in filter
	// DOCKER.
	need, drop map[string][]int
	// accepts per container and binding: the port's ACCEPT rules.
	accepts bindingIndex
}

type acceptKey struct {
	container string
	port      snapshot.PortBinding
}

// pathIdx returns the path index of a, built on first use.
func (a analysis) pathIdx() *pathIndex {
	if a.idx == nil {
		// An analysis built by hand (tests): no sharing, build now.
		p := buildPathIndex(a.exp)
		return &p
	}
	a.idx.pathOnce.Do(func() { a.idx.paths = buildPathIndex(a.exp) })
	return &a.idx.paths
}

func buildPathIndex(e *Expected) pathIndex {
	p := pathIndex{need: map[string][]int{}, drop: map[string][]int{}}
	if e == nil {
		return p
	}
	p.all = e.All()
	p.accepts = buildBindingIndex(p.all, func(er *ExpectedRule) bool {
		return er.Table == parse.TableFilter && er.Kind == KindPortAccept
	})
	for i := range p.all {
		er := &p.all[i]
		if er.Table != parse.TableFilter {
			continue
		}
		switch er.Kind {
		case KindJump, KindSkeleton:
			if to := parse.ChainName(er.Target); to == ChainDockerFwd || to == ChainDockerBridge {
				p.jumps = append(p.jumps, i)
			}
		case KindNetworkPath:
			r := er.Rule()
			if r.Target == parse.TargetDrop {
				if r.Chain == ChainDocker {
					p.drop[er.Network] = append(p.drop[er.Network], i)
				}
				continue
			}
			intra := !r.InIface.IsZero() && !r.InIface.Negated && !r.OutIface.IsZero() && !r.OutIface.Negated
			if intra || containsCtstate(er.Spec()) {
				continue
			}
			p.need[er.Network] = append(p.need[er.Network], i)
		}
	}
	return p
}

// pathRulesOf is pathRules through the index: the same rules in the same
// order (that of Expected.All), without a scan of every expected rule per
// port.
func (p *pathIndex) pathRulesOf(dnat ExpectedRule) (need, drop []*ExpectedRule) {
	nw := p.need[dnat.Network]
	idx := make([]int, 0, len(p.jumps)+len(nw)+2)
	idx = append(idx, p.jumps...)
	idx = append(idx, nw...)
	if dnat.Port != nil {
		s := p.accepts.of(p.all, acceptKey{dnat.Container, *dnat.Port})
		add := func(i int) {
			if er := &p.all[i]; er.Alt == "" || er.Network == dnat.Network {
				idx = append(idx, i)
			}
		}
		if s.spill != nil {
			for _, i := range s.spill {
				add(int(i))
			}
		}
		for i := s.lo; i < s.hi && s.spill == nil; i++ {
			add(int(i))
		}
	}
	sort.Ints(idx)
	// Pointers into p.all, which nothing changes once built: copies of
	// the rules cost 80 MB of copying at 33,000 ports.
	need = make([]*ExpectedRule, len(idx))
	for k, i := range idx {
		need[k] = &p.all[i]
	}
	if d := p.drop[dnat.Network]; len(d) > 0 {
		drop = make([]*ExpectedRule, len(d))
		for k, i := range d {
			drop[k] = &p.all[i]
		}
	}
	return need, drop
}

func containsCtstate(spec string) bool { return strings.Contains(spec, "--ctstate") }
