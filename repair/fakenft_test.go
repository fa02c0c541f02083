package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// fakeNft is a stateful fake of `nft` for Docker's docker-bridges tables
// behind the host seam (a collect.Runner), as fakeFW is for iptables:
// `nft [-j] list table FAM docker-bridges` prints the table (JSON with
// handles, or text), `nft [-c] [--echo --handle] -f -` applies a script
// all or nothing: add/insert of tables, chains, maps, elements and rules
// (`position N`), delete of rules by handle, elements by key, chains,
// maps and the table, with nft's errors (a missing handle or chain, a
// chain or map still referenced, an element key bound elsewhere).
//
// A rule's JSON (what `nft -j` prints and parse/nft reads back) comes
// from a pool of real rules: those of the snapshot the fake was loaded
// from, keyed by spec. A rule outside the pool is refused, so tests stay
// with rules Docker really writes.
//
// before runs before each command (Docker writing meanwhile).
type fakeNft struct {
	mu     sync.Mutex
	fams   map[nft.Family]*fakeNftTable
	pool   map[string]json.RawMessage // spec -> rule JSON without family, table, chain, handle
	chains map[string]json.RawMessage // chain name -> its JSON (base chains' hook etc.)
	handle int
	calls  []string
	// scripts are the stdin of every -f call, in order.
	scripts []string
	before  func(f *fakeNft, args []string, stdin string)
}

type fakeNftTable struct {
	chains []*fakeNftChain
	maps   []*fakeNftMap
}

type fakeNftChain struct {
	name   string
	handle int
	rules  []fakeNftRule
}

type fakeNftRule struct {
	handle int
	spec   string
}

type fakeNftMap struct {
	name   string
	handle int
	els    [][2]string // key, target
}

func newFakeNft(s *snapshot.Snapshot) *fakeNft {
	f := &fakeNft{fams: map[nft.Family]*fakeNftTable{}, pool: map[string]json.RawMessage{}, chains: map[string]json.RawMessage{}, handle: 100}
	for _, fam := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		t := s.NftTable(fam, diagnose.NftDockerTable)
		if t == nil {
			continue
		}
		ft := &fakeNftTable{}
		for _, m := range t.Sets {
			fm := &fakeNftMap{name: m.Name, handle: f.next()}
			for _, e := range m.Elements {
				fm.els = append(fm.els, [2]string{e.Key, e.Verdict.Target})
			}
			ft.maps = append(ft.maps, fm)
		}
		for _, c := range t.Chains {
			f.chains[c.Name] = c.Raw
			fc := &fakeNftChain{name: c.Name, handle: f.next()}
			for _, r := range c.Rules {
				f.addPool(r)
				fc.rules = append(fc.rules, fakeNftRule{handle: f.next(), spec: r.Spec()})
			}
			ft.chains = append(ft.chains, fc)
		}
		f.fams[fam] = ft
	}
	return f
}

// learn adds the rules and chains of another capture of the same host
// (a healthy one) to the pool.
func (f *fakeNft) learn(s *snapshot.Snapshot) {
	for _, fam := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		if t := s.NftTable(fam, diagnose.NftDockerTable); t != nil {
			for _, c := range t.Chains {
				f.chains[c.Name] = c.Raw
				for _, r := range c.Rules {
					f.addPool(r)
				}
			}
		}
	}
}

// addPool keeps a real rule's JSON for its spec.
func (f *fakeNft) addPool(r *nft.Rule) {
	var m map[string]json.RawMessage
	if json.Unmarshal(r.Raw, &m) != nil {
		return
	}
	for _, k := range []string{"family", "table", "chain", "handle"} {
		delete(m, k)
	}
	b, _ := json.Marshal(m)
	f.pool[r.Spec()] = b
}

func (f *fakeNft) next() int { f.handle++; return f.handle }

