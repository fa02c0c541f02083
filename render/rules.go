package render

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/iptscope/iptscope/internal/buildinfo"
	"github.com/iptscope/iptscope/parse"
)

// RulesSchema is the "schema" value of `iptscope dump -o json`.
const RulesSchema = "iptscope.rules/v1"

// RulesDoc is the JSON document `iptscope dump -o json` prints. Field names
// are stable; see docs/json.md.
type RulesDoc struct {
	Schema string `json:"schema"`
	// ToolVersion is the iptscope build that wrote the document
	// (buildinfo.Version).
	ToolVersion string         `json:"tool_version"`
	Format      parse.Format   `json:"format"`
	Tables      []*parse.Table `json:"tables"`
}

// RulesJSON writes the tables as one indented JSON document: the bytes
// encoding/json's Encoder with SetIndent("", "  ") gives for RulesDoc
// (ToolVersion from buildinfo; a render test holds the two together),
// except that chains and rules are [] rather than null when empty, written
// as it goes instead of
// built in memory first: the document of a host with 100,000 rules is
// over 100 MB, and encoding/json held it twice over (once compact, once
// indented) and spent most of a second indenting it.
func RulesJSON(w io.Writer, format parse.Format, tables []*parse.Table) error {
	j := newJSONWriter(w)
	j.beginObject()
	j.key("schema")
	j.str(RulesSchema)
	j.key("tool_version")
	j.str(buildinfo.Version())
	j.key("format")
	j.str(string(format))
	j.key("tables")
	j.beginArray()
	for _, t := range tables {
		j.elem()
		j.table(t)
	}
	j.endArray()
	j.endObject()
	j.buf = append(j.buf, '\n')
	return j.flush()
}

func (j *jsonWriter) table(t *parse.Table) {
	j.beginObject()
	j.key("table")
	j.str(string(t.Name))
	j.key("chains")
	j.beginArray() // [], never null
	for _, c := range t.Chains {
		j.elem()
		j.chain(c)
	}
	j.endArray()
	j.key("line")
	j.int(int64(t.Line))
	j.endObject()
}

func (j *jsonWriter) chain(c *parse.Chain) {
	j.beginObject()
	j.key("name")
	j.str(string(c.Name))
	j.key("builtin")
	j.bool(c.Builtin)
	if c.Policy != "" {
		j.key("policy")
		j.str(string(c.Policy))
	}
	if c.Counters != nil {
		j.key("counters")
		j.counters(c.Counters)
	}
	j.key("references")
	j.int(int64(c.References))
	j.key("rules")
	j.beginArray() // [], never null
	for _, r := range c.Rules {
		j.elem()
		j.rule(r)
	}
	j.endArray()
	j.key("line")
	j.int(int64(c.Line))
	j.endObject()
}

func (j *jsonWriter) counters(c *parse.Counters) {
	j.beginObject()
	j.key("packets")
	j.uint(c.Packets)
	j.key("bytes")
	j.uint(c.Bytes)
	if c.Approximate {
		j.key("approximate")
		j.bool(true)
	}
	j.endObject()
}

// negatable writes a rule field, nothing when it is absent (omitzero).
func (j *jsonWriter) negatable(key string, n parse.Negatable) {
	if n.IsZero() {
		return
	}
	j.key(key)
	j.beginObject()
	if n.Value != "" {
		j.key("value")
		j.str(n.Value)
	}
	if n.Negated {
		j.key("negated")
		j.bool(true)
	}
	j.endObject()
}

func (j *jsonWriter) options(key string, os []parse.Option) {
	if len(os) == 0 {
		return
	}
	j.key(key)
	j.beginArray()
	for i := range os {
		o := &os[i]
		j.elem()
		j.beginObject()
		j.key("name")
		j.str(o.Name)
		if o.Negated {
			j.key("negated")
			j.bool(true)
		}
		j.strings("values", o.Values)
		j.endObject()
	}
	j.endArray()
}

// strings writes a string array under key, nothing when it is empty.
func (j *jsonWriter) strings(key string, ss []string) {
	if len(ss) == 0 {
		return
	}
	j.key(key)
	j.beginArray()
	for _, v := range ss {
		j.elem()
		j.str(v)
	}
	j.endArray()
}

