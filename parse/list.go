package parse

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseList parses `iptables [-t TABLE] -L [CHAIN] -n -v [-x] [--line-numbers]`
// output (also without -v, and ip6tables output) as people paste it into
// tickets: several tables concatenated, with or without the command lines in
// between, CRLF line endings tolerated (Ruleset.CRLF is then set). A line
// longer than MaxLine is refused, and so is text listed without -n (host
// and service names, "anywhere"), which cannot be read back into rules.
//
// Each row is converted into the tokens iptables-save would print for the
// same rule and read by the same code as ParseSave, so the typed fields of
// both parsers agree. Extras it does not understand are kept, in order, in
// Rule.Unparsed. The table of each group of chains comes from a pasted
// command line ("# iptables -t nat -L -n -v") when there is one, otherwise
// it is inferred from the built-in chains (see inferTable). The result has
// Format FormatList and no save body lines, so WriteSave renders it from the
// typed fields.
//
// It returns an *Error (with the line number and the line) for text that is
// not -L output, and ErrEmpty when there is no Chain header at all. It
// never panics.
func ParseList(data []byte) (*Ruleset, error) {
	p := &listParser{rs: &Ruleset{Format: FormatList}}
	// Both whole-input scans are fast; lines are only checked one by one
	// when something is wrong, so that the first bad line (or an earlier
	// error) is the one reported.
	p.checkLines = bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data)
	n := 0
	for len(data) > 0 {
		// The input is copied a chunk of whole lines at a time, and every
		// Rule.Raw, chain name and token is a substring of a chunk, so
		// rows cost no copies of their own. Chunks rather than one copy of
		// the whole input: a copy of many megabytes is slow to fault in.
		end := len(data)
		if end > listChunk {
			if i := bytes.LastIndexByte(data[:listChunk], '\n'); i >= 0 {
				end = i + 1
			} else if i := bytes.IndexByte(data[listChunk:], '\n'); i >= 0 {
				end = listChunk + i + 1
			}
		}
		s := string(data[:end])
		data = data[end:]
		for len(s) > 0 {
			var line string
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				line, s = s[:i], s[i+1:]
			} else {
				line, s = s, ""
			}
			n++
			if len(line) > MaxLine {
				return nil, longLine(n, line)
			}
			if l := len(line); l > 0 && line[l-1] == '\r' {
				// Pasted tickets often carry CRLF; -L output itself never does.
				line = line[:l-1]
				p.rs.CRLF = true
			}
			if err := p.line(n, line); err != nil {
				return nil, err
			}
		}
	}
	if len(p.segs) == 0 {
		return nil, ErrEmpty
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.rs, nil
}

// listChunk is how much of the input ParseList copies at a time (it
// extends to the end of a longer line).
const listChunk = 32 << 10

// listParser is the state of one ParseList run.
type listParser struct {
	rs   *Ruleset
	segs []*listSegment
	cur  *listSegment
	// cmd is the last pasted command line not yet applied to a Chain header.
	cmd     *listCommand
	cols    listColumns
	hasCols bool // cols holds the column header of chain
	chain   *Chain
	seg     *listSegment // segment of chain

	// checkLines is set when the input holds NUL bytes or invalid UTF-8.
	checkLines bool

	// Buffers reused for every row: their contents are substrings of the
	// input or constants, and are copied out before the next row.
	spans   []span
	vals    []string
	toks    []token
	words   []xword
	scratch []token
	ex      listExtras
	arena   arena // slices of all rules

	// Slabs: rules and counters are allocated in chunks, not one by one.
	ruleSlab []Rule
	ctrSlab  []Counters
}

func (p *listParser) newRule() *Rule {
	if len(p.ruleSlab) == 0 {
		p.ruleSlab = make([]Rule, slabSize)
	}
	r := &p.ruleSlab[0]
	p.ruleSlab = p.ruleSlab[1:]
	return r
}

func (p *listParser) newCounters(c Counters) *Counters {
	if len(p.ctrSlab) == 0 {
		p.ctrSlab = make([]Counters, slabSize)
	}
	ctr := &p.ctrSlab[0]
	p.ctrSlab = p.ctrSlab[1:]
	*ctr = c
	return ctr
}

// listSegment is a run of chains that belong to one table: everything after
// one command line, or a group delimited by the built-in chain order.
type listSegment struct {
	table    TableName // from the command line; "" when to be inferred
	chains   []*Chain
	names    map[ChainName]bool
	line     int // first Chain header
	lastBI   int // hook index of the last built-in chain seen, -1 if none
	sawUser  bool
	explicit bool
}

// listCommand is what a pasted `iptables -t T -L [CHAIN]` line says.
type listCommand struct {
	table TableName
	chain ChainName
}

// hookIndex orders built-in chains the way iptables -L lists them.
var hookIndex = map[ChainName]int{
	ChainPrerouting: 0, ChainInput: 1, ChainForward: 2, ChainOutput: 3, ChainPostrouting: 4,
}

func (p *listParser) line(n int, line string) error {
	if p.checkLines && (strings.IndexByte(line, 0) >= 0 || !utf8.ValidString(line)) {
		return newError(n, []byte(line), "binary data in iptables -L output")
	}
	trimmed := strings.TrimSpace(line)
	switch {
	case trimmed == "":
		return nil
	case strings.HasPrefix(trimmed, "Chain "):
		return p.chainHeader(n, line, trimmed)
	}
	if mayBeColumns(trimmed) {
		if cols, ok := parseListColumns(trimmed); ok {
			if p.chain == nil {
				return newError(n, []byte(line), "column header before any Chain header")
			}
			p.cols, p.hasCols = cols, true
			return nil
		}
	}
	var rowErr *Error
	if p.chain != nil {
		if !p.hasCols {
			rowErr = newError(n, []byte(line), "rule before the column header of chain %s", p.chain.Name)
		} else {
			r, err := p.row(n, line)
			if err == nil {
				p.chain.Rules = append(p.chain.Rules, r)
				return nil
			}
			rowErr = newError(n, []byte(line), "%s", err.Error())
		}
	}
	if cmd, ok := parseListCommand(trimmed); ok {
		p.cmd = &cmd
		p.cur, p.chain, p.hasCols = nil, nil, false
		return nil
	}
	if isPromptOrComment(trimmed) {
		return nil
	}
	if rowErr != nil {
		return rowErr
	}
	return newError(n, []byte(line), "text before any Chain header is not iptables -L output")
}
func isPromptOrComment(s string) bool {
	if s[0] == '#' || s[0] == '$' {
		return true
	}
	f := strings.Fields(s)
	for i := 0; i < len(f) && i < 3; i++ {
		if w := f[i]; strings.HasSuffix(w, "#") || strings.HasSuffix(w, "$") || strings.HasSuffix(w, "]>") {
			return true
		}
	}
	return false
}

