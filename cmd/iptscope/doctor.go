package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/render"
	"github.com/iptscope/iptscope/snapshot"
)

type doctorOptions struct {
	from       string
	netns      string
	dockerHost string
	skip       []string
	failOn     string
	output     string
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

Input: the live host (as root; another network namespace with --netns), a
bundle from "iptscope collect" (--from host.json), or a raw iptables-save /
iptables -L dump (--from rules.txt). A raw dump has no Docker view: only
rule-based checks run and the status is "unknown" unless problems are found.

Exit codes (node-problem-detector's plugin protocol, docs/exit-codes.md):
  0  no finding at or above --fail-on
  1  at least one finding at or above --fail-on
  2  could not check: bad input, no privileges, nothing to inspect, or a
     partial check (no Docker view) that found nothing at or above --fail-on`,
		Example: `  sudo iptscope doctor
  sudo iptscope doctor --netns /proc/$(pidof dockerd)/ns/net -o json
  iptscope doctor --from host.json --skip proxy-overhead --fail-on error
  iptscope doctor --from fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd, g, o)
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "read FILE instead of the live host: a bundle from `iptscope collect`, or iptables-save / iptables -L text (- for stdin)")
	cmd.Flags().StringVar(&o.netns, "netns", "", "live: inspect this network namespace (NAME under /var/run/netns, or a path)")
	cmd.Flags().StringVar(&o.dockerHost, "docker-host", "", "live: Docker Engine API endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	cmd.Flags().StringArrayVar(&o.skip, "skip", nil, "do not run the check with this ID (repeatable)")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "warning", "exit 1 on a finding of this severity or worse: error, warning or info")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runDoctor(cmd *cobra.Command, g *globals, o *doctorOptions) error {
	switch o.output {
	case "table", "json":
	default:
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown output format %q (use table or json)", o.output)}
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
	if o.from != "" && (o.netns != "" || o.dockerHost != "") {
		return &exitError{code: exitUnknown, err: fmt.Errorf("--netns and --docker-host read the live host; they do not apply with --from")}
	}

	snap, ropts, err := doctorInput(cmd, g, o)
	if err != nil {
		return err
	}
	if _, err := snap.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4); err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("nothing to inspect: %w", err)}
	}
	ropts.Skip, ropts.FailOn = o.skip, failOn
	rep := diagnose.NewReport(snap, ropts)

	if o.output == "json" {
		err = render.DoctorJSON(g.stdout, rep)
	} else {
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

// doctorInput returns the snapshot to diagnose: collected live, loaded
// from a bundle, or built from a raw dump (rules only, Docker unknown).
func doctorInput(cmd *cobra.Command, g *globals, o *doctorOptions) (*snapshot.Snapshot, diagnose.ReportOptions, error) {
	if o.from == "" {
		opts := collect.Options{NetNS: o.netns, DockerHost: o.dockerHost}
		if isTerminal(g.stderr) {
			opts.Progress = func(step string) { fmt.Fprintf(g.stderr, "\r\033[Kcollecting: %s", step) }
		}
		snap := collect.Collect(cmd.Context(), opts)
		if opts.Progress != nil {
			fmt.Fprint(g.stderr, "\r\033[K")
		}
		for _, e := range snap.Errors {
			fmt.Fprintf(g.stderr, "iptscope: warning: %s: %s\n", e.Part, e.Error)
		}
		return snap, diagnose.ReportOptions{Source: "live"}, nil
	}
	data, source, err := readFrom(o.from, g.stdin)
	if err != nil {
		return nil, diagnose.ReportOptions{}, &exitError{code: exitUnknown, err: err}
	}
	if isBundle(data) {
		snap, err := snapshot.Load(data)
		if err != nil {
			return nil, diagnose.ReportOptions{}, &exitError{code: exitUnknown, err: fmt.Errorf("reading %s: %w", source, err)}
		}
		return snap, diagnose.ReportOptions{Source: source}, nil
	}
	rs, err := parse.Parse(data)
	if err != nil {
		return nil, diagnose.ReportOptions{}, &exitError{code: exitUnknown, err: fmt.Errorf("parsing %s: %w", source, err)}
	}
	// Why: a raw dump says nothing about Docker; an empty Docker section
	// with an error makes every Docker-based check stay silent and
	// docker-unreachable say so (NewReport turns it into an info).
	snap := &snapshot.Snapshot{
		Schema: snapshot.Schema,
		Rules:  []snapshot.RuleDump{{Family: snapshot.FamilyIPv4, Raw: string(data), Ruleset: rs}},
		Docker: &snapshot.Docker{Error: "not in the input: " + source + " is a raw iptables dump"},
	}
	return snap, diagnose.ReportOptions{Source: source, RulesOnly: true}, nil
}