func (j *jsonWriter) rule(r *parse.Rule) {
	j.beginObject()
	j.key("table")
	j.str(string(r.Table))
	j.key("chain")
	j.str(string(r.Chain))
	j.key("position")
	j.int(int64(r.Position))
	if r.Counters != nil {
		j.key("counters")
		j.counters(r.Counters)
	}
	j.negatable("protocol", r.Protocol)
	j.negatable("source", r.Source)
	j.negatable("destination", r.Destination)
	j.negatable("in_interface", r.InIface)
	j.negatable("out_interface", r.OutIface)
	j.negatable("fragment", r.Fragment)
	if len(r.Matches) > 0 {
		j.key("matches")
		j.beginArray()
		for i := range r.Matches {
			m := &r.Matches[i]
			j.elem()
			j.beginObject()
			j.key("name")
			j.str(m.Name)
			j.options("options", m.Options)
			if m.Implicit {
				j.key("implicit")
				j.bool(true)
			}
			j.endObject()
		}
		j.endArray()
	}
	if r.Target != "" {
		j.key("target")
		j.str(string(r.Target))
	}
	if r.Goto {
		j.key("goto")
		j.bool(true)
	}
	j.options("target_options", r.TargetOptions)
	j.strings("unparsed", r.Unparsed)
	j.key("raw")
	j.str(r.Raw)
	j.key("line")
	j.int(int64(r.Line))
	j.endObject()
}

// jsonWriter writes indented JSON as encoding/json's Encoder with
// SetIndent("", "  ") lays it out (strings escaped by encoding/json
// itself unless they are plain ASCII), appending to a buffer it hands to
// the writer every few kilobytes.
type jsonWriter struct {
	w   io.Writer
	buf []byte
	err error
	// open holds, per open object or array, whether it has members yet.
	open []bool
}

func newJSONWriter(w io.Writer) *jsonWriter {
	return &jsonWriter{w: w, buf: make([]byte, 0, 64<<10)}
}

// jsonIndent is the indentation of the deepest lines written.
const jsonIndent = "                                                                "

func (j *jsonWriter) newline() {
	if len(j.buf) > 60<<10 {
		j.flush()
	}
	j.buf = append(j.buf, '\n')
	n := 2 * len(j.open)
	for n > len(jsonIndent) {
		j.buf = append(j.buf, jsonIndent...)
		n -= len(jsonIndent)
	}
	j.buf = append(j.buf, jsonIndent[:n]...)
}

func (j *jsonWriter) begin(c byte) {
	j.buf = append(j.buf, c)
	j.open = append(j.open, false)
}

func (j *jsonWriter) end(c byte) {
	members := j.open[len(j.open)-1]
	j.open = j.open[:len(j.open)-1]
	if members {
		j.newline()
	}
	j.buf = append(j.buf, c)
}

func (j *jsonWriter) beginObject() { j.begin('{') }
func (j *jsonWriter) endObject()   { j.end('}') }
func (j *jsonWriter) beginArray()  { j.begin('[') }
func (j *jsonWriter) endArray()    { j.end(']') }

// elem starts an array element.
func (j *jsonWriter) elem() {
	if j.open[len(j.open)-1] {
		j.buf = append(j.buf, ',')
	}
	j.open[len(j.open)-1] = true
	j.newline()
}

// key starts an object member; k must be plain ASCII.
func (j *jsonWriter) key(k string) {
	j.elem()
	j.buf = append(j.buf, '"')
	j.buf = append(j.buf, k...)
	j.buf = append(j.buf, `": `...)
}

func (j *jsonWriter) null() { j.buf = append(j.buf, "null"...) }

func (j *jsonWriter) bool(v bool) { j.buf = strconv.AppendBool(j.buf, v) }

func (j *jsonWriter) int(v int64) { j.buf = strconv.AppendInt(j.buf, v, 10) }

func (j *jsonWriter) uint(v uint64) { j.buf = strconv.AppendUint(j.buf, v, 10) }

// str writes s as a JSON string. Printable ASCII without quotes,
// backslashes or the HTML characters encoding/json escapes (<, >, &) is
// written as is; anything else is escaped by encoding/json.
func (j *jsonWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			j.buf = append(j.buf, b...)
			return
		}
	}
	j.buf = append(j.buf, '"')
	j.buf = append(j.buf, s...)
	j.buf = append(j.buf, '"')
}

