package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/buildinfo"
	"github.com/iptscope/iptscope/render"
	"github.com/iptscope/iptscope/repair"
	"github.com/iptscope/iptscope/snapshot"
)

type doctorOptions struct {
	ports      []string
	containers []string
	from       string
	netns      string
	dockerHost string
	skip       []string
	failOn     string
	output     string
	fix        fixOptions
	npdWritten bool // -o npd: the line is out (otherwise an error says UNKNOWN)
}

func newDoctorCmd(g *globals) *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say what is broken between Docker and the firewall, with the evidence and the fix",
		Long: `Reconcile the host's iptables rules with Docker's networks, containers and
published ports, and say exactly what is broken: each finding has a stable ID
(docs/checks/<id>.md), a severity, what it does to traffic, the rule lines,
sysctls or processes it rests on, and the repair.

For every published port it also shows the path a connection from another
machine takes today:
  nat         DNAT in place, forwarded and admitted: the normal path
  proxy-only  the NAT path is broken but docker-proxy answers on the host port
              (clients' addresses are lost; it breaks when the proxy goes)
  broken      connections from other machines do not reach the container
  local-only  bound to 127.0.0.1: other machines cannot connect by design

Findings come root cause first: one finding per cause, with every port,
chain or network it affects inside it (nat DOCKER flushed on a 1,000-port
host is one error listing 1,000 ports), and findings that follow from
another say so. The report ends with one line that says what to do next.
--port and --container narrow the report and the ports table to what you
ask about; --skip hides a check but never a broken port.

Input: the live host (as root; another network namespace with --netns), a
bundle from "iptscope collect" (--from host.json), or a raw dump: the
"iptables -t nat -L -n -v" (and -t filter, -t raw) text pasted into a
ticket, or iptables-save / ip6tables-save output (--from rules.txt, - for
stdin). From a raw dump iptscope infers Docker's networks, containers and
published ports from the rules Docker keeps for them, runs every check the
rules alone decide, and lists what needs the host ("not checked"); the
status is "unknown" (exit 2) unless a problem is found.

Exit codes (node-problem-detector's plugin protocol, docs/exit-codes.md):
  0  no finding at or above --fail-on
  1  at least one finding at or above --fail-on
  2  could not check: bad input, no privileges, nothing to inspect, or a
     partial check (no Docker view) that found nothing at or above --fail-on

Repair (--fix, docs/repair.md): put back the rules Docker's version writes,
in its order, in one iptables-restore --noflush payload per table, without
restarting Docker. The plan (payloads and sysctl changes) is shown first;
--dry-run stops there; on a terminal it asks, --yes answers for scripts. The
touched tables are backed up (the path is printed; "iptscope restore FILE"
puts a backup back), the payloads are tested, applied under the xtables
lock, the host is read again and rolled back if a repaired problem remains
or a new error appears. Exit 0 when the host is healthy afterwards (or
nothing needed repair), 1 when findings that iptscope does not repair remain
(after repairing the rest), 2 when nothing was changed (not confirmed, a
--from snapshot) or the change was rolled back. --dry-run (alone it means
--fix --dry-run) changes nothing and exits as doctor does: 1 while the
host needs a repair, 0 when it is healthy, 2 for a partial check. --yes,
--persist and --backup-dir without --fix are errors.`,
		Example: `  sudo iptscope doctor
  sudo iptscope doctor --netns /proc/$(pidof dockerd)/ns/net -o json
  iptscope doctor --from host.json --skip proxy-overhead --fail-on error
  iptscope doctor --from fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json
  sudo iptables -t nat -L -n -v | iptscope doctor --from -
  iptscope doctor --from ticket-paste.txt --port 8080
  iptscope doctor --from host.json --fix --dry-run
  sudo iptscope doctor --fix
  sudo iptscope doctor --fix --yes --persist --netns dockerhost`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &exitError{code: exitUnknown, err: fmt.Errorf("doctor takes no arguments; did you mean --from %s?", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := runDoctor(cmd, g, o)
			if o.output == "npd" && err != nil && !o.npdWritten {
				// node-problem-detector shows stdout as the condition's
				// message: say why it could not check there too.
				fmt.Fprintln(g.stdout, render.NPDUnknownLine(err))
			}
			return err
		},
	}
	cmd.Flags().StringArrayVar(&o.ports, "port", nil, "narrow the report and the ports table to this host `PORT` (8080, 8080/tcp, 127.0.0.1:9090; repeatable)")
	cmd.Flags().StringArrayVar(&o.containers, "container", nil, "narrow the report and the ports table to this container (`NAME` or address; repeatable)")
	cmd.Flags().StringVar(&o.from, "from", "", "read a `FILE` instead of the live host: a bundle from 'iptscope collect', or iptables-save / iptables -L text (- for stdin)")
	cmd.Flags().StringVar(&o.netns, "netns", "", "live: inspect this network namespace (NAME under /var/run/netns, or a path)")
	cmd.Flags().StringVar(&o.dockerHost, "docker-host", "", "live: Docker Engine API endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	cmd.Flags().StringArrayVar(&o.skip, "skip", nil, "do not run the check with this ID (repeatable)")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "warning", "exit 1 on a finding of this severity or worse: error, warning or info")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json, or npd (one line for node-problem-detector)")
	o.fix.addFlags(cmd)
	return cmd
}

