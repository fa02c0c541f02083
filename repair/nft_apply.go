package repair

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// Repair of Docker's nftables table (Docker 29, firewall-backend
// nftables) under churn, the way churn.go does it for iptables. Docker's
// nftables backend keeps its own model of the table and, on every change
// (a container starts or stops), flushes each chain it modifies and
// writes it again from that model, in one `nft -f` transaction (moby
// daemon/libnetwork/internal/nftables, incremental_update.nft.gotmpl).
// So a rule the repair adds to a chain Docker rewrites later is gone
// again, and a rule Docker rewrote between the repair's read and its
// write would be there twice. Hence, per plan:
//
//	nft -c -f -            the plan's transaction is checked (nothing changes)
//	nft list table         backup of the touched families' tables
//	nft -j list table      the touched chains and maps as they are now: if
//	                       they differ from the plan's snapshot, plan again
//	                       from a fresh read (at most MaxReplans times);
//	                       what is there already is not written again
//	nft --echo --handle -f the rest in one transaction; the first rule
//	                       appended to a chain with rules is placed after
//	                       its last rule by handle, so that a chain Docker
//	                       rewrote meanwhile makes nft refuse it whole
//	re-read                Docker's view with the rules: the rules added
//	                       that the fresh view does not want (their
//	                       container is gone, Docker wrote them too) are
//	                       deleted by handle, elements by key, nothing else
//
// and a rollback deletes exactly what the repair added (rules by handle,
// elements by key, then the chains, maps and table it created when they
// are empty and unreferenced), never Docker's whole table.

// applyNft is Apply for a plan that changes Docker's nftables table.
func applyNft(ctx context.Context, p *diagnose.Plan, o Options) (*Result, error) {
	return replanning(ctx, p, o, func(p *diagnose.Plan) error {
		for _, op := range p.Ops {
			if op.Kind != diagnose.OpNft && op.Kind != diagnose.OpSysctl {
				return fmt.Errorf("the plan changes iptables and nftables tables at once: not applied")
			}
		}
		return nil
	}, (*applier).nftRound)
}

// readNft reads Docker's table of each family with `nft -j list table`
// (an absent table is a nil entry).
func (a *applier) readNft(ctx context.Context, fams []nft.Family) (nftTables, error) {
	out := nftTables{}
	for _, f := range fams {
		data, err := a.run(ctx, "nft", []string{"-j", "list", "table", string(f), diagnose.NftDockerTable}, nil)
		if err != nil {
			if nftNoSuchTable(err) {
				out[f] = nil
				continue
			}
			return nil, fmt.Errorf("reading table %s %s: %w", f, diagnose.NftDockerTable, err)
		}
		rs, err := nft.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("reading table %s %s: %w", f, diagnose.NftDockerTable, err)
		}
		out[f] = rs.Table(f, diagnose.NftDockerTable)
	}
	return out, nil
}

