package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/metrics"
	"github.com/iptscope/iptscope/repair"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/watch"
)

type watchOptions struct {
	interval     time.Duration
	resync       time.Duration
	fix          bool
	maxRepairs   int
	repairWindow time.Duration
	backupDir    string
	textfileDir  string
	listen       string
	output       string
	netns        string
	dockerHost   string
	failOn       string
	skip         []string
	verbose      bool
}

func newWatchCmd(g *globals) *cobra.Command {
	o := &watchOptions{}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Keep checking the host: report drift of Docker's rules as it happens, and heal it",
		Long: `Run doctor's checks whenever the host's rules change, and report each
change of the verdict as one event: drift, repaired, healthy or error
(docs/fleet.md).

Changes are seen as they happen: on nftables (iptables-nft, and Docker 29's
nftables backend) from the kernel's ruleset events, each with the process
that made it ("ip nat DOCKER: 6 rules deleted by pid 4242 (iptables)");
on legacy iptables, which has no event stream, by a poll of the dump's hash
every --interval. Docker's own changes (a container starting or stopping, a
network created) come with its event stream and never raise drift: the
verdict waits until Docker is done. What has no event stream (sysctls,
links, docker-proxy) is hashed every --interval, and a full check follows
when it changed; a full check also runs every --resync whatever happens.

When a change only added or deleted rules of iptables-nft's chains (or
changed a built-in chain's policy), the check reads only those chains
again (iptables-nft -S CHAIN, iptables 1.8.5 or later) and splices them
into the last read: on a host of 100,000 rules a fraction of a second
instead of half a minute. Anything else reads the whole host.

--fix repairs drift with doctor --fix's plan, backup, test, verify and
rollback, at most --max-repairs times in --repair-window: then it stops
repairing, says which process keeps undoing the repairs, and stays in
alarm until the host is healthy again.

Metrics (Prometheus text format): --textfile-dir DIR writes DIR/iptscope.prom
atomically after each check (node_exporter's textfile collector);
--listen ADDR serves them on http://ADDR/metrics.

Output: one line per event, text, or with -o json one JSON object per line
(iptscope.watch/v1, docs/schema/watch.v1.json). SIGTERM or SIGINT ends it
cleanly with exit 0; exit 2 when it cannot start (bad flags, no
privileges, the metrics address taken).`,
		Example: `  sudo iptscope watch
  sudo iptscope watch --fix -o json
  sudo iptscope watch --textfile-dir /var/lib/prometheus/node-exporter
  sudo iptscope watch --listen 127.0.0.1:9742 --netns dockerhost`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWatch(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.interval, "interval", watch.DefaultProbe, "look at the sysctls, links and docker-proxy (and, on legacy iptables, the rules' hash) this often (`DURATION`)")
	f.DurationVar(&o.resync, "resync", watch.DefaultResync, "run a full check this often even when nothing changed")
	f.BoolVar(&o.fix, "fix", false, "repair drift (doctor --fix's plan, backup, verify, rollback), rate-limited")
	f.IntVar(&o.maxRepairs, "max-repairs", watch.DefaultMaxRepairs, "with --fix: stop repairing after this many repairs within --repair-window")
	f.DurationVar(&o.repairWindow, "repair-window", watch.DefaultRepairWindow, "with --fix: the window of --max-repairs")
	f.StringVar(&o.backupDir, "backup-dir", repair.DefaultBackupDir, "with --fix: where to write the backups of the touched tables")
	f.StringVar(&o.textfileDir, "textfile-dir", "", "write the metrics to `DIR`/iptscope.prom (node_exporter's textfile collector)")
	f.StringVar(&o.listen, "listen", "", "serve the metrics on http://`ADDR`/metrics (127.0.0.1:9742)")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json (one object per line)")
	f.StringVar(&o.netns, "netns", "", "watch this network namespace (NAME under /var/run/netns, or a path)")
	f.StringVar(&o.dockerHost, "docker-host", "", "Docker Engine API endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	f.StringVar(&o.failOn, "fail-on", "warning", "findings of this severity or worse are drift: error, warning or info")
	f.StringArrayVar(&o.skip, "skip", nil, "do not run the check with this ID (repeatable)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "say on stderr what each check read (the chains re-read, or everything) and what it cost")
	return cmd
}

func runWatch(cmd *cobra.Command, g *globals, o *watchOptions) error {
	bad := func(format string, a ...any) error {
		return &exitError{code: exitUnknown, err: fmt.Errorf(format, a...)}
	}
	if err := checkOutput(o.output, "text", "json"); err != nil {
		return err
	}
	failOn, ok := diagnose.ParseSeverity(o.failOn)
	if !ok {
		return bad("unknown severity %q for --fail-on (use error, warning or info)", o.failOn)
	}
	var ids []string
	for _, c := range diagnose.All() {
		ids = append(ids, c.ID)
	}
	for _, id := range o.skip {
		if !slices.Contains(ids, id) {
			return bad("unknown check %q for --skip (checks: %s)", id, strings.Join(ids, ", "))
		}
	}
	if o.interval <= 0 || o.resync <= 0 || o.repairWindow <= 0 || o.maxRepairs <= 0 {
		return bad("--interval, --resync, --repair-window and --max-repairs must be positive")
	}
	if !o.fix {
		for _, name := range []string{"max-repairs", "repair-window", "backup-dir"} {
			if cmd.Flags().Changed(name) {
				return bad("--%s applies to repairs: add --fix", name)
			}
		}
	}
	if o.textfileDir != "" {
		if st, err := os.Stat(o.textfileDir); err != nil || !st.IsDir() {
			return bad("--textfile-dir %s: not a directory", o.textfileDir)
		}
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	h := &watchHost{o: o, ropts: diagnose.ReportOptions{Source: "live", Skip: o.skip, FailOn: failOn}, log: g.stderr}
	// Single chains are re-read only with an iptables-nft that lists one
	// chain without fetching the rest.
	h.chainReads = collect.CheckChainReads(ctx, collect.Options{})
	if o.verbose && h.chainReads != nil {
		fmt.Fprintf(g.stderr, "iptscope: every check reads the whole host: %v\n", h.chainReads)
	}
	registry := metrics.NewRegistry(h.metrics)

	var srv *http.Server
	srvDone := make(chan struct{})
	if o.listen != "" {
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			return bad("--listen %s: %w", o.listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorLog: nil}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			defer close(srvDone)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(g.stderr, "iptscope: metrics server: %v\n", err)
			}
		}()
		fmt.Fprintf(g.stderr, "iptscope: metrics on http://%s/metrics\n", ln.Addr())
	} else {
		close(srvDone)
	}
	defer func() {
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
		}
		<-srvDone
	}()

	// The first check decides which sources to open: the nftables events
	// see iptables-nft and native nftables alike; legacy iptables is
	// polled when Docker's rules are there.
	srcs, err := watchSources(ctx, o, g.stderr)
	if err != nil {
		return &exitError{code: exitUnknown, err: err}
	}

	emit := func(e watch.Event) {
		if o.output == "json" {
			b, _ := json.Marshal(e)
			fmt.Fprintf(g.stdout, "%s\n", b)
			return
		}
		fmt.Fprintln(g.stdout, watchEventText(e))
	}
	after := func(m *watch.Machine, _ watch.Verdict, _ error) {
		h.mu.Lock()
		h.drift, h.repairs = m.DriftEvents, maps(m.Repairs)
		h.mu.Unlock()
		if o.textfileDir != "" {
			var b strings.Builder
			if err := metrics.Write(&b, registry); err == nil {
				err = watch.WriteFileAtomic(o.textfileDir, watch.TextfileName, []byte(b.String()))
				if err != nil {
					fmt.Fprintf(g.stderr, "iptscope: %v\n", err)
				}
			}
		}
	}
	cfg := watch.Config{Probe: o.interval, Resync: o.resync, Fix: o.fix, MaxRepairs: o.maxRepairs, RepairWindow: o.repairWindow, Self: os.Getpid()}
	err = watch.Run(ctx, cfg, h, srcs, nil, emit, after)
	// The sources end with ctx; wait for them so that nothing is left
	// running (netlink sockets, the HTTP stream to dockerd).
	stop()
	for range srcs.Changes {
	}
	for range srcs.Docker {
	}
	if err != nil {
		return &exitError{code: exitUnknown, err: err}
	}
	return nil
}

