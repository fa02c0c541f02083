package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// breakages are field breakages beyond the fixtures' (dockerhost.sh break
// KINDs), each with what doctor must say and what --fix must do:
//   - want: the error/warning IDs (exactly these);
//   - broken: the host ports the ports table must call "broken" (the
//     others "nat" or "local-only"), as `dockerhost.sh probe` finds them;
//   - repaired: --fix puts back Docker's rules and every port answers;
//     false: the cause is not Docker's (a host firewall rule, the admin's
//     DOCKER-USER policy) and --fix must leave the rules as they are.
//
// only28 kinds need the raw table of Docker 28 and later; proxyOn kinds
// need userland-proxy on; before29 kinds break a rule Docker 29 no longer
// writes (the DOCKER-ISOLATION chains, nat DOCKER's per-bridge RETURN);
// only29 kinds break what only 29 writes (DOCKER-INTERNAL).
var breakages = []struct {
	kind     string
	want     []string
	broken   []int
	repaired bool
	only28   bool
	proxyOn  bool
	before29 bool
	only29   bool
	// want28 replaces want on Docker 28 and later when set.
	want28 []string
	// reach, when set, is a connection between containers (or to the
	// host's address) that the breakage changes: it must give answered
	// while broken and the opposite before the break and after --fix.
	reach    *reach
	answered bool
	// reachClassic: the reach check applies to 20.10-27 only (since 28
	// the raw table's DROPs stop it whatever the break).
	reachClassic bool
	// offOnly: a userland-proxy-off prerequisite. On proxy-on hosts the
	// break must give no error or warning and --fix must change nothing.
	offOnly bool
}{
	{kind: "forward-jump-deleted", want: nil, broken: []int{8080, 7000, 7001, 7002}, repaired: true}, // want set per version below
	{kind: "port-accept-deleted", want: []string{"forward-accept-missing"}, broken: []int{8080}, repaired: true},
	{kind: "docker-user-deleted", want: []string{"docker-chain-missing"}, repaired: true},
	{kind: "forward-reject-bridge", want: []string{"forward-blocked"}, broken: []int{8080, 7000, 7001, 7002}},
	{kind: "docker-user-port-drop", want: nil, broken: []int{8080}},
	{kind: "raw-endpoint-deleted", want: []string{"raw-drop-missing"}, repaired: true, only28: true},
	{kind: "user-jump-deleted", want: []string{"docker-jump-missing"}, repaired: true},
	// 28.x: filter DOCKER also holds each bridge's "! -i BR -o BR -j DROP".
	{kind: "filter-docker-flushed", want: []string{"forward-accept-missing"}, want28: []string{"docker-rule-missing", "forward-accept-missing"},
		broken: []int{8080, 8081, 7000, 7001, 7002}, repaired: true},
	{kind: "masquerade-deleted", want: []string{"masquerade-missing"}, repaired: true},
	{kind: "forward-drop-inserted", want: []string{"forward-blocked"}, broken: []int{8080, 8081, 7000, 7001, 7002}},
	// A flushed raw table looks like DOCKER_INSECURE_NO_IPTABLES_RAW=1:
	// an info finding, nothing repaired.
	{kind: "raw-flushed", want: nil, only28: true},
	// The NAT path still serves other machines; 127.0.0.1:8080 is refused.
	// Only a container restart brings the proxy back: not repaired.
	{kind: "proxy-killed", want: []string{"proxy-missing"}, proxyOn: true},
	// Links: iptscope reports them and the ports they cut off, and leaves
	// them to Docker (not repaired).
	{kind: "bridge-down", want: []string{"bridge-down"}, broken: []int{8080, 7000, 7001, 7002}},
	{kind: "veth-detached", want: []string{"veth-detached"}, broken: []int{8080}},
	// A DNAT to a live container's address but another port takes
	// Docker's 8080: deleted (it overrides Docker's mapping), then Docker's
	// rule restored.
	{kind: "dnat-repointed", want: []string{"dnat-missing", "dnat-stale"}, broken: []int{8080}, repaired: true},
	// A saved ruleset restored with --noflush doubles the built-in chains'
	// rules: reported with the deletions by position, not repaired.
	{kind: "saved-rules-restored", want: []string{"docker-rule-duplicated"}},
	// userland-proxy off prerequisites (docker-facts.md §3.4).
	{kind: "br-netfilter-off", want: []string{"br-netfilter-disabled"}, repaired: true, offOnly: true,
		reach: &reach{from: "multi", to: "host", port: 8080}, answered: false},
	{kind: "route-localnet-off", want: []string{"route-localnet-disabled"}, repaired: true, offOnly: true,
		reach: &reach{from: "host", to: "127.0.0.1", port: 8080}, answered: false},
	{kind: "hairpin-off", want: []string{"hairpin-mode-off"}, offOnly: true,
		reach: &reach{from: "web", to: "host", port: 8080}, answered: false},
	// appnet's containers reach docker0's (web's published container port)
	// on 20.10 (one DROP gone is not enough: the other network's DROP takes
	// the replies). 28.x's raw DROPs still stop direct access.
	{kind: "isolation-flushed", want: []string{"docker-rule-missing"}, repaired: true, before29: true,
		reach: &reach{from: "app", to: "web", port: 80}, answered: true, reachClassic: true},
	// 29: the internal network's two DROPs (its isolation since the
	// ISOLATION chains went) gone.
	{kind: "internal-flushed", want: []string{"docker-rule-missing"}, repaired: true, only29: true},
	// web's connection to app's published port through the host's address
	// is DNAT'd across networks and dropped by isolation (times out).
	{kind: "nat-return-deleted", want: []string{"docker-rule-missing"}, repaired: true, proxyOn: true, before29: true,
		reach: &reach{from: "web", to: "host", port: 8081}, answered: false},
}

