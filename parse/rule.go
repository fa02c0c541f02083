package parse

import (
	"errors"
	"strconv"
	"strings"
)

// token is one word of a rule line. Quoted tokens ("a b") are unquoted and
// marked, so that a quoted "-x" is never taken for an option.
type token struct {
	text   string
	quoted bool
}

var errUnterminatedQuote = errors.New("unterminated quote")

// tokenize splits a rule line the way iptables-restore does: on spaces and
// tabs, with double-quoted strings (in which a backslash escapes the next
// character) kept as one token.
func tokenize(s string) ([]token, error) {
	return tokenizeAppend(make([]token, 0, 16), s)
}

func tokenizeAppend(toks []token, s string) ([]token, error) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		if c == '"' {
			i++
			start := i
			escaped := false
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					escaped = true
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				i++
			}
			if !closed {
				return nil, errUnterminatedQuote
			}
			text := s[start:i]
			i++
			if escaped {
				var b strings.Builder
				for k := 0; k < len(text); k++ {
					if text[k] == '\\' && k+1 < len(text) {
						k++
					}
					b.WriteByte(text[k])
				}
				text = b.String()
			}
			toks = append(toks, token{text: text, quoted: true})
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		toks = append(toks, token{text: s[i:j]})
		i = j
	}
	return toks, nil
}

// isOption reports whether a token starts an option ("-x" or "--xyz").
func (t token) isOption() bool {
	return !t.quoted && len(t.text) > 1 && t.text[0] == '-' && !isNumberish(t.text)
}

