package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// inputOptions are the flags that choose which rules a command reads.
type inputOptions struct {
	from    string   // file, "-" for stdin, "" for the live host
	ipv6    bool     // read the IPv6 rules
	backend string   // bundle: which backend's rules (auto, nft, legacy)
	tables  []string // -t filter; empty means all
}

func (o *inputOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.from, "from", "", "read rules from a `FILE` instead of the live host: a bundle from 'iptscope collect', iptables-save output or 'iptables -L -n -v' text (- for stdin)")
	cmd.Flags().BoolVarP(&o.ipv6, "ipv6", "6", false, "the IPv6 rules (ip6tables-save)")
	cmd.Flags().StringVar(&o.backend, "backend", "auto", "bundle: the rules of this iptables backend: auto (the one holding Docker's chains, else the one iptables uses), nft or legacy")
	cmd.Flags().StringSliceVarP(&o.tables, "table", "t", nil, "only these tables (raw, mangle, nat, filter, security; repeat or comma-separate)")
}

// load reads and parses the rules the options select.
func (o *inputOptions) load(ctx context.Context, stdin io.Reader) (*parse.Ruleset, error) {
	var data []byte
	var err error
	source := o.from
	switch o.from {
	case "":
		fam := collect.IPv4
		if o.ipv6 {
			fam = collect.IPv6
		}
		source = collect.SaveCommand(fam, "") + " -c"
		data, err = collect.SaveRules(ctx, collect.ExecRunner{}, fam, "")
	default:
		in, err := readInput(o.from, stdin)
		if err != nil {
			return nil, err
		}
		if in.snap != nil {
			return o.fromBundle(in.source, in.snap)
		}
		if o.backend != "auto" {
			return nil, &exitError{code: exitUnknown, err: fmt.Errorf("--backend applies to a bundle from iptscope collect; %s is a plain dump", in.source)}
		}
		if fam := snapshot.DumpFamily(in.rs); o.ipv6 && fam != snapshot.FamilyIPv6 {
			return nil, &exitError{code: exitUnknown, err: fmt.Errorf("-6 asks for IPv6 rules, but %s is an IPv4 dump (its addresses are IPv4): drop -6, or pass ip6tables-save output", in.source)}
		}
		return in.rs, nil
	}
	if err != nil {
		return nil, &exitError{code: exitUnknown, err: err}
	}
	rs, err := parse.Parse(data)
	if err != nil {
		return nil, &exitError{code: exitUnknown, err: fmt.Errorf("parsing %s: %w", source, err)}
	}
	return rs, nil
}

// input is what --from holds: a bundle from `iptscope collect`, or a raw
// dump (iptables-save or -L text) with the bytes it was parsed from.
type input struct {
	source string // the name for messages: the file, or "standard input"
	snap   *snapshot.Snapshot
	// text is a dump's text; its rules are substrings of it.
	text string
	rs   *parse.Ruleset
}

// readInput reads and parses --from (a file, or standard input for "-"):
// the one loader of every command's --from. Errors are exitErrors that
// name the source (and, for a dump, the line).
func readInput(from string, stdin io.Reader) (*input, error) {
	data, source, err := readFrom(from, stdin)
	if err != nil {
		return nil, &exitError{code: exitUnknown, err: err}
	}
	in := &input{source: source}
	if isBundle(data) {
		if in.snap, err = snapshot.Load(data); err != nil {
			return nil, &exitError{code: exitUnknown, err: fmt.Errorf("reading %s: %w", source, err)}
		}
		return in, nil
	}
	in.text = string(data)
	if in.rs, err = parse.ParseString(in.text); err != nil {
		return nil, &exitError{code: exitUnknown, err: fmt.Errorf("parsing %s: %w", source, err)}
	}
	return in, nil
}

// readFrom reads --from: a file, or standard input for "-". It returns the
// name to use in messages.
func readFrom(from string, stdin io.Reader) ([]byte, string, error) {
	if from == "-" {
		data, err := io.ReadAll(stdin)
		return data, "standard input", err
	}
	data, err := os.ReadFile(from)
	return data, from, err
}

// isBundle reports whether data is a JSON document (a snapshot bundle)
// rather than iptables text, which never starts with "{".
func isBundle(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// fromBundle picks the rules of the requested family and backend from a
// snapshot bundle.
func (o *inputOptions) fromBundle(source string, snap *snapshot.Snapshot) (*parse.Ruleset, error) {
	switch o.backend {
	case "auto", "nft", "legacy":
	default:
		return nil, &exitError{code: exitUnknown, err: fmt.Errorf("unknown backend %q (use auto, nft or legacy)", o.backend)}
	}
	family := snapshot.FamilyIPv4
	if o.ipv6 {
		family = snapshot.FamilyIPv6
	}
	d, err := snap.PickDump(o.backend, family)
	if err != nil {
		return nil, &exitError{code: exitUnknown, err: fmt.Errorf("reading %s: %w", source, err)}
	}
	return d.Ruleset, nil
}

// selectTables returns the tables the -t flag names, in input order, or
// all of them. A table name iptables does not know, or one the input
// does not have, is an error that lists what there is.
func selectTables(rs *parse.Ruleset, names []string) ([]*parse.Table, error) {
	if len(names) == 0 {
		return rs.Tables, nil
	}
	var have []string
	for _, t := range rs.Tables {
		have = append(have, string(t.Name))
	}
	var out []*parse.Table
	for _, t := range rs.Tables {
		if slices.Contains(names, string(t.Name)) {
			out = append(out, t)
		}
	}
	for _, n := range names {
		if !parse.TableName(n).IsKnown() {
			return nil, &exitError{code: exitUnknown, err: fmt.Errorf("unknown table %q (iptables has raw, mangle, nat, filter, security)", n)}
		}
		if !slices.Contains(have, n) {
			return nil, &exitError{code: exitUnknown, err: fmt.Errorf("table %q is not in the input (it has: %s)", n, strings.Join(have, ", "))}
		}
	}
	return out, nil
}

// checkOutput refuses an -o value that is not one of allowed, with the
// list in the message ("use table, json or save"): exit 2.
func checkOutput(got string, allowed ...string) error {
	if slices.Contains(allowed, got) {
		return nil
	}
	list := allowed[len(allowed)-1]
	if len(allowed) > 1 {
		list = strings.Join(allowed[:len(allowed)-1], ", ") + " or " + list
	}
	return &exitError{code: exitUnknown, err: fmt.Errorf("unknown output format %q (use %s)", got, list)}
}
