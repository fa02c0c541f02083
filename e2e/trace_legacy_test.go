package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// legacyChain is one chain of an iptables-legacy-save dump.
type legacyChain struct {
	policy string // "" for a user chain
	rules  []string
}

// legacyDump is iptables-legacy-save's text by table and chain.
type legacyDump map[string]map[string]*legacyChain

func parseLegacyDump(text string) legacyDump {
	d := legacyDump{}
	var table map[string]*legacyChain
	chain := func(name string) *legacyChain {
		c := table[name]
		if c == nil {
			c = &legacyChain{}
			table[name] = c
		}
		return c
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "*"):
			table = map[string]*legacyChain{}
			d[l[1:]] = table
		case strings.HasPrefix(l, ":") && table != nil:
			f := strings.Fields(l[1:])
			if len(f) >= 2 {
				c := chain(f[0])
				if f[1] != "-" {
					c.policy = f[1]
				}
			}
		case strings.HasPrefix(l, "-A ") && table != nil:
			f := strings.Fields(l)
			if len(f) >= 2 {
				c := chain(f[1])
				c.rules = append(c.rules, l)
			}
		}
	}
	return d
}

// legacySave is the host's legacy IPv4 ruleset now.
func legacySave(t *testing.T, netns string) legacyDump {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+netns, "iptables-legacy-save").Output()
	if err != nil {
		t.Fatalf("iptables-legacy-save: %v", err)
	}
	return parseLegacyDump(string(out))
}

// ruleTarget is a saved rule's -j or -g target.
func ruleTarget(rule string) string {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" {
			return f[i+1]
		}
	}
	return ""
}

// legacyPacket is a legacy trace read against the dump it ran over.
type legacyPacket struct {
	events  []string // as traceJSON.events gives them
	verdict string   // netfilter's: accept or drop
	decider string   // the dropping rule or policy, as traceJSON.decider
}

// readLegacyTrace turns ip_tables' trace into the rules met. ip_tables
// numbers a chain's rules from 1 and calls its end (one past the last
// rule) "policy" in a built-in chain and "return" in a user chain; it
// also calls a rule "policy" or "return" when it has no match at all and
// a verdict (ACCEPT, DROP, RETURN) for a target, such as "-A FORWARD -j
// DROP": the position tells them apart.
func readLegacyTrace(t *testing.T, evs []nflogEvent, d legacyDump) legacyPacket {
	t.Helper()
	var p legacyPacket
	p.verdict = "accept"
	for _, e := range evs {
		if p.verdict == "drop" {
			t.Errorf("the legacy trace goes on after a drop: %v", evs)
			break
		}
		c := d[e.table][e.chain]
		if c == nil {
			t.Fatalf("the legacy trace names %s %s, which the dump has not", e.table, e.chain)
		}
		switch {
		case e.n >= 1 && e.n <= len(c.rules):
			rule := c.rules[e.n-1]
			ev := e.table + " " + e.chain + " " + rule
			p.events = append(p.events, ev)
			if tg := ruleTarget(rule); tg == "DROP" || tg == "REJECT" {
				p.verdict, p.decider = "drop", ev
			}
		case e.n == len(c.rules)+1 && c.policy != "":
			ev := e.table + " " + e.chain + " policy " + c.policy
			p.events = append(p.events, ev)
			if c.policy == "DROP" {
				p.verdict, p.decider = "drop", ev
			}
		case e.n == len(c.rules)+1:
			// a user chain's end: back to its caller
		default:
			t.Fatalf("the legacy trace names %s %s %s %d; the chain has %d rules", e.table, e.chain, e.kind, e.n, len(c.rules))
		}
	}
	return p
}

