package diagnose

import (
	"sort"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Why a memo: every check starts from the same expected rules and the same
// comparison (analyze). Recomputing them per check, and per published port
// in Ports, cost about 1 s of CPU on a host with 1,000 published ports.
//
// The memo is scoped, not a global cache: Run, Ports, NewReport and NewPlan
// open a scope for their snapshot (memoize) and the analysis is computed at
// most once while a scope for that snapshot pointer is open; the entry is
// dropped when the outermost scope closes. A caller that changes a snapshot
// between two calls (replaces its Rules, say) therefore always gets a fresh
// analysis; a snapshot must not change during one call, which the pure
// checks never do.
var memo = struct {
	sync.Mutex
	m map[*snapshot.Snapshot]*memoEntry
}{m: map[*snapshot.Snapshot]*memoEntry{}}

type memoEntry struct {
	refs int
	mu   sync.Mutex
	fam  map[string]*memoResult // by family
}

type memoResult struct {
	once sync.Once
	a    analysis
	ok   bool
}

// memoize opens a memo scope for s and returns the function that closes it
// (defer memoize(s)()). A nil snapshot needs no scope.
func memoize(s *snapshot.Snapshot) func() {
	if s == nil {
		return func() {}
	}
	memo.Lock()
	e := memo.m[s]
	if e == nil {
		e = &memoEntry{}
		memo.m[s] = e
	}
	e.refs++
	memo.Unlock()
	return func() {
		memo.Lock()
		if e.refs--; e.refs == 0 {
			delete(memo.m, s)
		}
		memo.Unlock()
	}
}

// memoizeEnv opens a memo scope for env.S whose analyses are env's
// (transitional, for Ports): Ports then judges on exactly what the checks
// compared, a raw dump's table pruning included.
func memoizeEnv(env *Env) func() {
	done := memoize(env.S)
	for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
		memoized(env.S, fam, func(*snapshot.Snapshot) (analysis, bool) { return env.analysis(fam) })
	}
	return done
}

// memoized returns the analysis of family fam (snapshot.FamilyIPv4 or
// IPv6) of s from the open scope, computing it once with compute; found is
// false when no scope is open for s (the caller then computes it itself).
// The analysis returned carries a shared index (analysisIndex).
func memoized(s *snapshot.Snapshot, fam string, compute func(*snapshot.Snapshot) (analysis, bool)) (a analysis, ok, found bool) {
	memo.Lock()
	e := memo.m[s]
	memo.Unlock()
	if e == nil {
		return a, false, false
	}
	e.mu.Lock()
	if e.fam == nil {
		e.fam = map[string]*memoResult{}
	}
	r := e.fam[fam]
	if r == nil {
		r = &memoResult{}
		e.fam[fam] = r
	}
	e.mu.Unlock()
	r.once.Do(func() {
		r.a, r.ok = compute(s)
		if r.ok && r.a.idx == nil {
			r.a.idx = &analysisIndex{}
		}
	})
	return r.a, r.ok, true
}

// analyze is the memoised IPv4 analysis for Ports (transitional: the
// checks use Env).
func analyze(s *snapshot.Snapshot) (analysis, bool) {
	if a, ok, found := memoized(s, snapshot.FamilyIPv4, analyzeUncached); found {
		return a, ok
	}
	return analyzeUncached(s)
}

func analyzeUncached(s *snapshot.Snapshot) (analysis, bool) {
	return computeAnalysis(s, snapshot.FamilyIPv4, false)
}

// analyzeIPv6 is analyze for IPv6.
func analyzeIPv6(s *snapshot.Snapshot) (analysis, bool) {
	if a, ok, found := memoized(s, snapshot.FamilyIPv6, analyzeIPv6Uncached); found {
		return a, ok
	}
	return analyzeIPv6Uncached(s)
}

func analyzeIPv6Uncached(s *snapshot.Snapshot) (analysis, bool) {
	return computeAnalysis(s, snapshot.FamilyIPv6, false)
}

// analysisIndex holds what is derived from an analysis on first use and
// shared by every copy of it (the analysis is passed by value).
type analysisIndex struct {
	pathOnce sync.Once
	paths    pathIndex
	overOnce sync.Once
	overs    overrideIndex
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
		if er.Rule.Table != parse.TableFilter {
			continue
		}
		switch er.Kind {
		case KindJump, KindSkeleton:
			if to := parse.ChainName(er.Rule.Target); to == ChainDockerFwd || to == ChainDockerBridge {
				p.jumps = append(p.jumps, i)
			}
		case KindNetworkPath:
			r := er.Rule
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
func (p *pathIndex) pathRulesOf(dnat ExpectedRule) (need, drop []ExpectedRule) {
	idx := append([]int(nil), p.jumps...)
	idx = append(idx, p.need[dnat.Network]...)
	if dnat.Port != nil {
		for _, i := range p.accepts[acceptKey{dnat.Container, *dnat.Port}] {
			if er := &p.all[i]; er.Alt == "" || er.Network == dnat.Network {
				idx = append(idx, i)
			}
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		need = append(need, p.all[i])
	}
	for _, i := range p.drop[dnat.Network] {
		drop = append(drop, p.all[i])
	}
	return need, drop
}

func containsCtstate(spec string) bool { return strings.Contains(spec, "--ctstate") }
