package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/render"
)

type dumpOptions struct {
	input  inputOptions
	chain  string
	output string
}

func newDumpCmd(g *globals) *cobra.Command {
	o := &dumpOptions{}
	cmd := &cobra.Command{
		Use:   "dump",
		Short: "Show the rules, chain by chain, with their counters",
		Long: `Show the rules of the live host (iptables-save -c, as root) or of a dump
given with --from, chain by chain: position, packet and byte counters,
target, what the rule matches and what it does.

--from takes iptables-save / ip6tables-save output (with or without -c) or
the "iptables [-t TABLE] -L -n -v [-x] [--line-numbers]" text people paste
into tickets, several tables concatenated; the format is detected.

Output formats (-o):
  table  one table per chain (boxes and colour on a terminal)
  json   the full rule model (schema iptscope.rules/v1, see docs/json.md)
  save   iptables-save text; an unfiltered save-format input is printed back
         byte for byte, anything else is regenerated from the model`,
		Example: `  sudo iptscope dump -t nat --chain DOCKER
  iptscope dump --from rules.txt -o json | jq '.tables[] | {table, chains: [.chains[].name]}'
  iptables -t nat -L -n -v | iptscope dump --from - -o save`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDump(cmd, g, o)
		},
	}
	o.input.addFlags(cmd)
	cmd.Flags().StringVar(&o.chain, "chain", "", "only this chain")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table, json or save")
	return cmd
}

func runDump(cmd *cobra.Command, g *globals, o *dumpOptions) error {
	switch o.output {
	case "table", "json", "save":
	default:
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown output format %q (use table, json or save)", o.output)}
	}
	rs, err := o.input.load(cmd.Context(), g.stdin)
	if err != nil {
		return err
	}
	tables, err := selectTables(rs, o.input.tables)
	if err != nil {
		return err
	}
	filtered := len(o.input.tables) > 0
	if o.chain != "" {
		filtered = true
		if tables, err = tablesWithChain(tables, parse.ChainName(o.chain)); err != nil {
			return err
		}
	}
	w := g.stdout
	switch o.output {
	case "json":
		if o.chain != "" {
			tables = onlyChain(tables, parse.ChainName(o.chain))
		}
		return render.RulesJSON(w, rs.Format, tables)
	case "save":
		if !filtered && rs.Format == parse.FormatSave {
			return rs.WriteSave(w)
		}
		if o.chain != "" {
			tables = onlyChain(tables, parse.ChainName(o.chain))
		}
		for _, t := range tables {
			if err := t.WriteSave(w, true); err != nil {
				return err
			}
		}
		return nil
	}
	return render.RulesTable(w, tables, parse.ChainName(o.chain), g.renderOptions())
}

// tablesWithChain keeps the tables that have the named chain. None having
// it is an error naming the chains there are.
func tablesWithChain(tables []*parse.Table, name parse.ChainName) ([]*parse.Table, error) {
	var out []*parse.Table
	for _, t := range tables {
		if t.Chain(name) != nil {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		var have []string
		for _, t := range tables {
			for _, c := range t.Chains {
				have = append(have, string(t.Name)+"/"+string(c.Name))
			}
		}
		return nil, &exitError{code: exitUnknown, err: fmt.Errorf("no chain %q in the selected tables (there are: %s)", name, strings.Join(have, ", "))}
	}
	return out, nil
}

// onlyChain returns copies of the tables holding only the named chain.
func onlyChain(tables []*parse.Table, name parse.ChainName) []*parse.Table {
	var out []*parse.Table
	for _, t := range tables {
		cp := *t
		cp.Chains = []*parse.Chain{t.Chain(name)}
		out = append(out, &cp)
	}
	return out
}