// nftRound runs one plan; it returns done when the repair is verified, or
// the fresh view to plan again from.
func (a *applier) nftRound(ctx context.Context, res *Result, planned *snapshot.Snapshot, mayReplan bool) (bool, *view, error) {
	o := a.o
	unchanged := "nothing was changed"
	if a.round > 0 {
		unchanged = "nothing more was changed (what the earlier plan added is kept where the fresh view wants it)"
	}
	cmds, err := nftCmds(a.plan)
	if err != nil {
		return false, nil, err
	}
	churned := func(what string) (bool, *view, error) {
		if o.Reread == nil {
			return false, nil, fmt.Errorf("%w: %s; %s (run the fix again)", ErrChurn, what, unchanged)
		}
		if !mayReplan {
			return false, nil, nil // applyNft says the limit is reached
		}
		fresh, err := a.reread(ctx)
		if err != nil {
			return false, nil, err
		}
		return false, fresh, nil
	}
	var added []nftAdded
	var setSysctls []diagnose.Op
	rollback := func(cause error) error {
		var undoErr error
		if err := a.undoNft(ctx, added); err != nil {
			undoErr = fmt.Errorf("undoing the repair's additions: %w (the tables as they were before: iptscope restore %s)", err, res.BackupPath)
		}
		return a.rolledBack(cause, undoErr, setSysctls, len(added) == 0, unchanged,
			fmt.Sprintf("the repair's own additions were deleted again (%d object(s): rules by handle, elements by key), %d sysctl(s) set back", len(added), len(setSysctls)))
	}

	var todo []nftCmd
	if len(cmds) > 0 {
		fams := nftFamilies(cmds)
		var plannedT nftTables
		if planned != nil {
			plannedT = plannedNft(planned)
		}
		if _, err := a.run(ctx, "nft", []string{"-c", "-f", "-"}, []byte(nftScript(cmds))); err != nil {
			// A handle the plan places a rule at may be gone: Docker
			// rewrote the chain since the plan's read.
			if plannedT != nil {
				if live, rerr := a.readNft(ctx, fams); rerr == nil {
					if k := nftChanged(cmds, plannedT, live); k != "" {
						return churned("Docker's " + k + " changed since it was read")
					}
				}
			}
			return false, nil, fmt.Errorf("checking the nftables transaction: %w; %s\n%s", err, unchanged, nftScript(cmds))
		}
		b, err := a.backupNft(ctx, fams)
		if err != nil {
			return false, nil, fmt.Errorf("%w; %s", err, unchanged)
		}
		if res.BackupPath == "" {
			res.BackupPath = b.path
		}
		fmt.Fprintf(a.out, "backup of the touched tables: %s\n", b.path)
		// What is still missing now, right before the write.
		live, err := a.readNft(ctx, fams)
		if err != nil {
			return false, nil, fmt.Errorf("%w; %s", err, unchanged)
		}
		if plannedT != nil {
			if k := nftChanged(cmds, plannedT, live); k != "" {
				return churned("Docker's " + k + " changed since it was read")
			}
		}
		var skipped []nftCmd
		todo, skipped = nftStillMissing(cmds, live)
		for _, c := range skipped {
			res.Skipped = append(res.Skipped, c.op)
			fmt.Fprintf(a.out, "already there (written meanwhile, not written again): %s\n", c.op.Spec)
		}
		if len(todo) > 0 {
			script := nftScript(todo)
			echo, err := a.run(ctx, "nft", []string{"--echo", "--handle", "-f", "-"}, []byte(script))
			if err != nil {
				// nft applies a transaction whole or not at all: nothing
				// was written. Docker rewriting a touched chain meanwhile
				// (the handle a rule was placed at is gone) is churn.
				if now, rerr := a.readNft(ctx, fams); rerr == nil {
					if k := nftRewritten(todo, live, now); k != "" {
						return churned("Docker rewrote its " + k + " while the repair wrote")
					}
				}
				return false, nil, fmt.Errorf("applying the nftables transaction: %w; %s (nft applies it whole or not at all)", err, unchanged)
			}
			var ok bool
			if added, ok = handlesFromEcho(todo, string(echo)); !ok {
				after, err := a.readNft(ctx, fams)
				if err != nil {
					added = handlesByLookup(todo, live, nil)
					return false, nil, rollback(fmt.Errorf("finding the handles of the rules added: %w", err))
				}
				added = handlesByLookup(todo, live, after)
			}
			res.Payloads = append(res.Payloads, nftPayloads(todo)...)
			for _, pl := range nftPayloads(todo) {
				fmt.Fprintf(a.out, "applied %s %s: %d command(s) in one nft transaction\n", pl.Family, pl.Table, strings.Count(pl.Text, "\n"))
			}
		}
	}
	keep := &diagnose.Plan{Backend: a.plan.Backend, NetNS: a.plan.NetNS, Findings: a.plan.Findings, Notes: a.plan.Notes}
	for _, c := range todo {
		keep.Ops = append(keep.Ops, c.op)
	}
	sysctls := a.plan.SysctlOps()
	keep.Ops = append(keep.Ops, sysctls...)
	res.Sysctls = append(res.Sysctls, sysctls...)
	if err := a.writeSysctls(sysctls, &setSysctls); err != nil {
		return false, nil, rollback(err)
	}

	switch {
	case o.Reread != nil:
		fresh, err := a.reread(ctx)
		if err != nil {
			return false, nil, rollback(fmt.Errorf("re-reading the host after the repair: %w", err))
		}
		if wrong := judgeNft(added, fresh.snap); len(wrong) > 0 {
			if err := a.undoNft(ctx, wrong); err != nil {
				return false, nil, rollback(fmt.Errorf("deleting what the fresh view does not want: %w", err))
			}
			for _, w := range wrong {
				fmt.Fprintf(a.out, "undone (the fresh view does not want it): %s\n", w)
				res.Undone = append(res.Undone, w.cmd.op)
			}
			added = nftMinus(added, wrong)
			if fresh, err = a.reread(ctx); err != nil {
				return false, nil, rollback(fmt.Errorf("re-reading the host after the repair: %w", err))
			}
		}
		if moved, done, next := dockerMoved(planned, fresh, res); moved {
			return done, next, nil
		}
		if bad := verifyKept(keep, fresh.findings, nftInPlace(added, fresh.snap)); len(bad) > 0 {
			return false, nil, rollback(fmt.Errorf("the re-read disagrees with the plan:\n  %s", strings.Join(bad, "\n  ")))
		}
		res.After = fresh.findings
	case o.Recheck != nil:
		after, err := o.Recheck(ctx)
		if err != nil {
			return false, nil, rollback(fmt.Errorf("re-reading the host after the repair: %w", err))
		}
		if bad := verify(keep, after); len(bad) > 0 {
			return false, nil, rollback(fmt.Errorf("the re-read disagrees with the plan:\n  %s", strings.Join(bad, "\n  ")))
		}
		res.After = after
	}
	return true, nil, nil
}