// parseListCommand recognises a pasted list command anywhere in a line:
// "# iptables -t nat -L -n -v", "$ sudo ip6tables -L DOCKER -nv",
// "root@host:~# iptables-legacy --table=raw --list -n".
func parseListCommand(s string) (listCommand, bool) {
	f := strings.Fields(s)
	start := -1
	for i, w := range f {
		base := w[strings.LastIndexByte(w, '/')+1:]
		if (strings.HasPrefix(base, "iptables") || strings.HasPrefix(base, "ip6tables")) &&
			!strings.Contains(base, "save") && !strings.Contains(base, "restore") {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return listCommand{}, false
	}
	cmd := listCommand{table: TableFilter}
	list := false
	for i := start; i < len(f); i++ {
		w := f[i]
		if w == "|" || w == ";" || w == "&&" || strings.HasPrefix(w, ">") {
			break
		}
		next := ""
		if i+1 < len(f) {
			next = f[i+1]
		}
		switch {
		case w == "-t" || w == "--table":
			if next != "" {
				cmd.table = TableName(next)
				i++
			}
		case strings.HasPrefix(w, "--table="):
			cmd.table = TableName(strings.TrimPrefix(w, "--table="))
		case w == "--list" || w == "-L" ||
			(len(w) > 1 && w[0] == '-' && w[1] != '-' && strings.HasSuffix(w, "L")):
			list = true
			if next != "" && next[0] != '-' && next[0] != '!' && next != "|" {
				cmd.chain = ChainName(next)
				i++
			}
		case len(w) > 2 && w[0] == '-' && w[1] != '-' && strings.Contains(w, "L"):
			list = true // "-Lnv"
		case strings.HasPrefix(w, "-t") && len(w) > 2 && w[1] == 't':
			cmd.table = TableName(w[2:])
		}
	}
	return cmd, list
}

// chainHeader handles "Chain NAME (policy P [N packets, M bytes])" and
// chainHeader handles "Chain NAME (policy P [N packets, M bytes])" and
// "Chain NAME (N references)".
func (p *listParser) chainHeader(n int, line string, s string) error {
	rest := strings.TrimPrefix(s, "Chain ")
	name, rest, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
	if name == "" {
		return newError(n, []byte(line), "chain header without a name")
	}
	c := &Chain{Name: ChainName(name), References: -1, Line: n}
	rest = strings.TrimSpace(rest)
	if rest != "" {
		if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
			return newError(n, []byte(line), "malformed chain header")
		}
		f := strings.Fields(rest[1 : len(rest)-1])
		switch {
		case len(f) >= 2 && f[0] == "policy":
			c.Policy = Target(f[1])
			c.Builtin = true
			if len(f) > 2 {
				// "policy ACCEPT 12K packets, 3M bytes"
				if len(f) != 6 || f[3] != "packets," || f[5] != "bytes" {
					return newError(n, []byte(line), "malformed policy counters")
				}
				pk, ap, ok1 := parseListNum(f[2])
				by, ab, ok2 := parseListNum(f[4])
				if !ok1 || !ok2 {
					return newError(n, []byte(line), "malformed policy counters")
				}
				c.Counters = &Counters{Packets: pk, Bytes: by, Approximate: ap || ab}
			}
		case len(f) == 2 && (f[1] == "references" || f[1] == "reference"):
			refs, err := strconv.Atoi(f[0])
			if err != nil || refs < 0 {
				return newError(n, []byte(line), "malformed reference count")
			}
			c.References = refs
		default:
			return newError(n, []byte(line), "malformed chain header")
		}
	}
	p.startChain(n, c)
	return nil
}

// startChain attributes c to the current segment or starts a new one:
// after a command line, when c repeats a chain of the segment, or when a
// built-in chain comes after a user chain or out of hook order (iptables
// lists built-in chains first, in hook order).
func (p *listParser) startChain(n int, c *Chain) {
	newSeg := p.cur == nil || p.cmd != nil || p.cur.names[c.Name]
	hi, isHook := hookIndex[c.Name]
	if !newSeg && c.Builtin && isHook && (p.cur.sawUser || hi <= p.cur.lastBI) {
		newSeg = true
	}
	if newSeg {
		seg := &listSegment{names: map[ChainName]bool{}, line: n, lastBI: -1}
		if p.cmd != nil {
			seg.table, seg.explicit = p.cmd.table, true
			p.cmd = nil
		}
		p.segs = append(p.segs, seg)
		p.cur = seg
	}
	if c.Builtin && isHook {
		p.cur.lastBI = hi
	} else {
		p.cur.sawUser = true
	}
	p.cur.names[c.Name] = true
	p.cur.chains = append(p.cur.chains, c)
	p.chain, p.seg = c, p.cur
	p.hasCols = false
}

// finish names the segments and merges those of the same table.
func (p *listParser) finish() error {
	for _, seg := range p.segs {
		name := seg.table
		if !seg.explicit {
			name = inferTable(seg.chains)
		}
		t := p.rs.Table(name)
		if t == nil {
			t = &Table{Name: name, Line: seg.line}
			p.rs.Tables = append(p.rs.Tables, t)
		}
		for _, c := range seg.chains {
			if t.Chain(c.Name) != nil {
				return &Error{Line: c.Line, Text: "Chain " + string(c.Name),
					Msg: "chain " + string(c.Name) + " of table " + string(name) +
						" listed twice (paste the iptables -t TABLE -L command lines between tables)"}
			}
			if !c.Builtin && c.References < 0 && c.Name.IsBuiltin(name) {
				c.Builtin = true
			}
			if !seg.explicit {
				// Rows of an explicit segment got their table when read.
				for _, r := range c.Rules {
					r.Table = name
				}
			}
			t.Chains = append(t.Chains, c)
		}
	}
	return nil
}

// Targets that only exist in one table, used to guess the table of
// chains listed without a command line.
// Targets that only exist in one table, used to guess the table of
// chains listed without a command line. Switches, not maps: they are asked
// about every rule of such chains.
func isNATOnlyTarget(t Target) bool {
	switch t {
	case "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP":
		return true
	}
	return false
}

