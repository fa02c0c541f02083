package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// DefaultBackupDir is where backups go unless Options.BackupDir says.
const DefaultBackupDir = "/var/lib/iptscope/backups"

// PersistFile is the sysctl.d file --persist writes.
const PersistFile = "/etc/sysctl.d/99-iptscope-ip-forward.conf"

// lockWait is the bounded wait for the xtables lock, in seconds.
const lockWait = "5"

// Options say where and how to apply a plan.
type Options struct {
	// Runner runs every command; nil means collect.ExecRunner{}.
	Runner collect.Runner
	// NetNS is the target namespace, as collect.Options.NetNS.
	NetNS string
	// BackupDir overrides DefaultBackupDir.
	BackupDir string
	// Out receives progress lines (backup path, payloads applied).
	Out io.Writer
	// Recheck collects and diagnoses the host again after the apply.
	// Nil skips the verification (tests of the lower layers only).
	// Reread, when set, is used instead.
	Recheck func(ctx context.Context) ([]diagnose.Finding, error)
	// Reread collects the host again (Docker's view and the rules in one
	// snapshot) and diagnoses it. With it Apply judges the repair against
	// the fresh view: a repair Docker overtook (a container removed or
	// started meanwhile) is told from one that failed, what the fresh
	// view does not want is undone, and a plan whose view changed is
	// planned again (MaxReplans).
	Reread func(ctx context.Context) (*snapshot.Snapshot, []diagnose.Finding, error)
	// Planned is the snapshot the plan was computed from: Apply compares
	// the chains the plan touches and Docker's view with it. Nil skips
	// those comparisons.
	Planned *snapshot.Snapshot
	// MaxReplans bounds the plans made again from a fresh read
	// (DefaultMaxReplans when 0).
	MaxReplans int
	// Persist writes PersistFile when the plan sets ip_forward (initial
	// namespace only).
	Persist bool
	// PersistPath overrides PersistFile (tests).
	PersistPath string
	// WriteSysctl writes a sysctl in the target namespace; nil means
	// collect.WriteSysctl.
	WriteSysctl func(netns, name, value string) error
	// IsInitNetNS says whether NetNS is the initial namespace; nil
	// means collect.IsInitNetNS.
	IsInitNetNS func(netns string) (bool, error)
	// LookPath finds binaries; nil means exec.LookPath.
	LookPath func(string) (string, error)
	// Now names the backup; nil means time.Now.
	Now func() time.Time
	// LockHolder names the process holding the xtables lock file; nil
	// reads /proc/locks (tests replace it).
	LockHolder func(lockFile string) string
	// WriteFile writes the backup; nil writes a temporary file and renames
	// it into place (tests inject a full disk).
	WriteFile func(path string, data []byte, perm os.FileMode) error
	// KeepBackups is how many backups of the namespace to keep (Prune);
	// 0 means DefaultKeepBackups, negative keeps all.
	KeepBackups int
	// Backend is, for Restore, the backend holding the host's rules now
	// ("nft", "legacy"); a backup of another backend is refused. "" skips
	// the check.
	Backend string
	// SkipRootCheck is for tests with a FakeRunner.
	SkipRootCheck bool
}

// Result says what Apply did.
type Result struct {
	BackupPath string
	Payloads   []Payload
	Sysctls    []diagnose.Op
	// Persisted is the sysctl.d file written ("" if none); PersistNote
	// says why none was written when --persist was asked.
	Persisted   string
	PersistNote string
	// After are the findings of the re-check (nil without Recheck): what
	// remains that the plan does not repair.
	After []diagnose.Finding
	// Replans counts the plans made again because Docker changed its
	// state under a plan.
	Replans int
	// Skipped are operations not applied because the rule was already
	// there at apply time (written meanwhile).
	Skipped []diagnose.Op
	// Undone are operations applied and then deleted again because the
	// fresh view did not want them.
	Undone []diagnose.Op
}