// judgeNft returns what the repair added that the fresh read does not
// want: a rule that is in its chain twice (Docker wrote it too: the
// repair's copy goes, by its handle), or a rule, element, chain or map
// that Docker's fresh view does not expect (its container or network
// went away meanwhile). Without a usable Docker view only duplicates are
// judged. A rule no longer there (Docker rewrote its chain) is nobody's
// to undo.
func judgeNft(added []nftAdded, fresh *snapshot.Snapshot) []nftAdded {
	if fresh == nil {
		return nil
	}
	dockerOK := fresh.Docker != nil && fresh.Docker.Error == ""
	exp := map[nft.Family]*diagnose.NftExpected{}
	expOf := func(f nft.Family) *diagnose.NftExpected {
		if !dockerOK {
			return nil
		}
		if e, ok := exp[f]; ok {
			return e
		}
		e := diagnose.ExpectNft(fresh, nftSnapFamily(f))
		exp[f] = e
		return e
	}
	var wrong []nftAdded
	for _, x := range added {
		t := fresh.NftTable(x.cmd.family, diagnose.NftDockerTable)
		e := expOf(x.cmd.family)
		switch x.cmd.object {
		case "rule":
			ch := chainOf(t, x.cmd.name)
			if ch == nil || !slices.ContainsFunc(ch.Rules, func(r *nft.Rule) bool { return r.Handle == x.handle }) {
				continue
			}
			twice := slices.ContainsFunc(ch.Rules, func(r *nft.Rule) bool { return r.Handle != x.handle && r.Spec() == x.cmd.spec })
			wanted := e == nil || slices.ContainsFunc(e.Rules, func(r diagnose.NftRule) bool { return r.Chain == x.cmd.name && r.Spec == x.cmd.spec })
			if twice || !wanted {
				wrong = append(wrong, x)
			}
		case "element":
			if e == nil || t == nil || !hasElement(t.Set(x.cmd.name), x.cmd.key, x.cmd.target) {
				continue
			}
			if !slices.ContainsFunc(e.Elements, func(el diagnose.NftElementSpec) bool {
				return el.Map == x.cmd.name && el.Key == x.cmd.key && el.Target == x.cmd.target
			}) {
				wrong = append(wrong, x)
			}
		case "chain":
			if e != nil && t != nil && t.Chain(x.cmd.name) != nil &&
				!slices.ContainsFunc(e.Chains, func(c diagnose.NftChainSpec) bool { return c.Name == x.cmd.name }) {
				wrong = append(wrong, x)
			}
		case "map":
			if e != nil && t != nil && t.Set(x.cmd.name) != nil && !slices.Contains(e.Maps, x.cmd.name) {
				wrong = append(wrong, x)
			}
		}
	}
	return wrong
}

