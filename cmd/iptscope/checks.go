package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/render"
)

type checksOptions struct {
	output string
}

func newChecksCmd(g *globals) *cobra.Command {
	o := &checksOptions{}
	cmd := &cobra.Command{
		Use:   "checks",
		Short: "List every check doctor runs: ID, severity, whether --fix repairs it",
		Long: `List every check "iptscope doctor" runs, in the order findings are
reported: its stable ID (what --skip takes and what a finding's "id" is), its
usual severity (a finding may be milder, the check's page says when),
whether "doctor --fix" repairs it, and its title.

"iptscope explain ID" prints a check's page (docs/checks/ID.md): what it
means, how to confirm it by hand, the repair and the Docker versions.

-o json prints one document (schema iptscope.checks/v1) with, per check:
id, severity, title, repairable, not_repaired_reason (why --fix leaves it
to a person) and doc (the page's path in the repository).`,
		Example: `  iptscope checks
  iptscope checks -o json | jq -r '.checks[] | select(.repairable) | .id'
  iptscope explain dnat-missing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runChecks(g, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	return cmd
}

// checkInfos describes every check of diagnose.All, in its order.
func checkInfos() []render.CheckInfo {
	var out []render.CheckInfo
	for _, c := range diagnose.All() {
		out = append(out, render.CheckInfo{
			ID:                c.ID,
			Severity:          c.Severity,
			Title:             c.Title,
			Repairable:        c.Repairable(),
			NotRepairedReason: c.NotRepairedReason(),
			Doc:               "docs/checks/" + c.ID + ".md",
		})
	}
	return out
}

// checkIDs returns every check ID in diagnose.All's order.
func checkIDs() []string {
	var ids []string
	for _, c := range diagnose.All() {
		ids = append(ids, c.ID)
	}
	return ids
}

func runChecks(g *globals, o *checksOptions) error {
	var err error
	switch o.output {
	case "table":
		err = render.ChecksTable(g.stdout, checkInfos(), g.renderOptions())
	case "json":
		err = render.ChecksJSON(g.stdout, checkInfos())
	default:
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown output format %q (use table or json)", o.output)}
	}
	if err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("writing the check list: %w", err)}
	}
	return nil
}