func (f *fakeNft) Run(_ context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	if f.before != nil {
		f.before(f, args, string(stdin))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if slices.Contains(args, "-f") {
		f.scripts = append(f.scripts, string(stdin))
	}
	if name != "nft" {
		return nil, fmt.Errorf("fake nft: unexpected command %s", name)
	}
	fail := func(msg string) ([]byte, error) {
		return nil, &collect.ExitError{Cmd: "nft " + strings.Join(args, " "), Code: 1, Stderr: "Error: " + msg}
	}
	switch a := strings.Join(args, " "); {
	case a == "-j list table ip docker-bridges" || a == "-j list table ip6 docker-bridges":
		t := f.fams[nft.Family(args[3])]
		if t == nil {
			return fail("No such file or directory")
		}
		return f.json(nft.Family(args[3])), nil
	case a == "list table ip docker-bridges" || a == "list table ip6 docker-bridges":
		if f.fams[nft.Family(args[2])] == nil {
			return fail("No such file or directory")
		}
		return []byte(f.text(nft.Family(args[2]))), nil
	case a == "-c -f -" || a == "-f -" || a == "--echo --handle -f -":
		clone := f.clone()
		echo, err := clone.apply(string(stdin))
		if err != nil {
			return fail(err.Error())
		}
		if a != "-c -f -" {
			f.fams, f.handle = clone.fams, clone.handle
		}
		if a == "--echo --handle -f -" {
			return []byte(echo), nil
		}
		return nil, nil
	}
	return nil, fmt.Errorf("fake nft: unexpected arguments %q", args)
}

func (f *fakeNft) clone() *fakeNft {
	c := &fakeNft{fams: map[nft.Family]*fakeNftTable{}, pool: f.pool, chains: f.chains, handle: f.handle}
	for fam, t := range f.fams {
		if t == nil {
			continue
		}
		nt := &fakeNftTable{}
		for _, ch := range t.chains {
			nt.chains = append(nt.chains, &fakeNftChain{name: ch.name, handle: ch.handle, rules: slices.Clone(ch.rules)})
		}
		for _, m := range t.maps {
			nt.maps = append(nt.maps, &fakeNftMap{name: m.name, handle: m.handle, els: slices.Clone(m.els)})
		}
		c.fams[fam] = nt
	}
	return c
}

func (t *fakeNftTable) chain(name string) *fakeNftChain {
	for _, c := range t.chains {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (t *fakeNftTable) mapNamed(name string) *fakeNftMap {
	for _, m := range t.maps {
		if m.name == name {
			return m
		}
	}
	return nil
}

// referenced reports whether a rule or element of t names chain or map.
func (t *fakeNftTable) referenced(name string, isMap bool) bool {
	for _, c := range t.chains {
		for _, r := range c.rules {
			for _, w := range strings.Fields(r.spec) {
				if (isMap && w == "@"+name) || (!isMap && w == name) {
					return true
				}
			}
		}
	}
	if !isMap {
		for _, m := range t.maps {
			for _, e := range m.els {
				if e[1] == name {
					return true
				}
			}
		}
	}
	return false
}

var (
	fakeNftLine = regexp.MustCompile(`^(add|insert|delete) (table|chain|map|element|rule) (ip|ip6) docker-bridges(?: (\S+))?(?: (.*))?$`)
	fakeNftEl   = regexp.MustCompile(`^\{ "([^"]*)"(?: : jump (\S+))? \}$`)
)

// apply runs a script on f (a clone: the caller keeps it only when it
// all applies) and returns what --echo --handle prints.
func (f *fakeNft) apply(script string) (string, error) {
	var echo strings.Builder
	for i, l := range strings.Split(strings.TrimRight(script, "\n"), "\n") {
		if l == "" {
			continue
		}
		m := fakeNftLine.FindStringSubmatch(l)
		if m == nil {
			return "", fmt.Errorf("stdin:%d: syntax error: %s", i+1, l)
		}
		verb, obj, fam, name, rest := m[1], m[2], nft.Family(m[3]), m[4], m[5]
		t := f.fams[fam]
		if obj == "table" {
			switch {
			case verb == "add" && t == nil:
				f.fams[fam] = &fakeNftTable{}
			case verb == "delete" && t == nil:
				return "", fmt.Errorf("stdin:%d: No such file or directory", i+1)
			case verb == "delete": // with its content, as nft does
				delete(f.fams, fam)
			}
			echo.WriteString(l + "\n")
			continue
		}
		if t == nil {
			return "", fmt.Errorf("stdin:%d: No such file or directory (no table %s)", i+1, fam)
		}
		switch obj + " " + verb {
		case "chain add":
			if t.chain(name) == nil {
				t.chains = append(t.chains, &fakeNftChain{name: name, handle: f.next()})
			}
		case "chain delete":
			c := t.chain(name)
			if c == nil {
				return "", fmt.Errorf("stdin:%d: No such file or directory", i+1)
			}
			if len(c.rules) > 0 || t.referenced(name, false) {
				return "", fmt.Errorf("stdin:%d: Device or resource busy", i+1)
			}
			t.chains = slices.DeleteFunc(t.chains, func(x *fakeNftChain) bool { return x == c })
		case "map add":
			if t.mapNamed(name) == nil {
				t.maps = append(t.maps, &fakeNftMap{name: name, handle: f.next()})
			}
		case "map delete":
			mp := t.mapNamed(name)
			if mp == nil {
				return "", fmt.Errorf("stdin:%d: No such file or directory", i+1)
			}
			if len(mp.els) > 0 || t.referenced(name, true) {
				return "", fmt.Errorf("stdin:%d: Device or resource busy", i+1)
			}
			t.maps = slices.DeleteFunc(t.maps, func(x *fakeNftMap) bool { return x == mp })
		case "element add", "element delete":
			mp := t.mapNamed(name)
			em := fakeNftEl.FindStringSubmatch(rest)
			if mp == nil || em == nil {
				return "", fmt.Errorf("stdin:%d: No such file or directory", i+1)
			}
			j := slices.IndexFunc(mp.els, func(e [2]string) bool { return e[0] == em[1] })
			if verb == "delete" {
				if j < 0 {
					return "", fmt.Errorf("stdin:%d: No such file or directory", i+1)
				}
				mp.els = slices.Delete(mp.els, j, j+1)
				break
			}
			if t.chain(em[2]) == nil {
				return "", fmt.Errorf("stdin:%d: Could not process rule: No such file or directory (chain %s)", i+1, em[2])
			}
			switch {
			case j >= 0 && mp.els[j][1] != em[2]:
				return "", fmt.Errorf("stdin:%d: Could not process rule: File exists", i+1)
			case j < 0:
				mp.els = append(mp.els, [2]string{em[1], em[2]})
			}
		case "rule add", "rule insert":
			c := t.chain(name)
			if c == nil {
				return "", fmt.Errorf("stdin:%d: Could not process rule: No such file or directory (chain %s)", i+1, name)
			}
			pos := 0
			if pm := nftPosition.FindStringSubmatch(rest); pm != nil {
				pos, _ = strconv.Atoi(pm[1])
				rest = pm[2]
			}
			if _, ok := f.pool[rest]; !ok {
				return "", fmt.Errorf("stdin:%d: fake: no real rule known for %q", i+1, rest)
			}
			at := len(c.rules)
			if verb == "insert" {
				at = 0
			}
			if pos > 0 {
				j := slices.IndexFunc(c.rules, func(r fakeNftRule) bool { return r.handle == pos })
				if j < 0 {
					return "", fmt.Errorf("stdin:%d: Could not process rule: No such file or directory (handle %d)", i+1, pos)
				}
				at = j
				if verb == "add" {
					at = j + 1
				}
			}
			h := f.next()
			c.rules = slices.Insert(c.rules, at, fakeNftRule{handle: h, spec: rest})
			fmt.Fprintf(&echo, "%s rule %s docker-bridges %s %s # handle %d\n", verb, fam, name, rest, h)
			continue
		case "rule delete":
			c := t.chain(name)
			h, err := strconv.Atoi(strings.TrimPrefix(rest, "handle "))
			if c == nil || err != nil {
				return "", fmt.Errorf("stdin:%d: No such file or directory", i+1)
			}
			j := slices.IndexFunc(c.rules, func(r fakeNftRule) bool { return r.handle == h })
			if j < 0 {
				return "", fmt.Errorf("stdin:%d: Could not process rule: No such file or directory", i+1)
			}
			c.rules = slices.Delete(c.rules, j, j+1)
		default:
			return "", fmt.Errorf("stdin:%d: fake: %s %s not supported", i+1, verb, obj)
		}
		echo.WriteString(l + "\n")
	}
	echo.WriteString("# new generation 9 by process 1 (nft)\n")
	return echo.String(), nil
}

// json is `nft -j list table FAM docker-bridges` of the fake.
func (f *fakeNft) json(fam nft.Family) []byte {
	t := f.fams[fam]
	objs := []any{map[string]any{"metainfo": map[string]any{"version": "1.0.6", "json_schema_version": 1}},
		map[string]any{"table": map[string]any{"family": fam, "name": diagnose.NftDockerTable, "handle": 1}}}
	for _, m := range t.maps {
		var els []any
		for _, e := range m.els {
			els = append(els, []any{e[0], map[string]any{"jump": map[string]any{"target": e[1]}}})
		}
		mm := map[string]any{"family": fam, "name": m.name, "table": diagnose.NftDockerTable, "type": "ifname", "handle": m.handle, "map": "verdict"}
		if len(els) > 0 {
			mm["elem"] = els
		}
		objs = append(objs, map[string]any{"map": mm})
	}
	for _, c := range t.chains {
		cm := map[string]any{}
		if raw, ok := f.chains[c.name]; ok {
			_ = json.Unmarshal(raw, &cm)
		}
		cm["family"], cm["table"], cm["name"], cm["handle"] = fam, diagnose.NftDockerTable, c.name, c.handle
		objs = append(objs, map[string]any{"chain": cm})
	}
	for _, c := range t.chains {
		for _, r := range c.rules {
			rm := map[string]any{}
			_ = json.Unmarshal(f.pool[r.spec], &rm)
			rm["family"], rm["table"], rm["chain"], rm["handle"] = fam, diagnose.NftDockerTable, c.name, r.handle
			objs = append(objs, map[string]any{"rule": rm})
		}
	}
	b, _ := json.Marshal(map[string]any{"nftables": objs})
	return b
}

// text is `nft list table FAM docker-bridges` of the fake (enough for a
// backup; the fake never reads it back).
func (f *fakeNft) text(fam nft.Family) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s docker-bridges {\n", fam)
	for _, c := range f.fams[fam].chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.name)
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.spec)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// ruleset is `nft -j list ruleset` of the fake (Docker's tables only).
func (f *fakeNft) ruleset() []byte {
	var objs []json.RawMessage
	for _, fam := range []nft.Family{nft.FamilyIP, nft.FamilyIP6} {
		if f.fams[fam] == nil {
			continue
		}
		var doc struct {
			Nftables []json.RawMessage `json:"nftables"`
		}
		_ = json.Unmarshal(f.json(fam), &doc)
		if len(objs) > 0 {
			doc.Nftables = doc.Nftables[1:] // one metainfo
		}
		objs = append(objs, doc.Nftables...)
	}
	if objs == nil {
		objs = append(objs, json.RawMessage(`{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}`))
	}
	b, _ := json.Marshal(map[string]any{"nftables": objs})
	return b
}

// specs are the rule specs of a chain in order (nil: no chain).
func (f *fakeNft) specs(fam nft.Family, chain string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.fams[fam]
	if t == nil || t.chain(chain) == nil {
		return nil
	}
	var out []string
	for _, r := range t.chain(chain).rules {
		out = append(out, r.spec)
	}
	return out
}

// elements are a map's "key : target" entries (nil: no map).
func (f *fakeNft) elements(fam nft.Family, m string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.fams[fam]
	if t == nil || t.mapNamed(m) == nil {
		return nil
	}
	out := []string{}
	for _, e := range t.mapNamed(m).els {
		out = append(out, e[0]+" : "+e[1])
	}
	return out
}

// rewrite is what dockerd's nftables backend does to a chain it changes:
// flush it and write its model's rules again (new handles). Called from
// a before hook (the lock is not held then).
func (f *fakeNft) rewrite(fam nft.Family, chain string, specs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.fams[fam].chain(chain)
	c.rules = nil
	for _, s := range specs {
		c.rules = append(c.rules, fakeNftRule{handle: f.next(), spec: s})
	}
}

// flush empties a chain (the break under test).
func (f *fakeNft) flush(fam nft.Family, chain string) { f.rewrite(fam, chain, nil) }

// deleteElement removes a map element by key (the break under test).
func (f *fakeNft) deleteElement(fam nft.Family, m, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mp := f.fams[fam].mapNamed(m)
	mp.els = slices.DeleteFunc(mp.els, func(e [2]string) bool { return e[0] == key })
}