// flush hands the buffer to the writer and returns the first write error.
func (j *jsonWriter) flush() error {
	if j.err == nil && len(j.buf) > 0 {
		_, j.err = j.w.Write(j.buf)
	}
	j.buf = j.buf[:0]
	return j.err
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
//
// On a terminal the tables have boxes, otherwise plain columns; both are
// the bytes tablewriter gave for them (render tests hold ruleTable to
// tablewriter), written by ruleTable a chain at a time: tablewriter took
// seconds and gigabytes on a host with 100,000 rules.
func RulesTable(w io.Writer, tables []*parse.Table, only parse.ChainName, o Options) error {
	tables = sanitized(tables) // chain names and comments from the input (sanitize.go)
	bw := bufio.NewWriterSize(w, 64<<10)
	p := newPalette(o)
	rt := ruleTable{o: o, p: p}
	first := true
	for _, t := range tables {
		g := parse.BuildGraph(t)
		for _, c := range t.Chains {
			if only != "" && c.Name != only {
				continue
			}
			if !first {
				bw.WriteByte('\n')
			}
			first = false
			rt.line(bw, []byte(chainHeading(t, c, chainRefs(g, c), o, p)))
			if len(c.Rules) == 0 {
				rt.line(bw, []byte(p.dim("(no rules)")))
				continue
			}
			rt.reset()
			rt.grow(len(c.Rules) + 1)
			for _, h := range rulesColumns {
				rt.buf = append(rt.buf, h...)
				rt.endCell()
			}
			for _, r := range c.Rules {
				rt.buf = strconv.AppendInt(rt.buf, int64(r.Position), 10)
				rt.endCell()
				if r.Counters == nil {
					rt.buf = append(rt.buf, '-')
					rt.endCell()
					rt.buf = append(rt.buf, '-')
					rt.endCell()
				} else {
					for _, n := range [2]uint64{r.Counters.Packets, r.Counters.Bytes} {
						if r.Counters.Approximate {
							rt.buf = append(rt.buf, '~')
						}
						if o.Terminal {
							rt.buf = append(rt.buf, HumanCount(n)...)
						} else {
							rt.buf = strconv.AppendUint(rt.buf, n, 10)
						}
						rt.endCell()
					}
				}
				rt.buf = appendMatchSummary(rt.buf, r)
				rt.endSummaryCell()
				rt.buf = appendTargetSummary(rt.buf, r)
				rt.endTargetCell(r.Target)
			}
			if err := rt.write(bw); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// chainRefs is the reference count a chain heading shows: what the -L
// input said, else the jumps the graph counts.
func chainRefs(g *parse.Graph, c *parse.Chain) int {
	if c.References >= 0 {
		return c.References
	}
	return g.References(c.Name)
}

// rulesColumns are the columns of a chain's rule table.
var rulesColumns = [...]string{"#", "PKTS", "BYTES", "MATCH", "TARGET"}

// ruleTable lays out one table of len(rulesColumns) columns, left aligned,
// the first row the header, as newTable's tablewriter does:
//
//   - off a terminal, tablewriter's plain blueprint through trimWriter:
//     each cell padded with spaces to the width of the column's widest
//     cell plus two, trailing spaces cut from every line;
//
//   - on a terminal, its default box, a space either side of each cell:
//
//     ┌───┬──────┐
//     │ # │ PKTS │
//     ├───┼──────┤
//     │ 1 │ 3    │
//     └───┴──────┘
//
// Cells live in one byte buffer, so a chain of any length costs a few
// allocations. A table with a cell that is not printable ASCII (colour
// aside: a comment in another script, an escape sequence in a comment)
// goes to tablewriter itself, which measures display widths and has its
// own ways with escape sequences.
type ruleTable struct {
	o      Options
	p      palette
	buf    []byte
	ends   []int // end offset in buf of each cell, row after row
	widths []int // display width of each cell
	colW   [len(rulesColumns)]int
	start  int    // start in buf of the cell being written
	ascii  bool   // every cell so far is printable ASCII (colour aside)
	out    []byte // the line being written
}

func (rt *ruleTable) reset() {
	rt.buf, rt.ends, rt.widths, rt.start, rt.ascii = rt.buf[:0], rt.ends[:0], rt.widths[:0], 0, true
	rt.colW = [len(rulesColumns)]int{}
}

// grow makes room for rows rows (of about 100 bytes: growing by
// doubling leaves garbage worth several times a big chain).
func (rt *ruleTable) grow(rows int) {
	if n := rows * len(rulesColumns); cap(rt.ends) < n {
		rt.ends, rt.widths = make([]int, 0, n), make([]int, 0, n)
	}
	if n := rows * 100; cap(rt.buf) < n {
		rt.buf = make([]byte, 0, n)
	}
}

// endCell closes the cell written to buf since the previous one.
func (rt *ruleTable) endCell() {
	cell := rt.buf[rt.start:]
	rt.checkASCII(cell)
	rt.close(len(cell))
}

func (rt *ruleTable) checkASCII(cell []byte) {
	for _, c := range cell {
		if c < 0x20 || c >= 0x7f {
			rt.ascii = false
			return
		}
	}
}

// close ends the cell at the end of buf, of display width w.
func (rt *ruleTable) close(w int) {
	col := len(rt.ends) % len(rulesColumns)
	rt.colW[col] = max(rt.colW[col], w)
	rt.ends = append(rt.ends, len(rt.buf))
	rt.widths = append(rt.widths, w)
	rt.start = len(rt.buf)
}

// endSummaryCell closes a match or target cell: oneLine, then orDash.
func (rt *ruleTable) endSummaryCell() {
	cell := oneLineBytes(rt.buf[rt.start:])
	if len(cell) == 0 {
		rt.buf = append(rt.buf, '-')
	}
	rt.endCell()
}

// endTargetCell closes the target cell, coloured by colourTarget when
// colour is on (the width is the text's).
func (rt *ruleTable) endTargetCell(t parse.Target) {
	if !rt.o.color() {
		rt.endSummaryCell()
		return
	}
	cell := oneLineBytes(rt.buf[rt.start:])
	text := "-"
	if len(cell) > 0 {
		text = string(cell)
	}
	rt.checkASCII([]byte(text))
	rt.buf = append(rt.buf[:rt.start], colourTarget(t, text, rt.p)...)
	rt.close(len(text))
}

// cell returns cell i (row-major, header first).
func (rt *ruleTable) cell(i int) []byte {
	start := 0
	if i > 0 {
		start = rt.ends[i-1]
	}
	return rt.buf[start:rt.ends[i]]
}

// spaces appends n spaces to b.
func spaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// rule appends a box line: left, the columns' widths (plus the two spaces
// around each cell) of horizontal lines separated by mid, right.
func (rt *ruleTable) rule(bw *bufio.Writer, left, mid, right string) {
	rt.out = append(rt.out[:0], left...)
	for i, w := range rt.colW {
		if i > 0 {
			rt.out = append(rt.out, mid...)
		}
		for n := w + 2; n > 0; n-- {
			rt.out = append(rt.out, "─"...)
		}
	}
	rt.out = append(rt.out, right...)
	rt.line(bw, rt.out)
}

// write prints the rows and empties the table.
func (rt *ruleTable) write(bw *bufio.Writer) error {
	defer rt.reset()
	// Colour off a terminal (a pager): tablewriter ends a coloured plain
	// cell with a reset after its padding; leave that to it.
	// A width to fit (a terminal narrower than the table): newTable's
	// tablewriter narrows and wraps the columns.
	if !rt.ascii || !rt.o.Terminal && rt.o.color() || rt.o.Width > 0 && rt.boxWidth() > rt.o.Width {
		return rt.writeTablewriter(bw)
	}
	box := rt.o.Terminal
	if box {
		rt.rule(bw, "┌", "┬", "┐")
	}
	for i := range rt.ends {
		col := i % len(rulesColumns)
		cell := rt.cell(i)
		if box {
			if col == 0 {
				rt.out = append(rt.out[:0], "│"...)
			}
			rt.out = append(rt.out, ' ')
			rt.out = append(rt.out, cell...)
			rt.out = spaces(rt.out, rt.colW[col]-rt.widths[i]+1)
			rt.out = append(rt.out, "│"...)
		} else {
			rt.out = append(rt.out, cell...)
			rt.out = spaces(rt.out, rt.colW[col]+2-rt.widths[i])
		}
		if col == len(rulesColumns)-1 {
			rt.line(bw, rt.out)
			rt.out = rt.out[:0]
			if box && i == len(rulesColumns)-1 {
				rt.rule(bw, "├", "┼", "┤")
			}
		}
	}
	if box {
		rt.rule(bw, "└", "┴", "┘")
	}
	return nil
}

// boxWidth is the width of the table's box lines: each column's widest
// cell plus two spaces of padding, and one border per column and one more.
func (rt *ruleTable) boxWidth() int {
	n := 1
	for _, w := range rt.colW {
		n += w + 3
	}
	return n
}

// writeTablewriter prints the rows with tablewriter (see ruleTable).
func (rt *ruleTable) writeTablewriter(bw *bufio.Writer) error {
	var w io.Writer = bw
	var tw *trimWriter
	if !rt.o.Terminal {
		tw = &trimWriter{w: bw}
		w = tw
	}
	tbl := newTable(w, rt.o)
	tbl.Header("#", "PKTS", "BYTES", "MATCH", "TARGET") // rulesColumns
	for i := len(rulesColumns); i < len(rt.ends); i += len(rulesColumns) {
		row := make([]string, len(rulesColumns)) // tablewriter keeps it
		for j := range row {
			row[j] = string(rt.cell(i + j))
		}
		if err := tbl.Append(row); err != nil {
			return err
		}
	}
	if err := tbl.Render(); err != nil {
		return err
	}
	if tw != nil {
		tw.Flush()
		return tw.err
	}
	return nil
}

// line writes l and a newline; off a terminal without l's trailing spaces
// (as trimWriter did).
func (rt *ruleTable) line(bw *bufio.Writer, l []byte) {
	if !rt.o.Terminal {
		for len(l) > 0 && l[len(l)-1] == ' ' {
			l = l[:len(l)-1]
		}
	}
	bw.Write(l)
	bw.WriteByte('\n')
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
