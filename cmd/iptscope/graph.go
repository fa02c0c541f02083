package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/render"
)

type graphOptions struct {
	input  inputOptions
	format string
}

func newGraphCmd(g *globals) *cobra.Command {
	o := &graphOptions{}
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Show how the chains connect: the tree a packet follows from each built-in chain",
		Long: `Show the chain graph of the live host (iptables-save -c, as root) or of a
dump given with --from: nodes are chains, edges are the rules that jump (-j)
or go (-g) to a user chain.

Formats (--format or -o):
  tree     from each built-in chain, every rule in order, with the chains it
           jumps to expanded under it and packet counters:
             nat PREROUTING -> DOCKER -> DNAT tcp dpt:8080 -> 172.17.0.2:80
  dot      Graphviz (pipe to "dot -Tsvg")
  mermaid  a Mermaid flowchart (paste into Markdown)
  json     chains, edges, reference counts, the order a packet visits the
           user chains from each built-in chain, chains nothing reaches,
           jumps to missing chains and loops (schema iptscope.graph/v1,
           see docs/json.md)

The tree also lists chains nothing jumps to: on a Docker host an
unreachable DOCKER chain means its jump from PREROUTING or FORWARD is gone.

Native nftables tables (-t NAME with a name iptables does not know, such as
docker-bridges; see iptscope dump): tree and dot follow jumps, gotos and
every element of the verdict maps a rule looks up, from each base chain in
hook and priority order.`,
		Example: `  sudo iptscope graph -t nat
  iptscope graph --from rules.txt -o dot | dot -Tsvg > chains.svg
  iptscope graph --from rules.txt --format json | jq '.tables[] | {table, unreachable, dangling}'
  iptscope graph --from bundle.json -t docker-bridges`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGraph(cmd, g, o)
		},
	}
	o.input.addFlags(cmd)
	cmd.Flags().StringVarP(&o.format, "format", "o", "tree", "output format: tree, dot, mermaid or json")
	// --output, as dump calls it: the same flag under dump's name.
	cmd.Flags().StringVar(&o.format, "output", "tree", "same as --format")
	_ = cmd.Flags().MarkHidden("output")
	return cmd
}

func runGraph(cmd *cobra.Command, g *globals, o *graphOptions) error {
	switch o.format {
	case "tree", "dot", "mermaid", "json":
	default:
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown graph format %q (use tree, dot, mermaid or json)", o.format)}
	}
	if in, ok, err := o.input.loadNft(cmd.Context(), g.stdin); ok || err != nil {
		if err != nil {
			return err
		}
		switch o.format {
		case "dot":
			return render.NftDOT(g.stdout, in.tables)
		case "tree":
			return render.NftTree(g.stdout, in.tables, g.renderOptions())
		}
		return &exitError{code: exitUnknown, err: fmt.Errorf("graph format %q is not available for nftables tables yet (use tree or dot)", o.format)}
	}
	rs, err := o.input.load(cmd.Context(), g.stdin)
	if err != nil {
		return err
	}
	tables, err := selectTables(rs, o.input.tables)
	if err != nil {
		return err
	}
	switch o.format {
	case "dot":
		return render.DOT(g.stdout, tables)
	case "mermaid":
		return render.Mermaid(g.stdout, tables)
	case "json":
		return render.GraphJSON(g.stdout, tables)
	}
	return render.Tree(g.stdout, tables, g.renderOptions())
}
