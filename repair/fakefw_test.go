package repair

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// fakeFW is a stateful fake firewall behind the host seam (a
// collect.Runner), as Kubernetes' FakeIPTables: `*-save -t TABLE` prints
// the table, `*-restore [-w N] [--test] [--noflush]` applies a payload
// all or nothing (":CHAIN" creates or, with --noflush, flushes; -A, -I,
// -D, -X), so that repair tests check end states without root.
//
// Hooks simulate what happens around a repair: before runs before each
// command (Docker writing its own rules meanwhile), fail makes a command
// fail (a held lock, a refused line, a killed process).
type fakeFW struct {
	mu     sync.Mutex
	tables map[string]*fakeTable // "ipv4 nat"
	calls  []string
	before func(f *fakeFW, name string, args []string)
	fail   func(name string, args []string, stdin string) error
}

type fakeTable struct {
	order  []string
	chains map[string][]string // chain -> rule specs
	policy map[string]string
}

func newFakeFW(save map[string]string) *fakeFW {
	f := &fakeFW{tables: map[string]*fakeTable{}}
	for k, text := range save {
		f.load(k, text)
	}
	return f
}

// load replaces one table ("ipv4 nat") with iptables-save text.
func (f *fakeFW) load(key, text string) {
	t := &fakeTable{chains: map[string][]string{}, policy: map[string]string{}}
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, ":"):
			fs := strings.Fields(l[1:])
			t.order = append(t.order, fs[0])
			t.chains[fs[0]] = nil
			if len(fs) > 1 {
				t.policy[fs[0]] = fs[1]
			}
		case strings.HasPrefix(l, "-A "):
			c, spec, _ := strings.Cut(l[3:], " ")
			t.chains[c] = append(t.chains[c], spec)
		}
	}
	f.tables[key] = t
}

// loadSnapshot loads every table of a snapshot's dump of one backend.
func (f *fakeFW) loadSnapshot(s *snapshot.Snapshot, backend string) {
	for _, d := range s.Rules {
		if d.Backend != backend || d.Ruleset == nil {
			continue
		}
		for _, t := range d.Ruleset.Tables {
			var b strings.Builder
			b.WriteString("*" + string(t.Name) + "\n")
			for _, c := range t.Chains {
				pol := "-"
				if c.Policy != "" {
					pol = string(c.Policy)
				}
				fmt.Fprintf(&b, ":%s %s [0:0]\n", c.Name, pol)
			}
			for _, c := range t.Chains {
				for _, r := range c.Rules {
					b.WriteString("-A " + string(c.Name) + " " + r.Spec() + "\n")
				}
			}
			b.WriteString("COMMIT\n")
			f.load(d.Family+" "+string(t.Name), b.String())
		}
	}
}

