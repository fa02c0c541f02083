package repair

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// What a repair writes into Docker's nftables table, parsed back from the
// plan's commands (diagnose/nft_plan.go), and the table as it is, so that
// Apply can write only what is still missing, tell whether Docker changed
// the touched chains and maps, and undo exactly what it added.

// nftCmd is one command of a plan's `nft -f` script.
type nftCmd struct {
	op     diagnose.Op
	verb   string // "add" or "insert"
	object string // "table", "chain", "map", "element", "rule"
	family nft.Family
	// name is the chain (chain, rule) or map (map, element).
	name string
	// position is the handle a rule is placed at ("position N"), 0 when
	// none: insert before it, add after it.
	position int
	// spec is a rule's text after the chain (and position).
	spec string
	// key and target are an element's ("KEY" : jump TARGET).
	key, target string
}

var (
	nftCmdHead  = regexp.MustCompile(`^(add|insert) (table|chain|map|element|rule) (ip|ip6) docker-bridges(?: ([A-Za-z][A-Za-z0-9_.-]*))?(?: (.*))?$`)
	nftPosition = regexp.MustCompile(`^position (\d+) (.*)$`)
	nftElement  = regexp.MustCompile(`^\{ ("(?:[^"\\]|\\.)*") : jump ([A-Za-z][A-Za-z0-9_.-]*) \}$`)
)

// parseNftCmd reads one nftables operation of a plan (already checked by
// ValidatePlan).
func parseNftCmd(op diagnose.Op) (nftCmd, error) {
	m := nftCmdHead.FindStringSubmatch(op.Spec)
	if m == nil {
		return nftCmd{}, fmt.Errorf("not an nftables command a repair writes: %s", op.Spec)
	}
	c := nftCmd{op: op, verb: m[1], object: m[2], family: nft.Family(m[3]), name: m[4]}
	rest := m[5]
	switch c.object {
	case "rule":
		if c.name == "" || rest == "" {
			return nftCmd{}, fmt.Errorf("a rule without chain or body: %s", op.Spec)
		}
		if pm := nftPosition.FindStringSubmatch(rest); pm != nil {
			c.position, _ = strconv.Atoi(pm[1])
			rest = pm[2]
		}
		c.spec = rest
	case "element":
		em := nftElement.FindStringSubmatch(rest)
		if em == nil || c.name == "" {
			return nftCmd{}, fmt.Errorf("an element that is not one verdict-map entry: %s", op.Spec)
		}
		key, err := strconv.Unquote(em[1])
		if err != nil {
			return nftCmd{}, fmt.Errorf("an element key %s: %w", em[1], err)
		}
		c.key, c.target = key, em[2]
	case "chain", "map":
		if c.name == "" {
			return nftCmd{}, fmt.Errorf("a %s without a name: %s", c.object, op.Spec)
		}
	}
	return c, nil
}

// line is the command as written to nft, with position when set.
func (c nftCmd) line() string {
	if c.object != "rule" {
		return c.op.Spec
	}
	pos := ""
	if c.position > 0 {
		pos = fmt.Sprintf(" position %d", c.position)
	}
	return fmt.Sprintf("%s rule %s %s %s%s %s", c.verb, c.family, diagnose.NftDockerTable, c.name, pos, c.spec)
}

// touched names the object whose state decides the command: the table,
// a chain ("chain NAME") or a map ("map NAME").
func (c nftCmd) touched() string {
	switch c.object {
	case "rule", "chain":
		return "chain " + c.name
	case "map", "element":
		return "map " + c.name
	}
	return "table"
}