// reach is an HTTP GET from container from to container to (or "host":
// the docker host's uplink address) on port.
type reach struct {
	from, to string
	port     int
}

// TestBreakagesOnRealDocker breaks real daemons in the ways of breakages
// and checks doctor's findings and ports table, then `doctor --fix --yes`.
// Seven hosts (20.10 nft proxy on, 28.5 nft proxy off, 28.5 legacy proxy
// on, 20.10 legacy proxy off, 26.1 nft proxy off, 29 nft proxy on, 29
// legacy proxy off), run in parallel: about 2 minutes on a 2-CPU runner.
// Where diagnose is known to be wrong on a host, the case is in
// knownGaps (docker29_known_test.go): checked to still be wrong in the
// same way, not skipped.
func TestBreakagesOnRealDocker(t *testing.T) {
	hosts := []matrixHost{{"20.10", "nft", "on"}, {"28.5", "nft", "off"}, {"28.5", "legacy", "on"}, {"20.10", "legacy", "off"}, {"26.1", "nft", "off"},
		{"29", "nft", "on"}, {"29", "legacy", "off"}}
	start := time.Now()
	t.Cleanup(func() { t.Logf("breakages e2e: %d hosts in %s", len(hosts), time.Since(start).Round(time.Second)) })
	for _, hh := range hosts {
		name := "bk" + strings.ReplaceAll(hh.version, ".", "") + hh.backend[:1] + hh.proxy[1:2]
		t.Run("docker "+hh.version+" "+hh.backend+" proxy "+hh.proxy, func(t *testing.T) {
			t.Parallel()
			h := startDockerHost(t, name, hh.version, hh.backend, hh.proxy)
			if out, err := h.script("admin-rules"); err != nil {
				t.Fatalf("admin-rules: %v\n%s", err, out)
			}
			backups := t.TempDir()
			for _, k := range breakages {
				if k.only28 && !since28(hh.version) || k.proxyOn && hh.proxy != "on" || k.before29 && hh.version == "29" || k.only29 && hh.version != "29" {
					continue
				}
				want := slices.Clone(k.want)
				if k.want28 != nil && since28(hh.version) {
					want = slices.Clone(k.want28)
				}
				if k.kind == "forward-jump-deleted" {
					// 20.10-27: docker0's "-o docker0 -j DOCKER" is one of its
					// per-network FORWARD rules; 28+: one jump to DOCKER-FORWARD
					// (every network: 8081 too).
					want = []string{"docker-jump-missing", "forward-accept-missing"}
				}
				broken, repaired := k.broken, k.repaired
				offOnlyOnProxyOn := k.offOnly && hh.proxy == "on"
				if offOnlyOnProxyOn {
					want, broken, repaired = nil, nil, false
				}
				if k.kind == "forward-jump-deleted" && since28(hh.version) {
					want, broken = []string{"docker-jump-missing"}, []int{8080, 8081, 7000, 7001, 7002}
				}
				sort.Strings(want)
				says := "reports " + strings.Join(want, ", ")
				if len(want) == 0 {
					says = "reports no error or warning"
				}
				t.Run("after "+k.kind+" doctor "+says, func(t *testing.T) {
					t.Cleanup(func() {
						if out, err := h.script("heal"); err != nil {
							t.Errorf("heal: %v\n%s", err, out)
						}
					})
					rc := k.reach
					if offOnlyOnProxyOn {
						rc = nil
					}
					if k.reachClassic && since28(hh.version) {
						rc = nil
					}
					if rc != nil && h.reachesWant(t, rc, !k.answered) == k.answered {
						t.Fatalf("before %s: %s -> %s:%d answered=%v already", k.kind, k.reach.from, k.reach.to, k.reach.port, k.answered)
					}
					if out, err := h.script("break", k.kind); err != nil {
						t.Fatalf("break %s: %v\n%s", k.kind, err, out)
					}
					if rc != nil && h.reachesWant(t, rc, k.answered) != k.answered {
						t.Errorf("after %s: %s -> %s:%d answered=%v, want %v", k.kind, k.reach.from, k.reach.to, k.reach.port, !k.answered, k.answered)
					}
					if k.kind == "proxy-killed" {
						// What the finding says: the host's own connections to
						// 8080 are refused, 8081 (proxy alive) still answers.
						if h.getLocal(t, 8080) || !h.getLocalWithin(t, 8081, probeDeadline) {
							t.Fatalf("after proxy-killed: want 127.0.0.1:8080 refused and 127.0.0.1:8081 answering")
						}
					}
					rep, code, stderr := h.doctor(t, "")
					got := rep.problemIDs()
					if gap := findGap("breakages", hh, k.kind); gap != nil {
						// An expected failure: diagnose must still say what
						// the gap records (and not what is true yet).
						gap.check(t, got, want)
						return
					}
					if !slices.Equal(got, want) {
						t.Errorf("error/warning IDs %v, want %v", got, want)
					}
					if wantCode := map[bool]int{true: 1, false: 0}[len(want) > 0]; code != wantCode {
						t.Errorf("doctor exit %d, want %d (%s)", code, wantCode, stderr)
					}
					// The ports table must agree with what answers from the
					// client right now, and with the breakage's expectation
					// (ports that should answer are waited for).
					answered := h.probeClientExpect(t, broken)
					for _, p := range rep.Ports {
						if p.HostIP == "127.0.0.1" {
							continue
						}
						isBroken := p.Path == "broken"
						if isBroken != slices.Contains(broken, p.HostPort) {
							t.Errorf("port %d: path %q (%s); broken ports should be %v", p.HostPort, p.Path, p.Reason, broken)
						}
						if a, probed := answered[p.HostPort]; probed && a == isBroken {
							t.Errorf("port %d: path %q (%s) but answered=%v from the client", p.HostPort, p.Path, p.Reason, a)
						}
					}
					before := h.saveV4(t)
					out, stderr, code := h.fix(t, backups)
					if repaired {
						if code != 0 {
							t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
						}
						h.requireProbe(t)
						if rc != nil && h.reachesWant(t, rc, !k.answered) == k.answered {
							t.Errorf("after --fix: %s -> %s:%d answered=%v still", k.reach.from, k.reach.to, k.reach.port, k.answered)
						}
						if rep, code, _ := h.doctor(t, ""); code != 0 {
							for _, f := range rep.Findings {
								t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
							}
							t.Errorf("doctor after --fix: exit %d", code)
						}
						h.requireDockerOrder(t)
						return
					}
					if after := h.saveV4(t); after != before {
						t.Errorf("--fix changed rules that are not Docker's to repair:\nbefore:\n%s\nafter:\n%s", before, after)
					}
					if wantCode := map[bool]int{true: 1, false: 0}[len(want) > 0]; code != wantCode {
						t.Errorf("doctor --fix: exit %d, want %d\n%s\n%s", code, wantCode, out, stderr)
					}
					if k.kind == "saved-rules-restored" {
						// The finding's own repair (deletions by position, last
						// first) must leave exactly Docker's rules.
						for _, f := range rep.Findings {
							if f.ID != "docker-rule-duplicated" {
								continue
							}
							_, cmds, _ := strings.Cut(f.Fix, "`")
							cmds, _, _ = strings.Cut(cmds, "`")
							for _, c := range strings.Split(cmds, "; ") {
								h.ipt(t, strings.Fields(c)...)
							}
						}
						if _, code, _ := h.doctor(t, ""); code != 0 {
							t.Errorf("after the finding's commands: doctor exit %d", code)
						}
						h.requireDockerOrder(t)
					}
				})
			}
			t.Run("after filter-docker-flushed plus a REJECT --fix repairs Docker's rules and exits 1 for the REJECT", func(t *testing.T) {
				t.Cleanup(func() {
					if out, err := h.script("heal"); err != nil {
						t.Errorf("heal: %v\n%s", err, out)
					}
				})
				if out, err := h.script("break", "filter-docker-flushed"); err != nil {
					t.Fatalf("break: %v\n%s", err, out)
				}
				h.ipt(t, "iptables", "-w", "-I", "FORWARD", "1", "-i", "docker0", "-j", "REJECT")
				out, stderr, code := h.fix(t, backups)
				if code != 1 || !strings.Contains(out, "repaired:") || !strings.Contains(stderr, "forward-blocked") {
					t.Errorf("doctor --fix: exit %d, want 1 after repairing, naming forward-blocked\n%s\n%s", code, out, stderr)
				}
				rep, _, _ := h.doctor(t, "")
				if got := rep.problemIDs(); strings.Join(got, ",") != "forward-blocked" {
					t.Errorf("after --fix: %v, want only forward-blocked (Docker's ACCEPTs back, the admin's REJECT left)", got)
				}
			})
		})
	}
}

