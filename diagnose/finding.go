package diagnose

import (
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Severity ranks a finding.
type Severity string

// Severities, worst first.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Rank orders severities: error 3, warning 2, info 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityError:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

// ParseSeverity accepts "error", "warning", "info"; ok is false otherwise.
func ParseSeverity(s string) (Severity, bool) {
	sev := Severity(s)
	return sev, sev.Rank() > 0
}

// Subject says what a finding is about; fields are empty when they do not
// apply.
type Subject struct {
	Table     parse.TableName `json:"table,omitempty"`
	Chain     parse.ChainName `json:"chain,omitempty"`
	Network   string          `json:"network,omitempty"`
	Container string          `json:"container,omitempty"`
	// Port is "HOSTIP:HPORT/PROTO" or "HPORT/PROTO".
	Port string `json:"port,omitempty"`
	// ContainerPort is "CONTAINERIP:PORT/PROTO", for a published port
	// whose host port is not known (inferred from a raw dump).
	ContainerPort string `json:"container_port,omitempty"`
	// Family is "ipv4" or "ipv6" for findings about iptables or
	// ip6tables rules; empty when the finding is not about one family.
	Family string `json:"family,omitempty"`
	// Rule is the rule the finding is about, as "-A CHAIN SPEC", when one
	// rule of the dump is the subject (a stale DNAT, a blocking DROP).
	Rule string `json:"rule,omitempty"`
}

// String renders the subject as "family=ipv4 table=nat chain=DOCKER
// port=8080/tcp": the fields that are set, in a fixed order.
func (s Subject) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + v)
	}
	add("family", s.Family)
	add("table", string(s.Table))
	add("chain", string(s.Chain))
	add("network", s.Network)
	add("container", s.Container)
	add("port", s.Port)
	add("container_port", s.ContainerPort)
	add("rule", s.Rule)
	return b.String()
}

// KeyOf is the key of the finding of check id about cause: what repair
// verification, grouping and watch compare (never a title or a text).
func KeyOf(id string, cause Subject) string {
	if c := cause.String(); c != "" {
		return id + " " + c
	}
	return id
}

// RuleRef points at one rule a finding rests on. Position is the rule's
// 1-based position in its chain in the dump, 0 for a rule that is not in
// the dump (Role "missing").
type RuleRef struct {
	// Role says what the rule is to the finding: "missing" (Docker would
	// have written it), "stale", "shadowed", "blocking", "duplicate",
	// "dangling-jump", "inferred-from" (a rule a raw-dump inference rests
	// on), "found".
	Role     string          `json:"role"`
	Family   string          `json:"family"`
	Table    parse.TableName `json:"table"`
	Chain    parse.ChainName `json:"chain"`
	Position int             `json:"position,omitempty"`
	// Rule is the rule as iptables-save prints it, without counters:
	// "-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination ...".
	Rule string `json:"rule"`
}

// Finding is one thing wrong (or worth knowing) on the host. The JSON
// field names are part of iptscope.doctor/v1 and stable.
type Finding struct {
	// ID is the check's stable ID (docs/checks/<id>.md).
	ID string `json:"id"`
	// Key is ID plus the subject of the cause (KeyOf): unique in a report
	// and the same for the same problem in the next run.
	Key      string   `json:"key"`
	Severity Severity `json:"severity"`
	// Title is one line.
	Title string `json:"title"`
	// Detail explains the consequence for traffic in plain words.
	Detail  string  `json:"detail"`
	Subject Subject `json:"subject"`
	// Affected lists every subject the cause affects (the ports of a
	// flushed nat DOCKER, the chains a reload deleted), in full; empty
	// when the finding is about its Subject only.
	Affected []Subject `json:"affected,omitempty"`
	// CausedBy lists the keys of findings this one follows from (a port
	// that answers only through docker-proxy because its DNAT is gone).
	CausedBy []string `json:"caused_by,omitempty"`
	// Evidence are the rule lines, links, sysctls or processes the
	// finding rests on, for people (capped at scale).
	Evidence []string `json:"evidence,omitempty"`
	// Rules are the rules the finding rests on, as data (not capped).
	Rules []RuleRef `json:"rules,omitempty"`
	// Fix is the exact repair, or why it must not be automated.
	Fix string `json:"fix"`
	// Repairable is true when `doctor --fix` repairs this finding.
	Repairable bool `json:"repairable"`
}

// Repair is a check's repair policy.
type Repair struct {
	// Auto: `doctor --fix` plans operations for the check's findings
	// (some may still be left alone, each with its reason in the plan).
	Auto bool
	// Manual says why findings are left to a person (Auto false, or
	// PerFinding and the finding is not repairable).
	Manual string
	// PerFinding: the check decides per finding (Finding.Repairable):
	// dnat-stale deletes only the DNATs it proves stale.
	PerFinding bool
}