// TestTraceLegacyAgreesWithTheKernelOnGeneratedRulesets is the generated
// differential on legacy iptables: the same seeded rulesets loaded with
// iptables-legacy-restore into a bare namespace, the kernel's trace read
// through nfnetlink_log (nf_log.2 set inside that namespace).
func TestTraceLegacyAgreesWithTheKernelOnGeneratedRulesets(t *testing.T) {
	requireRoot(t, "nft", "iptables-legacy-restore", "iptables-legacy-save", "ip", "curl")
	const name = "trace2lg"
	h := &dockerHost{Name: name, NetNS: "/var/run/netns/" + name}
	const (
		hostA, client = "198.18.249.1", "198.18.249.2"
		hostB, server = "198.18.250.1", "198.18.250.2"
	)
	nss := []string{name, name + "-c", name + "-s"}
	t.Cleanup(func() {
		for _, n := range nss {
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, n := range nss {
		_ = exec.Command("ip", "netns", "del", n).Run()
		run("ip", "netns", "add", n)
		run("ip", "-n", n, "link", "set", "lo", "up")
	}
	run("ip", "-n", name, "link", "add", "tgc0", "type", "veth", "peer", "name", "tgc1", "netns", name+"-c")
	run("ip", "-n", name, "link", "add", "tgs0", "type", "veth", "peer", "name", "tgs1", "netns", name+"-s")
	for _, a := range [][]string{{name, "tgc0", hostA}, {name, "tgs0", hostB}, {name + "-c", "tgc1", client}, {name + "-s", "tgs1", server}} {
		run("ip", "-n", a[0], "addr", "add", a[2]+"/30", "dev", a[1])
		run("ip", "-n", a[0], "link", "set", a[1], "up")
	}
	run("ip", "-n", name+"-c", "route", "add", "default", "via", hostA)
	run("ip", "-n", name+"-s", "route", "add", "default", "via", hostB)
	run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	mon := startNflogTrace(t, h.NetNS)
	h.addTraceTable(t, client)
	pairs, n, met := 0, 0, 0
	verdicts := map[string]int{}
	for seed := int64(1); seed <= traceSeeds(); seed++ {
		rules := generateRuleset(seed, client, server)
		cmd := exec.Command("nsenter", "--net="+h.NetNS, "iptables-legacy-restore")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seed %d: iptables-legacy-restore: %v: %s\n%s", seed, err, out, rules)
		}
		bundle := filepath.Join(t.TempDir(), "bundle.json")
		if _, stderr, code := h.iptscope(t, "collect", "--netns", name, "--docker-host", "unix:///nonexistent", "-o", bundle); code != 0 {
			t.Fatalf("collect: exit %d: %s", code, stderr)
		}
		dump := legacySave(t, h.NetNS)
		for _, pk := range []struct {
			dst  string
			port int
		}{{hostA, 22}, {server, 80}, {hostA, 8000}, {server, 443}} {
			n++
			out, stderr, _ := h.iptscope(t, "trace", "--from", bundle, "--src", client, "--dst", pk.dst, "--dport", fmt.Sprint(pk.port), "-o", "json")
			var got traceJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("seed %d %s:%d: %v: %s", seed, pk.dst, pk.port, err, stderr)
			}
			_ = exec.Command("nsenter", "--net=/var/run/netns/"+name+"-c", "curl", "-s", "-o", "/dev/null", "--connect-timeout", "1", fmt.Sprintf("http://%s:%d/", pk.dst, pk.port)).Run()
			kernel := readLegacyTrace(t, mon.packet(t, client, pk.dst, pk.port), dump)
			if got.Verdict == "unknown" {
				t.Errorf("seed %d %s:%d: unknown: %s", seed, pk.dst, pk.port, got.Reason)
				continue
			}
			same := kernel.verdict == got.netfilterVerdict() && strings.Join(kernel.events, "\n") == strings.Join(got.events(), "\n") && kernel.decider == got.decider()
			if !same {
				t.Errorf("seed %d %s:%d: kernel %s, iptscope %s (%s)\nkernel:\n  %s\niptscope:\n  %s\nnfnetlink_log:\n%s\nruleset:\n%s", seed, pk.dst, pk.port, kernel.verdict, got.Verdict, got.Reason,
					strings.Join(kernel.events, "\n  "), strings.Join(got.events(), "\n  "), mon.last, rules)
				continue
			}
			pairs++
			met += len(kernel.events)
			verdicts[got.Verdict]++
		}
	}
	t.Logf("legacy: %d of %d packet/ruleset pairs agree with the kernel, %d rules and policies met (verdicts %v)", pairs, n, met, verdicts)
}
