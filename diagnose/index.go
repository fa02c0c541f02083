package diagnose

import (
	"hash/maphash"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// analysisIndex holds what is derived from an analysis on first use and
// shared by every copy of it (the analysis is passed by value).
type analysisIndex struct {
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
	sp := x.of(rules, acceptKey{container, pb})
	if spill := x.spill(sp); spill != nil {
		out := make([]ExpectedRule, len(spill))
		for k, i := range spill {
			out[k] = rules[i]
		}
		return out
	}
	return rules[sp.lo:sp.hi:sp.hi]
}

// bindingIndex finds the expected rules of a container's binding in a
// slice of rules: for each binding, the window lo:hi of the slice when
// its rules are next to each other (Docker writes them so: one binding,
// then the next), else their indices in spills. Why not a map by binding
// to copies of the rules: 96 bytes a key and 224 a rule, 15 MB at 33,000
// ports; the map is keyed by a hash of the binding, checked against the
// rule found, and the bindings whose hashes collide are in exact.
type bindingIndex struct {
	seed   maphash.Seed
	m      map[uint64]span
	exact  map[acceptKey]span // bindings of a hash two bindings have
	spills [][]int32
}

// acceptKey is a container's binding.
type acceptKey struct {
	container string
	port      snapshot.PortBinding
}

// span is where one binding's rules are: the window lo:hi, or (lo < -1)
// the indices in spills[-lo-2]; lo -1 marks a hash in exact.
type span struct{ lo, hi int32 }

// collided marks a hash of m whose bindings are in exact.
var collided = span{lo: -1}

// spill returns the indices of a span that is not a window, else nil.
func (x *bindingIndex) spill(s span) []int32 {
	if s.lo < -1 {
		return x.spills[-s.lo-2]
	}
	return nil
}

// each calls f with the index of every rule of s, in order.
func (x *bindingIndex) each(s span, f func(int)) {
	if sp := x.spill(s); sp != nil {
		for _, i := range sp {
			f(int(i))
		}
		return
	}
	for i := s.lo; i < s.hi; i++ {
		f(int(i))
	}
}

// add returns s with rule i added.
func (x *bindingIndex) add(s span, i int) span {
	if s.lo >= 0 && s.hi == int32(i) {
		return span{s.lo, s.hi + 1}
	}
	if s.lo >= 0 {
		var idx []int32
		for k := s.lo; k < s.hi; k++ {
			idx = append(idx, k)
		}
		x.spills = append(x.spills, idx)
		s = span{lo: int32(-len(x.spills) - 1)}
	}
	n := -s.lo - 2
	x.spills[n] = append(x.spills[n], int32(i))
	return s
}

func (x *bindingIndex) first(s span) int32 {
	if sp := x.spill(s); sp != nil {
		return sp[0]
	}
	return s.lo
}

// bindingHash is the hash of bindingIndex (a variable for the test of
// collisions).
var bindingHash = func(seed maphash.Seed, k acceptKey) uint64 { return maphash.Comparable(seed, k) }

func bindingOf(er *ExpectedRule) acceptKey { return acceptKey{er.Container, *er.Port} }

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
				x.exact[k] = x.add(e, i)
			} else {
				x.exact[k] = span{lo: int32(i), hi: int32(i + 1)}
			}
		case bindingOf(&rules[x.first(s)]) == k:
			x.m[h] = x.add(s, i)
		default:
			// Two bindings of one hash: both, and any later binding of
			// the hash, go to exact.
			if x.exact == nil {
				x.exact = map[acceptKey]span{}
			}
			x.exact[bindingOf(&rules[x.first(s)])] = s
			x.exact[k] = span{lo: int32(i), hi: int32(i + 1)}
			x.m[h] = collided
		}
	}
	return x
}

// of returns where the rules of binding k are in rules (the slice the
// index was built of); an empty span when it has none.
func (x *bindingIndex) of(rules []ExpectedRule, k acceptKey) span {
	if x.m == nil {
		return span{}
	}
	s, ok := x.m[bindingHash(x.seed, k)]
	switch {
	case !ok:
		return span{}
	case s.lo == collided.lo:
		return x.exact[k]
	case bindingOf(&rules[x.first(s)]) != k:
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
