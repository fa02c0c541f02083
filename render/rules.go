package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/iptscope/iptscope/parse"
)

// RulesSchema is the "schema" value of `iptscope dump -o json`.
const RulesSchema = "iptscope.rules/v1"

// RulesDoc is the JSON document `iptscope dump -o json` prints. Field names
// are stable; see docs/json.md.
type RulesDoc struct {
	Schema string         `json:"schema"`
	Format parse.Format   `json:"format"`
	Tables []*parse.Table `json:"tables"`
}

// RulesJSON writes the tables as one indented JSON document.
func RulesJSON(w io.Writer, format parse.Format, tables []*parse.Table) error {
	if tables == nil {
		tables = []*parse.Table{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(RulesDoc{Schema: RulesSchema, Format: format, Tables: tables})
}

// chainHeading describes a chain the way `iptables -L` heads it.
func chainHeading(t *parse.Table, c *parse.Chain, refs int, o Options, p palette) string {
	s := p.bold(string(t.Name)+" "+string(c.Name)) + " "
	if c.Builtin {
		pol := string(c.Policy)
		if pol == "DROP" {
			pol = p.red(pol)
		}
		s += "(policy " + pol
		if c.Counters != nil {
			s += fmt.Sprintf(" %s packets, %s bytes", count(c.Counters.Packets, o), count(c.Counters.Bytes, o))
		}
		s += ")"
	} else {
		s += fmt.Sprintf("(%d references)", refs)
	}
	return s
}

// colourTarget colours a target by what it does to a packet.
func colourTarget(t parse.Target, s string, p palette) string {
	switch t {
	case parse.TargetDrop, parse.TargetReject:
		return p.red(s)
	case parse.TargetAccept:
		return p.green(s)
	case parse.TargetDNAT, parse.TargetSNAT, parse.TargetMasquerade, parse.TargetRedirect:
		return p.magenta(s)
	case parse.TargetReturn, "":
		return s
	}
	if t.IsVerdictOrExtension() {
		return s
	}
	return p.cyan(s)
}

// RulesTable writes each chain of the given tables as a heading and a
// table of its rules: position, counters, what the rule matches and its
// target. An empty chain prints "(no rules)". When only is not empty, only
// chains of that name are shown (reference counts still come from the
// whole table).
func RulesTable(w io.Writer, tables []*parse.Table, only parse.ChainName, o Options) error {
	if !o.Terminal {
		tw := &trimWriter{w: w}
		defer tw.Flush()
		w = tw
	}
	p := newPalette(o)
	first := true
	for _, t := range tables {
		g := parse.BuildGraph(t)
		for _, c := range t.Chains {
			if only != "" && c.Name != only {
				continue
			}
			if !first {
				if _, err := fmt.Fprintln(w); err != nil {
					return err
				}
			}
			first = false
			refs := g.References(c.Name)
			if c.References >= 0 {
				refs = c.References // what the -L input said
			}
			if _, err := fmt.Fprintln(w, chainHeading(t, c, refs, o, p)); err != nil {
				return err
			}
			if len(c.Rules) == 0 {
				if _, err := fmt.Fprintln(w, p.dim("(no rules)")); err != nil {
					return err
				}
				continue
			}
			tbl := newTable(w, o)
			tbl.Header("#", "PKTS", "BYTES", "MATCH", "TARGET")
			for _, r := range c.Rules {
				pk, by := "-", "-"
				if r.Counters != nil {
					pk, by = count(r.Counters.Packets, o), count(r.Counters.Bytes, o)
					if r.Counters.Approximate {
						pk, by = "~"+pk, "~"+by
					}
				}
				if err := tbl.Append([]string{
					strconv.Itoa(r.Position), pk, by,
					orDash(oneLine(MatchSummary(r))),
					colourTarget(r.Target, orDash(oneLine(TargetSummary(r))), p),
				}); err != nil {
					return err
				}
			}
			if err := tbl.Render(); err != nil {
				return err
			}
		}
	}
	return nil
}

// trimWriter removes trailing spaces from each line written through it
// (plain tables pad their last column), so plain output is stable and
// diff-friendly.
type trimWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (t *trimWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			t.flushLine(true)
			continue
		}
		t.buf = append(t.buf, c)
	}
	return len(p), t.err
}

func (t *trimWriter) flushLine(nl bool) {
	line := t.buf
	for len(line) > 0 && line[len(line)-1] == ' ' {
		line = line[:len(line)-1]
	}
	if nl {
		line = append(line, '\n')
	}
	if t.err == nil && len(line) > 0 {
		_, t.err = t.w.Write(line)
	}
	t.buf = t.buf[:0]
}

// Flush writes a last unterminated line.
func (t *trimWriter) Flush() {
	if len(t.buf) > 0 {
		t.flushLine(false)
	}
}
