package diagnose

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// OpKind is what one repair operation does.
type OpKind string

// The operations a plan may hold. Nothing else is ever planned: no flush,
// no chain deletion, no policy change, no rule rewrite.
const (
	// OpCreateChain declares one of Docker's chains that does not exist.
	OpCreateChain OpKind = "create-chain"
	// OpInsert inserts a rule at Position (1-based) of its chain, counted
	// after every earlier operation of the plan on that chain.
	OpInsert OpKind = "insert"
	// OpAppend appends a rule at the end of its chain.
	OpAppend OpKind = "append"
	// OpDelete deletes the first rule of the chain with exactly Spec.
	OpDelete OpKind = "delete"
	// OpSysctl writes Value to the sysctl Name (was Old).
	OpSysctl OpKind = "sysctl"
)

// Op is one operation of a Plan. JSON field names are stable.
type Op struct {
	Kind   OpKind          `json:"op"`
	Family string          `json:"family,omitempty"`
	Table  parse.TableName `json:"table,omitempty"`
	Chain  parse.ChainName `json:"chain,omitempty"`
	// Position is the 1-based insert position (OpInsert only).
	Position int `json:"position,omitempty"`
	// Spec is the rule after "-A CHAIN", byte for byte what Docker's
	// version writes (so that Docker's own -D finds it later).
	Spec string `json:"spec,omitempty"`
	// Sysctl fields (OpSysctl only).
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
	Old   string `json:"old,omitempty"`
	// Why names the check (its ID) whose finding the operation repairs,
	// and Finding that finding's key (Finding.Key).
	Why     string `json:"why"`
	Finding string `json:"finding"`
}

// Line renders a rule operation as an iptables-restore line ("-I DOCKER 3
// ...", "-A ...", "-D ...", ":CHAIN - [0:0]"); "" for a sysctl.
func (o Op) Line() string {
	switch o.Kind {
	case OpCreateChain:
		return ":" + string(o.Chain) + " - [0:0]"
	case OpInsert:
		return fmt.Sprintf("-I %s %d %s", o.Chain, o.Position, o.Spec)
	case OpAppend:
		return "-A " + string(o.Chain) + " " + o.Spec
	case OpDelete:
		return "-D " + string(o.Chain) + " " + o.Spec
	}
	return ""
}

// PlannedFinding is a finding with what the plan does about it.
type PlannedFinding struct {
	Finding Finding `json:"finding"`
	// Repaired is true when the plan's operations repair it.
	Repaired bool `json:"repaired"`
	// Reason says why it is not repaired (or how it is: "resolved by the
	// nat repairs").
	Reason string `json:"reason,omitempty"`
}

// Plan is a repair as data: the operations that bring Docker's rules
// back to what its version writes, and what is left alone and why. It is
// computed from a snapshot; `repair` renders and applies it.
type Plan struct {
	// Backend is the iptables backend holding Docker's rules ("nft",
	// "legacy", or "" for whatever plain iptables uses).
	Backend string `json:"backend"`
	NetNS   string `json:"netns"`
	// Ops in the order they must run. Rule operations of one family and
	// table run in this order inside one iptables-restore payload.
	Ops      []Op             `json:"ops"`
	Findings []PlannedFinding `json:"findings"`
	Notes    []string         `json:"notes"`
}

// ipt is the command of the expected rules' family.
func (e *Expected) ipt() string {
	if e.Family == snapshot.FamilyIPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return p == nil || len(p.Ops) == 0 }

// RuleOps returns the rule and chain operations of one family and table,
// in order.
func (p *Plan) RuleOps(family string, t parse.TableName) []Op {
	var out []Op
	for _, o := range p.Ops {
		if o.Kind != OpSysctl && o.Family == family && o.Table == t {
			out = append(out, o)
		}
	}
	return out
}