// nftCmds parses the plan's nftables operations in order.
func nftCmds(p *diagnose.Plan) ([]nftCmd, error) {
	var out []nftCmd
	for _, op := range p.Ops {
		if op.Kind != diagnose.OpNft {
			continue
		}
		c, err := parseNftCmd(op)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// nftFamilies are the families cmds touch, ip first.
func nftFamilies(cmds []nftCmd) []nft.Family {
	var out []nft.Family
	for _, f := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		if slices.ContainsFunc(cmds, func(c nftCmd) bool { return c.family == f }) {
			out = append(out, f)
		}
	}
	return out
}

// nftTables are Docker's tables by family; a nil entry is an absent
// table.
type nftTables map[nft.Family]*nft.Table

// plannedNft is Docker's tables in the snapshot a plan was made from.
func plannedNft(s *snapshot.Snapshot) nftTables {
	if !s.NftRead() {
		return nil
	}
	return nftTables{
		nft.FamilyIP:  s.NftTable(nft.FamilyIP, diagnose.NftDockerTable),
		nft.FamilyIP6: s.NftTable(nft.FamilyIP6, diagnose.NftDockerTable),
	}
}

// objState is a canonical text of one object of a table (handles and
// counters aside): "absent", a chain's header and rule specs in order, a
// map's elements sorted.
func objState(t *nft.Table, obj string) string { return objStateOf(t, obj, false) }

// objStateOf is objState, with each rule's handle when handles is set (a
// chain Docker wrote again with the same rules differs then).
func objStateOf(t *nft.Table, obj string, handles bool) string {
	if t == nil {
		return "absent"
	}
	kind, name, _ := strings.Cut(obj, " ")
	switch kind {
	case "chain":
		c := t.Chain(name)
		if c == nil {
			return "absent"
		}
		parts := []string{c.Header()}
		for _, r := range c.Rules {
			if handles {
				parts = append(parts, fmt.Sprintf("%d %s", r.Handle, r.Spec()))
			} else {
				parts = append(parts, r.Spec())
			}
		}
		return strings.Join(parts, "\n")
	case "map":
		m := t.Set(name)
		if m == nil {
			return "absent"
		}
		var els []string
		for _, e := range m.Elements {
			els = append(els, e.Key+" : "+e.Data)
		}
		slices.Sort(els)
		return strings.Join(els, "\n")
	}
	return "present"
}

// nftChanged reports the first object cmds touch whose state differs
// between a and b ("" when none does), handles and counters aside.
func nftChanged(cmds []nftCmd, a, b nftTables) string { return nftDiffers(cmds, a, b, false) }

// nftRewritten is nftChanged with the rules' handles compared too: two
// reads of the live table where Docker wrote a chain again in between.
func nftRewritten(cmds []nftCmd, a, b nftTables) string { return nftDiffers(cmds, a, b, true) }

func nftDiffers(cmds []nftCmd, a, b nftTables, handles bool) string {
	seen := map[string]bool{}
	for _, c := range cmds {
		k := string(c.family) + " " + c.touched()
		if seen[k] {
			continue
		}
		seen[k] = true
		if objStateOf(a[c.family], c.touched(), handles) != objStateOf(b[c.family], c.touched(), handles) {
			return k
		}
	}
	return ""
}

// nftStillMissing returns the commands whose object is not in live yet
// (the table, a chain, a map, an element pointing where the plan points,
// a rule with the same spec in its chain) and those skipped because it
// is. The first rule appended to a chain that has rules is placed after
// the chain's last rule by handle: if Docker rewrites the chain between
// the read and the write (it flushes and re-populates a chain it changes),
// that handle is gone and nft refuses the whole transaction, so nothing
// is written twice.
func nftStillMissing(cmds []nftCmd, live nftTables) (todo, skipped []nftCmd) {
	anchored := map[string]bool{}
	for _, c := range cmds {
		t := live[c.family]
		have := false
		switch c.object {
		case "table":
			have = t != nil
		case "chain":
			have = t != nil && t.Chain(c.name) != nil
		case "map":
			have = t != nil && t.Set(c.name) != nil
		case "element":
			have = t != nil && hasElement(t.Set(c.name), c.key, c.target)
		case "rule":
			if ch := chainOf(t, c.name); ch != nil {
				have = slices.ContainsFunc(ch.Rules, func(r *nft.Rule) bool { return r.Spec() == c.spec })
				k := string(c.family) + " " + c.name
				if !have && c.verb == "add" && c.position == 0 && !anchored[k] && len(ch.Rules) > 0 {
					c.position = ch.Rules[len(ch.Rules)-1].Handle
				}
				if !have {
					anchored[k] = true
				}
			}
		}
		if have {
			skipped = append(skipped, c)
		} else {
			todo = append(todo, c)
		}
	}
	return todo, skipped
}

func chainOf(t *nft.Table, name string) *nft.Chain {
	if t == nil {
		return nil
	}
	return t.Chain(name)
}

// hasElement reports whether verdict map m maps key to a jump to target.
func hasElement(m *nft.Set, key, target string) bool {
	if m == nil {
		return false
	}
	for _, e := range m.Elements {
		if e.Key == key && e.Verdict != nil && e.Verdict.Kind == "jump" && e.Verdict.Target == target {
			return true
		}
	}
	return false
}

// nftScript renders commands as one `nft -f` transaction, ip first.
func nftScript(cmds []nftCmd) string {
	var b strings.Builder
	for _, f := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		for _, c := range cmds {
			if c.family == f {
				b.WriteString(c.line() + "\n")
			}
		}
	}
	return b.String()
}