// isNumberish is true for "-1" style negative numbers, which are values.
func isNumberish(s string) bool {
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (t token) isBang() bool { return !t.quoted && t.text == "!" }

// ruleParseError describes a rule whose options cannot be read.
type ruleParseError struct{ msg string }

func (e *ruleParseError) Error() string { return e.msg }

// parseRuleTokens fills r's typed fields from the tokens that follow
// "-A CHAIN" (or "-I CHAIN"). Tokens it cannot place go to r.Unparsed, in
// order; it fails only when an option that needs a value has none.
func parseRuleTokens(r *Rule, toks []token) error {
	return parseRuleTokensIn(nil, r, toks)
}

// arena hands out the slices of many rules from a few large chunks, so
// that parsing a big dump costs a handful of allocations per thousand
// rules instead of several per rule. A nil *arena allocates per call.
// Slices handed out are capped at their size, so appends never overwrite a
// neighbour.
type arena struct {
	m []Match
	o []Option
	v []string
}

const arenaChunk = 4096

func (a *arena) matches(n int) []Match {
	if a == nil {
		return make([]Match, 0, n)
	}
	return take(&a.m, n)
}

func (a *arena) options(n int) []Option {
	if a == nil {
		return make([]Option, 0, n)
	}
	return take(&a.o, n)
}

func (a *arena) values(n int) []string {
	if a == nil {
		return make([]string, 0, n)
	}
	return take(&a.v, n)
}

// take hands out the next n elements of a chunk as an empty slice of
// capacity n, starting a new chunk when the current one is short.
func take[T any](chunk *[]T, n int) []T {
	if cap(*chunk)-len(*chunk) < n {
		*chunk = make([]T, 0, max(arenaChunk, n))
	}
	l := len(*chunk)
	*chunk = (*chunk)[:l+n]
	return (*chunk)[l : l : l+n]
}

// untake gives back to the chunk the unused tail of the n elements the
// last take of it handed out, of which used were filled. Why: take's n is
// an upper bound counted from the tokens (a value slot per token), and
// keeping the bound cost 17 MB at 100,000 rules, a third of their slices.
// Only the last take of a chunk can be given back, and the slices handed
// out are capped, so the next take cannot write into a kept element.
func untake[T any](chunk *[]T, n, used int) {
	if used < n && len(*chunk) >= n {
		*chunk = (*chunk)[:len(*chunk)-(n-used)]
	}
}

// release gives back what parseRuleTokensIn reserved for one rule and did
// not use: nm matches, no options and nv values reserved, of which the
// counts after them were filled (a count past its reservation means the
// slice grew out of the chunk, which then is full).
func (a *arena) release(nm, usedM, no, usedO, nv, usedV int) {
	if a == nil {
		return
	}
	untake(&a.m, nm, min(usedM, nm))
	untake(&a.o, no, min(usedO, no))
	untake(&a.v, nv, min(usedV, nv))
}

// parseRuleTokensIn is parseRuleTokens taking its slices from a.
func parseRuleTokensIn(a *arena, r *Rule, toks []token) error {
	const (
		ctxNone = iota
		ctxMatch
		ctxTarget
	)
	ctx := ctxNone
	negate := false
	var cur *[]Option // options list of the current match or target

	// Allocation budget: the options and values of all matches share one
	// backing array each, handed out in order (a match's options are all
	// read before the next match starts). This keeps a rule at a handful of
	// allocations; clip() cuts the shared capacity off at the end.
	nm, no := 1, 1
	for _, t := range toks {
		if !t.quoted && len(t.text) > 1 && t.text[0] == '-' {
			if t.text == "-m" || t.text == "--match" {
				nm++
			} else if t.text[1] == '-' {
				no++
			}
		}
	}
	nv := max(0, len(toks)-(no-1)-2*(nm-1))
	r.Matches = a.matches(nm)
	optBack := a.options(no)
	valBack := a.values(nv)
	optPos, valPos := 0, 0
	// Give back the unused part of the reservation (on an error too).
	defer func() { a.release(nm, len(r.Matches), no, optPos, nv, valPos) }()
	startOpts := func() []Option {
		if optPos <= cap(optBack) {
			return optBack[optPos:optPos]
		}
		return nil
	}

	takeValue := func(i *int, name string) (string, error) {
		if *i+1 >= len(toks) {
			return "", &ruleParseError{msg: "option " + name + " needs a value"}
		}
		*i++
		return toks[*i].text, nil
	}
	setField := func(f *Negatable, i *int, name string) error {
		v, err := takeValue(i, name)
		if err != nil {
			return err
		}
		neg := negate
		// Old syntax "-s ! 1.2.3.4".
		if v == "!" && !toks[*i].quoted {
			neg = true
			if v, err = takeValue(i, name); err != nil {
				return err
			}
		}
		*f = Negatable{Value: v, Negated: neg}
		negate = false
		return nil
	}

	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.isBang() {
			if negate {
				r.Unparsed = append(r.Unparsed, "!")
			}
			negate = true
			continue
		}
		if !t.isOption() {
			r.Unparsed = append(r.Unparsed, t.text)
			continue
		}
		var err error
		switch t.text {
		case "-s", "--source", "--src":
			err = setField(&r.Source, &i, t.text)
		case "-d", "--destination", "--dst":
			err = setField(&r.Destination, &i, t.text)
		case "-i", "--in-interface":
			err = setField(&r.InIface, &i, t.text)
		case "-o", "--out-interface":
			err = setField(&r.OutIface, &i, t.text)
		case "-p", "--protocol":
			err = setField(&r.Protocol, &i, t.text)
		case "-f", "--fragment":
			r.Fragment = Negatable{Value: "true", Negated: negate}
			negate = false
		case "-c", "--set-counters":
			if i+2 >= len(toks) {
				return &ruleParseError{msg: "option " + t.text + " needs packets and bytes"}
			}
			p, err1 := strconv.ParseUint(toks[i+1].text, 10, 64)
			b, err2 := strconv.ParseUint(toks[i+2].text, 10, 64)
			if err1 != nil || err2 != nil {
				return &ruleParseError{msg: "bad counters after " + t.text}
			}
			r.Counters = &Counters{Packets: p, Bytes: b}
			i += 2
		case "-m", "--match":
			var name string
			if name, err = takeValue(&i, t.text); err == nil {
				if negate {
					r.Unparsed = append(r.Unparsed, "!")
					negate = false
				}
				r.Matches = append(r.Matches, Match{Name: name, Options: startOpts()})
				cur = &r.Matches[len(r.Matches)-1].Options
				ctx = ctxMatch
			}
		case "-j", "--jump", "-g", "--goto":
			var name string
			if name, err = takeValue(&i, t.text); err == nil {
				r.Target = Target(name)
				r.Goto = t.text == "-g" || t.text == "--goto"
				r.TargetOptions = startOpts()
				cur = &r.TargetOptions
				ctx = ctxTarget
			}
		default:
			if ctx == ctxNone {
				// "-p tcp --dport 80" without "-m tcp": an implicit match.
				if !r.Protocol.IsZero() && (strings.HasPrefix(t.text, "--") || t.text == "-h") {
					r.Matches = append(r.Matches, Match{Name: r.Protocol.Value, Implicit: true, Options: startOpts()})
					cur = &r.Matches[len(r.Matches)-1].Options
					ctx = ctxMatch
				} else {
					if negate {
						r.Unparsed = append(r.Unparsed, "!")
						negate = false
					}
					r.Unparsed = append(r.Unparsed, t.text)
					continue
				}
			}
			opt := Option{Name: strings.TrimLeft(t.text, "-"), Negated: negate}
			if valPos <= cap(valBack) {
				opt.Values = valBack[valPos:valPos]
			}
			negate = false
			for i+1 < len(toks) {
				n := toks[i+1]
				if n.isOption() {
					break
				}
				if n.isBang() {
					// Old syntax "--dport ! 80" negates the option itself;
					// otherwise "!" belongs to the next option.
					if len(opt.Values) == 0 && i+2 < len(toks) && !toks[i+2].isOption() && !toks[i+2].isBang() {
						opt.Negated = true
						i++
						continue
					}
					break
				}
				opt.Values = append(opt.Values, n.text)
				valPos++
				i++
			}
			*cur = append(*cur, opt)
			optPos++
		}
		if err != nil {
			return err
		}
	}
	if negate {
		r.Unparsed = append(r.Unparsed, "!")
	}
	clip(r)
	return nil
}