func isMangleOnlyTarget(t Target) bool {
	switch t {
	case "MARK", "CONNMARK", "CHECKSUM", "TCPMSS", "TOS", "DSCP", "TTL", "HL", "ECN", "TPROXY", "CLASSIFY":
		return true
	}
	return false
}

func isRawOnlyTarget(t Target) bool { return t == "NOTRACK" || t == "CT" }

// inferTable guesses the table of chains listed without a command line.
// The set of built-in chains decides when it is complete:
//
//	raw      PREROUTING OUTPUT
//	mangle   PREROUTING INPUT FORWARD OUTPUT POSTROUTING
//	nat      PREROUTING INPUT OUTPUT POSTROUTING
//	filter   INPUT FORWARD OUTPUT            (security has the same set: filter wins)
//
// Otherwise (one chain listed with -L CHAIN, user chains only) the targets
// used decide: DNAT, SNAT, MASQUERADE, REDIRECT → nat; MARK, CHECKSUM,
// TCPMSS, ... → mangle; CT, NOTRACK → raw; and failing that the first of
// filter, nat, raw, mangle that has all the built-in chains seen.
func inferTable(chains []*Chain) TableName {
	seen := map[ChainName]bool{}
	var nat, mangle, raw bool
	for _, c := range chains {
		if _, ok := hookIndex[c.Name]; ok && c.Builtin {
			seen[c.Name] = true
		}
		for _, r := range c.Rules {
			nat = nat || isNATOnlyTarget(r.Target)
			mangle = mangle || isMangleOnlyTarget(r.Target)
			raw = raw || isRawOnlyTarget(r.Target)
		}
	}
	has := func(t TableName) bool {
		for c := range seen {
			if !c.IsBuiltin(t) {
				return false
			}
		}
		return true
	}
	for _, t := range []TableName{TableRaw, TableMangle, TableNAT, TableFilter} {
		if len(seen) == len(BuiltinChains[t]) && has(t) {
			return t
		}
	}
	switch {
	case nat && has(TableNAT):
		return TableNAT
	case mangle && has(TableMangle):
		return TableMangle
	case raw && has(TableRaw):
		return TableRaw
	}
	for _, t := range []TableName{TableFilter, TableNAT, TableRaw, TableMangle} {
		if has(t) {
			return t
		}
	}
	return TableFilter
}

// listColumns is a column header: which of the optional columns are there.
type listColumns struct {
	num, counters, opt, iface bool
}

// mayBeColumns is a cheap test every row goes through before
// parseListColumns: a column header's first word is one of these.
func mayBeColumns(s string) bool {
	return strings.HasPrefix(s, "target") || strings.HasPrefix(s, "pkts") ||
		strings.HasPrefix(s, "num") || strings.HasPrefix(s, "bytes")
}

var listColumnNames = [...]string{"num", "pkts", "bytes", "target", "prot", "opt", "in", "out", "source", "destination"}

// parseListColumns recognises " pkts bytes target prot opt in out source
// destination", with "num" in front for --line-numbers and without
// pkts/bytes/in/out when -v was not given.
func parseListColumns(s string) (listColumns, bool) {
	f := strings.Fields(s)
	var c listColumns
	i := 0
	for _, w := range listColumnNames {
		if i < len(f) && f[i] == w {
			i++
			switch w {
			case "num":
				c.num = true
			case "pkts":
				c.counters = true
			case "opt":
				c.opt = true
			case "in":
				c.iface = true
			}
			continue
		}
		switch w {
		case "target", "prot", "source", "destination":
			return listColumns{}, false
		case "bytes", "out":
			// "pkts" without "bytes", "in" without "out".
			if (w == "bytes" && c.counters) || (w == "out" && c.iface) {
				return listColumns{}, false
			}
		}
	}
	return c, i == len(f)
}

// span is a whitespace-separated field of a row.
type span struct{ start, end int }

// rowFields splits the first max fields of s into out (reused) and returns
// them.
func rowFields(out []span, s string, max int) []span {
	out = out[:0]
	i := 0
	for len(out) < max {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		out = append(out, span{i, j})
		i = j
	}
	return out
}

type rowError string

func (e rowError) Error() string { return string(e) }

// rowLayout says which of the target and opt columns a row fills.
type rowLayout struct{ target, opt bool }

// The layouts row tries, in order, with and without an opt column header.
var (
	layoutsOpt   = [...]rowLayout{{true, true}, {false, true}, {true, false}, {false, false}}
	layoutsNoOpt = [...]rowLayout{{true, false}, {false, false}}
)

