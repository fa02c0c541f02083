package parse

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseSave parses iptables-save or ip6tables-save output (also
// iptables-restore input), with or without -c counters, from either the nft
// or the legacy backend, holding any of the known tables.
//
// The input must be UTF-8 text. Lines end with LF or, as in a dump pasted
// from Windows, CRLF: the model is the same either way (Rule.Raw never
// holds the "\r"; Ruleset.CRLF is set). Every line is kept with its own
// ending, so Ruleset.WriteSave gives the input back byte for byte: comment
// and blank lines before a "*table" header belong to that table, lines
// after the last COMMIT go to Ruleset.Trailer. A line longer than MaxLine
// is refused.
//
// Accepted inside a table, besides "#" comments and blank lines:
//
//	:CHAIN POLICY [packets:bytes]      policy "-" for user chains; counters optional
//	[packets:bytes] -A CHAIN spec...   counters optional; --append too
//	-I CHAIN [rulenum] spec...         insert at rulenum (default 1); --insert too
//	COMMIT
//
// A rule may name a built-in chain of its table that was not declared (as
// iptables-restore allows: the kernel always has it); any other chain must
// be declared before its first rule.
//
// ParseSave never panics. It returns ErrEmpty when the input holds no table
// and an *Error naming the line for anything else it cannot read: binary
// data, lines longer than MaxLine, unknown or duplicate tables, chains declared
// twice, rules outside a table or on undeclared chains, other commands
// (-N, -D, -F, ...), unterminated quotes, missing option values, content
// after COMMIT that is neither a comment nor a new table, and a table
// without COMMIT (a truncated dump).
func ParseSave(data []byte) (*Ruleset, error) {
	if err := checkText(data); err != nil {
		return nil, err
	}
	// One copy of the whole input: every Rule.Raw, chain name and token is
	// a substring of it, so lines cost no further copies.
	return parseSaveText(string(data))
}

// parseSaveText is ParseSave of checked text.
func parseSaveText(s string) (*Ruleset, error) {
	p := &saveParser{
		rs:    &Ruleset{Format: FormatSave},
		lines: make([]bodyLine, 0, strings.Count(s, "\n")+1),
	}
	if err := p.run(s); err != nil {
		return nil, err
	}
	if len(p.rs.Tables) == 0 {
		return nil, ErrEmpty
	}
	return p.rs, nil
}

// checkText rejects input that is not text: NUL bytes or invalid UTF-8.
// Both whole-input scans are fast (vectorised IndexByte, ASCII fast path in
// utf8.Valid); the line is only searched for when something is wrong.
func checkText(data []byte) error {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		n, line := lineAt(data, i)
		return newError(n, line, "binary data (NUL byte) in input; expected iptables-save text")
	}
	if utf8.Valid(data) {
		return nil
	}
	for n, rest := 1, data; len(rest) > 0; n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if !utf8.Valid(line) {
			return newError(n, line, "binary data (invalid UTF-8) in input; expected iptables-save text")
		}
	}
	return nil // unreachable: some line is invalid
}

// lineAt returns the 1-based number and the text of the line holding byte
// offset off.
func lineAt(data []byte, off int) (int, []byte) {
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	end := len(data)
	if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
		end = off + i
	}
	return bytes.Count(data[:start], []byte{'\n'}) + 1, data[start:end]
}

// saveParser holds the state of one ParseSave call.
type saveParser struct {
	rs *Ruleset
	// lines holds every line read so far, in order; each table's lines
	// are a sub-slice of it (one allocation for the whole input).
	lines []bodyLine
	// start is the index in lines where the next table's lines begin
	// (just after the previous COMMIT).
	start int

	table  *Table // open table, nil between COMMIT and the next header
	commit bool   // the line just read is the open table's COMMIT
	chains map[ChainName]*Chain
	last   *Chain  // chain of the previous rule in the open table
	toks   []token // token buffer reused for every rule (tokens are substrings of the input)
	arena  arena   // slices of all rules
	// tableSeen tracks tables already read, to reject duplicates.
	tableSeen map[TableName]int

	// Slabs: rules and counters are allocated in chunks, not one by one.
	ruleSlab []Rule
	ctrSlab  []Counters
}

const slabSize = 256

func (p *saveParser) newRule() *Rule {
	if len(p.ruleSlab) == 0 {
		p.ruleSlab = make([]Rule, slabSize)
	}
	r := &p.ruleSlab[0]
	p.ruleSlab = p.ruleSlab[1:]
	return r
}

func (p *saveParser) newCounters(c Counters) *Counters {
	if len(p.ctrSlab) == 0 {
		p.ctrSlab = make([]Counters, slabSize)
	}
	ctr := &p.ctrSlab[0]
	p.ctrSlab = p.ctrSlab[1:]
	*ctr = c
	return ctr
}