// getLocal reports whether http://127.0.0.1:PORT/ answers from inside the
// docker host's namespace (the host's own connections), in one attempt.
func (h *dockerHost) getLocal(t *testing.T, port int) bool {
	t.Helper()
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+h.Name, "curl", "-fsS", "-o", "/dev/null",
		"--connect-timeout", "3", "--max-time", "6", fmt.Sprintf("http://127.0.0.1:%d/", port))
	return cmd.Run() == nil
}

// getLocalWithin is getLocal retried until it answers, for up to deadline.
func (h *dockerHost) getLocalWithin(t *testing.T, port int, deadline time.Duration) bool {
	t.Helper()
	return waitUntil(t, fmt.Sprintf("127.0.0.1:%d answers inside the host", port), deadline, func() bool { return h.getLocal(t, port) })
}

// reachesWant is reaches for a check that expects want: an expected answer
// is waited for (probeDeadline at most: a busy machine delays it, it does
// not take it away); an expected silence is one attempt, as an answer is
// proof enough.
func (h *dockerHost) reachesWant(t *testing.T, r *reach, want bool) bool {
	t.Helper()
	if !want {
		return h.reaches(t, r)
	}
	return waitUntil(t, fmt.Sprintf("%s -> %s:%d answers", r.from, r.to, r.port), probeDeadline, func() bool { return h.reaches(t, r) })
}

