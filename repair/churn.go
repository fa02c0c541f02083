package repair

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Repair under churn: Docker writes its own rules while a repair runs
// (containers start and stop). Measured on 28.5 and 20.10 (issue 12):
// restoring whole tables from the backup then brings back rules Docker
// had just deleted and wipes rules it had just written. So:
//
//   - right before the restore, the touched chains are read again (the
//     backup is that read); if they differ from the snapshot the plan was
//     made from, the plan is not applied but made again from a fresh read;
//   - after the restore, the host is read again (Docker's view with the
//     rules): a rule the repair added that the fresh view does not want
//     (its container is gone, or Docker wrote the same rule too) is
//     deleted with "-D CHAIN SPEC", nothing else;
//   - when Docker's view changed meanwhile, the repair is judged against
//     the fresh view (plan again; an empty plan is success), not against
//     the old one;
//   - a rollback undoes the repair's own operations, one by one, in one
//     restore transaction per table: "-D" of each rule it added, the
//     rule put back for each it deleted, "-X" of a chain it created that
//     is empty and unreferenced again.

// applied is what one payload did to one family and table.
type applied struct {
	family string
	table  parse.TableName
	ops    []diagnose.Op
	// pos is, for each delete (by index into ops), the rule's 1-based
	// position before the repair, to put it back there.
	pos map[int]int
}

// applied1 records the rule operations of a payload, with the positions
// of the rules it deletes as they were in live.
func applied1(p *diagnose.Plan, pl Payload, live map[string]*parse.Table) applied {
	ap := applied{family: pl.Family, table: pl.Table, ops: p.RuleOps(pl.Family, pl.Table), pos: map[int]int{}}
	t := live[tableKey(pl.Family, pl.Table)]
	for i, op := range ap.ops {
		if op.Kind != diagnose.OpDelete || t == nil {
			continue
		}
		if c := t.Chain(op.Chain); c != nil {
			for j, r := range c.Rules {
				if r.Spec() == op.Spec {
					ap.pos[i] = j + 1
					break
				}
			}
		}
	}
	return ap
}

func countOps(as []applied) int {
	n := 0
	for _, a := range as {
		n += len(a.ops)
	}
	return n
}