// nftPayloads are the commands as payloads (one per family), for Result.
func nftPayloads(cmds []nftCmd) []Payload {
	var out []Payload
	for _, f := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		var b strings.Builder
		for _, c := range cmds {
			if c.family == f {
				b.WriteString(c.line() + "\n")
			}
		}
		if b.Len() > 0 {
			out = append(out, Payload{Family: nftSnapFamily(f), Table: diagnose.NftDockerTable, Text: b.String()})
		}
	}
	return out
}

// nftAdded is one object a repair added to Docker's table: a rule by its
// handle, an element by its key (and the target it points to), a chain,
// a map or the table by name.
type nftAdded struct {
	cmd    nftCmd
	handle int // rules
}

func (x nftAdded) String() string {
	if x.cmd.object == "rule" {
		return fmt.Sprintf("%s %s rule %s (handle %d)", x.cmd.family, x.cmd.name, x.cmd.spec, x.handle)
	}
	return x.cmd.op.Spec
}

// echoedHandle matches a rule line `nft --echo --handle` prints back.
var echoedHandle = regexp.MustCompile(`^(?:add|insert) rule (ip|ip6) docker-bridges (\S+) .*# handle (\d+)$`)

// handlesFromEcho assigns the handles nft echoed to the rules of todo
// (in order; nft echoes the commands of the transaction in order, a rule
// with its new handle at the end of the line). ok is false when the echo
// does not give one handle per rule, in its chain.
func handlesFromEcho(todo []nftCmd, echo string) ([]nftAdded, bool) {
	type eh struct {
		fam, chain string
		handle     int
	}
	var hs []eh
	for _, l := range strings.Split(echo, "\n") {
		if m := echoedHandle.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			h, _ := strconv.Atoi(m[3])
			hs = append(hs, eh{m[1], m[2], h})
		}
	}
	var out []nftAdded
	i := 0
	for _, f := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		for _, c := range todo {
			if c.family != f {
				continue
			}
			x := nftAdded{cmd: c}
			if c.object == "rule" {
				if i >= len(hs) || hs[i].fam != string(c.family) || hs[i].chain != c.name {
					return nil, false
				}
				x.handle = hs[i].handle
				i++
			}
			out = append(out, x)
		}
	}
	return out, i == len(hs)
}

// handlesByLookup finds the rules of todo in after, the tables read right
// after the apply: a rule with the command's spec in its chain whose
// handle was not in before (nft handles only grow within a table).
func handlesByLookup(todo []nftCmd, before, after nftTables) []nftAdded {
	old := map[string]bool{}
	for f, t := range before {
		if t == nil {
			continue
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				old[fmt.Sprintf("%s %s %d", f, c.Name, r.Handle)] = true
			}
		}
	}
	taken := map[string]bool{}
	var out []nftAdded
	for _, f := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		for _, c := range todo {
			if c.family != f {
				continue
			}
			x := nftAdded{cmd: c}
			if ch := chainOf(after[f], c.name); c.object == "rule" && ch != nil {
				for _, r := range ch.Rules {
					k := fmt.Sprintf("%s %s %d", f, c.name, r.Handle)
					if r.Spec() == c.spec && !old[k] && !taken[k] {
						taken[k] = true
						x.handle = r.Handle
						break
					}
				}
			}
			out = append(out, x)
		}
	}
	return out
}
