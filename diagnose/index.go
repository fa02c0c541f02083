package diagnose

import (
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
	dnats    map[acceptKey]dnatSpan
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
	if a.idx == nil {
		return buildDNATIndex(rules)[acceptKey{container, pb}].of(rules)
	}
	a.idx.dnatOnce.Do(func() { a.idx.dnats = buildDNATIndex(rules) })
	return a.idx.dnats[acceptKey{container, pb}].of(rules)
}

// dnatSpan is where a binding's DNAT rules are in nat DOCKER's expected
// rules: the window lo:hi when they are next to each other (Docker writes
// them so: one binding, then the next), else the copies in spill. Why not
// copies always: they cost 15 MB at 33,000 ports.
type dnatSpan struct {
	lo, hi int32
	spill  []ExpectedRule
}

func (s dnatSpan) of(rules []ExpectedRule) []ExpectedRule {
	if s.spill != nil {
		return s.spill
	}
	return rules[s.lo:s.hi:s.hi]
}

func buildDNATIndex(rules []ExpectedRule) map[acceptKey]dnatSpan {
	m := map[acceptKey]dnatSpan{}
	for i := range rules {
		er := &rules[i]
		if er.Kind != KindDNAT || er.Port == nil {
			continue
		}
		k := acceptKey{er.Container, *er.Port}
		s, ok := m[k]
		switch {
		case !ok:
			s = dnatSpan{lo: int32(i), hi: int32(i + 1)}
		case s.spill == nil && s.hi == int32(i):
			s.hi++
		default:
			if s.spill == nil {
				s.spill = append([]ExpectedRule(nil), rules[s.lo:s.hi]...)
			}
			s.spill = append(s.spill, *er)
		}
		m[k] = s
	}
	return m
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
	accepts map[acceptKey][]int
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
	p := pathIndex{need: map[string][]int{}, drop: map[string][]int{}, accepts: map[acceptKey][]int{}}
	if e == nil {
		return p
	}
	p.all = e.All()
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
		case KindPortAccept:
			if er.Port != nil {
				k := acceptKey{er.Container, *er.Port}
				p.accepts[k] = append(p.accepts[k], i)
			}
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
		for _, i := range p.accepts[acceptKey{dnat.Container, *dnat.Port}] {
			if er := &p.all[i]; er.Alt == "" || er.Network == dnat.Network {
				idx = append(idx, i)
			}
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