// nftMinus is added without wrong.
func nftMinus(added, wrong []nftAdded) []nftAdded {
	var out []nftAdded
	for _, x := range added {
		if !slices.ContainsFunc(wrong, func(w nftAdded) bool { return w.cmd.op.Spec == x.cmd.op.Spec && w.handle == x.handle }) {
			out = append(out, x)
		}
	}
	return out
}

// nftInPlace returns the finding keys whose every addition is in fresh: a
// rule by its handle, an element, a chain, a map, the table.
func nftInPlace(added []nftAdded, fresh *snapshot.Snapshot) map[string]bool {
	ok, failed := map[string]bool{}, map[string]bool{}
	for _, x := range added {
		t := fresh.NftTable(x.cmd.family, diagnose.NftDockerTable)
		held := false
		switch x.cmd.object {
		case "table":
			held = t != nil
		case "chain":
			held = chainOf(t, x.cmd.name) != nil
		case "map":
			held = t != nil && t.Set(x.cmd.name) != nil
		case "element":
			held = t != nil && hasElement(t.Set(x.cmd.name), x.cmd.key, x.cmd.target)
		case "rule":
			if ch := chainOf(t, x.cmd.name); ch != nil {
				held = slices.ContainsFunc(ch.Rules, func(r *nft.Rule) bool { return r.Handle == x.handle || r.Spec() == x.cmd.spec })
			}
		}
		if held {
			ok[x.cmd.op.Finding] = true
		} else {
			failed[x.cmd.op.Finding] = true
		}
	}
	for k := range failed {
		delete(ok, k)
	}
	return ok
}

// undoNft deletes what the repair added, as far as it is still there, in
// one `nft -f` transaction: the rules by handle, the elements by key
// (when they still point where the repair pointed them), then the
// chains, maps and table it created that are empty and unreferenced
// once those are gone. Nothing Docker wrote is touched. The table is
// read right before; when the transaction is refused (Docker rewrote a
// chain in between, so a handle is gone) it is read and tried again, up
// to three times.
func (a *applier) undoNft(ctx context.Context, added []nftAdded) error {
	if len(added) == 0 {
		return nil
	}
	var cmds []nftCmd
	for _, x := range added {
		cmds = append(cmds, x.cmd)
	}
	fams := nftFamilies(cmds)
	var last error
	for try := 0; try < 3; try++ {
		live, err := a.readNft(ctx, fams)
		if err != nil {
			return err
		}
		script := undoScript(added, live)
		if script == "" {
			return nil
		}
		if _, err := a.run(ctx, "nft", []string{"-f", "-"}, []byte(script)); err != nil {
			last = fmt.Errorf("nft -f refused the undo: %w\n%s", err, script)
			continue
		}
		return nil
	}
	return last
}

// simTable is a table's rules and elements while an undo is planned.
type simTable struct {
	exists bool
	chains map[string][]*nft.Rule
	maps   map[string][]nft.Element
}

