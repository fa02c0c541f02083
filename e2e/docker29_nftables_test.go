package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// nftablesState is one state of a Docker 29 host with the nftables
// firewall backend (`"firewall-backend": "nftables"`): its own tables
// `ip docker-bridges` and `ip6 docker-bridges`, no iptables rule at all
// (docker-facts.md §2.5), with what doctor must say and whether
// `doctor --fix` repairs it.
type nftablesState struct {
	kind string // dockerhost.sh break KIND, "healthy" for none
	// broken are the host ports that do not answer from the client in
	// this state (checked with dockerhost.sh probe before doctor runs).
	broken []int
	// wantExit is the right exit code: 0 on a healthy host and where the
	// cause is a user's deliberate rule (as for DOCKER-USER with iptables),
	// 1 where Docker's rules or a leftover break the host. The ports
	// table must call exactly the broken ports "broken" and judge all.
	wantExit int
	// ids are the error and warning finding IDs doctor must give.
	ids []string
	// fixed: `doctor --fix --yes` repairs the state: afterwards every port
	// answers, Docker's table equals the healthy one (handles and counters
	// aside) and a second fix has nothing to repair.
	fixed bool
}

// nftablesAnswer is what doctor gave: exit code, status, the ports the
// ports table calls broken and those it leaves unknown, error/warning IDs.
type nftablesAnswer struct {
	exit            int
	status          string
	broken, unknown []int
	ids             []string
}

func (a nftablesAnswer) String() string {
	return fmt.Sprintf("exit %d, status %s, broken ports %v, unjudged ports %v, error/warning IDs %v", a.exit, a.status, a.broken, a.unknown, a.ids)
}

// nftablesStates: what doctor must say on the nftables backend. Proxy on
// and off give the same answers except where noted: with the proxy on a
// missing DNAT still answers from outside, through docker-proxy.
var nftablesStates = []nftablesState{
	{kind: "healthy", wantExit: 0},
	// Every published port dead (proxy off; with the proxy on docker-proxy
	// answers, see nftablesBroken); Docker recreates only part of the
	// table on the next container start: the fix rebuilds it whole.
	{kind: "nft-table-deleted", broken: []int{7000, 7001, 7002, 8080, 8081}, wantExit: 1, ids: []string{"docker-chain-missing"}, fixed: true},
	// Ports still answer: the in-chain only adds drops (accept is the
	// hook's policy), so the unpublished-port DROP and ICC are gone.
	{kind: "nft-bridge-chain-flushed", wantExit: 1, ids: []string{"docker-rule-missing"}, fixed: true},
	{kind: "nft-vmap-element-deleted", wantExit: 1, ids: []string{"docker-jump-missing"}, fixed: true},
	{kind: "nft-dnat-deleted", broken: []int{8080}, wantExit: 1, ids: []string{"dnat-missing"}, fixed: true},
	{kind: "nft-masq-flushed", wantExit: 1, ids: []string{"masquerade-missing"}, fixed: true},
	// The user's own rule, like a DOCKER-USER drop: an info, not an
	// error; the ports table shows 8080 broken and why; --fix leaves the
	// user's table alone.
	{kind: "nft-user-table-drop", broken: []int{8080}, wantExit: 0},
	// Not Docker's rule: forward-blocked says what to change by hand.
	{kind: "nft-iptables-forward-drop", broken: []int{7000, 7001, 7002, 8080, 8081}, wantExit: 1, ids: []string{"forward-blocked"}},
	{kind: "ip-forward-off", broken: []int{7000, 7001, 7002, 8080, 8081}, wantExit: 1, ids: []string{"ip-forward-disabled"}, fixed: true},
}

// nftablesBroken is the state's broken ports on a host with the proxy
// mode given: with the proxy on, a missing DNAT (the whole table deleted,
// or web's rule) is covered by docker-proxy, which answers from outside.
func (s nftablesState) nftablesBroken(proxy string) []int {
	if proxy == "on" && (s.kind == "nft-table-deleted" || s.kind == "nft-dnat-deleted") {
		return nil
	}
	return s.broken
}

