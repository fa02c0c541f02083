package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/watch"
)

func TestChainReadVersion(t *testing.T) {
	tests := []struct {
		out string
		ok  bool
	}{
		{"iptables v1.8.9 (nf_tables)\n", true},
		{"iptables v1.8.5 (nf_tables)", true},
		{"iptables v1.10.0 (nf_tables)", true},
		{"ip6tables-nft v1.8.7 (nf_tables)", true},
		{"iptables v1.8.4 (nf_tables)", false},
		{"iptables v1.8.9 (legacy)", false},
		{"iptables v1.6.1", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.out), func(t *testing.T) {
			err := ChainReadVersion(tt.out)
			if (err == nil) != tt.ok {
				t.Errorf("ChainReadVersion = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNoChainRead) {
				t.Errorf("error %v is not ErrNoChainRead", err)
			}
		})
	}
}

func TestCutCounters(t *testing.T) {
	tests := []struct {
		name, line, rest, counters string
	}{
		{"before the target", "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -c 3 180 -j DNAT --to-destination 172.17.0.2:80",
			"-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80", "3:180"},
		{"a rule without a target", "-A FORWARD -s 10.0.0.0/8 -c 0 0", "-A FORWARD -s 10.0.0.0/8", "0:0"},
		{"a goto", "-A FORWARD -c 12 720 -g DOCKER", "-A FORWARD -g DOCKER", "12:720"},
		{"a quoted comment that looks like counters", `-A KUBE -m comment --comment "x -c 1 2 -j y \" -c 3 4 -j z" -c 5 6 -j ACCEPT`,
			`-A KUBE -m comment --comment "x -c 1 2 -j y \" -c 3 4 -j z" -j ACCEPT`, "5:6"},
		{"an unquoted comment -c", "-A X -m comment --comment -c -c 7 8 -j RETURN", "-A X -m comment --comment -c -j RETURN", "7:8"},
		{"target options after the counters", "-A X -c 1 1 -j LOG --log-prefix -c", "-A X -j LOG --log-prefix -c", "1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, counters, ok := cutCounters(tt.line)
			if !ok || rest != tt.rest || counters != tt.counters {
				t.Errorf("cutCounters = %q %q %v, want %q %q", rest, counters, ok, tt.rest, tt.counters)
			}
		})
	}
	if _, _, ok := cutCounters("-A X -j ACCEPT"); ok {
		t.Error("a rule without counters gave counters")
	}
}

// listing is what `iptables -t TABLE -S CHAIN -v` prints for a chain of
// a save dump (the tests' stand-in for iptables-nft): the policy with
// counters or -N, then each rule with " -c P B" before the target.
func listing(t *testing.T, dump, table, chain string) string {
	t.Helper()
	var b strings.Builder
	in := ""
	for _, line := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			in = line[1:]
		case in != table:
		case strings.HasPrefix(line, ":"+chain+" "):
			f := strings.Fields(line[1:])
			if f[1] == "-" {
				fmt.Fprintf(&b, "-N %s\n", chain)
			} else {
				pb := strings.Split(strings.Trim(f[2], "[]"), ":")
				fmt.Fprintf(&b, "-P %s %s -c %s %s\n", chain, f[1], pb[0], pb[1])
			}
		case strings.HasPrefix(line, "["):
			counters, rule, _ := strings.Cut(line, " ")
			if !strings.HasPrefix(rule, "-A "+chain+" ") {
				continue
			}
			pb := strings.Split(strings.Trim(counters, "[]"), ":")
			c := " -c " + pb[0] + " " + pb[1]
			// The test dumps have no " -j " inside quotes.
			if i := strings.Index(rule, " -j "); i >= 0 {
				rule = rule[:i] + c + rule[i:]
			} else if i := strings.Index(rule, " -g "); i >= 0 {
				rule = rule[:i] + c + rule[i:]
			} else {
				rule += c
			}
			b.WriteString(rule + "\n")
		}
	}
	if b.Len() == 0 {
		t.Fatalf("no chain %s %s in the dump", table, chain)
	}
	return b.String()
}

// edit returns dump with the lines of table for which keep is false
// removed, and insert put after the first line of the table for which
// after is true.
func edit(dump, table string, keep func(line string) bool, after func(line string) bool, insert string) string {
	var b strings.Builder
	in := ""
	for _, line := range strings.SplitAfter(dump, "\n") {
		if strings.HasPrefix(line, "*") {
			in = strings.TrimSpace(line[1:])
		}
		if in == table && keep != nil && !keep(line) {
			continue
		}
		b.WriteString(line)
		if in == table && after != nil && after(line) {
			b.WriteString(insert)
			after = nil
		}
	}
	return b.String()
}

