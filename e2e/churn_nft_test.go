package e2e

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestChurnFixOnDocker29Nftables repairs a real Docker 29.8.1 with
// its nftables firewall backend (table ip docker-bridges; userland-proxy
// off, so that only NAT answers; live-restore on) while containers with
// published ports start and stop: before each of ten `doctor --fix
// --yes` during the churn, Docker's DNAT chain is flushed, and every
// other time docker0's elements of two verdict maps are deleted too.
// Docker 29 writes a chain it changes whole again from its own model, so
// the churn itself heals a flushed chain now and then, under the fix's
// feet. After the churn stops (and one more fix on the quiet host) doctor
// exits 0, every remaining published port answers from the client, no
// rule names a removed container, and Docker's table equals what the same
// daemon writes after a live-restore restart (handles, counters and the
// order among per-container rules aside).
func TestChurnFixOnDocker29Nftables(t *testing.T) {
	start := time.Now()
	h := startDockerHostFull(t, &dockerHost{Name: "reliabnf", Version: "29", Backend: "nft", Proxy: "off", Firewall: "nftables", DaemonExtra: `"live-restore": true`})
	c := startChurn(t, h)
	const fixes = 10
	outcomes := map[int]int{}
	var replans, undone, skipped int
	last := 0
	for i := 0; i < fixes; i++ {
		waitUntil(t, "the churn makes progress", probeDeadline, func() bool { return c.steps() > last })
		last = c.steps()
		h.ipt(t, "nft", "flush", "chain", "ip", "docker-bridges", "nat-prerouting-and-output")
		if i%2 == 1 {
			for _, m := range []string{"filter-forward-in-jumps", "nat-postrouting-out-jumps"} {
				h.ipt(t, "nft", "delete", "element", "ip", "docker-bridges", m, `{ "docker0" }`)
			}
		}
		out, stderr, code := h.fix(t, t.TempDir())
		outcomes[code]++
		replans += count(out, `planned again (\d+) time`)
		undone += count(out, `(\d+) added rule\(s\) deleted again`)
		skipped += count(out, `(\d+) rule\(s\) already written by Docker`)
		if l := grep(out, "Docker changed its state meanwhile"); l != "" {
			t.Logf("fix %d during the churn: %s", i+1, l)
		}
		if code != 0 {
			t.Logf("fix %d during the churn: exit %d: %s", i+1, code, lastLine(stderr))
		}
	}
	churned, errs := c.stop()
	for _, e := range errs {
		t.Logf("churn: %s", e)
	}
	t.Logf("docker 29 nftables: %d containers churned (started or removed: %d steps), %d fixes during the churn, exit codes %v, %d re-plans, %d additions undone, %d already written by Docker",
		churned, last, fixes, outcomes, replans, undone, skipped)

	out, stderr, code := h.fix(t, t.TempDir())
	if code != 0 {
		t.Fatalf("doctor --fix after the churn: exit %d\n%s\n%s", code, out, stderr)
	}
	if a := h.nftablesDoctor(t); a.exit != 0 || len(a.ids) > 0 {
		t.Errorf("doctor after the churn: %s", a)
	}
	h.requireProbe(t)
	running := h.requireChurnPortsAnswer(t)
	fixed := h.dockerTable(t)
	h.requireNoNftRuleForRemoved(t, fixed, running)
	requireNoNftDuplicate(t, fixed)

	if out, err := h.script("restart"); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	h.requireProbe(t)
	compareNftTables(t, h.dockerTable(t), fixed)
	t.Logf("nftables churn e2e: %s", time.Since(start).Round(time.Second))
}

var (
	nftAddr  = regexp.MustCompile(`172\.(?:1[6-9]|2\d|3[01])\.\d+\.\d+\b(?:[^/]|$)`)
	nftDport = regexp.MustCompile(`dport (\d+) counter dnat to`)
)

// requireNoNftRuleForRemoved fails for a rule of Docker's table that
// names a container address no running container has, or a DNAT for a
// host port no running container publishes.
func (h *dockerHost) requireNoNftRuleForRemoved(t *testing.T, tb nftTable, running map[string]bool) {
	t.Helper()
	for ch, rules := range tb.chains {
		for _, r := range rules[1:] { // [0] is the header
			for _, a := range nftAddr.FindAllString(r, -1) {
				ip := strings.TrimRight(a, " :,}\"")
				if !running[ip] {
					t.Errorf("%s: a rule names %s, which no running container has: %s", ch, ip, r)
				}
			}
			if m := nftDport.FindStringSubmatch(r); m != nil && !running[":"+m[1]] && !layoutPort[m[1]] {
				t.Errorf("%s: a DNAT for host port %s, which no running container publishes: %s", ch, m[1], r)
			}
		}
	}
}

// requireNoNftDuplicate fails for a rule that is twice in its chain.
func requireNoNftDuplicate(t *testing.T, tb nftTable) {
	t.Helper()
	for ch, rules := range tb.chains {
		seen := map[string]bool{}
		for _, r := range rules[1:] {
			if seen[r] {
				t.Errorf("twice in %s: %s", ch, r)
			}
			seen[r] = true
		}
	}
}

// compareNftTables compares Docker's table as Docker wrote it (want)
// with got: chain by chain, the rules in order except that a run of
// per-container rules (Docker orders them by container start, which
// nothing else says; they match disjoint packets) is compared as a set;
// map elements as sets.
func compareNftTables(t *testing.T, want, got nftTable) {
	t.Helper()
	perContainer := func(r string) bool {
		return strings.Contains(r, "daddr ") || strings.Contains(r, "saddr ") || strings.Contains(r, "dnat to ")
	}
	norm := func(rs []string) []string {
		rs = slices.Clone(rs)
		for i := 0; i < len(rs); {
			j := i
			for j < len(rs) && perContainer(rs[j]) {
				j++
			}
			sort.Strings(rs[i:j])
			i = j + 1
		}
		return rs
	}
	names := map[string]bool{}
	for ch := range want.chains {
		names[ch] = true
	}
	for ch := range got.chains {
		names[ch] = true
	}
	for ch := range names {
		w, g := norm(want.chains[ch]), norm(got.chains[ch])
		if !slices.Equal(w, g) {
			t.Errorf("chain %s:\n  %s\nwant (as Docker writes it after a restart):\n  %s", ch, strings.Join(g, "\n  "), strings.Join(w, "\n  "))
		}
	}
	for m, els := range want.maps {
		if !slices.Equal(got.maps[m], els) {
			t.Errorf("map %s: %v, want %v", m, got.maps[m], els)
		}
	}
	for m := range got.maps {
		if _, ok := want.maps[m]; !ok {
			t.Errorf("an extra map %s", m)
		}
	}
}