// TestNftablesBackendOnRealDocker runs Docker 29.8.1 with its nftables
// firewall backend, proxy on and off: the healthy host is collected (the
// bundle must agree with Docker and the kernel, as for iptables hosts) and
// doctored, then each break of nftablesStates is checked with a probe and
// doctor, repaired with doctor --fix where it should be, and healed. At
// the end Docker removes a container and its rules go: the table iptscope
// repaired is still Docker's to change.
func TestNftablesBackendOnRealDocker(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("nftables e2e: 2 hosts in %s", time.Since(start).Round(time.Second)) })
	for _, proxy := range []string{"on", "off"} {
		name := "nt29" + proxy[1:2] // nt29n, nt29f
		t.Run("docker 29 nftables proxy "+proxy, func(t *testing.T) {
			t.Parallel()
			h := startDockerHostFull(t, &dockerHost{Name: name, Version: "29", Backend: "nft", Proxy: proxy, Firewall: "nftables"})
			if ruleset := h.ipt(t, "nft", "list", "ruleset"); !strings.Contains(ruleset, "table ip docker-bridges {") {
				t.Fatalf("no table ip docker-bridges:\n%s", ruleset)
			}
			if save := h.saveV4(t); strings.Contains(save, "DOCKER") {
				t.Errorf("the nftables backend wrote iptables rules:\n%s", save)
			}
			healthy := h.dockerTable(t)
			backups := t.TempDir()

			t.Run("collect gives a bundle that agrees with Docker and the kernel", func(t *testing.T) {
				_, data := h.collectBundle(t)
				snap, err := snapshot.Load(data)
				if err != nil {
					t.Fatal(err)
				}
				if snap.Docker == nil || snap.Docker.Info == nil || snap.Docker.Info.FirewallBackend != "nftables" {
					t.Errorf("docker info firewall backend: %+v, want nftables", snap.Docker)
				}
				if snap.NftTable(nft.FamilyIP, "docker-bridges") == nil {
					t.Errorf("the bundle has no table ip docker-bridges (nftables part: %+v)", snap.Nftables)
				}
				checkBundle(t, h, snap)
			})

			for _, st := range nftablesStates {
				broken := st.nftablesBroken(proxy)
				t.Run(st.kind+" doctor "+nftablesSays(st, broken), func(t *testing.T) {
					if st.kind != "healthy" {
						t.Cleanup(func() { h.heal(t) })
						if out, err := h.script("break", st.kind); err != nil {
							t.Fatalf("break %s: %v\n%s", st.kind, err, out)
						}
					}
					answered := h.probeClientExpect(t, broken)
					var dead []int
					for p, a := range answered {
						if !a {
							dead = append(dead, p)
						}
					}
					sort.Ints(dead)
					if !slices.Equal(dead, broken) {
						t.Errorf("ports that do not answer from the client: %v, want %v", dead, broken)
					}
					got := h.nftablesDoctor(t)
					if got.exit != st.wantExit || !slices.Equal(got.broken, broken) || len(got.unknown) > 0 || !slices.Equal(got.ids, st.ids) {
						t.Errorf("doctor: %s; want exit %d, broken ports %v, every port judged, IDs %v", got, st.wantExit, broken, st.ids)
					}
					switch {
					case st.fixed:
						h.nftablesFix(t, backups, healthy)
					case st.kind == "nft-user-table-drop":
						user := h.ipt(t, "nft", "list", "table", "inet", "myfw")
						out, stderr, code := h.fix(t, backups)
						if code != 0 || !strings.Contains(out, "nothing to repair") {
							t.Errorf("--fix on a user's deliberate drop: exit %d, want 0 and \"nothing to repair\":\n%s\n%s", code, out, stderr)
						}
						if after := h.ipt(t, "nft", "list", "table", "inet", "myfw"); after != user {
							t.Errorf("--fix changed the user's table:\n%s\nwas:\n%s", after, user)
						}
					}
				})
			}

			t.Run("after a fix Docker still removes a container and its rules go", func(t *testing.T) {
				if out, err := h.script("break", "nft-table-deleted"); err != nil {
					t.Fatalf("break: %v\n%s", err, out)
				}
				if out, stderr, code := h.fix(t, backups); code != 0 {
					t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
				}
				h.docker(t, "rm", "-f", "web")
				tb := h.dockerTable(t)
				for ch, rules := range tb.chains {
					for _, r := range rules {
						if strings.Contains(r, "dport 8080 ") || strings.Contains(r, "172.17.0.2 ") {
							t.Errorf("web's rule left in %s after docker rm: %s", ch, r)
						}
					}
				}
			})
		})
	}
}

// nftTable is Docker's IPv4 nftables table without handles and counters:
// per chain its header and rules' specs in order, per map its elements
// sorted.
type nftTable struct {
	chains map[string][]string
	maps   map[string][]string
}

