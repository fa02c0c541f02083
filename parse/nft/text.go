package nft

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Text is the rule as `nft list ruleset` prints it, counters with their
// values: `iifname != "docker0" tcp dport 8080 counter packets 3 bytes 180
// dnat to 172.17.0.2:80 comment "DNAT"`.
func (r *Rule) Text() string { return r.text(true) }

// Spec is the rule as one writes it for `nft -f` (and as Docker writes
// it): Text with bare `counter`s. Two rules with the same Spec do the same
// thing; handles and counters aside, it is how rules are compared.
func (r *Rule) Spec() string { return r.text(false) }

func (r *Rule) text(counters bool) string {
	parts := make([]string, 0, len(r.Exprs)+1)
	for i := range r.Exprs {
		parts = append(parts, r.Exprs[i].text(counters))
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(parts, " ")
}

// Text prints one expression (counters with values).
func (e *Expr) Text() string { return e.text(true) }

func (e *Expr) text(counters bool) string {
	switch {
	case e.Match != nil:
		m := e.Match
		left := m.Left.text()
		right := m.Right.text()
		switch m.Op {
		case "==", "in", "":
			return left + " " + right
		default:
			return left + " " + m.Op + " " + right
		}
	case e.Verdict != nil:
		return e.Verdict.text()
	case e.VMap != nil:
		if e.VMap.Map != "" {
			return e.VMap.Key.text() + " vmap @" + e.VMap.Map
		}
		parts := make([]string, len(e.VMap.Elements))
		for i, el := range e.VMap.Elements {
			parts[i] = quoteIf(el.Key, quotesValues(e.VMap.Key.Selector)) + " : " + el.Data
		}
		return e.VMap.Key.text() + " vmap { " + strings.Join(parts, ", ") + " }"
	case e.NAT != nil:
		s := string(e.Kind)
		n := e.NAT
		if n.Family != "" {
			s += " " + n.Family
		}
		switch {
		case n.Addr != "" && n.Port != "":
			addr := n.Addr
			if strings.Contains(addr, ":") && !strings.HasPrefix(addr, "[") {
				addr = "[" + addr + "]"
			}
			s += " to " + addr + ":" + n.Port
		case n.Addr != "":
			s += " to " + n.Addr
		case n.Port != "":
			s += " to :" + n.Port
		}
		if len(n.Flags) > 0 {
			s += " " + strings.Join(n.Flags, ",")
		}
		return s
	case e.Counter != nil:
		switch {
		case e.Counter.Name != "":
			return "counter name " + strconv.Quote(e.Counter.Name)
		case counters:
			return fmt.Sprintf("counter packets %d bytes %d", e.Counter.Packets, e.Counter.Bytes)
		default:
			return "counter"
		}
	}
	return genericText(string(e.Kind), e.Raw)
}

// genericText prints an expression the model does not decode: its kind
// and, unless it has no options, its options as compact JSON.
func genericText(kind string, raw []byte) string {
	body := compact(raw)
	prefix := `{"` + kind + `":`
	if strings.HasPrefix(body, prefix) {
		body = strings.TrimSuffix(strings.TrimPrefix(body, prefix), "}")
	}
	if body == "null" || body == "{}" {
		return kind
	}
	if kind == "log" {
		var opts map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &opts) == nil {
			s := "log"
			for _, k := range []string{"prefix", "group", "snaplen", "queue-threshold", "level", "flags"} {
				if v, ok := opts[k]; ok {
					s += " " + k + " " + valueText(v, k == "prefix")
				}
			}
			return s
		}
	}
	if kind == string(KindXT) {
		var typ, name string
		for _, kv := range strings.Split(strings.Trim(body, "{}"), ",") {
			k, v, _ := strings.Cut(kv, ":")
			switch strings.Trim(k, `"`) {
			case "type":
				typ = strings.Trim(v, `"`)
			case "name":
				name = v
			}
		}
		return "xt " + typ + " " + name
	}
	return kind + " " + body
}

func (o Operand) text() string {
	if o.Selector != "" {
		return o.Selector
	}
	return o.Value
}