// ErrNothingToRepair is returned by Apply for an empty plan.
var ErrNothingToRepair = errors.New("nothing to repair")

// PayloadError is a payload that iptables-restore refused, with the line
// it named and three lines of context.
type PayloadError struct {
	Cmd     string
	Line    int // 1-based line of the payload; 0 when not said
	Context string
	Err     error
}

func (e *PayloadError) Error() string {
	msg := fmt.Sprintf("%s refused the payload: %v", e.Cmd, e.Err)
	if e.Context != "" {
		msg += "\n" + e.Context
	}
	return msg
}

func (e *PayloadError) Unwrap() error { return e.Err }

var lineFailed = regexp.MustCompile(`line (\d+) failed`)

// payloadError builds a PayloadError, marking the failing line.
func payloadError(cmd, text string, err error) error {
	pe := &PayloadError{Cmd: cmd, Err: err}
	var ee *collect.ExitError
	if errors.As(err, &ee) {
		if m := lineFailed.FindStringSubmatch(ee.Stderr); m != nil {
			pe.Line, _ = strconv.Atoi(m[1])
		}
	}
	if pe.Line > 0 {
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		var b strings.Builder
		for i := max(1, pe.Line-3); i <= min(len(lines), pe.Line+3); i++ {
			mark := "   "
			if i == pe.Line {
				mark = ">> "
			}
			fmt.Fprintf(&b, "%s%3d  %s\n", mark, i, lines[i-1])
		}
		pe.Context = strings.TrimRight(b.String(), "\n")
	}
	return pe
}

type applier struct {
	round  int
	o      Options
	r      collect.Runner
	plan   *diagnose.Plan
	out    io.Writer
	binFor map[string]string // "ipv4/restore" -> binary
}

func (a *applier) run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	var out []byte
	err := collect.InNetNS(a.o.NetNS, func() error {
		var err error
		out, err = a.r.Run(ctx, name, args, stdin)
		return err
	})
	if errors.Is(err, exec.ErrNotFound) {
		return out, fmt.Errorf("%s is not installed: %w", name, err)
	}
	return out, err
}