func runDoctor(cmd *cobra.Command, g *globals, o *doctorOptions) error {
	if err := checkOutput(o.output, "table", "json", "npd"); err != nil {
		return err
	}
	if o.output == "npd" && (o.fix.fix || o.fix.dryRun) {
		return &exitError{code: exitUnknown, err: fmt.Errorf("-o npd is doctor's check for node-problem-detector; it does not apply to --fix")}
	}
	failOn, ok := diagnose.ParseSeverity(o.failOn)
	if !ok {
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown severity %q for --fail-on (use error, warning or info)", o.failOn)}
	}
	var ids []string
	for _, c := range diagnose.All() {
		ids = append(ids, c.ID)
	}
	for _, id := range o.skip {
		if !slices.Contains(ids, id) {
			return &exitError{code: exitUnknown, err: fmt.Errorf("unknown check %q for --skip (checks: %s)", id, strings.Join(ids, ", "))}
		}
	}
	if !o.fix.fix && !o.fix.dryRun {
		for _, name := range []string{"yes", "persist", "backup-dir"} {
			if cmd.Flags().Changed(name) {
				return &exitError{code: exitUnknown, err: fmt.Errorf("--%s applies to a repair: add --fix", name)}
			}
		}
	}
	for _, p := range o.ports {
		if !validPortFilter(p) {
			return &exitError{code: exitUnknown, err: fmt.Errorf("--port %q: want PORT, PORT/PROTO or ADDRESS:PORT[/PROTO] (8080, 8080/tcp, 127.0.0.1:9090)", p)}
		}
	}
	if o.from != "" && (o.netns != "" || o.dockerHost != "") {
		return &exitError{code: exitUnknown, err: fmt.Errorf("--netns and --docker-host read the live host; they do not apply with --from")}
	}

	var budget *memoryBudget
	if !o.fix.fix && !o.fix.dryRun {
		// Why not for a repair: the plan holds about as much again as
		// the report, and a limit for the report cost it more CPU than
		// the collector's default pace (measured on a 33,000-port host).
		budget = budgetMemory(g)
		defer budget.stop()
	}
	snap, ropts, err := doctorInput(cmd, g, o)
	if err != nil {
		return err
	}
	budget.fit(snap)
	if _, err := snap.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); err != nil {
		_, err6 := snap.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv6)
		// Why a Docker view is enough: with Docker 29's nftables backend
		// the iptables dumps are empty by design, and the report says what
		// was and was not inspected.
		dockerView := snap.Docker != nil && snap.Docker.Error == ""
		if !dockerView && (err6 != nil || !ropts.RulesOnly) {
			return &exitError{code: exitUnknown, err: fmt.Errorf("nothing to inspect: %w", err)}
		}
	}
	ropts.Skip, ropts.FailOn = o.skip, failOn
	ropts.Ports, ropts.Containers = o.ports, o.containers
	rep := diagnose.NewReport(snap, ropts)
	rep.ToolVersion = buildinfo.Version()
	if o.fix.fix || o.fix.dryRun {
		return runFix(cmd, g, o, snap, rep)
	}
	rep.Release() // rendering needs none of the analysis
	// Why a collection now: the snapshot and the analysis (150 MB on a
	// 33,000-port host) just became garbage, and the collector would not
	// run again before the heap doubled: rendering the report on top of
	// them set the peak memory. With only the report live it costs a few
	// milliseconds.
	runtime.GC()

	switch o.output {
	case "json":
		err = render.DoctorJSON(g.stdout, rep)
	case "npd":
		err, o.npdWritten = render.NPDText(g.stdout, rep), true
	default:
		err = render.DoctorText(g.stdout, rep, g.renderOptions())
	}
	if err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("writing the report: %w", err)}
	}
	switch rep.Status {
	case diagnose.StatusProblems:
		n := 0
		for _, f := range rep.Findings {
			if f.Severity.Rank() >= failOn.Rank() {
				n++
			}
		}
		return &exitError{code: exitProblems, err: fmt.Errorf("%d finding(s) at or above %s", n, failOn)}
	case diagnose.StatusUnknown:
		return &exitError{code: exitUnknown, err: fmt.Errorf("partial check: nothing at or above %s, but see the notes", failOn)}
	}
	return nil
}