// SysctlOps returns the sysctl writes.
func (p *Plan) SysctlOps() []Op {
	var out []Op
	for _, o := range p.Ops {
		if o.Kind == OpSysctl {
			out = append(out, o)
		}
	}
	return out
}

// Repaired returns the findings the plan repairs.
func (p *Plan) Repaired() []Finding {
	var out []Finding
	for _, f := range p.Findings {
		if f.Repaired {
			out = append(out, f.Finding)
		}
	}
	return out
}

// NewPlan computes the repair of s for the given findings (those of
// NewReport on the same snapshot). It is pure; it never fails: what it
// cannot repair is listed with the reason. The plan is empty when s
// needs nothing, so planning a repaired host gives an empty plan.
//
// What it plans, for IPv4 and, when Docker writes ip6tables rules here,
// for IPv6 (each operation carries its Family):
//   - create each of Docker's chains that is missing;
//   - each missing expected rule, at Docker's place: inserted before the
//     first present rule that Docker keeps after it, else right after the
//     last of Docker's rules in the chain, else where Docker puts it
//     (FORWARD -> DOCKER-USER first, everything else appended);
//   - delete DNAT rules of nat DOCKER that Docker's view does not account
//     for and whose target no running container has, or that takes a port
//     Docker maps elsewhere (provably stale);
//   - net.ipv4.ip_forward=1 when it is 0; net.ipv6.conf.all.forwarding=1
//     when it is 0 and Docker has IPv6 networks in use, unless the host
//     learns IPv6 routes from router advertisements where accept_ra is 1.
//
// It never touches: rules of DOCKER-USER (unless the plan creates that
// chain, then it writes only Docker's skeleton), chains that are not
// Docker's, rules of built-in chains that are not Docker's, policies,
// other tables.
func NewPlan(s *snapshot.Snapshot, findings []Finding) *Plan {
	return newPlanEnv(NewEnv(s), findings)
}

// Release lets go of the analysis the report was made from (a later Plan
// makes its own): a caller that only renders the report frees Docker's
// expected rules, their comparison and indices, and the snapshot they
// hold, before it renders (about 100 MB at 33,000 ports).
func (r *Report) Release() { r.env = nil }

// Plan is NewPlan(s, r.Findings) for the snapshot the report was made
// of, reusing the report's analysis when it is of s itself (not of a
// Docker view inferred for a partial report): on a big host the analysis
// is most of the cost, and computing it twice cost 0.9 s at 33,000 ports.
func (r *Report) Plan(s *snapshot.Snapshot) *Plan {
	if r.env != nil && r.env.S == s && !r.env.RulesOnly {
		return newPlanEnv(r.env, r.Findings)
	}
	return NewPlan(s, r.Findings)
}