// reaches reports whether an HTTP GET from r.from to r.to:r.port answers
// (busybox nc inside the container, 5 s timeout), in one attempt.
func (h *dockerHost) reaches(t *testing.T, r *reach) bool {
	t.Helper()
	if r.from == "host" {
		return h.getLocal(t, r.port)
	}
	ip := ""
	if r.to == "host" {
		out, err := exec.Command("ip", "-n", h.Name, "-4", "-o", "addr", "show", "dev", "tbhost0").Output()
		if f := strings.Fields(string(out)); err == nil && len(f) >= 4 {
			ip, _, _ = strings.Cut(f[3], "/")
		}
	} else {
		ip = strings.TrimSpace(string(h.docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", r.to)))
		ip, _, _ = strings.Cut(ip, " ")
	}
	if ip == "" {
		t.Fatalf("no address for %s", r.to)
	}
	cmd := exec.Command("bash", script, "docker", h.Name, "exec", "-i", r.from, "/bin/busybox", "nc", "-w", "5", ip, fmt.Sprint(r.port))
	cmd.Env = append(os.Environ(), "DOCKER="+h.Version, "BACKEND="+h.Backend, "PROXY="+h.Proxy, "FIREWALL="+h.Firewall)
	cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
	out, _ := cmd.Output()
	return strings.HasPrefix(string(out), "HTTP/1.")
}

// probeClientExpect is probeClient repeated until every probed port that
// is not in broken answers (probeDeadline at most), so that a port slow to
// answer on a busy machine is not taken for a dead one.
func (h *dockerHost) probeClientExpect(t *testing.T, broken []int) map[int]bool {
	t.Helper()
	var got map[int]bool
	waitUntil(t, fmt.Sprintf("the client's probes answer except on %v", broken), probeDeadline, func() bool {
		got = h.probeClient(t)
		for p, a := range got {
			if !a && !slices.Contains(broken, p) {
				return false
			}
		}
		return true
	})
	return got
}

// probeClient runs `dockerhost.sh probe` and returns, for each published
// port probed from the client namespace that should answer on a healthy
// host, whether it answered (the probe's own exit status is ignored: a
// broken host fails it).
func (h *dockerHost) probeClient(t *testing.T) map[int]bool {
	t.Helper()
	out, _ := h.script("probe")
	got := map[int]bool{}
	for _, l := range strings.Split(out, "\n") {
		kv := map[string]string{}
		for _, f := range strings.Fields(l) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
		if kv["from"] != "client" || kv["expect"] != "yes" {
			continue
		}
		var port int
		if _, err := fmt.Sscan(kv["port"], &port); err == nil {
			got[port] = kv["answered"] == "yes"
		}
	}
	if len(got) == 0 {
		t.Fatalf("probe printed no client result:\n%s", out)
	}
	return got
}