func (p *saveParser) run(s string) error {
	n := 0
	lastLine := ""
	for pos := 0; pos < len(s); {
		n++
		var raw, line string
		if i := strings.IndexByte(s[pos:], '\n'); i >= 0 {
			raw, line = s[pos:pos+i+1], s[pos:pos+i]
			pos += i + 1
		} else {
			raw, line = s[pos:], s[pos:]
			pos = len(s)
		}
		if len(line) > MaxLine {
			return longLine(n, line)
		}
		if l := len(line); l > 0 && line[l-1] == '\r' {
			line = line[:l-1]
			p.rs.CRLF = true
		}
		lastLine = line
		bl := bodyLine{raw: raw}
		if err := p.line(n, line, &bl); err != nil {
			return err
		}
		p.lines = append(p.lines, bl)
		if p.commit {
			// The table's lines run from just after the previous COMMIT
			// (its leading comments) to this COMMIT.
			p.table.lines = p.lines[p.start:len(p.lines):len(p.lines)]
			p.start = len(p.lines)
			p.table, p.chains, p.last, p.commit = nil, nil, nil, false
		}
	}
	if p.table != nil {
		return newError(n, []byte(lastLine),
			"input ends inside table %q (started at line %d) without COMMIT: truncated dump?",
			p.table.Name, p.table.Line)
	}
	for _, bl := range p.lines[p.start:] {
		p.rs.Trailer = append(p.rs.Trailer, bl.raw)
	}
	for _, t := range p.rs.Tables {
		for _, c := range t.Chains {
			for i, r := range c.Rules {
				r.Position = i + 1
			}
		}
	}
	return nil
}

// line reads one line (without its "\n") numbered n.
func (p *saveParser) line(n int, line string, bl *bodyLine) error {
	body := trimSpace(line)
	if body == "" || body[0] == '#' {
		return nil
	}
	if p.table == nil {
		switch {
		case body[0] == '*':
			return p.header(n, line, body)
		case len(p.rs.Tables) > 0:
			return newError(n, []byte(line), "unexpected content after COMMIT; expected a comment or a new *table")
		case body[0] == ':':
			return newError(n, []byte(line), "chain declared before any *table header")
		case body[0] == '-' || body[0] == '[':
			return newError(n, []byte(line), "rule before any *table header")
		default:
			return newError(n, []byte(line), "not iptables-save text: expected a *table header")
		}
	}
	switch body[0] {
	case ':':
		c, err := p.chainLine(n, line, body)
		bl.chain = c
		return err
	case '-', '[':
		r, err := p.ruleLine(n, line, body)
		bl.rule = r
		return err
	case '*':
		return newError(n, []byte(line), "table %q (line %d) not closed with COMMIT before a new table", p.table.Name, p.table.Line)
	}
	if body == "COMMIT" {
		p.commit = true
		return nil
	}
	return newError(n, []byte(line), "unexpected line in table %q; expected a chain, a rule or COMMIT", p.table.Name)
}

// header opens a table at a "*name" line. The table's lines start with the
// comments and blank lines since the previous COMMIT.
func (p *saveParser) header(n int, line, body string) error {
	name, rest := nextField(body[1:])
	if rest != "" {
		return newError(n, []byte(line), "unexpected text after table name")
	}
	tn := TableName(name)
	if !tn.IsKnown() {
		return newError(n, []byte(line), "unknown table %q; expected one of raw, mangle, nat, filter, security", name)
	}
	if first, dup := p.tableSeen[tn]; dup {
		return newError(n, []byte(line), "table %q appears twice (first at line %d)", name, first)
	}
	if p.tableSeen == nil {
		p.tableSeen = make(map[TableName]int, len(KnownTables))
	}
	p.tableSeen[tn] = n
	p.table = &Table{Name: tn, Line: n}
	p.chains = make(map[ChainName]*Chain, 16)
	p.rs.Tables = append(p.rs.Tables, p.table)
	return nil
}