// save is iptables-save text of one table.
func (f *fakeFW) save(key string) string {
	t := f.tables[key]
	if t == nil {
		return ""
	}
	_, name, _ := strings.Cut(key, " ")
	var b strings.Builder
	b.WriteString("*" + name + "\n")
	for _, c := range t.order {
		pol := t.policy[c]
		if pol == "" {
			pol = "-"
		}
		fmt.Fprintf(&b, ":%s %s [0:0]\n", c, pol)
	}
	for _, c := range t.order {
		for _, r := range t.chains[c] {
			b.WriteString("-A " + c + " " + r + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Chain returns a copy of one chain's rule specs.
func (f *fakeFW) chain(key, c string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tables[key]; t != nil {
		return append([]string(nil), t.chains[c]...)
	}
	return nil
}

// do applies one command of Docker's ("-t nat -A DOCKER ...") directly.
func (f *fakeFW) do(family, table, line string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[family+" "+table]
	if t == nil {
		return fmt.Errorf("no table %s %s", family, table)
	}
	return t.apply(line, true)
}

func familyOf(name string) string {
	if strings.HasPrefix(name, "ip6") {
		return snapshot.FamilyIPv6
	}
	return snapshot.FamilyIPv4
}

// Run implements collect.Runner.
func (f *fakeFW) Run(_ context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	if f.before != nil {
		f.before(f, name, args)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(append([]string{name}, args...), " "))
	if f.fail != nil {
		if err := f.fail(name, args, string(stdin)); err != nil {
			return nil, err
		}
	}
	fam := familyOf(name)
	switch {
	case strings.HasSuffix(name, "-save"):
		if len(args) == 2 && args[0] == "-t" {
			return []byte(f.save(fam + " " + args[1])), nil
		}
		var keys []string
		for k := range f.tables {
			if strings.HasPrefix(k, fam+" ") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(f.save(k))
		}
		return []byte(b.String()), nil
	case strings.HasSuffix(name, "-restore"):
		test, noflush := false, false
		for _, a := range args {
			test = test || a == "--test"
			noflush = noflush || a == "--noflush"
		}
		return nil, f.restore(fam, string(stdin), test, noflush)
	}
	return nil, fmt.Errorf("fake firewall: unexpected command %s", name)
}

// restore applies a payload to copies of its tables and keeps them only
// when every line applied (iptables-restore commits per table, at COMMIT).
func (f *fakeFW) restore(fam, text string, test, noflush bool) error {
	var cur *fakeTable
	key := ""
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fail := func(why string) error {
			return &collect.ExitError{Cmd: "iptables-restore", Code: 1, Stderr: fmt.Sprintf("iptables-restore: line %d failed: %s\n", i+1, why)}
		}
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "*"):
			key = fam + " " + l[1:]
			cur = &fakeTable{chains: map[string][]string{}, policy: map[string]string{}}
			if f.tables[key] == nil {
				// The kernel has every table with its built-in chains.
				for _, c := range parse.BuiltinChains[parse.TableName(l[1:])] {
					cur.order = append(cur.order, string(c))
					cur.chains[string(c)] = nil
					cur.policy[string(c)] = "ACCEPT"
				}
			}
			if old := f.tables[key]; old != nil && noflush {
				cur.order = append(cur.order, old.order...)
				for c, rs := range old.chains {
					cur.chains[c] = append([]string(nil), rs...)
				}
				for c, p := range old.policy {
					cur.policy[c] = p
				}
			}
		case l == "COMMIT":
			if cur == nil {
				return fail("COMMIT outside a table")
			}
			if !test {
				f.tables[key] = cur
			}
			cur = nil
		case cur == nil:
			return fail("outside a table")
		case strings.HasPrefix(l, ":"):
			fs := strings.Fields(l[1:])
			if _, ok := cur.chains[fs[0]]; !ok {
				cur.order = append(cur.order, fs[0])
			}
			cur.chains[fs[0]] = nil // with --noflush a declared chain is flushed
			if len(fs) > 1 && fs[1] != "-" {
				cur.policy[fs[0]] = fs[1]
			}
		default:
			if err := cur.apply(l, false); err != nil {
				return fail(err.Error())
			}
		}
	}
	if cur != nil {
		return &collect.ExitError{Cmd: "iptables-restore", Code: 1, Stderr: "iptables-restore: COMMIT expected\n"}
	}
	return nil
}

// apply runs one -A/-I/-D/-X line on the table.
func (t *fakeTable) apply(l string, _ bool) error {
	fs := strings.SplitN(l, " ", 3)
	if len(fs) < 2 {
		return fmt.Errorf("bad line %q", l)
	}
	c := fs[1]
	rules, ok := t.chains[c]
	if !ok {
		return fmt.Errorf("no chain %s", c)
	}
	rest := ""
	if len(fs) == 3 {
		rest = fs[2]
	}
	if err := t.targetExists(rest); err != nil && fs[0] != "-D" && fs[0] != "-X" {
		return err
	}
	switch fs[0] {
	case "-A":
		t.chains[c] = append(rules, rest)
	case "-I":
		n, spec, _ := strings.Cut(rest, " ")
		pos, err := strconv.Atoi(n)
		if err != nil {
			pos, spec = 1, rest
		}
		if pos < 1 || pos > len(rules)+1 {
			return fmt.Errorf("index of insertion too big")
		}
		t.chains[c] = append(rules[:pos-1:pos-1], append([]string{spec}, rules[pos-1:]...)...)
	case "-D":
		for i, r := range rules {
			if r == rest {
				t.chains[c] = append(rules[:i:i], rules[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("bad rule (does a matching rule exist in that chain?)")
	case "-X":
		if len(rules) > 0 {
			return fmt.Errorf("directory not empty")
		}
		for _, rs := range t.chains {
			for _, r := range rs {
				if strings.HasSuffix(r, "-j "+c) || strings.Contains(r, "-j "+c+" ") {
					return fmt.Errorf("too many links")
				}
			}
		}
		delete(t.chains, c)
		for i, o := range t.order {
			if o == c {
				t.order = append(t.order[:i:i], t.order[i+1:]...)
				break
			}
		}
	default:
		return fmt.Errorf("unknown command %s", fs[0])
	}
	return nil
}

// targetExists fails for a jump to a user chain that is not declared.
func (t *fakeTable) targetExists(spec string) error {
	i := strings.Index(spec, "-j ")
	if i < 0 {
		return nil
	}
	target := strings.Fields(spec[i+3:])[0]
	if parse.Target(target).IsVerdictOrExtension() || strings.ToUpper(target) != target {
		return nil
	}
	if _, ok := t.chains[target]; !ok && strings.HasPrefix(target, "DOCKER") {
		return fmt.Errorf("chain %s does not exist", target)
	}
	return nil
}