// minus removes from as the operations in wrong (same family, table and
// operation).
func minus(as, wrong []applied) []applied {
	drop := map[string]int{}
	for _, w := range wrong {
		for _, op := range w.ops {
			drop[w.family+"\x00"+string(w.table)+"\x00"+op.Line()]++
		}
	}
	var out []applied
	for _, a := range as {
		b := applied{family: a.family, table: a.table, pos: map[int]int{}}
		for i, op := range a.ops {
			k := a.family + "\x00" + string(a.table) + "\x00" + op.Line()
			if drop[k] > 0 {
				drop[k]--
				continue
			}
			if p, ok := a.pos[i]; ok {
				b.pos[len(b.ops)] = p
			}
			b.ops = append(b.ops, op)
		}
		if len(b.ops) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// liveTables parses the backup's sections: the touched tables as they
// were right before the restore.
func liveTables(b *backupFile) (map[string]*parse.Table, error) {
	out := map[string]*parse.Table{}
	for k, text := range b.sections {
		if strings.TrimSpace(text) == "" {
			continue // the table does not exist yet
		}
		rs, err := parse.ParseSave([]byte(text))
		if errors.Is(err, parse.ErrEmpty) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the %s table before the repair: %w", k, err)
		}
		_, t, _ := strings.Cut(k, " ")
		out[k] = rs.Table(parse.TableName(t))
	}
	return out, nil
}

// chainSpecs is the rule texts of a chain, nil when it does not exist.
func chainSpecs(t *parse.Table, c parse.ChainName) []string {
	if t == nil {
		return nil
	}
	ch := t.Chain(c)
	if ch == nil {
		return nil
	}
	out := make([]string, 0, len(ch.Rules))
	for _, r := range ch.Rules {
		out = append(out, r.Spec())
	}
	return out
}

// plannedTable is a table of the snapshot the plan was made from.
func plannedTable(s *snapshot.Snapshot, backend, family string, t parse.TableName) (*parse.Table, bool) {
	if backend == "" {
		backend = snapshot.BackendAuto
	}
	d, err := s.PickDump(backend, family)
	if err != nil {
		return nil, false
	}
	return d.Ruleset.Table(t), true
}

// stillMissing returns the plan with only what is still to do in live:
// no chain declared that exists now (a --noflush declaration would flush
// it), no rule added that the chain holds now, no rule deleted that is
// gone. changed reports whether a chain the plan touches differs from the
// snapshot the plan was made from (planned; never when it is nil).
func stillMissing(p *diagnose.Plan, live map[string]*parse.Table, planned *snapshot.Snapshot) (todo *diagnose.Plan, skipped []diagnose.Op, changed bool) {
	todo = &diagnose.Plan{Backend: p.Backend, NetNS: p.NetNS, Findings: p.Findings, Notes: p.Notes}
	compared := map[string]bool{}
	for _, op := range p.Ops {
		if op.Kind == diagnose.OpSysctl {
			todo.Ops = append(todo.Ops, op)
			continue
		}
		lt := live[tableKey(op.Family, op.Table)]
		have := chainSpecs(lt, op.Chain)
		if k := op.Family + " " + string(op.Table) + " " + string(op.Chain); planned != nil && !compared[k] {
			compared[k] = true
			if pt, ok := plannedTable(planned, p.Backend, op.Family, op.Table); ok {
				exists := lt != nil && lt.Chain(op.Chain) != nil
				existed := pt != nil && pt.Chain(op.Chain) != nil
				if exists != existed || !slices.Equal(chainSpecs(pt, op.Chain), have) {
					changed = true
				}
			}
		}
		keep := true
		switch op.Kind {
		case diagnose.OpCreateChain:
			keep = lt == nil || lt.Chain(op.Chain) == nil
		case diagnose.OpInsert, diagnose.OpAppend:
			keep = !slices.Contains(have, op.Spec)
		case diagnose.OpDelete:
			keep = slices.Contains(have, op.Spec)
		}
		if keep {
			todo.Ops = append(todo.Ops, op)
		} else {
			skipped = append(skipped, op)
		}
	}
	return todo, skipped, changed
}

// judge returns the rules the repair added that the fresh read does not
// want: a rule present more than once (Docker wrote it too: one copy is
// deleted), or one that Docker's fresh view does not expect (its
// container or network went away meanwhile). Without a usable Docker view
// in fresh, only duplicates are judged.
func judge(as []applied, fresh *snapshot.Snapshot, backend string) []applied {
	if fresh == nil {
		return nil
	}
	if backend == "" {
		backend = snapshot.BackendAuto
	}
	expected := map[string]map[string]bool{} // family -> "table chain spec"
	modelled := map[string]bool{}
	dockerOK := fresh.Docker != nil && fresh.Docker.Error == ""
	var out []applied
	for _, a := range as {
		d, err := fresh.PickDump(backend, a.family)
		if err != nil {
			continue
		}
		if _, done := expected[a.family]; !done && dockerOK {
			expected[a.family] = map[string]bool{}
			if e, err := diagnose.Expect(fresh, a.family); err == nil && e.Modelled {
				modelled[a.family] = true
				for t, chains := range e.Rules {
					for c := range chains {
						for _, er := range e.RulesOf(t, c) {
							expected[a.family][string(t)+" "+string(c)+" "+er.Spec()] = true
						}
					}
				}
			}
		}
		w := applied{family: a.family, table: a.table, pos: map[int]int{}}
		seen := map[string]int{}
		for _, op := range a.ops {
			if op.Kind != diagnose.OpInsert && op.Kind != diagnose.OpAppend {
				continue
			}
			k := string(op.Chain) + " " + op.Spec
			n := 0
			for _, s := range chainSpecs(d.Ruleset.Table(a.table), op.Chain) {
				if s == op.Spec {
					n++
				}
			}
			n -= seen[k] // copies already judged wrong
			switch {
			case n > 1:
				seen[k]++
				w.ops = append(w.ops, op)
			case n == 1 && modelled[a.family] && !expected[a.family][string(a.table)+" "+k]:
				seen[k]++
				w.ops = append(w.ops, op)
			}
		}
		if len(w.ops) > 0 {
			out = append(out, w)
		}
	}
	return out
}

// dockerView is a canonical text of what Docker's rules depend on:
// networks (bridge, subnets, internal) and containers (running, their
// addresses and published ports). Two reads with the same text need the
// same rules.
func dockerView(s *snapshot.Snapshot) string {
	if s == nil || s.Docker == nil {
		return "no view"
	}
	if s.Docker.Error != "" {
		return "error: " + s.Docker.Error
	}
	var lines []string
	for _, n := range s.Docker.Networks {
		lines = append(lines, fmt.Sprintf("net %s %s %s %v %v %v", n.ID, n.Name, n.BridgeName, n.Subnets, n.Internal, n.Options))
	}
	for _, c := range s.Docker.Containers {
		l := fmt.Sprintf("ctr %s %v", c.ID, c.Running)
		for _, e := range c.Endpoints {
			l += fmt.Sprintf(" ep %s %s %s", e.NetworkID, e.IP, e.IPv6)
		}
		for _, p := range c.Ports {
			l += fmt.Sprintf(" port %s:%d:%d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Proto)
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// undo reverses the operations in as, as far as they are still in place
// now: per family and table, one `iptables-restore --noflush` with "-D"
// of each rule added that is there, the rule put back (at its old place,
// or the end) for each deleted that is gone, then "-X" of each chain
// created that is empty and unreferenced. Rules Docker wrote meanwhile
// are never touched.
func (a *applier) undo(ctx context.Context, as []applied) error {
	type key struct {
		family string
		table  parse.TableName
	}
	var order []key
	byKey := map[key][]applied{}
	for _, ap := range as {
		k := key{ap.family, ap.table}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], ap)
	}
	var errs []error
	for _, k := range order {
		save, err := a.tool(k.family, "save")
		if err != nil {
			return err
		}
		out, err := a.run(ctx, save, []string{"-t", string(k.table)}, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the %s %s table: %w", k.family, k.table, err))
			continue
		}
		sim := map[parse.ChainName][]string{}
		if rs, err := parse.ParseSave(out); err == nil {
			if t := rs.Table(k.table); t != nil {
				for _, c := range t.Chains {
					sim[c.Name] = chainSpecs(t, c.Name)
				}
			}
		}
		var lines []string
		var created []parse.ChainName
		for _, ap := range byKey[k] {
			for i := len(ap.ops) - 1; i >= 0; i-- {
				op := ap.ops[i]
				rules, exists := sim[op.Chain]
				switch op.Kind {
				case diagnose.OpInsert, diagnose.OpAppend:
					if j := slices.Index(rules, op.Spec); j >= 0 {
						lines = append(lines, "-D "+string(op.Chain)+" "+op.Spec)
						sim[op.Chain] = slices.Delete(rules, j, j+1)
					}
				case diagnose.OpDelete:
					if exists && !slices.Contains(rules, op.Spec) {
						pos := ap.pos[i]
						if pos < 1 || pos > len(rules)+1 {
							pos = len(rules) + 1
						}
						lines = append(lines, fmt.Sprintf("-I %s %d %s", op.Chain, pos, op.Spec))
						sim[op.Chain] = slices.Insert(rules, pos-1, op.Spec)
					}
				case diagnose.OpCreateChain:
					created = append(created, op.Chain)
				}
			}
		}
		for _, c := range created {
			rules, ok := sim[c]
			if !ok || len(rules) > 0 || referenced(sim, c) {
				continue
			}
			lines = append(lines, "-X "+string(c))
			delete(sim, c)
		}
		if len(lines) == 0 {
			continue
		}
		text := "*" + string(k.table) + "\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"
		bin, err := a.tool(k.family, "restore")
		if err != nil {
			return err
		}
		if _, err := a.run(ctx, bin, []string{"-w", lockWait, "--noflush"}, []byte(text)); err != nil {
			errs = append(errs, fmt.Errorf("undoing in %s %s: %w", k.family, k.table, a.restoreError(bin+" --noflush", Payload{Family: k.family, Table: k.table, Text: text}, err)))
		}
	}
	return errors.Join(errs...)
}

// referenced reports whether a rule of sim jumps or goes to chain c.
func referenced(sim map[parse.ChainName][]string, c parse.ChainName) bool {
	for _, rules := range sim {
		for _, r := range rules {
			f := strings.Fields(r)
			for i := 0; i+1 < len(f); i++ {
				if (f[i] == "-j" || f[i] == "-g") && f[i+1] == string(c) {
					return true
				}
			}
		}
	}
	return false
}

// restoreError explains a failed iptables-restore: the held lock, or the
// refused line.
func (a *applier) restoreError(cmd string, pl Payload, err error) error {
	if lockHeld(err) {
		lock := lockFile(a.r)
		holder := a.o.LockHolder
		if holder == nil {
			holder = lockHolder
		}
		return &LockError{Lock: lock, Holder: holder(lock), Wait: lockWait, Err: err}
	}
	return payloadError(cmd, pl.Text, err)
}

// opsInPlace returns the finding keys whose every applied operation is in
// fresh: each rule added is there, each rule deleted is gone.
func opsInPlace(as []applied, fresh *snapshot.Snapshot, backend string) map[string]bool {
	if fresh == nil {
		return nil
	}
	if backend == "" {
		backend = snapshot.BackendAuto
	}
	ok := map[string]bool{}
	failed := map[string]bool{}
	for _, a := range as {
		d, err := fresh.PickDump(backend, a.family)
		for _, op := range a.ops {
			held := false
			if err == nil {
				have := chainSpecs(d.Ruleset.Table(a.table), op.Chain)
				switch op.Kind {
				case diagnose.OpInsert, diagnose.OpAppend:
					held = slices.Contains(have, op.Spec)
				case diagnose.OpDelete:
					held = !slices.Contains(have, op.Spec)
				case diagnose.OpCreateChain:
					held = d.Ruleset.Table(a.table).Chain(op.Chain) != nil
				}
			}
			if held {
				ok[op.Finding] = true
			} else {
				failed[op.Finding] = true
			}
		}
	}
	for k := range failed {
		delete(ok, k)
	}
	return ok
}