// dockerTable reads `nft -j list table ip docker-bridges` in the host.
func (h *dockerHost) dockerTable(t *testing.T) nftTable {
	t.Helper()
	out := h.ipt(t, "nft", "-j", "list", "table", "ip", "docker-bridges")
	rs, err := nft.Parse([]byte(out))
	if err != nil {
		t.Fatalf("parsing nft -j list table: %v\n%s", err, out)
	}
	tb := rs.Table(nft.FamilyIP, "docker-bridges")
	got := nftTable{chains: map[string][]string{}, maps: map[string][]string{}}
	if tb == nil {
		return got
	}
	for _, c := range tb.Chains {
		rules := []string{c.Header()}
		for _, r := range c.Rules {
			rules = append(rules, r.Spec())
		}
		got.chains[c.Name] = rules
	}
	for _, s := range tb.Sets {
		var els []string
		for _, e := range s.Elements {
			els = append(els, e.Key+" : "+e.Data)
		}
		sort.Strings(els)
		got.maps[s.Name] = els
	}
	return got
}

// nftablesFix runs doctor --fix --yes and checks what it must give: exit
// 0, every port answers, Docker's table equals the healthy one (handles
// and counters aside, and the order among one run of per-container rules),
// doctor is clean, and a second fix has nothing to repair.
func (h *dockerHost) nftablesFix(t *testing.T, backups string, healthy nftTable) {
	t.Helper()
	out, stderr, code := h.fix(t, backups)
	if code != 0 {
		t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
	}
	h.requireProbe(t)
	got := h.dockerTable(t)
	// Why runs are sorted: Docker orders the rules of different
	// containers and ports by when each was started, which the snapshot
	// does not say; such rules match disjoint packets, so their order
	// among themselves does not matter, while their place among the
	// skeleton's rules (before "UNPUBLISHED PORT DROP") does.
	perContainer := func(r string) bool {
		return strings.Contains(r, "daddr ") || strings.Contains(r, "saddr ") || strings.Contains(r, "dnat to ")
	}
	norm := func(tb nftTable, ch string) []string {
		rs := append([]string(nil), tb.chains[ch]...)
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
	for ch := range healthy.chains {
		if !slices.Equal(norm(got, ch), norm(healthy, ch)) {
			t.Errorf("after --fix chain %s:\n  %s\nwant (healthy):\n  %s", ch, strings.Join(got.chains[ch], "\n  "), strings.Join(healthy.chains[ch], "\n  "))
		}
	}
	for ch := range got.chains {
		if _, ok := healthy.chains[ch]; !ok {
			t.Errorf("after --fix an extra chain %s", ch)
		}
	}
	for m, els := range healthy.maps {
		if !slices.Equal(got.maps[m], els) {
			t.Errorf("after --fix map %s: %v, want %v", m, got.maps[m], els)
		}
	}
	if a := h.nftablesDoctor(t); a.exit != 0 || len(a.broken) > 0 || len(a.ids) > 0 {
		t.Errorf("doctor after --fix: %s", a)
	}
	out, stderr, code = h.fix(t, backups)
	if code != 0 || !strings.Contains(out, "nothing to repair") {
		t.Errorf("second --fix: exit %d, want 0 and \"nothing to repair\":\n%s\n%s", code, out, stderr)
	}
}

func nftablesSays(st nftablesState, broken []int) string {
	s := fmt.Sprintf("should exit %d", st.wantExit)
	if len(broken) > 0 {
		s += fmt.Sprintf(" with ports %v broken", broken)
	}
	return s
}

// nftablesDoctor runs the live doctor and sums up its answer.
func (h *dockerHost) nftablesDoctor(t *testing.T) nftablesAnswer {
	t.Helper()
	stdout, stderr, code := h.iptscope(t, "doctor", "-o", "json", "--netns", h.Name, "--docker-host", "unix://"+h.Socket)
	var rep fullReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("iptscope doctor: exit %d: %v; stderr %s", code, err, stderr)
	}
	a := nftablesAnswer{exit: code, status: rep.Status}
	for _, p := range rep.Ports {
		switch {
		case p.HostIP == "127.0.0.1":
		case p.Path == "broken":
			a.broken = append(a.broken, p.HostPort)
		case p.Path == "unknown":
			a.unknown = append(a.unknown, p.HostPort)
		}
	}
	for _, f := range rep.Findings {
		if (f.Severity == "error" || f.Severity == "warning") && !slices.Contains(a.ids, f.ID) {
			a.ids = append(a.ids, f.ID)
		}
	}
	sort.Ints(a.broken)
	sort.Ints(a.unknown)
	sort.Strings(a.ids)
	return a
}