func nftSnapshot(t *testing.T, dump string) *snapshot.Snapshot {
	t.Helper()
	rs, err := parse.Parse([]byte(dump))
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Snapshot{IptablesBackend: "nft", DockerBackend: "nft",
		Rules: []snapshot.RuleDump{{Backend: "nft", Family: "ipv4", Raw: dump, Ruleset: rs}, {Backend: "legacy", Family: "ipv4", Raw: "", Ruleset: &parse.Ruleset{Format: parse.FormatSave}}}}
}

// requireSameDump requires the spliced snapshot's IPv4 nft dump to be
// what a full read of want gives: the same text and the same model.
func requireSameDump(t *testing.T, got *snapshot.Snapshot, want string) {
	t.Helper()
	d := got.Rules[0]
	if d.Raw != want {
		t.Fatalf("spliced dump differs from the full read:\n%s", lineDiffOf(want, d.Raw))
	}
	rs, err := parse.Parse([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(rs)
	b, _ := json.Marshal(d.Ruleset)
	if string(a) != string(b) {
		t.Fatal("spliced model differs from the full read's")
	}
}

func lineDiffOf(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, a, c)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

func TestSpliceChainsGivesWhatAFullReadGives(t *testing.T) {
	base := "# Generated by iptables-nft-save v1.8.9 (nf_tables) on Tue Dec  1 03:00:00 2026\n" +
		string(synth.DockerHost(20)) + "# Completed on Tue Dec  1 03:00:00 2026\n"
	ref := func(table, chain string) watch.ChainRef {
		return watch.ChainRef{Family: "ipv4", Table: table, Chain: chain}
	}
	tests := []struct {
		name   string
		before string
		after  string
		chains []watch.ChainRef
	}{
		{"a flush of nat DOCKER", base, edit(base, "nat", func(l string) bool { return !strings.Contains(l, "-A DOCKER ") }, nil, ""),
			[]watch.ChainRef{ref("nat", "DOCKER")}},
		{"one DNAT deleted", base, edit(base, "nat", func(l string) bool { return !strings.Contains(l, "--dport 10007 ") }, nil, ""),
			[]watch.ChainRef{ref("nat", "DOCKER")}},
		{"a rule inserted at the top of filter FORWARD", base,
			edit(base, "filter", nil, func(l string) bool { return strings.HasPrefix(l, ":DOCKER-USER ") }, "[0:0] -A FORWARD -s 192.0.2.1/32 -j DROP\n"),
			[]watch.ChainRef{ref("filter", "FORWARD")}},
		{"rules added to the empty DOCKER-USER", base,
			edit(base, "filter", nil, func(l string) bool { return strings.Contains(l, "-A DOCKER-ISOLATION-STAGE-2 ") }, "[0:0] -A DOCKER-USER -i eth0 -j DROP\n[0:0] -A DOCKER-USER -j RETURN\n"),
			[]watch.ChainRef{ref("filter", "DOCKER-USER")}},
		{"the last chain's rules all deleted", base, edit(base, "raw", func(l string) bool { return !strings.Contains(l, "-A PREROUTING ") }, nil, ""),
			[]watch.ChainRef{ref("raw", "PREROUTING")}},
		{"a policy turned to DROP with new counters", base,
			strings.Replace(base, ":INPUT ACCEPT [5000:300000]", ":INPUT DROP [17:1020]", 1), []watch.ChainRef{ref("filter", "INPUT")}},
		{"two chains of two tables at once", base,
			edit(edit(base, "nat", func(l string) bool { return !strings.Contains(l, "-A POSTROUTING ") }, nil, ""), "filter",
				func(l string) bool { return !strings.Contains(l, "-A DOCKER-CT ") }, nil, ""),
			[]watch.ChainRef{ref("nat", "POSTROUTING"), ref("filter", "DOCKER-CT")}},
		{"a chain listed that did not change", base, base, []watch.ChainRef{ref("filter", "DOCKER")}},
		{"a rule with a quoted comment", base,
			edit(base, "filter", nil, func(l string) bool { return strings.Contains(l, "-A DOCKER-ISOLATION-STAGE-2 ") }, `[4:240] -A DOCKER-USER -s 10.0.0.0/8 -m comment --comment "admin: keep -c 1 2 \"x\"" -j RETURN`+"\n"),
			[]watch.ChainRef{ref("filter", "DOCKER-USER")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.after == tt.before && !strings.Contains(tt.name, "did not change") {
				t.Fatal("the test's edit changed nothing")
			}
			prev := nftSnapshot(t, tt.before)
			var ls []ChainListing
			for _, c := range tt.chains {
				ls = append(ls, ChainListing{Chain: c, Text: listing(t, tt.after, c.Table, c.Chain)})
			}
			now := time.Date(2026, 12, 1, 3, 0, 1, 0, time.UTC)
			got, err := SpliceChains(prev, ls, now)
			if err != nil {
				t.Fatal(err)
			}
			requireSameDump(t, got, tt.after)
			if !got.CollectedAt.Equal(now) || prev.Rules[0].Raw != tt.before {
				t.Error("the splice changed the earlier snapshot or kept its time")
			}
			if got.Rules[1].Backend != "legacy" {
				t.Error("the other dumps were not kept")
			}
		})
	}
}

func TestSpliceChainsRefusesWhatItCannotBeSureOf(t *testing.T) {
	base := string(synth.DockerHost(3))
	natDocker := watch.ChainRef{Family: "ipv4", Table: "nat", Chain: "DOCKER"}
	good := []ChainListing{{Chain: natDocker, Text: listing(t, base, "nat", "DOCKER")}}
	tests := []struct {
		name     string
		prev     func() *snapshot.Snapshot
		listings []ChainListing
	}{
		{"no earlier snapshot", func() *snapshot.Snapshot { return nil }, good},
		{"iptables is legacy", func() *snapshot.Snapshot { s := nftSnapshot(t, base); s.IptablesBackend = "legacy"; return s }, good},
		{"Docker's chains are in legacy iptables", func() *snapshot.Snapshot { s := nftSnapshot(t, base); s.DockerBackend = "both"; return s }, good},
		{"no IPv6 nft dump", func() *snapshot.Snapshot { return nftSnapshot(t, base) },
			[]ChainListing{{Chain: watch.ChainRef{Family: "ipv6", Table: "nat", Chain: "DOCKER"}, Text: listing(t, base, "nat", "DOCKER")}}},
		{"the dump did not parse", func() *snapshot.Snapshot {
			s := nftSnapshot(t, base)
			s.Rules[0].Ruleset, s.Rules[0].Error = nil, "boom"
			return s
		}, good},
		{"a chain the dump does not declare", func() *snapshot.Snapshot { return nftSnapshot(t, base) },
			[]ChainListing{{Chain: watch.ChainRef{Family: "ipv4", Table: "nat", Chain: "NEW"}, Text: "-N NEW\n-A NEW -c 0 0 -j RETURN\n"}}},
		{"a table the dump does not have", func() *snapshot.Snapshot { return nftSnapshot(t, base) },
			[]ChainListing{{Chain: watch.ChainRef{Family: "ipv4", Table: "mangle", Chain: "PREROUTING"}, Text: "-P PREROUTING ACCEPT -c 0 0\n"}}},
		{"a listing without counters", func() *snapshot.Snapshot { return nftSnapshot(t, base) },
			[]ChainListing{{Chain: natDocker, Text: "-N DOCKER\n-A DOCKER -i docker0 -j RETURN\n"}}},
		{"a listing of another chain", func() *snapshot.Snapshot { return nftSnapshot(t, base) },
			[]ChainListing{{Chain: natDocker, Text: "-N DOCKER\n-A OTHER -c 0 0 -j RETURN\n"}}},
		{"a user chain listed as built-in", func() *snapshot.Snapshot { return nftSnapshot(t, base) },
			[]ChainListing{{Chain: natDocker, Text: "-P DOCKER ACCEPT -c 0 0\n"}}},
		{"an empty listing", func() *snapshot.Snapshot { return nftSnapshot(t, base) }, []ChainListing{{Chain: natDocker}}},
		{"rules out of the headers' order", func() *snapshot.Snapshot {
			return nftSnapshot(t, strings.Replace(base, "[0:0] -A OUTPUT ! -d 127.0.0.0/8", "[0:0] -A DOCKER -j RETURN\n[0:0] -A OUTPUT ! -d 127.0.0.0/8", 1))
		}, good},
		{"a line iptables-nft-save does not print in a table", func() *snapshot.Snapshot {
			return nftSnapshot(t, strings.Replace(base, "*nat\n", "*nat\n# Warning: iptables-legacy tables present\n", 1))
		}, good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SpliceChains(tt.prev(), tt.listings, time.Now())
			if !errors.Is(err, ErrNoChainRead) {
				t.Errorf("SpliceChains = %v, want ErrNoChainRead", err)
			}
		})
	}
}

func TestReadChainsListsEachChainWithItsTool(t *testing.T) {
	r := &FakeRunner{Script: []Call{
		{Name: "iptables-nft", Args: []string{"-t", "nat", "-S", "DOCKER", "-v"}, Stdout: "-N DOCKER\n"},
		{Name: "ip6tables-nft", Args: []string{"-t", "filter", "-S", "FORWARD", "-v"}, Stdout: "-P FORWARD DROP -c 0 0\n"},
	}}
	chains := []watch.ChainRef{{Family: "ipv4", Table: "nat", Chain: "DOCKER"}, {Family: "ipv6", Table: "filter", Chain: "FORWARD"}}
	ls, err := ReadChains(context.Background(), Options{Runner: r}, chains)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Text != "-N DOCKER\n" || ls[1].Chain != chains[1] {
		t.Errorf("listings %+v", ls)
	}
	if err := r.Done(); err != nil {
		t.Error(err)
	}
}
