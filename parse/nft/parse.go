package nft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrNotRuleset is wrapped by Parse's error for a JSON document without an
// "nftables" array.
var ErrNotRuleset = errors.New("not an nft -j ruleset")

// Error is a parse error: the index of the offending object in the
// "nftables" array (-1 for the document itself), its kind and the cause.
type Error struct {
	Index int
	Kind  string
	Err   error
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return "nft json: " + e.Err.Error()
	}
	return fmt.Sprintf("nft json: nftables[%d] (%s): %v", e.Index, e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Parse decodes `nft -j list ruleset` output. Empty input (only white
// space) is an empty ruleset, not an error: that is what a host without
// nft gives. Objects of unknown kinds, and fields the model does not know,
// are kept in Objects and the Raw fields. Errors are *Error.
func Parse(data []byte) (*Ruleset, error) {
	rs := &Ruleset{}
	if len(bytes.TrimSpace(data)) == 0 {
		return rs, nil
	}
	var doc struct {
		Nftables *[]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Index: -1, Err: err}
	}
	if doc.Nftables == nil {
		return nil, &Error{Index: -1, Err: ErrNotRuleset}
	}
	p := parser{rs: rs, tables: map[string]*Table{}, chains: map[string]*Chain{}, sets: map[string]*Set{}}
	for i, raw := range *doc.Nftables {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, &Error{Index: i, Err: err}
		}
		if len(obj) != 1 {
			return nil, &Error{Index: i, Err: fmt.Errorf("object with %d keys, want 1", len(obj))}
		}
		for kind, body := range obj {
			rs.Objects = append(rs.Objects, Object{Kind: kind, Raw: raw})
			if err := p.object(kind, body); err != nil {
				return nil, &Error{Index: i, Kind: kind, Err: err}
			}
		}
	}
	return rs, nil
}

type parser struct {
	rs     *Ruleset
	tables map[string]*Table // family + " " + name
	chains map[string]*Chain // family table chain
	sets   map[string]*Set
}

func (p *parser) table(family Family, name string) *Table {
	k := string(family) + " " + name
	t := p.tables[k]
	if t == nil {
		t = &Table{Family: family, Name: name}
		p.tables[k] = t
		p.rs.Tables = append(p.rs.Tables, t)
	}
	return t
}

func (p *parser) chain(family Family, table, name string) *Chain {
	k := string(family) + " " + table + " " + name
	c := p.chains[k]
	if c == nil {
		c = &Chain{Family: family, Table: table, Name: name}
		p.chains[k] = c
		t := p.table(family, table)
		t.Chains = append(t.Chains, c)
	}
	return c
}