// The memory budget (budgetMemory).
const (
	budgetMinimum  = 176 << 20 // the limit before the input is read, and the least one
	budgetPerRule  = 1800      // bytes of limit per rule of the input
	budgetHeadroom = 0.85      // live heap over this share of the limit...
	budgetNearRuns = 2         // ...at this many collections in a row lifts it
)

// memoryBudget is the soft memory limit of one doctor run; nil when
// GOMEMLIMIT sets the limit or another run (a test) has a budget.
type memoryBudget struct {
	mu     sync.Mutex
	limit  int64
	lifted bool
	done   bool
	near   int   // collections in a row that found the live heap near the limit
	prev   int64 // the limit before, put back by stop
}

// budgeted is set while a run has a budget: one at a time, as the limit
// is the process's.
var budgeted atomic.Bool

// budgetMemory sets a soft memory limit (debug.SetMemoryLimit) for the
// report, unless GOMEMLIMIT sets one: budgetMinimum while the input is
// read, then budgetPerRule bytes per rule of the input if that is more
// (fit). Why: the live heap of a report grows to about 1.4 KB per rule
// and the collector's default pace lets the heap reach twice the live
// heap (up to 390 MiB at 100,000 rules), while a limit a little over it keeps
// the peak there for about the same CPU. On a small input the limit is
// never reached. It is lifted when the live heap comes within
// budgetHeadroom of it at budgetNearRuns collections in a row (rules that
// need more than the budget guessed):
// then the collector's default pace governs, as without a budget,
// instead of collecting over and over a heap held just under its limit.
func budgetMemory(g *globals) *memoryBudget {
	if g.getenv("GOMEMLIMIT") != "" || !budgeted.CompareAndSwap(false, true) {
		return nil
	}
	b := &memoryBudget{limit: budgetMinimum}
	b.prev = debug.SetMemoryLimit(b.limit)
	b.watch()
	return b
}

// stop puts the limit of before the run back and ends the watch.
func (b *memoryBudget) stop() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	debug.SetMemoryLimit(b.prev)
	budgeted.Store(false)
}