// Check is one diagnosis. Run is pure and must return no finding when it
// cannot tell (missing data is docker-unreachable's business, not a
// false alarm).
type Check struct {
	ID       string
	Title    string
	Severity Severity // the usual severity; a finding may differ
	Run      func(*Env) []Finding
	// Repair is whether and how the check's findings are repaired.
	Repair Repair
	// Needs says what beyond the rules the check reads ("the forwarding
	// sysctls", "the docker-proxy processes"); "" for a check that the
	// rules alone decide. On a raw dump only those run (NotChecked lists
	// the others).
	Needs string
	// Claims, for checks that report missing expected rules, says
	// whether a missing rule is this check's to report, and the subject
	// of the cause its finding keys on. The plan asks the checks in
	// order (All) and links the operation that restores the rule to the
	// first check's finding by that key.
	Claims func(a analysis, er ExpectedRule) (cause Subject, ok bool)
}

// All returns every check in the order findings are reported. IDs are
// stable and never reused.
func All() []Check {
	return []Check{
		dockerUnreachable,
		backendSplit,
		nftablesBackend,
		dockerIptablesDisabled,
		ipForwardDisabled,
		ipv6ForwardDisabled,
		dockerChainMissing,
		dockerJumpMissing,
		dnatMissing,
		dnatStale,
		forwardAcceptMissing,
		forwardBlocked,
		dockerUserDrop,
		masqueradeMissing,
		rawDropMissing,
		dockerRuleMissing,
		dockerRuleDuplicated,
		bridgeMissing,
		bridgeDown,
		vethDetached,
		brNetfilterDisabled,
		routeLocalnetDisabled,
		hairpinModeOff,
		proxyFallback,
		proxyMissing,
		proxyOverhead,
	}
}

// fixCommand is how every repairable finding's fix begins.
const fixCommand = "`sudo iptscope doctor --fix`"

// Options tune Run.
type Options struct {
	// Skip lists check IDs not to run.
	Skip []string
}

// Run runs every check not skipped on a fresh environment of s (RunEnv).
func Run(s *snapshot.Snapshot, o Options) []Finding { return RunEnv(NewEnv(s), o) }

// RunEnv runs every check not skipped on env and returns the findings,
// worst severity first, then in check order. Each finding gets its key
// (unique in the result) and whether `doctor --fix` repairs it.
func RunEnv(env *Env, o Options) []Finding {
	if dockerElsewhere(env.S) != "" {
		// The rules, links, sysctls and processes read are not the
		// daemon's: every comparison would be a false alarm (NewReport
		// says why and calls the report partial).
		return nil
	}
	skip := map[string]bool{}
	for _, id := range o.Skip {
		skip[id] = true
	}
	var checks []Check
	for _, c := range All() {
		if !skip[c.ID] && !(env.RulesOnly && c.Needs != "") {
			checks = append(checks, c)
		}
	}
	// Why concurrent: the checks are pure reads of the Env (whose derived
	// data is built once, under sync.Once), and on a big host a few of
	// them cost 0.1 s each. Results are merged in the checks' order, so
	// the report does not depend on the schedule.
	results := make([][]Finding, len(checks))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(checks)) {
		wg.Go(func() {
			for i := range work {
				results[i] = checks[i].Run(env)
			}
		})
	}
	for i := range checks {
		work <- i
	}
	close(work)
	wg.Wait()
	var out []Finding
	keys := map[string]int{}
	for ci, c := range checks {
		for _, f := range results[ci] {
			if f.Key == "" {
				f.Key = KeyOf(f.ID, f.Subject)
			}
			// Why: a key is unique in a report. Two findings of one check
			// about the same subject (rare: two rules of the same text)
			// are told apart by their order.
			if n := keys[f.Key]; n > 0 {
				keys[f.Key]++
				f.Key += "#" + itoa(n+1)
			} else {
				keys[f.Key] = 1
			}
			if !c.Repair.PerFinding {
				f.Repairable = c.Repair.Auto
			}
			f.Repairable = f.Repairable && !env.RulesOnly
			if f.Repairable && !strings.HasPrefix(f.Fix, fixCommand) {
				// The command first, then what it does by hand.
				f.Fix = fixCommand + " repairs it. By hand: " + f.Fix
			}
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity.Rank() > out[j].Severity.Rank() })
	return out
}

// CheckByID returns the check with that ID.
func CheckByID(id string) (Check, bool) {
	for _, c := range All() {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Repairable reports whether `doctor --fix` can repair findings of the
// check (some findings of a repairable check may still be left alone, each
// with its reason in the plan).
func (c Check) Repairable() bool { return c.Repair.Auto || c.Repair.PerFinding }

// NotRepairedReason says why findings of the check are left to a person
// ("" for a repairable check).
func (c Check) NotRepairedReason() string {
	if c.Repair.Auto {
		return ""
	}
	if c.Repair.PerFinding {
		return c.Repair.Manual
	}
	if c.Repair.Manual != "" {
		return c.Repair.Manual
	}
	return "not repaired automatically"
}

// claimFunc returns the check that reports a missing expected rule and
// the key of its finding.
type claimFunc func(a analysis, er ExpectedRule) (id, key string, ok bool)

// claimer returns the claimFunc of the checks: the first check in All
// whose Claims takes the rule.
func claimer() claimFunc {
	var cs []Check
	for _, c := range All() {
		if c.Claims != nil {
			cs = append(cs, c)
		}
	}
	return func(a analysis, er ExpectedRule) (string, string, bool) {
		for _, c := range cs {
			if cause, ok := c.Claims(a, er); ok {
				return c.ID, KeyOf(c.ID, cause), true
			}
		}
		return "", "", false
	}
}