// clip cuts the shared backing arrays to each slice's length (so that an
// append by a caller cannot overwrite a neighbour) and makes empty slices
// nil.
func clip(r *Rule) {
	clipOpts := func(os []Option) []Option {
		if len(os) == 0 {
			return nil
		}
		os = os[:len(os):len(os)]
		for i := range os {
			if len(os[i].Values) == 0 {
				os[i].Values = nil
			} else {
				os[i].Values = os[i].Values[:len(os[i].Values):len(os[i].Values)]
			}
		}
		return os
	}
	if len(r.Matches) == 0 {
		r.Matches = nil
	}
	for i := range r.Matches {
		r.Matches[i].Options = clipOpts(r.Matches[i].Options)
	}
	r.TargetOptions = clipOpts(r.TargetOptions)
}

// needsQuote reports whether a save line holds v quoted.
func needsQuote(v string) bool {
	// A value that reads as an option or a negation ("-s", "!") came
	// quoted; keep it quoted so that it parses back as a value.
	looksLikeOption := v == "!" || len(v) > 1 && v[0] == '-' && !isNumberish(v)
	return v == "" || looksLikeOption || strings.ContainsAny(v, " \t\"\\'")
}

// appendQuote appends v to b as a save line holds it, quoted when
// iptables-save would quote it (spaces, quotes, backslashes, or empty).
func appendQuote(b []byte, v string) []byte {
	if !needsQuote(v) {
		return append(b, v...)
	}
	return appendQuoted(b, v)
}