func newPlanEnv(env *Env, findings []Finding) *Plan {
	s := env.S
	p := &Plan{Ops: []Op{}, Findings: []PlannedFinding{}, Notes: []string{}}
	if s != nil {
		p.NetNS = s.Host.NetNS
	}
	if why := dockerElsewhere(s); why != "" {
		p.Notes = append(p.Notes, why+": nothing is planned")
		return p
	}
	if as := env.analyses(); len(as) > 0 && s.Docker.Error == "" {
		// IPv4, then IPv6 when Docker writes ip6tables rules (analyses):
		// repair.Render makes one payload per family and table.
		p.Backend = as[0].dump.Backend
		for _, a := range as {
			planRules(p, s, a)
		}
	} else if s != nil && s.Docker != nil && s.Docker.Error != "" {
		p.Notes = append(p.Notes, "Docker's view is partial ("+s.Docker.Error+"): no rule is planned")
	} else if !nftJudged(s) {
		p.Notes = append(p.Notes, "Docker's expected rules could not be derived (no Docker view, or a layout that is not modelled): no rule is planned")
	}
	if s != nil && s.Docker != nil && s.Docker.Error == "" {
		planNft(p, env) // Docker's nftables backend (nft_plan.go)
	}
	if a, ok := env.v4(); ok && planHasWhy(p, "docker-chain-missing") {
		if c := a.rs.Table(parse.TableFilter).Chain(parse.ChainForward); c != nil && c.Policy == parse.TargetAccept {
			p.Notes = append(p.Notes, "filter FORWARD policy is ACCEPT: Docker sets it to DROP when it turns ip_forward on; "+
				"policies are never changed by iptscope (`iptables -P FORWARD DROP` if you want it back)")
		}
	}
	if v, ok := sysctl(s, "net.ipv4.ip_forward"); ok && v == "0" {
		p.Ops = append(p.Ops, Op{Kind: OpSysctl, Name: "net.ipv4.ip_forward", Value: "1", Old: v, Why: "ip-forward-disabled", Finding: KeyOf("ip-forward-disabled", Subject{})})
	}
	if _, off := knownProxyOff(s); off {
		for _, b := range localnetBridges(s) {
			p.Ops = append(p.Ops, Op{Kind: OpSysctl, Name: "net.ipv4.conf." + b.bridge + ".route_localnet", Value: "1", Old: "0", Why: "route-localnet-disabled",
				Finding: KeyOf("route-localnet-disabled", Subject{Network: b.network})})
		}
	}
	brNF := ""
	if apiView(s) && len(brNetfilterNeeds(s).why) > 0 {
		switch v, read := s.Sysctls["net.bridge.bridge-nf-call-iptables"]; {
		case read && v.Present && v.Value == "0":
			p.Ops = append(p.Ops, Op{Kind: OpSysctl, Name: "net.bridge.bridge-nf-call-iptables", Value: "1", Old: "0", Why: "br-netfilter-disabled", Finding: KeyOf("br-netfilter-disabled", Subject{})})
		case read && !v.Present:
			brNF = "br_netfilter is not loaded: `modprobe br_netfilter` (iptscope does not load kernel modules)"
		}
	}
	v6Note := ""
	if v, ok := sysctl(s, "net.ipv6.conf.all.forwarding"); ok && v == "0" && len(ipv6ForwardNeeded(s)) > 0 {
		if v6Note = ipv6ForwardPlanNote(s); v6Note == "" {
			p.Ops = append(p.Ops, Op{Kind: OpSysctl, Name: "net.ipv6.conf.all.forwarding", Value: "1", Old: v, Why: "ipv6-forward-disabled", Finding: KeyOf("ipv6-forward-disabled", Subject{Family: snapshot.FamilyIPv6})})
		} else {
			p.Notes = append(p.Notes, v6Note)
		}
	}
	fixed := map[string]bool{}
	for _, o := range p.Ops {
		fixed[o.Finding] = true
	}
	for _, f := range findings {
		pf := PlannedFinding{Finding: f}
		c, _ := CheckByID(f.ID)
		switch {
		case fixed[f.Key]:
			pf.Repaired = true
		case len(f.CausedBy) > 0 && allIn(f.CausedBy, fixed):
			pf.Repaired, pf.Reason = true, "resolved by repairing what it follows from: "+strings.Join(f.CausedBy, ", ")
		case f.ID == "ipv6-forward-disabled" && v6Note != "":
			pf.Reason = v6Note
		case f.ID == "br-netfilter-disabled" && brNF != "":
			pf.Reason = brNF
		case c.Repair.Auto:
			pf.Reason = "no operation could be planned for it (see the notes)"
		default:
			pf.Reason = c.NotRepairedReason()
		}
		p.Findings = append(p.Findings, pf)
	}
	return p
}

// allIn reports whether every key is in set.
func allIn(keys []string, set map[string]bool) bool {
	for _, k := range keys {
		if !set[k] {
			return false
		}
	}
	return true
}

func planHasWhy(p *Plan, id string) bool {
	for _, o := range p.Ops {
		if o.Why == id {
			return true
		}
	}
	return false
}

