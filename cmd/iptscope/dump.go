package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/render"
	"github.com/iptscope/iptscope/snapshot"
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
         byte for byte, anything else is regenerated from the model

Native nftables tables (Docker 29's docker-bridges with its nftables
firewall backend, firewalld's, an admin's inet tables): -t NAME with a name
iptables does not know selects them (with an ip and an ip6 table of that
name, -6 picks ip6), read from the live host with nft -j list ruleset, from
a bundle, or from a file of nft -j list ruleset output (which selects them
without -t). Then table shows each rule with its handle and counters, json
the tables' objects as nft -j gives them, save the nft list table text that
nft -f reads back.`,
		Example: `  sudo iptscope dump -t nat --chain DOCKER
  iptscope dump --from rules.txt -o json | jq '.tables[] | {table, chains: [.chains[].name]}'
  iptables -t nat -L -n -v | iptscope dump --from - -o save
  sudo iptscope dump -t docker-bridges --chain nat-prerouting-and-output`,
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
	if err := checkOutput(o.output, "table", "json", "save"); err != nil {
		return err
	}
	if in, ok, err := o.input.loadNft(cmd.Context(), g.stdin); ok || err != nil {
		if err != nil {
			return err
		}
		return runDumpNft(g, o, in)
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

// nftInput is what -t NAME selects when NAME is no iptables table: native
// nftables tables (Docker 29's docker-bridges, firewalld, an admin's inet
// tables), read from the live host (`nft -j list ruleset`), from a bundle's
// nftables part, or from a file of `nft -j list ruleset` output.
type nftInput struct {
	rs     *nft.Ruleset
	tables []*nft.Table
}

// isNftJSON reports whether data is `nft -j list ruleset` output (not a
// bundle: no "schema").
func isNftJSON(data []byte) bool {
	head := data
	if len(head) > 200 {
		head = head[:200]
	}
	return isBundle(data) && bytes.Contains(head, []byte(`"nftables"`)) && !bytes.Contains(head, []byte(`"schema"`))
}

// loadNft returns the native tables the options select, and false when
// they select iptables tables (the caller then reads those as before).
// -t names a table by its name ("docker-bridges", "myfw"); with both an ip
// and an ip6 table of that name, -6 picks ip6, else ip.
func (o *inputOptions) loadNft(ctx context.Context, stdin io.Reader) (*nftInput, bool, error) {
	var names []string
	known := 0
	for _, n := range o.tables {
		if parse.TableName(n).IsKnown() {
			known++
		} else {
			names = append(names, n)
		}
	}
	var data []byte
	source := "nft -j list ruleset"
	switch {
	case len(names) > 0 && known > 0:
		return nil, true, &exitError{code: exitUnknown, err: fmt.Errorf("-t names iptables tables and nftables tables (%s) at once: ask for one kind at a time", strings.Join(names, ", "))}
	case len(names) == 0 && o.from != "" && o.from != "-":
		// An nft -j file selects nftables without -t.
		b, err := os.ReadFile(o.from)
		if err != nil || !isNftJSON(b) {
			return nil, false, nil
		}
		data, source = b, o.from
	case len(names) == 0:
		return nil, false, nil
	}
	var rs *nft.Ruleset
	switch {
	case data != nil:
	case o.from == "":
		part := collect.CollectNftables(ctx, collect.ExecRunner{}, nil, "")
		switch {
		case part.NotInstalled:
			return nil, true, &exitError{code: exitUnknown, err: errors.New("reading nftables tables: nft is not installed")}
		case part.Error != "":
			return nil, true, &exitError{code: exitUnknown, err: errors.New(part.Error)}
		}
		rs = part.Ruleset
	default:
		b, src, err := readFrom(o.from, stdin)
		if err != nil {
			return nil, true, &exitError{code: exitUnknown, err: err}
		}
		data, source = b, src
		if !isBundle(b) {
			return nil, true, &exitError{code: exitUnknown, err: fmt.Errorf("unknown table %q (iptables has raw, mangle, nat, filter, security; %s is an iptables dump, which holds no nftables table)", names[0], src)}
		}
		if !isNftJSON(b) {
			snap, err := snapshot.Load(b)
			if err != nil {
				return nil, true, &exitError{code: exitUnknown, err: fmt.Errorf("reading %s: %w", src, err)}
			}
			if !snap.NftRead() {
				return nil, true, &exitError{code: exitUnknown, err: fmt.Errorf("%s holds no nftables ruleset (collected by an iptscope that did not read nftables, or nft was missing)", src)}
			}
			rs, data = snap.Nftables.Ruleset, nil
		}
	}
	if data != nil {
		var err error
		if rs, err = nft.Parse(data); err != nil {
			return nil, true, &exitError{code: exitUnknown, err: fmt.Errorf("parsing %s: %w", source, err)}
		}
	}
	in := &nftInput{rs: rs}
	if len(names) == 0 {
		in.tables = rs.Tables
		return in, true, nil
	}
	var have []string
	for _, t := range rs.Tables {
		have = append(have, string(t.Family)+" "+t.Name)
	}
	for _, n := range names {
		var pick []*nft.Table
		for _, t := range rs.Tables {
			if t.Name != n {
				continue
			}
			switch t.Family {
			case nft.FamilyIP:
				if !o.ipv6 {
					pick = append(pick, t)
				}
			case nft.FamilyIP6:
				if o.ipv6 {
					pick = append(pick, t)
				}
			default:
				pick = append(pick, t)
			}
		}
		if len(pick) == 0 {
			return nil, true, &exitError{code: exitUnknown, err: fmt.Errorf("no table %q (iptables has raw, mangle, nat, filter, security; the nftables ruleset has: %s)", n, strings.Join(have, ", "))}
		}
		in.tables = append(in.tables, pick...)
	}
	return in, true, nil
}

// runDumpNft is dump for native nftables tables: table (rules with handle
// and counters), json (the tables' objects of nft -j) or save (`nft list
// table` text, which `nft -f` reads back).
func runDumpNft(g *globals, o *dumpOptions, in *nftInput) error {
	tables := in.tables
	if o.chain != "" {
		var keep []*nft.Table
		for _, t := range tables {
			if t.Chain(o.chain) != nil {
				keep = append(keep, t)
			}
		}
		if len(keep) == 0 {
			return &exitError{code: exitUnknown, err: fmt.Errorf("no chain %q in the selected nftables tables", o.chain)}
		}
		tables = keep
	}
	switch o.output {
	case "json":
		return render.NftJSON(g.stdout, in.rs, tables)
	case "save":
		for _, t := range tables {
			if err := t.WriteText(g.stdout); err != nil {
				return err
			}
		}
		return nil
	}
	return render.NftRulesTable(g.stdout, tables, o.chain, g.renderOptions())
}