// tool returns the backend's save or restore binary ("save"/"restore")
// for a family, falling back to the plain one when the backend's variant
// is not installed.
func (a *applier) tool(family, kind string) (string, error) {
	key := family + "/" + kind
	if b, ok := a.binFor[key]; ok {
		return b, nil
	}
	look := a.o.LookPath
	if look == nil {
		look = exec.LookPath
	}
	name := restoreCommand(family, a.plan.Backend)
	plain := restoreCommand(family, "")
	if kind == "save" {
		name = collect.SaveCommand(collect.Family(family), a.plan.Backend)
		plain = collect.SaveCommand(collect.Family(family), "")
	}
	for _, c := range []string{name, plain} {
		if _, err := look(c); err == nil {
			a.binFor[key] = c
			return c, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (nor %s): install the iptables package", name, plain)
}

// Check renders the plan and runs `iptables-restore --test --noflush` on
// each payload (for Docker's nftables table, `nft -c -f -` on the whole
// transaction). It changes nothing.
func Check(ctx context.Context, p *diagnose.Plan, o Options) ([]Payload, error) {
	a := newApplier(p, o)
	if p.HasNftOps() {
		cmds, err := nftCmds(p)
		if err != nil {
			return nil, err
		}
		if _, err := a.run(ctx, "nft", []string{"-c", "-f", "-"}, []byte(nftScript(cmds))); err != nil {
			return nil, fmt.Errorf("checking the nftables transaction: %w", err)
		}
		return Render(p), nil
	}
	return a.check(ctx)
}

func newApplier(p *diagnose.Plan, o Options) *applier {
	r := o.Runner
	if r == nil {
		r = collect.ExecRunner{}
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	return &applier{o: o, r: r, plan: p, out: out, binFor: map[string]string{}}
}

func (a *applier) check(ctx context.Context) ([]Payload, error) {
	payloads := Render(a.plan)
	for _, pl := range payloads {
		bin, err := a.tool(pl.Family, "restore")
		if err != nil {
			return nil, err
		}
		if _, err := a.run(ctx, bin, []string{"-w", lockWait, "--test", "--noflush"}, []byte(pl.Text)); err != nil {
			return nil, fmt.Errorf("checking the %s %s payload: %w", pl.Family, pl.Table, a.restoreError(bin+" --test --noflush", pl, err))
		}
	}
	return payloads, nil
}

// Apply checks, backs up, applies and verifies the plan. On any error the
// host is as before for what the repair did: nothing was applied, or the
// repair's own operations were undone one by one (never a whole table:
// Docker may have written rules meanwhile), sysctls set back, and the
// error says what happened and where the backup is.
//
// With Options.Reread, Apply judges the repair against a fresh read of
// Docker's view and the rules (see churn.go): rules it added that the
// fresh view does not want (a container removed meanwhile, a rule Docker
// wrote too) are deleted again, and a plan whose view changed is
// re-planned, at most Options.MaxReplans times.
func Apply(ctx context.Context, p *diagnose.Plan, o Options) (*Result, error) {
	if p.Empty() {
		return nil, ErrNothingToRepair
	}
	if !o.SkipRootCheck && os.Geteuid() != 0 {
		return nil, fmt.Errorf("repairing needs root: %w (run with sudo)", collect.ErrNeedsRoot)
	}
	if err := ValidatePlan(p); err != nil {
		return nil, err
	}
	if p.HasNftOps() {
		return applyNft(ctx, p, o) // Docker's nftables backend (nft_apply.go)
	}
	return replanning(ctx, p, o, nil, (*applier).applyRound)
}

// dockerMoved reports whether Docker's view changed since planned: then the
// round is judged against the fresh view, done when that needs nothing
// more (res.After set), else next is the view to plan again from.
func dockerMoved(planned *snapshot.Snapshot, fresh *view, res *Result) (moved, done bool, next *view) {
	if planned == nil || dockerView(planned) == dockerView(fresh.snap) {
		return false, false, nil
	}
	if fresh.plan.Empty() {
		res.After = fresh.findings
		return true, true, nil
	}
	return true, false, fresh
}

// writeSysctls sets the plan's sysctls in order, each recorded in set
// (for a rollback) once written.
func (a *applier) writeSysctls(sysctls []diagnose.Op, set *[]diagnose.Op) error {
	for _, s := range sysctls {
		if err := a.writeSysctl(s.Name, s.Value); err != nil {
			return fmt.Errorf("setting %s=%s: %w", s.Name, s.Value, err)
		}
		*set = append(*set, s)
		fmt.Fprintf(a.out, "set %s = %s (was %s)\n", s.Name, s.Value, s.Old)
	}
	return nil
}

// rolledBack ends a rollback after the repair's own changes to the rules
// were undone (undoErr: how that failed): the sysctls it set go back, and
// the error says what was done. nothing: the repair had changed no rule;
// unchanged says so; did says what the undo did.
func (a *applier) rolledBack(cause, undoErr error, setSysctls []diagnose.Op, nothing bool, unchanged, did string) error {
	var errs []error
	if undoErr != nil {
		errs = append(errs, undoErr)
	}
	for _, s := range setSysctls {
		if err := a.writeSysctl(s.Name, s.Old); err != nil {
			errs = append(errs, fmt.Errorf("setting %s back to %s: %w", s.Name, s.Old, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; the rollback failed too: %w", cause, errors.Join(errs...))
	}
	if nothing && len(setSysctls) == 0 {
		return fmt.Errorf("%w; %s", cause, unchanged)
	}
	return fmt.Errorf("%w; rolled back: %s, Docker's other rules left as they are", cause, did)
}

// roundFunc applies one plan (a round of replanning): done, or the fresh
// view to plan again from.
type roundFunc func(a *applier, ctx context.Context, res *Result, planned *snapshot.Snapshot, mayReplan bool) (bool, *view, error)

// replanning applies p in rounds: when a round finds that Docker changed
// its state, the next one applies the plan made from the fresh view, at
// most Options.MaxReplans times. check, when set, vets each plan first.
func replanning(ctx context.Context, p *diagnose.Plan, o Options, check func(*diagnose.Plan) error, round roundFunc) (*Result, error) {
	maxReplans := o.MaxReplans
	if maxReplans <= 0 {
		maxReplans = DefaultMaxReplans
	}
	res := &Result{}
	planned := o.Planned
	for n := 0; ; n++ {
		if check != nil {
			if err := check(p); err != nil {
				return nil, err
			}
		}
		a := newApplier(p, o)
		a.round = n
		done, next, err := round(a, ctx, res, planned, n < maxReplans)
		if err != nil {
			return nil, err
		}
		if done {
			return a.finish(res)
		}
		res.Replans++
		if n >= maxReplans {
			return nil, fmt.Errorf("%w: Docker's containers, networks or rules changed under %d plan(s) in a row; "+
				"the rules added are kept only where the latest view wants them (backup: %s); run the fix again when Docker is quiet",
				ErrChurn, n+1, res.BackupPath)
		}
		fmt.Fprintf(a.out, "Docker changed its state during the repair: planning again from a fresh read (%d of %d)\n", n+1, maxReplans)
		p, planned = next.plan, next.snap
		if p.Empty() {
			res.After = next.findings
			return a.finish(res)
		}
		if err := ValidatePlan(p); err != nil {
			return nil, err
		}
	}
}

// DefaultMaxReplans bounds how often Apply plans again when Docker's view
// changed under a plan.
const DefaultMaxReplans = 3

// ErrChurn is returned when Docker kept changing its state under every
// plan Apply made.
var ErrChurn = errors.New("Docker's state kept changing")

// view is one fresh read of the host.
type view struct {
	snap     *snapshot.Snapshot
	findings []diagnose.Finding
	plan     *diagnose.Plan
}

// applyRound runs one plan: test, back up (which reads the touched tables
// as they are now), apply only what is still missing, verify. It returns
// done when the repair is verified, or the fresh view to plan again from.
func (a *applier) applyRound(ctx context.Context, res *Result, planned *snapshot.Snapshot, mayReplan bool) (bool, *view, error) {
	o := a.o
	unchanged := "nothing was changed"
	if a.round > 0 {
		unchanged = "nothing more was changed (what the earlier plan added is kept where the fresh view wants it)"
	}
	if _, err := a.check(ctx); err != nil {
		return false, nil, fmt.Errorf("%w; %s", err, unchanged)
	}
	payloads := Render(a.plan)
	backup := &backupFile{}
	var err error
	if len(payloads) > 0 {
		if backup, err = a.backup(ctx, payloads); err != nil {
			return false, nil, fmt.Errorf("%w; %s", err, unchanged)
		}
		if res.BackupPath == "" {
			res.BackupPath = backup.path
		}
		fmt.Fprintf(a.out, "backup of the touched tables: %s\n", backup.path)
	}
	// What is still missing now: the backup is the tables as they are
	// right before the restore.
	live, err := liveTables(backup)
	if err != nil {
		return false, nil, err
	}
	todo, skipped, changed := stillMissing(a.plan, live, planned)
	if changed {
		// Why not apply: the plan's positions were computed on chains
		// that have changed since (Docker wrote or deleted rules).
		if !mayReplan || o.Reread == nil {
			return false, nil, fmt.Errorf("%w: the chains the plan touches changed since they were read; %s (run the fix again)", ErrChurn, unchanged)
		}
		fresh, err := a.reread(ctx)
		if err != nil {
			return false, nil, err
		}
		return false, fresh, nil
	}
	res.Skipped = append(res.Skipped, skipped...)
	for _, op := range skipped {
		fmt.Fprintf(a.out, "already there (written meanwhile, not written again): %s %s %s\n", op.Family, op.Table, op.Line())
	}
	a.plan = todo
	res.Payloads = append(res.Payloads, Render(todo)...)
	sysctls := todo.SysctlOps()
	res.Sysctls = append(res.Sysctls, sysctls...)

	var applied []applied
	var setSysctls []diagnose.Op
	rollback := func(cause error) error {
		var undoErr error
		if err := a.undo(ctx, applied); err != nil {
			undoErr = fmt.Errorf("undoing the repair's operations: %w (the tables as they were before: iptscope restore %s)", err, backup.path)
		}
		return a.rolledBack(cause, undoErr, setSysctls, len(applied) == 0, unchanged,
			fmt.Sprintf("the repair's own operations were undone (%d rule operation(s), %d sysctl(s))", countOps(applied), len(setSysctls)))
	}
	for _, pl := range Render(todo) {
		bin, _ := a.tool(pl.Family, "restore")
		if _, err := a.run(ctx, bin, []string{"-w", lockWait, "--noflush"}, []byte(pl.Text)); err != nil {
			err = a.restoreError(bin+" --noflush", pl, err)
			// Why undo this table too: a killed iptables-restore may
			// have committed before it died; undo deletes only what is
			// there.
			applied = append(applied, applied1(todo, pl, live))
			return false, nil, rollback(fmt.Errorf("applying the %s %s payload: %w", pl.Family, pl.Table, err))
		}
		applied = append(applied, applied1(todo, pl, live))
		fmt.Fprintf(a.out, "applied %s %s: %d line(s)\n", pl.Family, pl.Table, strings.Count(pl.Text, "\n")-2)
	}
	if err := a.writeSysctls(sysctls, &setSysctls); err != nil {
		return false, nil, rollback(err)
	}
	switch {
	case o.Reread != nil:
		fresh, err := a.reread(ctx)
		if err != nil {
			return false, nil, rollback(fmt.Errorf("re-reading the host after the repair: %w", err))
		}
		// What the repair added that the fresh view does not want: a
		// rule for a container removed meanwhile, a rule Docker wrote
		// too. Only those are undone.
		if wrong := judge(applied, fresh.snap, a.plan.Backend); countOps(wrong) > 0 {
			if err := a.undo(ctx, wrong); err != nil {
				return false, nil, rollback(fmt.Errorf("deleting what the fresh view does not want: %w", err))
			}
			for _, w := range wrong {
				for _, op := range w.ops {
					fmt.Fprintf(a.out, "undone (the fresh view does not want it): %s %s %s\n", op.Family, op.Table, op.Line())
					res.Undone = append(res.Undone, op)
				}
			}
			applied = minus(applied, wrong)
			if fresh, err = a.reread(ctx); err != nil {
				return false, nil, rollback(fmt.Errorf("re-reading the host after the repair: %w", err))
			}
		}
		if moved, done, next := dockerMoved(planned, fresh, res); moved {
			return done, next, nil
		}
		// Why the in-place test: a finding the plan repairs only in part
		// (a container on several networks, whose ports' network is not
		// known) is still there with every operation of the plan in
		// place; the repair held, the rest is left (exit 1), not undone.
		inPlace := opsInPlace(applied, fresh.snap, a.plan.Backend)
		if bad := verifyKept(a.plan, fresh.findings, inPlace); len(bad) > 0 {
			return false, nil, rollback(fmt.Errorf("the re-read disagrees with the plan:\n  %s", strings.Join(bad, "\n  ")))
		}
		res.After = fresh.findings
	case o.Recheck != nil:
		after, err := o.Recheck(ctx)
		if err != nil {
			return false, nil, rollback(fmt.Errorf("re-reading the host after the repair: %w", err))
		}
		if bad := verify(a.plan, after); len(bad) > 0 {
			return false, nil, rollback(fmt.Errorf("the re-read disagrees with the plan:\n  %s", strings.Join(bad, "\n  ")))
		}
		res.After = after
	}
	return true, nil, nil
}

// reread collects and diagnoses the host again and plans from it.
func (a *applier) reread(ctx context.Context) (*view, error) {
	s, findings, err := a.o.Reread(ctx)
	if err != nil {
		return nil, err
	}
	return &view{snap: s, findings: findings, plan: diagnose.NewPlan(s, findings)}, nil
}

// finish persists the sysctls the repair set, when asked.
func (a *applier) finish(res *Result) (*Result, error) {
	var durable []diagnose.Op
	for _, op := range res.Sysctls {
		// Why only forwarding: Docker sets route_localnet and
		// bridge-nf-call-* itself when it creates a bridge or starts, and
		// a boot-time sysctl.d entry for a bridge that does not exist yet
		// (or a module not loaded yet) does nothing.
		if op.Name == "net.ipv4.ip_forward" || op.Name == "net.ipv6.conf.all.forwarding" {
			durable = append(durable, op)
		}
	}
	if a.o.Persist && len(durable) > 0 {
		var err error
		res.Persisted, res.PersistNote, err = a.persist(durable)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// verify returns what is wrong after the repair: a repaired finding still
// there, or a new error finding. Findings are compared by key (check ID
// and the subject of the cause), never by title or text.
func verify(p *diagnose.Plan, after []diagnose.Finding) []string {
	return verifyKept(p, after, nil)
}

// verifyKept is verify where a repaired finding still there whose key is
// in inPlace (every operation for it is in the fresh rules) was repaired
// as far as the plan goes and is not counted.
func verifyKept(p *diagnose.Plan, after []diagnose.Finding, inPlace map[string]bool) []string {
	key := func(f diagnose.Finding) string { return f.Key }
	before := map[string]bool{}
	repaired := map[string]bool{}
	for _, pf := range p.Findings {
		before[key(pf.Finding)] = true
		if pf.Repaired {
			repaired[key(pf.Finding)] = true
		}
	}
	var bad []string
	for _, f := range after {
		switch {
		case repaired[key(f)] && !inPlace[key(f)]:
			bad = append(bad, "still there: "+f.ID+": "+f.Title)
		case !before[key(f)] && f.Severity == diagnose.SeverityError:
			bad = append(bad, "new: "+f.ID+": "+f.Title)
		}
	}
	return bad
}

func (a *applier) writeSysctl(name, value string) error {
	w := a.o.WriteSysctl
	if w == nil {
		w = collect.WriteSysctl
	}
	return w(a.o.NetNS, name, value)
}

// persist writes the sysctl.d file, only for the initial namespace.
func (a *applier) persist(ops []diagnose.Op) (path, note string, err error) {
	isInit := a.o.IsInitNetNS
	if isInit == nil {
		isInit = collect.IsInitNetNS
	}
	ok, err := isInit(a.o.NetNS)
	if err != nil {
		return "", "", fmt.Errorf("--persist: finding the namespace: %w", err)
	}
	if !ok {
		return "", "--persist: " + a.o.NetNS + " is not the host's initial network namespace: sysctl.d files apply only there at boot, so the setting cannot be persisted by iptscope (whatever creates the namespace must set it)", nil
	}
	path = a.o.PersistPath
	if path == "" {
		path = PersistFile
	}
	var b bytes.Buffer
	b.WriteString("# Written by `iptscope doctor --fix --persist`: Docker needs IP forwarding.\n")
	for _, s := range ops {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, s.Value)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", fmt.Errorf("--persist: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return "", "", fmt.Errorf("--persist: %w", err)
	}
	return path, "", nil
}

// tableKey names a (family, table) section of a backup.
func tableKey(family string, t parse.TableName) string { return family + " " + string(t) }
