package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// analysis is one family's comparison of the rules Docker would have
// written with the dump: what the rule checks start from.
type analysis struct {
	exp  *Expected
	rs   *parse.Ruleset
	diff *Diff
	dump *snapshot.RuleDump
	// snap is the snapshot the analysis is of.
	snap *snapshot.Snapshot
	// idx is derived on first use and shared by copies (index.go).
	idx *analysisIndex
}

// chainExists reports whether table t of the dump has chain c.
func (a analysis) chainExists(t parse.TableName, c parse.ChainName) bool {
	return a.rs.Table(t).Chain(c) != nil
}

// missingChain reports whether the chain an expected rule lives in (or
// jumps to) is absent: that is docker-chain-missing's finding, and other
// checks leave such rules to it.
func (a analysis) missingChain(er ExpectedRule) bool {
	t := er.Table
	if !er.Chain.IsBuiltin(t) && !a.chainExists(t, er.Chain) {
		return true
	}
	if er.JumpsToChain() && !a.chainExists(t, parse.ChainName(er.Target)) {
		return true
	}
	return false
}

// ruleLine renders an expected rule as the line to add: "-t nat -A DOCKER ...".
func ruleLine(er ExpectedRule) string {
	return "-t " + string(er.Table) + " -A " + string(er.Chain) + " " + er.Spec()
}

// saveLine renders a dump rule as iptables-save prints it, without
// counters.
func saveLine(r *parse.Rule) string {
	return "-t " + string(r.Table) + " " + r.SaveLine(false)
}

// portName renders a binding as "127.0.0.1:9090/tcp" or "8080/tcp".
func portName(p *snapshot.PortBinding) string {
	if p == nil {
		return ""
	}
	s := fmt.Sprintf("%d/%s", p.HostPort, proto(*p))
	if p.HostIP != "" && p.HostIP != "0.0.0.0" && p.HostIP != "::" {
		if strings.Contains(p.HostIP, ":") {
			return "[" + p.HostIP + "]:" + s
		}
		return p.HostIP + ":" + s
	}
	return s
}

// restartFix is the usual repair: Docker rebuilds every rule on start.
func restartFix(a analysis) string {
	fix := "Restart Docker so that it rebuilds its rules: `systemctl restart docker` (without live-restore this restarts running containers)."
	if a.exp != nil && a.exp.Era == EraClassic {
		fix += " Docker 20.10–26 do not re-create DOCKER-USER or the FORWARD -> DOCKER-USER jump after a flush; check `iptables -S FORWARD` afterwards."
	}
	return fix
}

// sysctl returns a sysctl's value and whether it was read.
func sysctl(s *snapshot.Snapshot, name string) (string, bool) {
	v, ok := s.Sysctls[name]
	if !ok || !v.Present {
		return "", false
	}
	return v.Value, true
}

// tableRules returns every rule of a table, chain by chain (nil table: none).
func tableRules(t *parse.Table) []*parse.Rule {
	if t == nil {
		return nil
	}
	var out []*parse.Rule
	for _, c := range t.Chains {
		out = append(out, c.Rules...)
	}
	return out
}