func (v *Verdict) text() string {
	if v.Target != "" {
		return v.Kind + " " + v.Target
	}
	return v.Kind
}

func quoteIf(s string, q bool) string {
	if q {
		return strconv.Quote(s)
	}
	return s
}

// PriorityText prints a base chain's priority as nft does: the standard
// name where the family and hook allow it ("filter", "dstnat", "srcnat",
// "raw", "mangle", "security"), with an offset of at most 10 ("filter -
// 1"), else the number.
func (c *Chain) PriorityText() string {
	for _, p := range stdPriorities {
		if !stdPriorityFits(p.name, c.Family, c.Hook) {
			continue
		}
		switch off := c.Priority - p.value; {
		case off == 0:
			return p.name
		case off > 0 && off <= 10:
			return fmt.Sprintf("%s + %d", p.name, off)
		case off < 0 && off >= -10:
			return fmt.Sprintf("%s - %d", p.name, -off)
		}
	}
	return strconv.Itoa(c.Priority)
}

// stdPriorityFits: nft (1.0.6) names dstnat only for prerouting, srcnat
// only for postrouting, and no standard name in the bridge
// family (whose values differ).
func stdPriorityFits(name string, family Family, hook string) bool {
	if family == FamilyBridge {
		return false
	}
	switch name {
	case "dstnat":
		return hook == "prerouting"
	case "srcnat":
		return hook == "postrouting"
	}
	return true
}

// Header is a base chain's first line inside its braces, as nft prints
// it: `type filter hook forward priority filter; policy accept;`; "" for
// a regular chain.
func (c *Chain) Header() string {
	if !c.IsBase() {
		return ""
	}
	s := "type " + c.Type + " hook " + c.Hook
	if len(c.Devices) == 1 {
		s += " device " + strconv.Quote(c.Devices[0])
	} else if len(c.Devices) > 1 {
		q := make([]string, len(c.Devices))
		for i, d := range c.Devices {
			q[i] = strconv.Quote(d)
		}
		s += " devices = { " + strings.Join(q, ", ") + " }"
	}
	s += " priority " + c.PriorityText() + ";"
	if c.Policy != "" {
		s += " policy " + c.Policy + ";"
	}
	return s
}

// WriteText prints the ruleset in the format of `nft list ruleset`
// (counters with values). For native tables it gives the same rules and
// chain headers as nft itself; rules with iptables-nft's `xt` stubs print
// as `xt match "NAME"`-like stubs, and set elements one per line.
func (rs *Ruleset) WriteText(w io.Writer) error {
	for _, t := range rs.Tables {
		if err := t.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}

// Text is WriteText into a string.
func (rs *Ruleset) Text() string {
	var b strings.Builder
	_ = rs.WriteText(&b)
	return b.String()
}

// WriteText prints one table as `nft list table` does.
func (t *Table) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.Family, t.Name)
	first := true
	sep := func() {
		if !first {
			b.WriteString("\n")
		}
		first = false
	}
	for _, s := range t.Sets {
		sep()
		kind := "set"
		if s.IsMap {
			kind = "map"
		}
		fmt.Fprintf(&b, "\t%s %s {\n", kind, s.Name)
		if s.IsMap {
			fmt.Fprintf(&b, "\t\ttype %s : %s\n", s.KeyType, s.DataType)
		} else {
			fmt.Fprintf(&b, "\t\ttype %s\n", s.KeyType)
		}
		if len(s.Flags) > 0 {
			fmt.Fprintf(&b, "\t\tflags %s\n", strings.Join(s.Flags, ","))
		}
		if len(s.Elements) > 0 {
			parts := make([]string, len(s.Elements))
			for i, e := range s.Elements {
				parts[i] = quoteIf(e.Key, s.quoteKeys())
				if s.IsMap {
					parts[i] += " : " + e.Data
				}
			}
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(parts, ",\n\t\t\t     "))
		}
		b.WriteString("\t}\n")
	}
	for _, c := range t.Chains {
		sep()
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if h := c.Header(); h != "" {
			fmt.Fprintf(&b, "\t\t%s\n", h)
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.Text())
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