// row parses one rule line under the current column header.
//
// The target column is blank for a rule without -j, and ip6tables before
// 1.8.9 leaves the opt column blank, so the fields are matched by shape
// (prot, "--"/"-f", interface, address) under each layout, in order:
// target and opt present, target blank, opt blank, both blank. Column
// offsets cannot be used alone: a long target, interface or -x counter
// pushes the rest of the row to the right.
func (p *listParser) row(n int, s string) (*Rule, error) {
	c := &p.cols
	lead := 0
	if c.num {
		lead++
	}
	if c.counters {
		lead += 2
	}
	fixed := 4 // target prot source destination
	if c.opt {
		fixed++
	}
	if c.iface {
		fixed += 2
	}
	f := rowFields(p.spans, s, lead+fixed)
	p.spans = f
	field := func(i int) string { return s[f[i].start:f[i].end] }
	if len(f) < lead {
		return nil, rowError("rule does not fit the columns")
	}
	position := len(p.chain.Rules) + 1
	var ctrs Counters
	k := 0
	if c.num {
		pos, err := strconv.Atoi(field(0))
		if err != nil || pos <= 0 {
			return nil, rowError("rule number is not a number")
		}
		position = pos
		k++
	}
	if c.counters {
		pk, ap, ok1 := parseListNum(field(k))
		by, ab, ok2 := parseListNum(field(k + 1))
		if !ok1 || !ok2 {
			return nil, rowError("rule counters are not numbers")
		}
		ctrs = Counters{Packets: pk, Bytes: by, Approximate: ap || ab}
		k += 2
	}
	layouts := layoutsNoOpt[:]
	if c.opt {
		layouts = layoutsOpt[:]
	}
	found := false
	vals := p.vals[:0]
	for _, l := range layouts {
		need := fixed
		if !l.target {
			need--
		}
		if c.opt && !l.opt {
			need--
		}
		if len(f) < k+need {
			continue
		}
		vals = vals[:0]
		if !l.target {
			vals = append(vals, "")
		}
		for i := k; i < k+need; i++ {
			vals = append(vals, field(i))
			if !l.opt && len(vals) == 2 {
				// Placeholder for a blank or absent opt column.
				vals = append(vals, "--")
			}
		}
		if rowShapeOK(vals, c.iface) {
			found = true
			if len(f) > k+need {
				f = f[:k+need]
			}
			break
		}
	}
	p.vals = vals
	if !found {
		if name := resolvedName(s, f[k:], c.iface); name != "" {
			return nil, withoutN(name)
		}
		return nil, rowError("rule does not fit the columns")
	}
	rest := ""
	if end := f[len(f)-1].end; end < len(s) {
		rest = strings.TrimSpace(s[end:])
	}
	// vals: target prot opt [in out] source destination
	target, prot, opt := vals[0], vals[1], vals[2]
	var in, out string
	src, dst := vals[3], vals[4]
	if c.iface {
		in, out, src, dst = vals[3], vals[4], vals[5], vals[6]
	}
	toks := p.toks[:0]
	toks = appendAddr(toks, "-s", src)
	toks = appendAddr(toks, "-d", dst)
	toks = appendIface(toks, "-i", in)
	toks = appendIface(toks, "-o", out)
	pneg := strings.HasPrefix(prot, "!")
	prot = strings.ToLower(strings.TrimPrefix(prot, "!"))
	if name, ok := protoName(prot); ok {
		prot = name
	}
	if prot != "" && prot != "all" && prot != "0" {
		toks = appendWords(toks, pneg, "-p", prot)
	}
	if opt == "-f" || opt == "!f" {
		toks = appendWords(toks, opt[0] == '!', "-f")
	}
	ex := p.parseListExtras(rest, Target(target))
	if ex.resolved != "" {
		return nil, withoutN(ex.resolved)
	}
	toks = append(toks, ex.matches...)
	if target != "" {
		if ex.gotoTarget {
			toks = appendWords(toks, false, "-g", target)
		} else {
			toks = appendWords(toks, false, "-j", target)
		}
		toks = append(toks, ex.targetOpts...)
	} else {
		for _, t := range ex.targetOpts {
			ex.unknown = append(ex.unknown, t.text)
		}
	}
	p.toks = toks
	r := p.newRule()
	r.Chain, r.Raw, r.Line, r.Position = p.chain.Name, s, n, position
	if p.seg.explicit {
		r.Table = p.seg.table // else finish sets it
	}
	if c.counters {
		r.Counters = p.newCounters(ctrs)
	}
	if err := parseRuleTokensIn(&p.arena, r, toks); err != nil {
		return nil, rowError("rule options: " + err.Error())
	}
	r.Unparsed = append(r.Unparsed, ex.unknown...)
	return r, nil
}

// appendWords appends ws as tokens, after a "!" when neg is set.
func appendWords(toks []token, neg bool, ws ...string) []token {
	if neg {
		toks = append(toks, token{text: "!"})
	}
	for _, w := range ws {
		toks = append(toks, token{text: w})
	}
	return toks
}

// appendAddr appends "-s ADDR" (or -d) unless a is 0.0.0.0/0 (::/0); -L
// prints a host address without the /32 (/128) that iptables-save prints.
func appendAddr(toks []token, flag, a string) []token {
	neg := strings.HasPrefix(a, "!")
	a = strings.TrimPrefix(a, "!")
	if a == "0.0.0.0/0" || a == "::/0" {
		return toks
	}
	if !strings.Contains(a, "/") {
		if strings.Contains(a, ":") {
			a += "/128"
		} else {
			a += "/32"
		}
	}
	return appendWords(toks, neg, flag, a)
}

// appendIface appends "-i IFACE" (or -o) unless v is "*" or blank.
func appendIface(toks []token, flag, v string) []token {
	if v == "*" || v == "" {
		return toks
	}
	neg := strings.HasPrefix(v, "!")
	return appendWords(toks, neg, flag, strings.TrimPrefix(v, "!"))
}

// protoName maps the protocol numbers iptables 1.8.9 prints under -n to
// the names iptables-save prints (from /etc/protocols).
func protoName(p string) (string, bool) {
	switch p {
	case "1":
		return "icmp", true
	case "2":
		return "igmp", true
	case "4":
		return "ipencap", true
	case "6":
		return "tcp", true
	case "17":
		return "udp", true
	case "33":
		return "dccp", true
	case "41":
		return "ipv6", true
	case "47":
		return "gre", true
	case "50":
		return "esp", true
	case "51":
		return "ah", true
	case "58":
		return "ipv6-icmp", true
	case "89":
		return "ospf", true
	case "112":
		return "vrrp", true
	case "132":
		return "sctp", true
	case "136":
		return "udplite", true
	case "icmpv6":
		return "ipv6-icmp", true
	}
	return "", false
}

// rowShapeOK checks the fixed fields target prot opt [in out] src dst.
func rowShapeOK(v []string, iface bool) bool {
	if !isTargetShape(v[0]) || !isProtShape(v[1]) || !isOptShape(v[2]) {
		return false
	}
	i := 3
	if iface {
		if !isIfaceShape(v[3]) || !isIfaceShape(v[4]) {
			return false
		}
		i = 5
	}
	return isAddrShape(v[i]) && isAddrShape(v[i+1])
}

func isTargetShape(s string) bool {
	return s == "" || (s[0] != '-' && s[0] != '!' && !isOptShape(s))
}

func isProtShape(s string) bool {
	s = strings.TrimPrefix(s, "!")
	if s == "" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func isOptShape(s string) bool {
	return len(s) == 2 && (s[0] == '-' || s[0] == '!') && (s[1] == '-' || s[1] == 'f')
}

func isIfaceShape(s string) bool {
	s = strings.TrimPrefix(s, "!")
	if s == "" {
		return false
	}
	// A loop, not strings.ContainsAny: this runs twice per row.
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == ':' {
			return false
		}
	}
	return true
}