func (p *parser) object(kind string, body json.RawMessage) error {
	switch kind {
	case "metainfo":
		var m struct {
			Version       string `json:"version"`
			SchemaVersion int    `json:"json_schema_version"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		p.rs.Version, p.rs.SchemaVersion = m.Version, m.SchemaVersion
	case "table":
		var m struct {
			Family Family          `json:"family"`
			Name   string          `json:"name"`
			Handle int             `json:"handle"`
			Flags  json.RawMessage `json:"flags"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if m.Name == "" {
			return errors.New("table without a name")
		}
		t := p.table(m.Family, m.Name)
		t.Handle, t.Flags, t.Raw = m.Handle, stringList(m.Flags), body
	case "chain":
		var m struct {
			Family Family          `json:"family"`
			Table  string          `json:"table"`
			Name   string          `json:"name"`
			Handle int             `json:"handle"`
			Type   string          `json:"type"`
			Hook   string          `json:"hook"`
			Prio   json.RawMessage `json:"prio"`
			Policy string          `json:"policy"`
			Dev    json.RawMessage `json:"dev"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if m.Name == "" || m.Table == "" {
			return errors.New("chain without a name or table")
		}
		c := p.chain(m.Family, m.Table, m.Name)
		c.Handle, c.Type, c.Hook, c.Policy, c.Raw = m.Handle, m.Type, m.Hook, m.Policy, body
		c.Devices = stringList(m.Dev)
		if len(m.Prio) > 0 {
			// Numeric in the output of nft list; a name on input.
			var n int
			if err := json.Unmarshal(m.Prio, &n); err == nil {
				c.Priority = n
			} else if v, ok := namedPriority(valueText(m.Prio, false), m.Hook); ok {
				c.Priority = v
			}
		}
	case "rule":
		var m struct {
			Family  Family            `json:"family"`
			Table   string            `json:"table"`
			Chain   string            `json:"chain"`
			Handle  int               `json:"handle"`
			Comment string            `json:"comment"`
			Expr    []json.RawMessage `json:"expr"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if m.Table == "" || m.Chain == "" {
			return errors.New("rule without a table or chain")
		}
		c := p.chain(m.Family, m.Table, m.Chain)
		r := &Rule{Family: m.Family, Table: m.Table, Chain: m.Chain, Handle: m.Handle, Comment: m.Comment, Index: len(c.Rules), Raw: body}
		for i, e := range m.Expr {
			x, err := parseExpr(e)
			if err != nil {
				return fmt.Errorf("rule handle %d, expression %d: %w", m.Handle, i, err)
			}
			r.Exprs = append(r.Exprs, x)
		}
		c.Rules = append(c.Rules, r)
	case "set", "map":
		var m struct {
			Family Family          `json:"family"`
			Table  string          `json:"table"`
			Name   string          `json:"name"`
			Handle int             `json:"handle"`
			Type   json.RawMessage `json:"type"`
			Map    json.RawMessage `json:"map"`
			Flags  json.RawMessage `json:"flags"`
			Elem   json.RawMessage `json:"elem"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if m.Name == "" || m.Table == "" {
			return errors.New("set without a name or table")
		}
		s := &Set{Family: m.Family, Table: m.Table, Name: m.Name, Handle: m.Handle, IsMap: kind == "map",
			KeyType: typeText(m.Type), DataType: typeText(m.Map), Flags: stringList(m.Flags), Raw: body}
		els, err := parseElements(m.Elem, s.quoteKeys())
		if err != nil {
			return err
		}
		s.Elements = els
		t := p.table(m.Family, m.Table)
		t.Sets = append(t.Sets, s)
		p.sets[string(m.Family)+" "+m.Table+" "+m.Name] = s
	case "element":
		// `nft -j list set` style additions to a set listed before.
		var m struct {
			Family Family          `json:"family"`
			Table  string          `json:"table"`
			Name   string          `json:"name"`
			Elem   json.RawMessage `json:"elem"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		s := p.sets[string(m.Family)+" "+m.Table+" "+m.Name]
		if s == nil {
			return nil // kept in Objects only
		}
		els, err := parseElements(m.Elem, s.quoteKeys())
		if err != nil {
			return err
		}
		s.Elements = append(s.Elements, els...)
	}
	return nil
}

// quoteKeys: the set's keys are interface names, which nft prints quoted.
func (s *Set) quoteKeys() bool { return strings.Contains(s.KeyType, "ifname") }

func parseElements(raw json.RawMessage, quote bool) ([]Element, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("elements: %w", err)
	}
	out := make([]Element, 0, len(items))
	for _, it := range items {
		out = append(out, parseElement(it, quote))
	}
	return out, nil
}

// parseElement reads a set element (a value) or a map element ([key, data]).
func parseElement(raw json.RawMessage, quote bool) Element {
	e := Element{Raw: raw}
	var pair []json.RawMessage
	if json.Unmarshal(raw, &pair) == nil && len(pair) == 2 && isMapPair(raw) {
		e.Key = valueText(pair[0], false)
		e.Data = valueText(pair[1], quote)
		if v := parseVerdict(pair[1]); v != nil {
			e.Verdict = v
			e.Data = v.text()
		}
		return e
	}
	e.Key = valueText(raw, false)
	return e
}

// isMapPair: a map element is a two-item array; a set's flag list ("ct
// state" values) never reaches here as an element.
func isMapPair(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '['
}

func parseVerdict(raw json.RawMessage) *Verdict {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) != 1 {
		return nil
	}
	for k, v := range m {
		switch k {
		case "accept", "drop", "return", "continue", "queue":
			return &Verdict{Kind: k}
		case "jump", "goto":
			var t struct {
				Target string `json:"target"`
			}
			if json.Unmarshal(v, &t) != nil {
				return nil
			}
			return &Verdict{Kind: k, Target: t.Target}
		}
	}
	return nil
}

func parseExpr(raw json.RawMessage) (Expr, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Expr{}, err
	}
	if len(m) != 1 {
		return Expr{}, fmt.Errorf("expression with %d keys, want 1", len(m))
	}
	var e Expr
	for k, body := range m {
		e = Expr{Kind: ExprKind(k), Raw: raw}
		switch e.Kind {
		case KindMatch:
			var mm struct {
				Op    string          `json:"op"`
				Left  json.RawMessage `json:"left"`
				Right json.RawMessage `json:"right"`
			}
			if err := json.Unmarshal(body, &mm); err != nil {
				return Expr{}, err
			}
			left := parseOperand(mm.Left, false)
			right := parseOperand(mm.Right, quotesValues(left.Selector))
			if n, err := strconv.ParseUint(right.Value, 10, 32); err == nil && (left.Selector == "meta mark" || left.Selector == "ct mark") {
				right.Value = fmt.Sprintf("0x%08x", n) // nft prints marks in hex
			}
			e.Match = &Match{Op: mm.Op, Left: left, Right: right}
		case KindAccept, KindDrop, KindReturn, KindContinue, KindJump, KindGoto, "queue":
			if v := parseVerdict(raw); v != nil {
				e.Verdict = v
			}
		case KindVMap:
			var mm struct {
				Key  json.RawMessage `json:"key"`
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(body, &mm); err != nil {
				return Expr{}, err
			}
			key := parseOperand(mm.Key, false)
			vm := &VMap{Key: key}
			var name string
			if json.Unmarshal(mm.Data, &name) == nil {
				vm.Map = strings.TrimPrefix(name, "@")
			} else {
				var set struct {
					Set json.RawMessage `json:"set"`
				}
				if json.Unmarshal(mm.Data, &set) == nil && len(set.Set) > 0 {
					els, err := parseElements(set.Set, quotesValues(key.Selector))
					if err != nil {
						return Expr{}, err
					}
					vm.Elements = els
				}
			}
			e.VMap = vm
		case KindDNAT, KindSNAT, KindMasquerade, KindRedirect:
			n := &NAT{}
			if string(body) != "null" {
				var mm struct {
					Family string          `json:"family"`
					Addr   json.RawMessage `json:"addr"`
					Port   json.RawMessage `json:"port"`
					Flags  json.RawMessage `json:"flags"`
				}
				if err := json.Unmarshal(body, &mm); err != nil {
					return Expr{}, err
				}
				n.Family, n.Flags = mm.Family, stringList(mm.Flags)
				if len(mm.Addr) > 0 {
					n.Addr = valueText(mm.Addr, false)
				}
				if len(mm.Port) > 0 {
					n.Port = valueText(mm.Port, false)
				}
			}
			e.NAT = n
		case KindCounter:
			c := &Counter{}
			var name string
			if json.Unmarshal(body, &name) == nil {
				c.Name = name
			} else if string(body) != "null" {
				var mm struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				}
				if err := json.Unmarshal(body, &mm); err != nil {
					return Expr{}, err
				}
				c.Packets, c.Bytes = mm.Packets, mm.Bytes
			}
			e.Counter = c
		}
	}
	return e, nil
}