// TestNftablesSpeed1000Ports (IPTSCOPE_BENCH=1; root, real Docker 29.8.1
// with its nftables backend, userland-proxy off so that only NAT answers,
// live-restore on): one container publishing 1,000 ports (-p
// 20000-20999:20000-20999; busybox httpd on a sample of them). Measured,
// three times each: `iptscope collect` and `iptscope doctor` of the healthy
// host; then with nat-prerouting-and-output flushed (the 1,000 DNATs
// lost) (a) `iptscope doctor --fix --yes` and (b) a dockerd restart, each
// until the sampled ports answer from the client namespace again. A
// measurement, not a test: nothing is asserted on the times.
func TestNftablesSpeed1000Ports(t *testing.T) {
	if os.Getenv("IPTSCOPE_BENCH") != "1" {
		t.Skip("set IPTSCOPE_BENCH=1 to run the nftables timing on real Docker 29")
	}
	requireRoot(t, "nsenter", "ip", "busybox", "curl", "nft")
	h, hostIP := startBigHost(t, &dockerHost{Name: "nftbench29", Version: "29", Backend: "nft", Proxy: "off", Firewall: "nftables"}) // repair_bench_test.go
	if n := strings.Count(h.ipt(t, "nft", "list", "chain", "ip", "docker-bridges", "nat-prerouting-and-output"), "dnat to"); n < 1000 {
		t.Fatalf("nat-prerouting-and-output has %d DNATs, want >= 1000", n)
	}
	var col, doc, fix, restart []string
	for round := 0; round < 3; round++ {
		start := time.Now()
		out := filepath.Join(t.TempDir(), "bundle.json")
		if _, stderr, code := h.iptscope(t, "collect", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "-o", out); code != 0 {
			t.Fatalf("collect: exit %d: %s", code, stderr)
		}
		col = append(col, time.Since(start).Round(time.Millisecond).String())
		start = time.Now()
		if _, stderr, code := h.iptscope(t, "doctor", "--netns", h.Name, "--docker-host", "unix://"+h.Socket); code != 0 {
			t.Fatalf("doctor on the healthy host: exit %d: %s", code, stderr)
		}
		doc = append(doc, time.Since(start).Round(time.Millisecond).String())
	}
	flush := func() {
		t.Helper()
		h.ipt(t, "nft", "flush", "chain", "ip", "docker-bridges", "nat-prerouting-and-output")
		if d := h.waitPorts(t, hostIP, 3*time.Second); d >= 0 {
			t.Fatal("a sampled port still answers with its DNATs flushed (is the userland proxy off?)")
		}
	}
	backups := t.TempDir()
	for round := 0; round < 3; round++ {
		flush()
		start := time.Now()
		if _, stderr, code := h.fix(t, backups); code != 0 {
			t.Fatalf("doctor --fix: exit %d: %s", code, stderr)
		}
		cmd := time.Since(start)
		fix = append(fix, fmt.Sprintf("%s (ports answer %s)", cmd.Round(10*time.Millisecond), (cmd+h.waitPorts(t, hostIP, 30*time.Second)).Round(10*time.Millisecond)))

		flush()
		cmd, total := restartAndWait(t, h, hostIP) // repair_bench_test.go
		restart = append(restart, fmt.Sprintf("%s (ports answer %s)", cmd.Round(10*time.Millisecond), total.Round(10*time.Millisecond)))
	}
	t.Logf("Docker 29.8.1 nftables backend, userland-proxy off, live-restore on, 1,000 published ports:")
	t.Logf("  iptscope collect:                       %s", strings.Join(col, ", "))
	t.Logf("  iptscope doctor:                        %s", strings.Join(doc, ", "))
	t.Logf("  1,000 DNATs lost, iptscope doctor --fix: %s", strings.Join(fix, ", "))
	t.Logf("  1,000 DNATs lost, dockerd restart:       %s", strings.Join(restart, ", "))
	fmt.Fprintf(os.Stderr, "BENCH nftables collect=[%s] doctor=[%s] fix=[%s] restart=[%s]\n", strings.Join(col, ", "), strings.Join(doc, ", "), strings.Join(fix, ", "), strings.Join(restart, ", "))
}