// appendQuoted appends v double-quoted with " and \ backslash-escaped.
func appendQuoted(b []byte, v string) []byte {
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

// Spec renders the rule's match and target part (everything after
// "-A CHAIN ") from its typed fields, in iptables-save's order: -s, -d,
// -i, -o, -p, -f, matches, target. Unparsed tokens come last. For a rule
// parsed from an unmodified iptables-save line, Spec reproduces that line's
// text after the chain name.
func (r *Rule) Spec() string {
	// Why a buffer on the stack: Spec is called for expected rules and
	// rules in evidence on every doctor run; rendering into it costs the
	// result's one allocation, as a strings.Builder sized from Raw did.
	var buf [256]byte
	return string(r.AppendSpec(buf[:0]))
}

// AppendSpec appends Spec() to b and returns the extended buffer. With a
// reused buffer it renders without allocating: Compare renders every rule
// of Docker's chains (100,000 on a 33,000-port host) only to compare it.
func (r *Rule) AppendSpec(b []byte) []byte {
	start := len(b)
	sep := func(b []byte) []byte {
		if len(b) > start {
			return append(b, ' ')
		}
		return b
	}
	field := func(b []byte, flag string, n Negatable) []byte {
		if n.IsZero() {
			return b
		}
		b = sep(b)
		if n.Negated {
			b = append(b, "! "...)
		}
		b = append(b, flag...)
		b = append(b, ' ')
		return appendQuote(b, n.Value)
	}
	opts := func(b []byte, os []Option) []byte {
		for _, o := range os {
			if o.Negated {
				b = sep(b)
				b = append(b, '!')
			}
			b = sep(b)
			b = append(b, "--"...)
			b = append(b, o.Name...)
			for _, v := range o.Values {
				b = sep(b)
				if savesQuoted[o.Name] {
					b = appendSaveString(b, v)
				} else {
					b = appendQuote(b, v)
				}
			}
		}
		return b
	}
	b = field(b, "-s", r.Source)
	b = field(b, "-d", r.Destination)
	b = field(b, "-i", r.InIface)
	b = field(b, "-o", r.OutIface)
	b = field(b, "-p", r.Protocol)
	if !r.Fragment.IsZero() {
		if r.Fragment.Negated {
			b = sep(b)
			b = append(b, '!')
		}
		b = sep(b)
		b = append(b, "-f"...)
	}
	for _, m := range r.Matches {
		if !m.Implicit {
			b = sep(b)
			b = append(b, "-m "...)
			b = append(b, m.Name...)
		}
		b = opts(b, m.Options)
	}
	if r.Target != "" {
		b = sep(b)
		if r.Goto {
			b = append(b, "-g "...)
		} else {
			b = append(b, "-j "...)
		}
		b = append(b, r.Target...)
		b = opts(b, r.TargetOptions)
	}
	for _, u := range r.Unparsed {
		b = sep(b)
		b = appendQuote(b, u)
	}
	return b
}

// RawSpec returns Spec() as a substring of Raw when Raw ends with it (a
// rule of an unmodified iptables-save line does), rendering into buf,
// which it returns for reuse; ok is false otherwise (a rule of -L text,
// one written in another order or quoting). A caller that keeps the Spec
// of many rules then holds no second copy of their text.
func (r *Rule) RawSpec(buf []byte) (spec string, ok bool, _ []byte) {
	buf = r.AppendSpec(buf[:0])
	n := len(r.Raw) - len(buf)
	if n < 0 || r.Raw[n:] != string(buf) { // compared without a copy
		return "", false, buf
	}
	return r.Raw[n:], true, buf
}

// SaveLine renders the rule as an iptables-save line ("-A CHAIN ..."),
// with a "[packets:bytes] " prefix when withCounters is set and the rule
// has exact counters. Approximate counters (iptables -L -v without -x
// rounds to 12K) get no prefix: printed as [12000:...] they would read as
// exact.
func (r *Rule) SaveLine(withCounters bool) string {
	var b strings.Builder
	if withCounters && r.Counters != nil && !r.Counters.Approximate {
		b.WriteByte('[')
		b.WriteString(strconv.FormatUint(r.Counters.Packets, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(r.Counters.Bytes, 10))
		b.WriteString("] ")
	}
	b.WriteString("-A ")
	b.WriteString(string(r.Chain))
	if spec := r.Spec(); spec != "" {
		b.WriteByte(' ')
		b.WriteString(spec)
	}
	return b.String()
}

// ParseRuleSpec parses the part of a rule after "-A CHAIN" into a Rule of
// the given table and chain (no position, line or counters). It is the
// inverse of Rule.Spec and is how other packages build rules from text.
func ParseRuleSpec(table TableName, chain ChainName, spec string) (*Rule, error) {
	toks, err := tokenize(spec)
	if err != nil {
		return nil, err
	}
	r := &Rule{Table: table, Chain: chain, Raw: "-A " + string(chain) + " " + spec}
	if err := parseRuleTokens(r, toks); err != nil {
		return nil, err
	}
	return r, nil
}

// SpecParser parses many rule specs (ParseRuleSpec) with few
// allocations: the rules and their slices come from shared chunks and the
// tokenizer's buffer is reused. Rules it returns stay valid after later
// calls; their Raw is the spec. The zero value is ready to use; not safe
// for concurrent use.
type SpecParser struct {
	a     arena
	toks  []token
	rules []Rule
}

// Parse is ParseRuleSpec.
func (p *SpecParser) Parse(table TableName, chain ChainName, spec string) (*Rule, error) {
	toks, err := tokenizeAppend(p.toks[:0], spec)
	if err != nil {
		return nil, err
	}
	p.toks = toks
	r := take(&p.rules, 1)[:1]
	// Raw is the spec itself, not "-A CHAIN spec": the rule was never a
	// line of a dump, and the copy cost 10 MB at 100,000 rules.
	r[0] = Rule{Table: table, Chain: chain, Raw: spec}
	if err := parseRuleTokensIn(&p.a, &r[0], toks); err != nil {
		return nil, err
	}
	return &r[0], nil
}

// savesQuoted are the options whose value iptables prints with
// xtables_save_string (libxtables), which quotes unless the value is
// non-empty and only [A-Za-z0-9_-].
var savesQuoted = map[string]bool{
	"comment": true, "log-prefix": true, "nflog-prefix": true, "ulog-prefix": true,
	"helper": true, "nfacct-name": true,
}

// appendSaveString appends v as xtables_save_string renders it: bare
// when it is non-empty and only [A-Za-z0-9_-], else double-quoted with ",
// \ and ' backslash-escaped.
func appendSaveString(b []byte, v string) []byte {
	plain := v != ""
	for i := 0; i < len(v) && plain; i++ {
		c := v[i]
		plain = c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if plain {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' || v[i] == '\'' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}