// quotesValues: nft prints the values matched against these selectors as
// quoted strings.
func quotesValues(selector string) bool {
	switch selector {
	case "iifname", "oifname", "meta ibrname", "meta obrname", "meta ibriport", "meta obriport", "meta sdifname":
		return true
	}
	return false
}

// unqualifiedMeta are the meta keys nft prints without "meta".
var unqualifiedMeta = map[string]bool{"iif": true, "oif": true, "iifname": true, "oifname": true, "iifgroup": true, "oifgroup": true}

// parseOperand reads a match side, a key or an address.
func parseOperand(raw json.RawMessage, quote bool) Operand {
	o := Operand{Raw: raw}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) == nil && len(m) == 1 {
		if sel, ok := selector(m); ok {
			o.Selector = sel
			return o
		}
	}
	o.Value = valueText(raw, quote)
	return o
}

// selector gives nft's words for an expression that reads the packet or
// its metadata; false for a literal (set, prefix, range, ...).
func selector(m map[string]json.RawMessage) (string, bool) {
	for k, body := range m {
		switch k {
		case "meta":
			var mm struct {
				Key string `json:"key"`
			}
			if json.Unmarshal(body, &mm) != nil {
				return "", false
			}
			if unqualifiedMeta[mm.Key] {
				return mm.Key, true
			}
			return "meta " + mm.Key, true
		case "payload":
			var mm struct {
				Protocol string `json:"protocol"`
				Field    string `json:"field"`
				Base     string `json:"base"`
				Offset   int    `json:"offset"`
				Len      int    `json:"len"`
			}
			if json.Unmarshal(body, &mm) != nil {
				return "", false
			}
			if mm.Protocol != "" {
				return mm.Protocol + " " + mm.Field, true
			}
			return fmt.Sprintf("@%s,%d,%d", mm.Base, mm.Offset, mm.Len), true
		case "fib":
			var mm struct {
				Result string          `json:"result"`
				Flags  json.RawMessage `json:"flags"`
			}
			if json.Unmarshal(body, &mm) != nil {
				return "", false
			}
			return "fib " + strings.Join(stringList(mm.Flags), " . ") + " " + mm.Result, true
		case "ct":
			var mm struct {
				Key    string `json:"key"`
				Dir    string `json:"dir"`
				Family string `json:"family"`
			}
			if json.Unmarshal(body, &mm) != nil {
				return "", false
			}
			s := "ct"
			if mm.Dir != "" {
				s += " " + mm.Dir
			}
			if mm.Family != "" {
				s += " " + mm.Family
			}
			return s + " " + mm.Key, true
		case "rt", "socket", "osf", "exthdr", "tcp option", "ipsec", "numgen", "hash", "symhash", "jhash":
			return k + " " + compact(body), true
		}
	}
	return "", false
}