// slot is one rule of a chain while the plan simulates its operations.
type slot struct {
	er  *ExpectedRule // nil: not one of Docker's expected rules
	hit *parse.Rule   // the dump's rule (nil when planned)
}

// planRules adds the chain and rule operations of one family, each linked
// to the finding it repairs.
func planRules(p *Plan, s *snapshot.Snapshot, a analysis) {
	e, d := a.exp, a.diff
	created := map[parse.TableName]map[parse.ChainName]bool{}
	chainKey := KeyOf("docker-chain-missing", Subject{Family: e.Family})
	claim := claimer()
	// Raw DROPs (28.x): restored only when Docker demonstrably writes
	// them here (rawWanted, raw_drop_missing.go).
	rawWanted := rawWanted(a)
	for _, t := range parse.KnownTables {
		for _, c := range e.Chains[t] {
			if a.chainExists(t, c) {
				continue
			}
			if created[t] == nil {
				created[t] = map[parse.ChainName]bool{}
			}
			created[t][c] = true
			p.Ops = append(p.Ops, Op{Kind: OpCreateChain, Family: e.Family, Table: t, Chain: c, Why: "docker-chain-missing", Finding: chainKey})
		}
	}
	// Stale DNATs first: deleting them shifts positions.
	live := liveIPs(s)
	deleted := map[*parse.Rule]bool{}
	for _, r := range d.Unexpected {
		if r.Table != parse.TableNAT || r.Chain != ChainDocker || r.Target != parse.TargetDNAT {
			continue
		}
		dest, err := parse.ParseNATDest(r.NATTo())
		if err != nil || dest.IP == "" {
			continue
		}
		if _, err := netip.ParseAddr(dest.IP); err != nil {
			continue
		}
		if live[canonIP(dest.IP)] != "" && len(overrides(a, r)) == 0 {
			continue // a live container's address: stale only if it takes Docker's port
		}
		deleted[r] = true
		p.Ops = append(p.Ops, Op{Kind: OpDelete, Family: e.Family, Table: parse.TableNAT, Chain: ChainDocker, Spec: r.Spec(), Why: "dnat-stale",
			Finding: KeyOf("dnat-stale", staleCause(a, r))})
	}
	missing := map[int32]bool{}
	altSkipped := map[string]bool{}
	for _, er := range d.Missing {
		if er.Alt != "" {
			if !altSkipped[er.Alt] {
				altSkipped[er.Alt] = true
				p.Notes = append(p.Notes, fmt.Sprintf("container %s is on several networks; which one Docker programs port %s for is not in the snapshot: its rules are not restored", er.Container, portName(er.Port)))
			}
			continue
		}
		t, c := er.Table, er.Chain
		if c == ChainDockerUser && !created[t][c] {
			continue // the administrator's chain: never touched
		}
		if t == parse.TableRaw && !rawWanted {
			p.Notes = append(p.Notes, "raw rule not restored (Docker may run without raw rules here): -t raw -A "+string(c)+" "+er.Spec())
			continue
		}
		missing[er.id] = true
	}
	for _, t := range parse.KnownTables {
		chains := make([]parse.ChainName, 0)
		seen := map[parse.ChainName]bool{}
		// Built-in chains in hook order, then Docker's in declaration order.
		for _, c := range parse.BuiltinChains[t] {
			if len(e.Rules[t][c]) > 0 && !seen[c] {
				chains, seen[c] = append(chains, c), true
			}
		}
		for _, c := range e.Chains[t] {
			if !seen[c] {
				chains, seen[c] = append(chains, c), true
			}
		}
		for _, c := range chains {
			ops := planChain(p, e, a, d, t, c, missing, deleted, claim)
			if len(ops) > 0 && t == parse.TableNAT {
			}
			p.Ops = append(p.Ops, ops...)
		}
	}
}