// fit raises the limit to the budget of the snapshot's rules.
func (b *memoryBudget) fit(snap *snapshot.Snapshot) {
	if b == nil || snap == nil {
		return
	}
	rules := 0
	for _, d := range snap.Rules {
		if d.Ruleset != nil {
			for _, t := range d.Ruleset.Tables {
				rules += t.RuleCount()
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if want := int64(rules) * budgetPerRule; !b.lifted && !b.done && want > b.limit {
		b.limit = want
		debug.SetMemoryLimit(want)
	}
}

// watch checks the live heap after every collection and lifts the limit
// when it comes within budgetHeadroom of it at budgetNearRuns collections
// in a row. It runs from a finalizer,
// which the runtime calls once per collection.
func (b *memoryBudget) watch() {
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		runtime.SetFinalizer(&struct{ _ *int }{}, func(any) {
			metrics.Read(live)
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.lifted || b.done {
				return
			}
			// Why two in a row: the live heap a collection reports holds
			// what was allocated while it marked, and on a busy machine
			// one collection of a 33,000-port report now and then found
			// it over the mark (the limit lifted, the peak 225 MiB
			// instead of 187) while the next found it well under.
			// Rules that need more than the budget keep it there.
			if float64(live[0].Value.Uint64()) <= budgetHeadroom*float64(b.limit) {
				b.near = 0
			} else if b.near++; b.near == budgetNearRuns {
				b.lifted = true
				debug.SetMemoryLimit(b.prev)
				return
			}
			arm()
		})
	}
	arm()
}

// collectLive reads the live host; tests replace it to reach the live-only
// paths (the confirmation refusal) without touching the host.
var collectLive = collect.Collect

// doctorInput returns the snapshot to diagnose: collected live, loaded
// from a bundle, or built from a raw dump (rules only, Docker unknown).
func doctorInput(cmd *cobra.Command, g *globals, o *doctorOptions) (*snapshot.Snapshot, diagnose.ReportOptions, error) {
	if o.from == "" {
		opts := collect.Options{NetNS: o.netns, DockerHost: o.dockerHost}
		if g.isTTY(g.stderr) {
			opts.Progress = func(step string) { fmt.Fprintf(g.stderr, "\r\033[Kcollecting: %s", step) }
		}
		snap := collectLive(cmd.Context(), opts)
		if opts.Progress != nil {
			fmt.Fprint(g.stderr, "\r\033[K")
		}
		for _, e := range snap.Errors {
			fmt.Fprintf(g.stderr, "iptscope: warning: %s: %s\n", e.Part, e.Error)
		}
		return snap, diagnose.ReportOptions{Source: "live"}, nil
	}
	in, err := readInput(o.from, g.stdin)
	if err != nil {
		return nil, diagnose.ReportOptions{}, err
	}
	if in.snap != nil {
		return in.snap, diagnose.ReportOptions{Source: in.source}, nil
	}
	// Why: a raw dump says nothing about Docker; diagnose infers what the
	// rules show (NewReport with RulesOnly).
	return snapshot.FromDump(in.text, in.rs, in.source), diagnose.ReportOptions{Source: in.source, RulesOnly: true}, nil
}

// fixOptions are doctor's repair flags.
type fixOptions struct {
	fix, dryRun, yes, persist bool
	backupDir                 string
}

func (f *fixOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.fix, "fix", false, "repair what can be repaired: show the plan, ask, back up, apply, verify (docs/repair.md)")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "with --fix: show the plan and stop (works with --from)")
	cmd.Flags().BoolVar(&f.yes, "yes", false, "with --fix: do not ask for confirmation (scripts)")
	cmd.Flags().BoolVar(&f.persist, "persist", false, "with --fix: also write "+repair.PersistFile+" when ip_forward is set (initial namespace only)")
	cmd.Flags().StringVar(&f.backupDir, "backup-dir", repair.DefaultBackupDir, "with --fix: where to write the backup of the touched tables")
}

