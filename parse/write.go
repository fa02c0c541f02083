package parse

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// WriteSave writes the ruleset as iptables-save text.
//
// A table parsed from save format is written back from its stored lines:
// the output is the input byte for byte, comments, blank lines, trailing
// Trailer lines and a missing final newline included. It reflects the
// input, not later edits to the model; use Table.WriteSave to print the
// model itself.
//
// A table without stored lines (list format, or built in code) is
// generated from the model as iptables-save -c would print it: "*name",
// one ":CHAIN POLICY [packets:bytes]" line per chain ("-" as the policy
// of user chains), one Rule.SaveLine(true) per rule, "COMMIT". Counters
// the input rounded (iptables -L -v without -x) are not printed as exact:
// see Table.WriteSave. Trailer is
// only written for save format.
//
// WriteSave returns the first error of w. A nil ruleset writes nothing.
func (rs *Ruleset) WriteSave(w io.Writer) error {
	if rs == nil {
		return nil
	}
	sw := newSaveWriter(w)
	for _, t := range rs.Tables {
		if len(t.lines) > 0 {
			for i := range t.lines {
				sw.str(t.lines[i].raw)
			}
			continue
		}
		sw.table(t, true, nil)
	}
	if rs.Format == FormatSave {
		// Trailer lines keep their own line endings (see ParseSave).
		for _, l := range rs.Trailer {
			sw.str(l)
		}
	}
	return sw.flush()
}

// WriteSave writes the table generated from the model, as a complete
// iptables-restore input: "*name", the chain declarations, the rules of
// every chain in order (with "[packets:bytes] " prefixes when withCounters
// is set and a rule has exact counters), "COMMIT". When withCounters is set
// and some counters are approximate (rounded by iptables -L -v without -x:
// 12K), those rules get no prefix, those chains [0:0], and a comment after
// "*name" says that counters were left out. It never uses the stored input
// lines, so edits to the model show. A nil table writes nothing.
func (t *Table) WriteSave(w io.Writer, withCounters bool) error {
	return t.WriteSaveChains(w, withCounters)
}

// WriteSaveChains is WriteSave limited to the named chains, written in the
// table's chain order: a restore input holding only those chains (what
// `iptscope dump -o save -t nat --chain DOCKER` prints). With no names it
// writes all chains. A name the table lacks is an error, and then nothing
// is written.
func (t *Table) WriteSaveChains(w io.Writer, withCounters bool, names ...ChainName) error {
	if t == nil {
		return nil
	}
	var only map[ChainName]bool
	if len(names) > 0 {
		only = make(map[ChainName]bool, len(names))
		for _, n := range names {
			if t.Chain(n) == nil {
				return fmt.Errorf("table %s has no chain %q", t.Name, n)
			}
			only[n] = true
		}
	}
	sw := newSaveWriter(w)
	sw.table(t, withCounters, only)
	return sw.flush()
}

// WriteSave writes the chain's declaration line (see SaveDecl) followed by
// its rules as "-A" lines, without table header or COMMIT. A nil chain
// writes nothing.
func (c *Chain) WriteSave(w io.Writer, withCounters bool) error {
	if c == nil {
		return nil
	}
	sw := newSaveWriter(w)
	sw.line(c.SaveDecl())
	for _, r := range c.Rules {
		sw.line(r.SaveLine(withCounters))
	}
	return sw.flush()
}

// SaveDecl renders the chain's declaration as iptables-save prints it:
// ":NAME POLICY [packets:bytes]", with "-" as the policy of a chain without
// one and [0:0] when it has no counters or only approximate ones (rounded
// by iptables -L: the declaration needs numbers, and exact-looking ones
// would be invented).
func (c *Chain) SaveDecl() string {
	policy := string(c.Policy)
	if policy == "" {
		policy = "-"
	}
	var p, b uint64
	if c.Counters != nil && !c.Counters.Approximate {
		p, b = c.Counters.Packets, c.Counters.Bytes
	}
	return ":" + string(c.Name) + " " + policy + " [" + strconv.FormatUint(p, 10) + ":" + strconv.FormatUint(b, 10) + "]"
}

// saveWriter buffers output, keeps the first write error and remembers
// whether the output so far ends a line.
type saveWriter struct {
	bw      *bufio.Writer
	midLine bool // output so far does not end with "\n"
}

func newSaveWriter(w io.Writer) *saveWriter {
	return &saveWriter{bw: bufio.NewWriterSize(w, 64<<10)}
}

// str writes s as is (a stored line with its own ending, if any).
func (sw *saveWriter) str(s string) {
	if s == "" {
		return
	}
	sw.bw.WriteString(s) // bufio keeps the first error; flush reports it
	sw.midLine = s[len(s)-1] != '\n'
}

// line writes s and a newline, first ending a line left open by str (a
// stored input without final newline followed by generated text).
func (sw *saveWriter) line(s string) {
	if sw.midLine {
		sw.bw.WriteByte('\n')
	}
	sw.bw.WriteString(s)
	sw.bw.WriteByte('\n')
	sw.midLine = false
}

// table generates t from the model; only, when non-nil, limits the chains.
func (sw *saveWriter) table(t *Table, withCounters bool, only map[ChainName]bool) {
	sw.line("*" + string(t.Name))
	if withCounters && hasApproximate(t, only) {
		sw.line(approximateNote)
	}
	for _, c := range t.Chains {
		if only == nil || only[c.Name] {
			sw.line(c.SaveDecl())
		}
	}
	for _, c := range t.Chains {
		if only == nil || only[c.Name] {
			for _, r := range c.Rules {
				sw.line(r.SaveLine(withCounters))
			}
		}
	}
	sw.line("COMMIT")
}

func (sw *saveWriter) flush() error {
	if err := sw.bw.Flush(); err != nil {
		return fmt.Errorf("writing iptables-save text: %w", err)
	}
	return nil
}

// approximateNote heads a generated table whose input had rounded
// counters (see SaveDecl and Rule.SaveLine).
const approximateNote = "# iptscope: counters left out: the input rounded them (iptables -L -v without -x)"

// hasApproximate reports whether a chain of t (of only, when not nil) or
// one of its rules has approximate counters.
func hasApproximate(t *Table, only map[ChainName]bool) bool {
	for _, c := range t.Chains {
		if only != nil && !only[c.Name] {
			continue
		}
		if c.Counters != nil && c.Counters.Approximate {
			return true
		}
		for _, r := range c.Rules {
			if r.Counters != nil && r.Counters.Approximate {
				return true
			}
		}
	}
	return false
}