func newSim(t *nft.Table) *simTable {
	s := &simTable{exists: t != nil, chains: map[string][]*nft.Rule{}, maps: map[string][]nft.Element{}}
	if t == nil {
		return s
	}
	for _, c := range t.Chains {
		s.chains[c.Name] = slices.Clone(c.Rules)
	}
	for _, m := range t.Sets {
		s.maps[m.Name] = slices.Clone(m.Elements)
	}
	return s
}

// referenced reports whether a rule or an element of s jumps or goes to
// chain c, or a rule looks up map c ("@c").
func (s *simTable) referenced(c string, isMap bool) bool {
	for _, rules := range s.chains {
		for _, r := range rules {
			for _, w := range strings.Fields(r.Spec()) {
				w = strings.Trim(w, ",{}")
				if (isMap && w == "@"+c) || (!isMap && w == c) {
					return true
				}
			}
		}
	}
	if isMap {
		return false
	}
	for _, els := range s.maps {
		for _, e := range els {
			if e.Verdict != nil && e.Verdict.Target == c {
				return true
			}
		}
	}
	return false
}

// undoScript is the transaction that deletes added from live.
func undoScript(added []nftAdded, live nftTables) string {
	sims := map[nft.Family]*simTable{}
	sim := func(f nft.Family) *simTable {
		if s, ok := sims[f]; ok {
			return s
		}
		s := newSim(live[f])
		sims[f] = s
		return s
	}
	var lines []string
	tbl := diagnose.NftDockerTable
	// Rules, then elements, then chains, maps and the table: each
	// deletion frees what the next may need unreferenced.
	for _, x := range added {
		s := sim(x.cmd.family)
		switch x.cmd.object {
		case "rule":
			rules := s.chains[x.cmd.name]
			if i := slices.IndexFunc(rules, func(r *nft.Rule) bool { return r.Handle == x.handle && x.handle > 0 }); i >= 0 {
				lines = append(lines, fmt.Sprintf("delete rule %s %s %s handle %d", x.cmd.family, tbl, x.cmd.name, x.handle))
				s.chains[x.cmd.name] = slices.Delete(rules, i, i+1)
			}
		}
	}
	for _, x := range added {
		s := sim(x.cmd.family)
		if x.cmd.object != "element" {
			continue
		}
		els := s.maps[x.cmd.name]
		if i := slices.IndexFunc(els, func(e nft.Element) bool {
			return e.Key == x.cmd.key && e.Verdict != nil && e.Verdict.Target == x.cmd.target
		}); i >= 0 {
			lines = append(lines, fmt.Sprintf("delete element %s %s %s { %q }", x.cmd.family, tbl, x.cmd.name, x.cmd.key))
			s.maps[x.cmd.name] = slices.Delete(els, i, i+1)
		}
	}
	for _, kind := range []string{"chain", "map", "table"} {
		for _, x := range slices.Backward(added) {
			s := sim(x.cmd.family)
			if x.cmd.object != kind || !s.exists {
				continue
			}
			switch kind {
			case "chain":
				rules, ok := s.chains[x.cmd.name]
				if ok && len(rules) == 0 && !s.referenced(x.cmd.name, false) {
					lines = append(lines, fmt.Sprintf("delete chain %s %s %s", x.cmd.family, tbl, x.cmd.name))
					delete(s.chains, x.cmd.name)
				}
			case "map":
				els, ok := s.maps[x.cmd.name]
				if ok && len(els) == 0 && !s.referenced(x.cmd.name, true) {
					lines = append(lines, fmt.Sprintf("delete map %s %s %s", x.cmd.family, tbl, x.cmd.name))
					delete(s.maps, x.cmd.name)
				}
			case "table":
				if len(s.chains) == 0 && len(s.maps) == 0 {
					lines = append(lines, fmt.Sprintf("delete table %s %s", x.cmd.family, tbl))
					s.exists = false
				}
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