// runFix shows the plan for snap and, unless --dry-run, applies it.
func runFix(cmd *cobra.Command, g *globals, o *doctorOptions, snap *snapshot.Snapshot, rep *diagnose.Report) error {
	plan := rep.Plan(snap)
	var payloads []render.PlanPayload
	for _, p := range repair.Render(plan) {
		payloads = append(payloads, render.PlanPayload{Family: p.Family, Table: string(p.Table), Text: p.Text})
	}
	w := g.stdout
	var jsonOut *render.Fix
	if o.output == "json" {
		jsonOut = render.NewFix(plan, payloads, buildinfo.Version())
		defer func() { _ = render.FixJSON(g.stdout, jsonOut) }()
		w = g.stderr
	} else if err := render.PlanText(w, plan, payloads); err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("writing the plan: %w", err)}
	}
	// Why before --dry-run stops: a plan Apply would refuse must not pass
	// a CI step either (repair.ValidatePlan: a value the kernel would not
	// take, or one that would change what the payload says).
	if err := repair.ValidatePlan(plan); err != nil {
		return &exitError{code: exitUnknown, err: err}
	}
	if plan.Empty() {
		fmt.Fprintln(w, "nothing to repair")
		switch rep.Status {
		case diagnose.StatusProblems:
			return &exitError{code: exitProblems, err: fmt.Errorf("nothing to repair, but findings remain that iptscope does not repair (see above)")}
		case diagnose.StatusUnknown:
			return &exitError{code: exitUnknown, err: fmt.Errorf("nothing to repair, but the check was partial: see the notes")}
		}
		return nil
	}
	if o.fix.dryRun {
		// Why the doctor's exit code: a CI step that runs --dry-run must
		// fail while the host needs a repair (docs/exit-codes.md).
		fmt.Fprintln(w, "dry run: nothing changed")
		switch rep.Status {
		case diagnose.StatusProblems:
			return &exitError{code: exitProblems, err: fmt.Errorf("dry run: the plan repairs %d finding(s); nothing changed", len(plan.Repaired()))}
		case diagnose.StatusUnknown:
			return &exitError{code: exitUnknown, err: fmt.Errorf("dry run: the check was partial (see the notes); nothing changed")}
		}
		return nil
	}
	if o.from != "" {
		return &exitError{code: exitUnknown, err: fmt.Errorf("a snapshot from --from can be planned (--dry-run) but never applied: run `iptscope doctor --fix` on the host itself")}
	}
	if !o.fix.yes {
		if err := confirm(g, "Apply this plan?", "add --yes to apply the plan without asking"); err != nil {
			return err
		}
	}
	ropts := diagnose.ReportOptions{Source: "live", Skip: o.skip, FailOn: rep.FailOn}
	res, err := repair.Apply(cmd.Context(), plan, repair.Options{
		NetNS:     o.netns,
		BackupDir: o.fix.backupDir,
		Out:       w,
		Persist:   o.fix.persist,
		Planned:   snap,
		// Why Docker's view is read again with the rules: the repair is
		// judged against what Docker wants now, not when it was planned
		// (containers start and stop meanwhile).
		Reread: func(ctx context.Context) (*snapshot.Snapshot, []diagnose.Finding, error) {
			s := collectLive(ctx, collect.Options{NetNS: o.netns, DockerHost: o.dockerHost})
			return s, diagnose.NewReport(s, ropts).Findings, nil
		},
	})
	if err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("repair failed: %w", err)}
	}
	if o.output == "json" {
		jsonOut.Applied, jsonOut.Backup = true, res.BackupPath
	}
	fmt.Fprintf(w, "repaired: %d finding(s)\n", len(plan.Repaired()))
	if res.Replans > 0 || len(res.Undone) > 0 || len(res.Skipped) > 0 {
		fmt.Fprintf(w, "Docker changed its state meanwhile: planned again %d time(s), %d rule(s) already written by Docker, %d added rule(s) deleted again (the fresh view did not want them)\n",
			res.Replans, len(res.Skipped), len(res.Undone))
	}
	if res.BackupPath != "" {
		fmt.Fprintf(w, "undo: iptscope restore %s\n", res.BackupPath)
	}
	if res.Persisted != "" {
		fmt.Fprintf(w, "persisted: %s\n", res.Persisted)
	}
	if res.PersistNote != "" {
		fmt.Fprintln(w, res.PersistNote)
	}
	if o.fix.persist && len(res.Sysctls) == 0 {
		fmt.Fprintln(w, "--persist: no sysctl was changed, nothing to persist")
	}
	// What the plan does not repair (a host firewall's REJECT, a link, a
	// killed docker-proxy) still fails the run: CI must not read "repaired"
	// as "healthy".
	before := map[string]bool{}
	for _, f := range rep.Findings {
		before[f.Key] = true
	}
	var left, fresh []string
	for _, f := range res.After {
		if f.Severity.Rank() < rep.FailOn.Rank() {
			continue
		}
		if before[f.Key] {
			left = append(left, f.ID)
		} else {
			fresh = append(fresh, f.ID)
		}
	}
	if n := len(left) + len(fresh); n > 0 {
		slices.Sort(left)
		slices.Sort(fresh)
		msg := fmt.Sprintf("repaired what iptscope repairs; %d finding(s) at or above %s remain", n, rep.FailOn)
		if len(left) > 0 {
			msg += fmt.Sprintf(" (%s): see the plan's \"leave\" lines", strings.Join(slices.Compact(left), ", "))
		}
		if len(fresh) > 0 {
			// Why apart: these were not in the report the plan was made
			// from; the re-read after the repair found them (Docker, or
			// another tool, changed the host meanwhile).
			if len(left) > 0 {
				msg += ";"
			}
			msg += fmt.Sprintf(" (%s): found by the re-read after the repair, not in the plan (the host changed meanwhile; run doctor again)", strings.Join(slices.Compact(fresh), ", "))
		}
		return &exitError{code: exitProblems, err: errors.New(msg)}
	}

	return nil
}

// validPortFilter reports whether a --port value has a form narrow
// understands: PORT, PORT/PROTO, ADDRESS:PORT or ADDRESS:PORT/PROTO.
func validPortFilter(s string) bool {
	hp, proto, _ := strings.Cut(s, "/")
	switch proto {
	case "", "tcp", "udp", "sctp":
	default:
		return false
	}
	if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		hp = hp[i+1:]
	}
	n, err := strconv.Atoi(hp)
	return err == nil && n > 0 && n < 65536
}