// valueText prints a literal value the way nft does: strings bare (quoted
// when quote), numbers in decimal, prefixes a/n, ranges a-b, sets { a, b },
// flag lists a,b, concatenations a . b. Unknown shapes print as compact
// JSON.
func valueText(raw json.RawMessage, quote bool) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return ""
	}
	switch t[0] {
	case '"':
		var s string
		if json.Unmarshal(t, &s) != nil {
			return string(t)
		}
		if quote {
			return strconv.Quote(s)
		}
		return s
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(t, &items) != nil {
			return string(t)
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = valueText(it, quote)
		}
		return strings.Join(parts, ",")
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(t, &m) != nil || len(m) != 1 {
			return compact(t)
		}
		if sel, ok := selector(m); ok {
			return sel
		}
		if v := parseVerdict(t); v != nil {
			return v.text()
		}
		for k, body := range m {
			switch k {
			case "prefix":
				var p struct {
					Addr json.RawMessage `json:"addr"`
					Len  int             `json:"len"`
				}
				if json.Unmarshal(body, &p) == nil {
					return valueText(p.Addr, false) + "/" + strconv.Itoa(p.Len)
				}
			case "range":
				var r []json.RawMessage
				if json.Unmarshal(body, &r) == nil && len(r) == 2 {
					return valueText(r[0], quote) + "-" + valueText(r[1], quote)
				}
			case "concat":
				var r []json.RawMessage
				if json.Unmarshal(body, &r) == nil {
					parts := make([]string, len(r))
					for i, it := range r {
						parts[i] = valueText(it, quote)
					}
					return strings.Join(parts, " . ")
				}
			case "set":
				var items []json.RawMessage
				if json.Unmarshal(body, &items) != nil {
					// A single element.
					return "{ " + valueText(body, quote) + " }"
				}
				parts := make([]string, len(items))
				for i, it := range items {
					e := parseElement(it, quote)
					if e.Data != "" || e.Verdict != nil {
						parts[i] = valueTextKey(it, quote) + " : " + e.Data
					} else {
						parts[i] = valueText(it, quote)
					}
				}
				return "{ " + strings.Join(parts, ", ") + " }"
			case "elem":
				var el struct {
					Val json.RawMessage `json:"val"`
				}
				if json.Unmarshal(body, &el) == nil {
					return valueText(el.Val, quote)
				}
			case "map":
				var mm struct {
					Key  json.RawMessage `json:"key"`
					Data json.RawMessage `json:"data"`
				}
				if json.Unmarshal(body, &mm) == nil {
					return valueText(mm.Key, false) + " map " + valueText(mm.Data, false)
				}
			}
		}
		return compact(t)
	}
	return string(t) // numbers, true/false, null
}

// valueTextKey prints a map element's key.
func valueTextKey(raw json.RawMessage, quote bool) string {
	var pair []json.RawMessage
	if json.Unmarshal(raw, &pair) == nil && len(pair) == 2 {
		return valueText(pair[0], quote)
	}
	return valueText(raw, quote)
}

func typeText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.Join(stringList(raw), " . ")
}

// stringList reads a string or a list of strings.
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return l
	}
	return []string{compact(raw)}
}

func compact(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// namedPriority gives the value of a standard priority name (with an
// optional "+ N" / "- N" offset) for a hook: what nft accepts on input.
func namedPriority(s, hook string) (int, bool) {
	s = strings.TrimSpace(s)
	name, off := s, 0
	if i := strings.IndexAny(s, "+-"); i > 0 {
		n, err := strconv.Atoi(strings.TrimSpace(s[i+1:]))
		if err != nil {
			return 0, false
		}
		if s[i] == '-' {
			n = -n
		}
		name, off = strings.TrimSpace(s[:i]), n
	}
	for _, p := range stdPriorities {
		if p.name == name {
			return p.value + off, true
		}
	}
	return 0, false
}

var stdPriorities = []struct {
	name  string
	value int
}{{"raw", -300}, {"mangle", -150}, {"dstnat", -100}, {"filter", 0}, {"security", 50}, {"srcnat", 100}}

// Sorted returns the tables ordered by family then name (a stable order
// for output that must not depend on creation order).
func (rs *Ruleset) Sorted() []*Table {
	out := append([]*Table(nil), rs.Tables...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Family != out[j].Family {
			return out[i].Family < out[j].Family
		}
		return out[i].Name < out[j].Name
	})
	return out
}
