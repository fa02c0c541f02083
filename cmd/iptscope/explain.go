package main

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/docs"
	"github.com/iptscope/iptscope/render"
)

func newExplainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain ID",
		Short: "Print a check's page: what it means, how to confirm it, the repair",
		Long: `Print the page of the check with this ID (docs/checks/ID.md, built into
the binary): what the finding means for traffic, how to confirm it by hand,
how to repair it and which Docker versions it applies to.

The ID is a finding's "id" in doctor's output; "iptscope checks" lists them
all. An unknown ID exits 2 with the list of IDs.`,
		Example: `  iptscope explain dnat-missing
  iptscope doctor --from host.json -o json | jq -r '.findings[].id' | sort -u | xargs -n1 iptscope explain`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeCheckIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExplain(g, args[0])
		},
	}
	return cmd
}

func runExplain(g *globals, id string) error {
	ids := checkIDs()
	if !slices.Contains(ids, id) {
		hint := ""
		if near := nearest(id, ids); near != "" {
			hint = "did you mean " + near + "? "
		}
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown check %q (%schecks: %s)", id, hint, strings.Join(ids, ", "))}
	}
	page, err := fs.ReadFile(docs.Checks, "checks/"+id+".md")
	if err != nil {
		// A check without its page is a bug the tests catch; say so
		// rather than print nothing.
		return &exitError{code: exitUnknown, err: fmt.Errorf("check %q has no page in this build: %w", id, err)}
	}
	// On a terminal the page's long lines wrap to its width; elsewhere
	// it is the file byte for byte.
	w := render.Fit(g.stdout, g.renderOptions().Width)
	if _, err := w.Write(page); err != nil {
		return err
	}
	return w.Close()
}

// completeCheckIDs completes a check ID (explain's argument, --skip),
// with its title; for --skip, not the IDs already skipped.
func completeCheckIDs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if cmd.Name() == "explain" && len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var given []string
	if f := cmd.Flags().Lookup("skip"); f != nil {
		given, _ = cmd.Flags().GetStringArray("skip")
	}
	var out []string
	for _, c := range checkInfos() {
		if strings.HasPrefix(c.ID, toComplete) && !slices.Contains(given, c.ID) {
			out = append(out, c.ID+"\t"+c.Title)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// nearest returns the ID within two edits of s (a typo), or "".
func nearest(s string, ids []string) string {
	best, bestD := "", 3
	for _, id := range ids {
		if d := editDistance(s, id); d < bestD {
			best, bestD = id, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