// chainLine reads ":NAME POLICY [packets:bytes]".
func (p *saveParser) chainLine(n int, line, body string) (*Chain, error) {
	name, rest := nextField(body[1:])
	policy, rest := nextField(rest)
	ctrs, rest := nextField(rest)
	if name == "" {
		return nil, newError(n, []byte(line), "chain declaration without a name")
	}
	if policy == "" {
		return nil, newError(n, []byte(line), "chain %q declared without a policy (\"-\" for a user chain)", name)
	}
	if rest != "" {
		return nil, newError(n, []byte(line), "unexpected text after chain counters")
	}
	cn := ChainName(name)
	if old, dup := p.chains[cn]; dup {
		return nil, newError(n, []byte(line), "chain %q declared twice (first at line %d)", name, old.Line)
	}
	c := &Chain{Name: cn, Builtin: cn.IsBuiltin(p.table.Name), References: -1, Line: n}
	switch {
	case policy == "-":
	case !c.Builtin:
		return nil, newError(n, []byte(line), "user chain %q cannot have policy %s (only built-in chains of table %q have one)", name, policy, p.table.Name)
	case policy == "ACCEPT" || policy == "DROP":
		c.Policy = Target(policy)
	default:
		return nil, newError(n, []byte(line), "bad policy %q for chain %q; expected ACCEPT or DROP", policy, name)
	}
	if ctrs != "" {
		ct, ok := parseCounters(ctrs)
		if !ok {
			return nil, newError(n, []byte(line), "bad counters %q; expected [packets:bytes]", ctrs)
		}
		c.Counters = p.newCounters(ct)
	}
	p.chains[cn] = c
	p.table.Chains = append(p.table.Chains, c)
	return c, nil
}

// ruleLine reads "[p:b] -A CHAIN spec" or "-I CHAIN [n] spec".
func (p *saveParser) ruleLine(n int, line, body string) (*Rule, error) {
	r := p.newRule()
	r.Table, r.Raw, r.Line = p.table.Name, line, n
	cmd, rest := nextField(body)
	if cmd[0] == '[' {
		ct, ok := parseCounters(cmd)
		if !ok {
			return nil, newError(n, []byte(line), "bad counters %q; expected [packets:bytes]", cmd)
		}
		r.Counters = p.newCounters(ct)
		cmd, rest = nextField(rest)
	}
	insert := false
	switch cmd {
	case "-A", "--append":
	case "-I", "--insert":
		insert = true
	case "":
		return nil, newError(n, []byte(line), "counters without a rule")
	default:
		if cmd[0] == '-' {
			return nil, newError(n, []byte(line), "unsupported command %s; a dump holds only -A (or -I) rules", cmd)
		}
		return nil, newError(n, []byte(line), "unexpected %q; expected -A CHAIN", cmd)
	}
	name, rest := nextField(rest)
	if name == "" {
		return nil, newError(n, []byte(line), "%s without a chain name", cmd)
	}
	r.Chain = ChainName(name)
	// Rules of one chain come together: skip the map lookup then.
	c := p.last
	if c == nil || c.Name != r.Chain {
		c = p.chains[r.Chain]
	}
	if c == nil {
		if !r.Chain.IsBuiltin(p.table.Name) {
			return nil, newError(n, []byte(line), "rule for chain %q, which table %q does not declare", name, p.table.Name)
		}
		// iptables-restore accepts rules on undeclared built-in chains.
		c = &Chain{Name: r.Chain, Builtin: true, References: -1, Line: n}
		p.chains[r.Chain] = c
		p.table.Chains = append(p.table.Chains, c)
	}
	at := len(c.Rules) // index to insert at
	if insert {
		at = 0
		if num, after := nextField(rest); num != "" && isDigits(num) {
			v, err := strconv.Atoi(num)
			if err != nil || v < 1 || v > len(c.Rules)+1 {
				return nil, newError(n, []byte(line), "cannot insert at position %s of chain %q holding %d rules", num, name, len(c.Rules))
			}
			at, rest = v-1, after
		}
	}
	toks, err := tokenizeAppend(p.toks[:0], rest)
	p.toks = toks
	if err != nil {
		return nil, newError(n, []byte(line), "%v", err)
	}
	if err := parseRuleTokensIn(&p.arena, r, toks); err != nil {
		return nil, newError(n, []byte(line), "%v", err)
	}
	p.last = c
	if at == len(c.Rules) {
		c.Rules = append(c.Rules, r)
	} else {
		c.Rules = append(c.Rules, nil)
		copy(c.Rules[at+1:], c.Rules[at:])
		c.Rules[at] = r
	}
	return r, nil
}

// parseCounters reads "[packets:bytes]" without allocating.
func parseCounters(s string) (Counters, bool) {
	if len(s) < 5 || s[0] != '[' || s[len(s)-1] != ']' {
		return Counters{}, false
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return Counters{}, false
	}
	pk, ok1 := parseUint(s[1:colon])
	by, ok2 := parseUint(s[colon+1 : len(s)-1])
	return Counters{Packets: pk, Bytes: by}, ok1 && ok2
}

// parseUint reads a decimal uint64; strconv.ParseUint would allocate its
// error on the (rare) failure path only, but this is simpler to inline.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// nextField returns the first space- or tab-separated field of s and what
// follows it, with leading blanks removed from both.
func nextField(s string) (field, rest string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	field = s[i:j]
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	return field, s[j:]
}

// trimSpace removes leading and trailing blanks (spaces, tabs).
func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}