func isAddrShape(s string) bool {
	s = strings.TrimPrefix(s, "!")
	if strings.IndexByte(s, '/') < 0 {
		// Not a prefix (netip.ParsePrefix needs the '/'): skip its failure,
		// which allocates an error, for the common host address.
		_, err := netip.ParseAddr(s)
		return err == nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	// Non-contiguous masks print as "10.9.0.0/255.255.0.255".
	a, m, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	aa, err1 := netip.ParseAddr(a)
	mm, err2 := netip.ParseAddr(m)
	return err1 == nil && err2 == nil && aa.Is4() == mm.Is4()
}

// withoutN is the error for a row listed without -n. iptables -L without
// -n resolves addresses to host names ("anywhere" for 0.0.0.0/0,
// "localhost", "db.example.com") and ports to service names ("dpt:http"):
// rules cannot be read back from names (they depend on the resolver and
// /etc/services of the host, and a name may stand for several addresses).
func withoutN(word string) error {
	return rowError("listed without -n: " + strconv.Quote(word) + " is a resolved name, not a number; run iptables -L -n -v (add -x for exact counters)")
}

// resolvedAddr returns src or dst when it is a name rather than an
// address ("anywhere", a host name), "" when both are addresses.
func resolvedAddr(src, dst string) string {
	for _, a := range [...]string{src, dst} {
		if v := strings.TrimPrefix(a, "!"); v != "" && !isAddrShape(v) && isNameShape(v) {
			return v
		}
	}
	return ""
}

// resolvedName explains a row that fits no layout: when it fits once host
// names count as addresses, it returns the first address column holding a
// name. fields are the row's fields after the counters.
func resolvedName(s string, fields []span, iface bool) string {
	field := func(i int) string { return s[fields[i].start:fields[i].end] }
	// target prot opt [in out] src dst, with the target or opt column
	// possibly blank: try the address columns of each shape.
	for _, n := range [...]int{3, 2, 1} { // fields before src, without in and out
		if iface {
			n += 2
		}
		if len(fields) < n+2 {
			continue
		}
		src, dst := field(n), field(n+1)
		srcOK := isAddrShape(src) || isNameShape(src)
		dstOK := isAddrShape(dst) || isNameShape(dst)
		if srcOK && dstOK {
			if a := resolvedAddr(src, dst); a != "" {
				return a
			}
		}
	}
	return ""
}

// isNameShape reports whether s (without "!") looks like what -L prints
// instead of an address without -n: "anywhere" or a DNS name with at
// least one letter ("localhost", "db.example.com", "host.lan/24").
func isNameShape(s string) bool {
	s = strings.TrimPrefix(s, "!")
	if s == "anywhere" {
		return true
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_':
		default:
			return false
		}
	}
	return letter
}

// isPortShape reports whether v is a port or port range as -n prints it
// ("80", "1000:2000").
func isPortShape(v string) bool {
	a, b, _ := strings.Cut(v, ":")
	return isDigits(a) && (b == "" && !strings.Contains(v, ":") || isDigits(b))
}

// isPortListShape is isPortShape for a multiport list ("80,443,1000:2000").
func isPortListShape(v string) bool {
	for p := range strings.SplitSeq(v, ",") {
		if !isPortShape(p) {
			return false
		}
	}
	return true
}

// parseListNum reads a counter: "1234", or "12K" / "3M" / ... in units of
// 1000 (iptables -L -v without -x); approx is set for the latter.
func parseListNum(s string) (v uint64, approx, ok bool) {
	mult := uint64(1)
	if l := len(s); l > 1 {
		switch s[l-1] {
		case 'K':
			mult = 1e3
		case 'M':
			mult = 1e6
		case 'G':
			mult = 1e9
		case 'T':
			mult = 1e12
		case 'P':
			mult = 1e15
		case 'E':
			mult = 1e18
		}
		if mult > 1 {
			s = s[:l-1]
			approx = true
		}
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > ^uint64(0)/mult {
		return 0, false, false
	}
	return v * mult, approx, true
}

// listExtras is the extra column of a row turned into save tokens.
type listExtras struct {
	matches    []token
	targetOpts []token
	gotoTarget bool
	unknown    []string
	// resolved is the first word that only -L without -n prints (a
	// service name for a port: "dpt:http"), "" when there is none.
	resolved string
}

// xword is one word of the extra column. A "/* ... */" comment and a
// double-quoted string (LOG prefix "...") are one word each.
type xword struct {
	text    string // for a comment: the comment text; for a quoted string: unquoted
	raw     string // as written
	comment bool
	quoted  bool
}

// splitExtras splits s into out (reused) and returns it.
func splitExtras(out []xword, s string) []xword {
	out = out[:0]
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "/* ") || s[i:] == "/*" {
			// iptables prints " /* %s */" with the comment verbatim; the
			// first " */" ends it (or the line end, when there is none).
			body := s[i+2:]
			if j := strings.Index(body, " */"); j >= 0 {
				text := strings.TrimPrefix(body[:j], " ")
				out = append(out, xword{text: text, raw: s[i : i+2+j+3], comment: true})
				i += 2 + j + 3
				continue
			}
		}
		if c == '"' {
			// LOG prints prefix "%s" without escaping: the string ends at a
			// quote followed by a blank or the line end.
			j := i + 1
			for j < len(s) && !(s[j] == '"' && (j+1 == len(s) || s[j+1] == ' ' || s[j+1] == '\t')) {
				j++
			}
			if j < len(s) {
				out = append(out, xword{text: s[i+1 : j], raw: s[i : j+1], quoted: true})
				i = j + 1
				continue
			}
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		out = append(out, xword{text: s[i:j], raw: s[i:j]})
		i = j
	}
	return out
}