// planChain simulates the chain with the deletions done and inserts each
// missing rule, in Docker's order, at its place.
//
// Why it refuses a rule whose text the chain already holds (or the plan
// already adds): Docker writes each rule once, so a plan that would make a
// rule appear twice rests on a wrong expectation (two host ports served by
// one ACCEPT, say). Writing it would leave a duplicate Docker never
// deletes; the refusal is a note, and nothing else in the plan changes.
func planChain(p *Plan, e *Expected, a analysis, d *Diff, t parse.TableName, c parse.ChainName, missing map[int32]bool, deleted map[*parse.Rule]bool, claim claimFunc) []Op {
	byActual := map[*parse.Rule]*ExpectedRule{}
	exp := e.RulesOf(t, c)
	for i := range exp {
		if got := d.Got(exp[i]); got != nil {
			byActual[got] = &exp[i]
		}
	}
	var list []slot
	if ch := a.rs.Table(t).Chain(c); ch != nil {
		for _, r := range ch.Rules {
			if !deleted[r] {
				list = append(list, slot{er: byActual[r], hit: r})
			}
		}
	}
	have := map[string]bool{}
	maxRank := math.MinInt
	maxSeq := map[rankGroup]int{}
	note := func(er *ExpectedRule) {
		maxRank = max(maxRank, er.Rank)
		if k := (rankGroup{er.Rank, er.Group}); er.Group != "" {
			if v, ok := maxSeq[k]; !ok || er.Seq > v {
				maxSeq[k] = er.Seq
			}
		}
	}
	for _, sl := range list {
		have[sl.hit.Spec()] = true
		if sl.er != nil {
			note(sl.er)
		}
	}
	var ops []Op
	for i := range exp {
		er := &exp[i]
		if !missing[er.id] {
			continue
		}
		if have[er.Spec()] {
			p.Notes = append(p.Notes, fmt.Sprintf("refused: %s -t %s -A %s %s would appear twice in the chain; Docker writes each rule once, "+
				"so this is a bug in iptscope's expectation of Docker's rules, not something to repair (please report it)", e.ipt(), t, c, er.Spec()))
			continue
		}
		have[er.Spec()] = true
		pos := -1
		// Why the bound: no rule of the chain can have to come after er
		// when none has a higher rank, or the same rank, group and a
		// higher seq (mustPrecede); then the scan is skipped, which keeps
		// a flushed chain's repair linear (it was quadratic: 33,000 DNATs
		// into an empty nat DOCKER).
		if maxRank > er.Rank || er.Group != "" && maxSeq[rankGroup{er.Rank, er.Group}] > er.Seq {
			for j, sl := range list {
				if sl.er != nil && mustPrecede(*er, *sl.er) {
					pos = j
					break
				}
			}
		}
		if pos < 0 {
			for j := len(list) - 1; j >= 0; j-- {
				if list[j].er != nil {
					pos = j + 1
					break
				}
			}
		}
		if pos < 0 {
			pos = len(list)
			if t == parse.TableFilter && c == parse.ChainForward && er.Kind == KindJump && parse.ChainName(er.Target) == ChainDockerUser {
				// Why: Docker (20.10-28) re-pins FORWARD -> DOCKER-USER
				// at position 1 every time it programs a network.
				pos = 0
			}
		}
		why, key, _ := claim(a, *er)
		if pos == len(list) {
			ops = append(ops, Op{Kind: OpAppend, Family: e.Family, Table: t, Chain: c, Spec: er.Spec(), Why: why, Finding: key})
		} else {
			ops = append(ops, Op{Kind: OpInsert, Family: e.Family, Table: t, Chain: c, Position: pos + 1, Spec: er.Spec(), Why: why, Finding: key})
		}
		list = append(list[:pos], append([]slot{{er: er}}, list[pos:]...)...)
		note(er)
	}
	return ops
}

// rankGroup is the part of an expected rule's order that mustPrecede
// compares within one rank.
type rankGroup struct {
	rank  int
	group string
}