func maps(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// watchSources opens the event sources: the nftables monitor (falling
// back to a poll of iptables-nft when the netlink subscription fails),
// a poll of the legacy dump when legacy iptables holds rules or is what
// `iptables` runs, and Docker's event stream. The channels are merged
// into one Change channel, closed when ctx is done and every source has
// ended.
func watchSources(ctx context.Context, o *watchOptions, log io.Writer) (watch.Sources, error) {
	copts := collect.Options{NetNS: o.netns, DockerHost: o.dockerHost}
	var ins []<-chan watch.Change
	nft, err := collect.WatchNftables(ctx, copts)
	if err != nil {
		if errors.Is(err, collect.ErrNeedsRoot) {
			return watch.Sources{}, err
		}
		fmt.Fprintf(log, "iptscope: warning: %v; polling iptables-nft every %s instead\n", err, o.interval)
		ins = append(ins, collect.PollRules(ctx, copts, "nft", o.interval))
	} else {
		ins = append(ins, nft)
	}
	if legacyInUse(ctx, copts) {
		ins = append(ins, collect.PollRules(ctx, copts, "legacy", o.interval))
	}
	docker, err := collect.DockerEvents(ctx, o.dockerHost)
	if err != nil {
		return watch.Sources{}, err
	}
	return watch.Sources{Changes: merge(ins), Docker: docker}, nil
}

// legacyInUse reports whether legacy iptables has tables with rules, or
// is the backend `iptables` runs: then its dump must be polled.
func legacyInUse(ctx context.Context, o collect.Options) bool {
	var backend string
	var out []byte
	_ = collect.InNetNS(o.NetNS, func() error {
		r := collect.ExecRunner{}
		if b, err := r.Run(ctx, "iptables", []string{"-V"}, nil); err == nil {
			backend = string(b)
		}
		out, _ = r.Run(ctx, collect.SaveCommand(collect.IPv4, "legacy"), nil, nil)
		return nil
	})
	return strings.Contains(backend, "legacy") || strings.Contains(string(out), "\n-A ")
}

// merge fans several Change channels into one, closed when all are.
func merge(ins []<-chan watch.Change) <-chan watch.Change {
	if len(ins) == 1 {
		return ins[0]
	}
	out := make(chan watch.Change)
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Go(func() {
			for c := range in {
				out <- c
			}
		})
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

// watchEventText is an event's text line:
//
//	2026-12-01T03:00:01Z drift: dnat-missing: ip nat DOCKER: 6 rules deleted by pid 4242 (iptables)
func watchEventText(e watch.Event) string {
	var b strings.Builder
	b.WriteString(e.Time.UTC().Format(time.RFC3339) + " " + string(e.Event))
	if len(e.Findings) > 0 {
		b.WriteString(": " + strings.Join(slices.Compact(slices.Clone(e.Findings)), ", "))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// watchHost is watch's view of the live host: Check collects and
// diagnoses it as doctor does, Repair applies doctor --fix's plan for
// what the last check found.
type watchHost struct {
	o     *watchOptions
	ropts diagnose.ReportOptions
	log   io.Writer

	last  *snapshot.Snapshot // of the last check, for Repair (Run's goroutine only)
	state [32]byte           // collect.HostStateHash at the last check or probe
	// chainReads is nil when single chains can be re-read (an
	// iptables-nft of 1.8.5 or later), else why not.
	chainReads error

	mu      sync.Mutex // guards what the metrics read
	rep     *diagnose.Report
	up      bool
	lastRun time.Time
	drift   int
	repairs map[string]int
	checks  map[string]int // by what was read: "chains" or "full"
}

func (h *watchHost) Check(ctx context.Context, scope watch.Scope) (watch.Verdict, error) {
	began := time.Now()
	snap, how, chains := h.read(ctx, scope)
	read := time.Since(began)
	var err error
	if _, e4 := snap.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); e4 != nil && (snap.Docker == nil || snap.Docker.Error != "") {
		err = fmt.Errorf("nothing to inspect: %w", e4)
	}
	var rep *diagnose.Report
	var v watch.Verdict
	if err == nil {
		rep = diagnose.NewReport(snap, h.ropts)
		for _, f := range rep.Findings {
			if f.Severity.Rank() >= h.ropts.FailOn.Rank() {
				v.Keys = append(v.Keys, f.Key)
				v.IDs = append(v.IDs, f.ID)
			}
		}
		if len(v.Keys) > 0 && h.o.fix {
			v.Repairable = !diagnose.NewPlan(snap, rep.Findings).Empty()
		}
		h.last = snap
	}
	if h.o.verbose {
		fmt.Fprintf(h.log, "iptscope: check: %s in %s, diagnosed in %s\n", how, read.Round(time.Millisecond), (time.Since(began) - read).Round(time.Millisecond))
	}
	h.mu.Lock()
	h.up, h.lastRun = err == nil, time.Now()
	if h.checks == nil {
		h.checks = map[string]int{}
	}
	if chains {
		h.checks["chains"]++
	} else {
		h.checks["full"]++
	}
	if rep != nil {
		h.rep = rep
	}
	h.mu.Unlock()
	return v, err
}

// read reads the host for a check: only the chains of the scope, spliced
// into the last check's snapshot, when the scope allows it, nothing but
// rules changed since (the host state's hash is the same) and the splice
// can stand in for a full read (collect.SpliceChains); else all of it.
// how says which, for --verbose; chains is true for the former.
func (h *watchHost) read(ctx context.Context, scope watch.Scope) (snap *snapshot.Snapshot, how string, chains bool) {
	copts := collect.Options{NetNS: h.o.netns, DockerHost: h.o.dockerHost}
	sum, sumErr := collect.HostStateHash(ctx, copts)
	why := scope.Why
	switch {
	case scope.Full:
	case h.chainReads != nil:
		why = "no single-chain reads"
	case h.last == nil:
		why = "no earlier read"
	case sumErr != nil || sum != h.state:
		why = "links, addresses, sysctls or docker-proxy changed"
	default:
		ls, err := collect.ReadChains(ctx, copts, scope.Chains)
		if err == nil {
			snap, err = collect.SpliceChains(h.last, ls, time.Now())
		}
		if err == nil {
			names := make([]string, len(scope.Chains))
			for i, c := range scope.Chains {
				names[i] = c.String()
			}
			return snap, fmt.Sprintf("re-read %d chain(s) (%s)", len(names), strings.Join(names, ", ")), true
		}
		why = err.Error()
	}
	if sumErr == nil {
		h.state = sum
	}
	return collectLive(ctx, copts), "read everything (" + why + ")", false
}

// Probe implements watch.Prober: has what has no event stream (links,
// addresses, sysctls, docker-proxy) changed since the last look?
func (h *watchHost) Probe(ctx context.Context) (bool, error) {
	sum, err := collect.HostStateHash(ctx, collect.Options{NetNS: h.o.netns})
	if err != nil {
		return false, err
	}
	changed := sum != h.state
	h.state = sum
	return changed, nil
}

func (h *watchHost) Repair(ctx context.Context) (watch.RepairOutcome, error) {
	h.mu.Lock()
	rep := h.rep
	h.mu.Unlock()
	if h.last == nil || rep == nil {
		return watch.RepairOutcome{}, fmt.Errorf("nothing checked yet")
	}
	plan := diagnose.NewPlan(h.last, rep.Findings)
	var repaired []string
	for _, f := range plan.Repaired() {
		repaired = append(repaired, f.ID)
	}
	// The same churn handling as doctor --fix: the plan's snapshot, and a
	// fresh read of Docker's view with the rules to judge the repair by.
	_, err := repair.Apply(ctx, plan, repair.Options{
		NetNS:     h.o.netns,
		BackupDir: h.o.backupDir,
		Out:       h.log,
		Planned:   h.last,
		Reread: func(ctx context.Context) (*snapshot.Snapshot, []diagnose.Finding, error) {
			s := collect.Collect(ctx, collect.Options{NetNS: h.o.netns, DockerHost: h.o.dockerHost})
			return s, diagnose.NewReport(s, h.ropts).Findings, nil
		},
	})
	return watch.RepairOutcome{Repaired: repaired, Err: err}, nil
}

// metrics is the metrics' view, safe from the HTTP server's goroutines.
func (h *watchHost) metrics() metrics.State {
	h.mu.Lock()
	defer h.mu.Unlock()
	checks := make(map[string]int, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	return metrics.State{Up: h.up, Report: h.rep, LastRun: h.lastRun, Repairs: h.repairs, DriftEvents: h.drift, Checks: checks}
}