// tcpFlagNames are the --tcp-flags names in iptables-save's order.
var tcpFlagNames = []struct {
	name string
	bit  uint64
}{{"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08}, {"ACK", 0x10}, {"URG", 0x20}}

// tcpFlagSets holds the rendering of every 6-bit flag mask, so that rows
// do not build the same few strings again and again.
var tcpFlagSets = func() (t [64]string) {
	for v := range t {
		var names []string
		for _, f := range tcpFlagNames {
			if uint64(v)&f.bit != 0 {
				names = append(names, f.name)
			}
		}
		t[v] = strings.Join(names, ",")
	}
	t[0], t[0x3f] = "NONE", "ALL"
	return t
}()

// tcpFlags renders a -L flag mask ("0x17") as iptables-save does
// ("FIN,SYN,RST,ACK", "ALL", "NONE").
func tcpFlags(hex string) (string, bool) {
	v, err := strconv.ParseUint(strings.TrimPrefix(hex, "0x"), 16, 8)
	if err != nil || !strings.HasPrefix(hex, "0x") {
		return "", false
	}
	return tcpFlagSets[v&0x3f], true
}

// xmark turns MARK/CONNMARK -L wording into the --set-xmark value
// iptables-save prints (libxt_MARK revision 2).
func xmark(op, v string) (string, bool) {
	if op == "xset" {
		return v, strings.Contains(v, "/")
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
	if err != nil || !strings.HasPrefix(v, "0x") {
		return "", false
	}
	hex := func(x uint64) string { return "0x" + strconv.FormatUint(x, 16) }
	switch op {
	case "set":
		return hex(n) + "/0xffffffff", true
	case "or":
		return hex(n) + "/" + hex(n), true
	case "xor":
		return hex(n) + "/0x0", true
	case "and":
		return "0x0/" + hex(^n&0xffffffff), true
	}
	return "", false
}

// conntrackOption maps the conntrack match keys iptables -L prints as
// "ctstate X", "ctorigdst X", ... to their save options (--ctstate X,
// --ctorigdst X); "" for any other word.
func conntrackOption(key string) string {
	switch key {
	case "ctstate":
		return "--ctstate"
	case "ctproto":
		return "--ctproto"
	case "ctorigsrc":
		return "--ctorigsrc"
	case "ctorigdst":
		return "--ctorigdst"
	case "ctreplsrc":
		return "--ctreplsrc"
	case "ctrepldst":
		return "--ctrepldst"
	case "ctorigsrcport":
		return "--ctorigsrcport"
	case "ctorigdstport":
		return "--ctorigdstport"
	case "ctreplsrcport":
		return "--ctreplsrcport"
	case "ctrepldstport":
		return "--ctrepldstport"
	case "ctstatus":
		return "--ctstatus"
	case "ctexpire":
		return "--ctexpire"
	case "ctdir":
		return "--ctdir"
	}
	return ""
}

// logLevels maps syslog level names (LOG without -n) to numbers.
var logLevels = map[string]string{
	"emerg": "0", "alert": "1", "crit": "2", "err": "3", "error": "3", "warning": "4",
	"warn": "4", "notice": "5", "info": "6", "debug": "7",
}

// parseListExtras converts the extra column of a row (match and target
// printouts, in that order) into save tokens. What it does not recognise
// goes, word by word and verbatim, to unknown. The result lives in p's
// buffers until the next row.
func (p *listParser) parseListExtras(s string, target Target) *listExtras {
	ex := &p.ex
	ex.matches, ex.targetOpts, ex.unknown, ex.gotoTarget, ex.resolved = ex.matches[:0], ex.targetOpts[:0], ex.unknown[:0], false, ""
	if s == "" {
		return ex
	}
	w := splitExtras(p.words, s)
	p.words = w
	at := func(i int) string {
		if i < len(w) && !w[i].comment {
			return w[i].text
		}
		return ""
	}
	m := func(neg bool, ws ...string) {
		if neg {
			ex.matches = append(ex.matches, token{text: "!"})
		}
		for _, x := range ws {
			ex.matches = append(ex.matches, token{text: x})
		}
	}
	t := func(neg bool, ws ...string) {
		if neg {
			ex.targetOpts = append(ex.targetOpts, token{text: "!"})
		}
		for _, x := range ws {
			ex.targetOpts = append(ex.targetOpts, token{text: x})
		}
	}
	// bang strips a leading "!" from a value: "dpt:!80", "src-type !LOCAL".
	bang := func(v string) (string, bool) {
		if strings.HasPrefix(v, "!") {
			return v[1:], true
		}
		return v, false
	}
	neg := false
	for i := 0; i < len(w); {
		x := w[i]
		start := i
		consumed := 0
		if x.comment {
			m(false, "-m", "comment", "--comment")
			ex.matches = append(ex.matches, token{text: x.text, quoted: true})
			consumed = 1
		} else {
			switch x.text {
			case "!":
				if !neg {
					neg = true
					i++
					continue
				}
			case "[goto]":
				ex.gotoTarget = true
				consumed = 1
			case "tcp", "udp", "udplite", "sctp", "dccp":
				j := i + 1
				opts := p.scratch[:0]
				ok := true
				for ok && j < len(w) && !w[j].comment {
					k, v, has := strings.Cut(w[j].text, ":")
					if !has {
						if o, val, eq := strings.Cut(w[j].text, "="); eq && o == "option" && x.text == "tcp" {
							val, n := bang(val)
							if n {
								opts = append(opts, token{text: "!"})
							}
							opts = append(opts, token{text: "--tcp-option"}, token{text: val})
							j++
							continue
						}
						break
					}
					v, n := bang(v)
					name := ""
					switch k {
					case "spt", "spts":
						name = "--sport"
					case "dpt", "dpts":
						name = "--dport"
					case "flags":
						if x.text != "tcp" {
							ok = false
							continue
						}
						mask, cmp, has := strings.Cut(v, "/")
						fm, ok1 := tcpFlags(mask)
						fc, ok2 := tcpFlags(cmp)
						if !has || !ok1 || !ok2 {
							ok = false
							continue
						}
						if n {
							opts = append(opts, token{text: "!"})
						}
						opts = append(opts, token{text: "--tcp-flags"}, token{text: fm}, token{text: fc})
						j++
						continue
					default:
						ok = false
						continue
					}
					if v == "" {
						ok = false
						continue
					}
					if !isPortShape(v) && ex.resolved == "" {
						// "dpt:http": a service name, printed without -n.
						ex.resolved = w[j].text
					}
					if n {
						opts = append(opts, token{text: "!"})
					}
					opts = append(opts, token{text: name}, token{text: v})
					j++
				}
				m(false, "-m", x.text)
				ex.matches = append(ex.matches, opts...)
				p.scratch = opts
				consumed = j - i
			case "icmptype", "ipv6-icmptype":
				// "icmptype 8", "icmptype 3 code 1" (save: --icmp-type 3/1).
				if v := at(i + 1); v != "" {
					consumed = 2
					if at(i+2) == "code" && at(i+3) != "" {
						v += "/" + at(i+3)
						consumed = 4
					}
					if x.text == "icmptype" {
						m(false, "-m", "icmp")
						m(neg, "--icmp-type", v)
					} else {
						m(false, "-m", "icmp6")
						m(neg, "--icmpv6-type", v)
					}
				}
			case "icmp", "ipv6-icmp":
				// "icmp !type 0", "icmp any".
				v := at(i + 1)
				n := neg
				switch {
				case v == "!type" || v == "type":
					n = n || v == "!type"
					if tv := at(i + 2); tv != "" {
						consumed = 3
						if at(i+3) == "code" && at(i+4) != "" {
							tv += "/" + at(i+4)
							consumed = 5
						}
						v = tv
					}
				case v == "any" || v == "!any":
					n = n || v == "!any"
					v, consumed = "any", 2
				}
				if consumed > 0 {
					if x.text == "icmp" {
						m(false, "-m", "icmp")
						m(n, "--icmp-type", v)
					} else {
						m(false, "-m", "icmp6")
						m(n, "--icmpv6-type", v)
					}
				}
			case "multiport":
				dir := at(i + 1)
				if dir == "dports" || dir == "sports" || dir == "ports" {
					j := i + 2
					n := neg
					if at(j) == "!" {
						n, j = true, j+1
					}
					if v := at(j); v != "" {
						v, b := bang(v)
						if !isPortListShape(v) && ex.resolved == "" {
							ex.resolved = dir + " " + v
						}
						m(false, "-m", "multiport")
						m(n || b, multiportOption(dir), v)
						consumed = j + 1 - i
					}
				}
			case "ADDRTYPE":
				if at(i+1) == "match" {
					j := i + 2
					opts := p.scratch[:0]
					for j < len(w) {
						switch k := at(j); k {
						case "src-type", "dst-type":
							v, n := bang(at(j + 1))
							if v == "" {
								j = len(w) + 1
								continue
							}
							if n {
								opts = append(opts, token{text: "!"})
							}
							opts = append(opts, token{text: addrtypeOption(k)}, token{text: v})
							j += 2
							continue
						case "limit-in":
							opts = append(opts, token{text: "--limit-iface-in"})
							j++
							continue
						case "limit-out":
							opts = append(opts, token{text: "--limit-iface-out"})
							j++
							continue
						}
						break
					}
					if j <= len(w) {
						m(false, "-m", "addrtype")
						ex.matches = append(ex.matches, opts...)
						consumed = j - i
					}
					p.scratch = opts
				}
			case "state":
				if v := at(i + 1); v != "" {
					m(false, "-m", "state")
					m(neg, "--state", v)
					consumed = 2
				}
			case "mark", "connmark":
				if at(i+1) == "match" {
					j := i + 2
					n := neg
					if at(j) == "!" {
						n, j = true, j+1
					}
					if v := at(j); v != "" {
						m(false, "-m", x.text)
						m(n, "--mark", v)
						consumed = j + 1 - i
					}
				}
			case "match-set":
				if name, flags := at(i+1), at(i+2); name != "" && flags != "" {
					m(false, "-m", "set")
					m(neg, "--match-set", name, flags)
					consumed = 3
				}
			case "statistic":
				if at(i+1) == "mode" {
					switch at(i + 2) {
					case "random":
						if at(i+3) == "probability" && at(i+4) != "" {
							m(false, "-m", "statistic", "--mode", "random", "--probability", at(i+4))
							consumed = 5
						}
					case "nth":
						if at(i+3) == "every" && at(i+4) != "" && at(i+5) == "packet" && at(i+6) != "" {
							m(false, "-m", "statistic", "--mode", "nth", "--every", at(i+4), "--packet", at(i+6))
							consumed = 7
						}
					}
				}
			case "recent:":
				consumed = listRecent(w, i, neg, ex)
			case "limit:":
				// "limit: avg 3/min burst 5" (1.8.9), "limit: up to 3/min burst 5"
				// (1.8.10+). iptables-save omits the default burst of 5.
				j := i + 1
				if at(j) == "avg" {
					j++
				} else if at(j) == "up" && at(j+1) == "to" {
					j += 2
				} else {
					break
				}
				if rate := at(j); rate != "" && at(j+1) == "burst" && at(j+2) != "" {
					m(false, "-m", "limit", "--limit", rate)
					if b := at(j + 2); b != "5" {
						m(false, "--limit-burst", b)
					}
					consumed = j + 3 - i
				}
			case "source", "destination":
				if at(i+1) == "IP" && at(i+2) == "range" {
					j := i + 3
					n := neg
					if at(j) == "!" {
						n, j = true, j+1
					}
					if v := at(j); v != "" {
						opt := "--src-range"
						if x.text == "destination" {
							opt = "--dst-range"
						}
						m(false, "-m", "iprange")
						m(n, opt, v)
						consumed = j + 1 - i
					}
				}
			case "owner":
				kind := at(i + 1)
				if (kind == "UID" || kind == "GID") && at(i+2) == "match" {
					j := i + 3
					n := neg
					if at(j) == "!" {
						n, j = true, j+1
					}
					if v := at(j); v != "" {
						m(false, "-m", "owner")
						opt := "--uid-owner"
						if kind == "GID" {
							opt = "--gid-owner"
						}
						m(n, opt, v)
						consumed = j + 1 - i
					}
				}
			case "reject-with":
				if v := at(i + 1); v != "" && target == TargetReject {
					t(false, "--reject-with", v)
					consumed = 2
				}
			case "masq", "redir":
				if (x.text == "masq" && at(i+1) == "ports:") || (x.text == "redir" && at(i+1) == "ports") {
					if v := at(i + 2); v != "" {
						t(false, "--to-ports", v)
						consumed = 3
					}
				}
			case "random", "random-fully", "persistent":
				if target == TargetDNAT || target == TargetSNAT || target == TargetMasquerade || target == TargetRedirect {
					t(false, natFlagOption(x.text))
					consumed = 1
				}
			case "MARK", "CONNMARK":
				if Target(x.text) == target {
					if v, ok := xmark(at(i+1), at(i+2)); ok {
						t(false, "--set-xmark", v)
						consumed = 3
					}
				}
			case "CHECKSUM":
				if at(i+1) == "fill" && target == TargetChecksum {
					t(false, "--checksum-fill")
					consumed = 2
				}
			case "TCPMSS":
				if at(i+1) == "clamp" && at(i+2) == "to" && at(i+3) == "PMTU" {
					t(false, "--clamp-mss-to-pmtu")
					consumed = 4
				} else if at(i+1) == "set" && at(i+2) != "" {
					t(false, "--set-mss", at(i+2))
					consumed = 3
				}
			case "LOG":
				consumed = listLog(w, i, target, ex)
			default:
				if conntrackOption(x.text) != "" {
					// Consecutive ct* keys (each possibly after "!") are one
					// conntrack match.
					j := i
					n := neg
					opts := p.scratch[:0]
					for {
						key := at(j)
						if key == "!" && conntrackOption(at(j+1)) != "" {
							n, j = true, j+1
							key = at(j)
						}
						if conntrackOption(key) == "" || at(j+1) == "" {
							break
						}
						if n {
							opts = append(opts, token{text: "!"})
						}
						opts = append(opts, token{text: conntrackOption(key)}, token{text: at(j + 1)})
						n = false
						j += 2
					}
					if len(opts) > 0 {
						m(false, "-m", "conntrack")
						ex.matches = append(ex.matches, opts...)
						p.scratch = opts
						consumed = j - i
						neg = false
					}
				} else if strings.HasPrefix(x.text, "to:") && len(x.text) > 3 {
					opt := ""
					switch target {
					case TargetDNAT:
						opt = "--to-destination"
					case TargetSNAT:
						opt = "--to-source"
					}
					if opt != "" {
						t(false, opt, x.text[3:])
						consumed = 1
					}
				}
			}
		}
		if consumed == 0 {
			if neg {
				ex.unknown = append(ex.unknown, "!")
				neg = false
			}
			ex.unknown = append(ex.unknown, w[start].raw)
			i = start + 1
			continue
		}
		neg = false
		i = start + consumed
	}
	if neg {
		ex.unknown = append(ex.unknown, "!")
	}
	return ex
}

// listRecent converts "recent: CHECK seconds: 60 hit_count: 4 name: SSH
// side: source mask: 255.255.255.255" into the order iptables-save prints
// (--rcheck --seconds 60 --hitcount 4 --name SSH --mask ... --rsource). It
// returns the number of words used, 0 if it does not understand them.
func listRecent(w []xword, i int, neg bool, ex *listExtras) int {
	at := func(i int) string {
		if i < len(w) && !w[i].comment {
			return w[i].text
		}
		return ""
	}
	j := i + 1
	if at(j) == "!" {
		neg, j = true, j+1
	}
	var mode string
	switch at(j) {
	case "SET":
		mode = "--set"
	case "CHECK":
		mode = "--rcheck"
	case "UPDATE":
		mode = "--update"
	case "REMOVE":
		mode = "--remove"
	default:
		return 0
	}
	j++
	var seconds, hit, name, mask, side string
	var reap, ttl bool
loop:
	for j < len(w) {
		switch at(j) {
		case "seconds:":
			seconds = at(j + 1)
		case "hit_count:":
			hit = at(j + 1)
		case "name:":
			name = at(j + 1)
		case "mask:":
			mask = at(j + 1)
		case "side:":
			switch at(j + 1) {
			case "source":
				side = "--rsource"
			case "dest":
				side = "--rdest"
			default:
				return 0
			}
		case "reap":
			reap = true
			j++
			continue
		case "TTL-Match":
			ttl = true
			j++
			continue
		default:
			break loop
		}
		if at(j+1) == "" {
			return 0
		}
		j += 2
	}
	if neg {
		ex.matches = append(ex.matches, token{text: "!"})
	}
	add := func(ws ...string) {
		for _, x := range ws {
			ex.matches = append(ex.matches, token{text: x})
		}
	}
	add("-m", "recent", mode)
	if seconds != "" {
		add("--seconds", seconds)
	}
	if reap {
		add("--reap")
	}
	if hit != "" {
		add("--hitcount", hit)
	}
	if ttl {
		add("--rttl")
	}
	if name != "" {
		add("--name", name)
	}
	if mask != "" {
		add("--mask", mask)
	}
	if side != "" {
		add(side)
	}
	return j - i
}

// listLog converts "LOG flags 10 level 6 prefix "dropped "" into
// --log-prefix "dropped " --log-level 6 --log-tcp-options --log-uid, as
// iptables-save prints it: level 4 (warning) is the default and omitted.
func listLog(w []xword, i int, target Target, ex *listExtras) int {
	if target != TargetLog {
		return 0
	}
	at := func(i int) string {
		if i < len(w) && !w[i].comment {
			return w[i].text
		}
		return ""
	}
	j := i + 1
	var flags uint64
	if at(j) == "flags" {
		f, err := strconv.ParseUint(at(j+1), 10, 8)
		if err != nil {
			return 0
		}
		flags, j = f, j+2
	}
	level := ""
	if at(j) == "level" && at(j+1) != "" {
		level = at(j + 1)
		if n, ok := logLevels[level]; ok {
			level = n
		}
		j += 2
	}
	var prefix *xword
	if at(j) == "prefix" && j+1 < len(w) && w[j+1].quoted {
		prefix = &w[j+1]
		j += 2
	}
	if prefix != nil {
		ex.targetOpts = append(ex.targetOpts, token{text: "--log-prefix"}, token{text: prefix.text, quoted: true})
	}
	if level != "" && level != "4" {
		ex.targetOpts = append(ex.targetOpts, token{text: "--log-level"}, token{text: level})
	}
	for _, f := range logFlagOptions {
		if flags&f.bit != 0 {
			ex.targetOpts = append(ex.targetOpts, token{text: f.name})
		}
	}
	return j - i
}

// logFlagOptions are the LOG flag bits and their save options, in
// iptables-save's order.
var logFlagOptions = [...]struct {
	bit  uint64
	name string
}{{0x01, "--log-tcp-sequence"}, {0x02, "--log-tcp-options"}, {0x04, "--log-ip-options"}, {0x08, "--log-uid"}, {0x20, "--log-macdecode"}}

// multiportOption is the save option of a multiport direction word
// ("dports", "sports" or "ports").
func multiportOption(dir string) string {
	switch dir {
	case "dports":
		return "--dports"
	case "sports":
		return "--sports"
	}
	return "--ports"
}

// addrtypeOption is the save option of an addrtype key ("src-type" or
// "dst-type").
func addrtypeOption(k string) string {
	if k == "src-type" {
		return "--src-type"
	}
	return "--dst-type"
}

// natFlagOption is the save option of a NAT flag word ("random",
// "random-fully" or "persistent").
func natFlagOption(w string) string {
	switch w {
	case "random":
		return "--random"
	case "random-fully":
		return "--random-fully"
	}
	return "--persistent"
}
