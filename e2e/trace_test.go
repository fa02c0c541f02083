package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iptscope/iptscope/parse"
)

// TestTraceAgreesWithTheKernel sends real packets from the client namespace
// of real Docker hosts (28.5 and 29 on iptables-nft, userland-proxy off)
// and requires that `iptscope trace` over a bundle collected just before
// says what the kernel's own trace (nftrace, read with xtables-monitor
// --trace inside the host's namespace) and the live probe say: the same
// rules met in the same order, the same deciding rule, the same verdict,
// and "answers" equal to whether the port answered.
//
// Packets: a published port (accepted, to its container), a container's
// port reached directly (raw's per-endpoint DROP), a port an admin's
// DOCKER-USER rule drops, and a published port after nat DOCKER is
// flushed (delivered to dockerd's placeholder, which never answers).
func TestTraceAgreesWithTheKernel(t *testing.T) {
	requireRoot(t, "nft", "xtables-monitor", "stdbuf", "curl")
	for _, v := range []string{"28.5", "29"} {
		if !testbedKnows(v) {
			require(t, false, "Docker "+v+" is not available to the testbed")
			continue
		}
		t.Run("docker "+v, func(t *testing.T) {
			h := startDockerHost(t, "trace2k"+strings.ReplaceAll(v, ".", ""), v, "nft", "off")
			hostIP, clientIP := h.tbAddrs(t)
			webIP := strings.TrimSpace(string(h.docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "web")))
			// The client has no route to the containers' subnet: give it
			// one, as a neighbour on the same link would have.
			if out, err := exec.Command("ip", "-n", h.Name+"-c", "route", "replace", "172.16.0.0/12", "via", hostIP).CombinedOutput(); err != nil {
				t.Fatalf("client route: %v: %s", err, out)
			}
			mon := h.startKernelTrace(t, clientIP)

			appIP := strings.TrimSpace(string(h.docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "app")))
			multiIP := strings.TrimSpace(string(h.docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "multi")))
			cases := []struct {
				name, dst string
				port      int
				prepare   func()
				verdict   string
				// from is "" for the client namespace, else the container
				// that sends (src its address, --in the route back to it).
				from, src, to string
			}{
				{"a published port", hostIP, 8080, nil, "accept", "", clientIP, ""},
				{"a container's port reached directly", webIP, 80, nil, "drop", "", clientIP, ""},
				{"a container to a published port of its own bridge (hairpin)", hostIP, 8080, nil, "accept", "multi", multiIP, "host"},
				{"a container to a container of another network", webIP, 80, nil, "drop", "app", appIP, "web"},
				{"a port the admin drops in DOCKER-USER", hostIP, 8081, func() {
					h.ipt(t, "iptables", "-I", "DOCKER-USER", "-s", clientIP, "-p", "tcp", "-m", "conntrack", "--ctorigdstport", "8081", "-j", "DROP")
				}, "drop", "", clientIP, ""},
				{"a published port after nat DOCKER is flushed", hostIP, 8080, func() {
					h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
				}, "accept", "", clientIP, ""},
			}
			if v == "29" {
				// 29's DOCKER-INTERNAL holds the internal network's DROPs
				// (the testbed's internal-flushed); the verdict is the
				// kernel's to say.
				backIP := strings.TrimSpace(string(h.docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "back")))
				webIP := webIP
				cases = append(cases, struct {
					name, dst     string
					port          int
					prepare       func()
					verdict       string
					from, src, to string
				}{"a container to an internal network's container after DOCKER-INTERNAL is flushed", backIP, 80, func() {
					if out, err := h.script("break", "internal-flushed"); err != nil {
						t.Fatalf("break internal-flushed: %v\n%s", err, out)
					}
				}, "", "web", webIP, "back"})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					if c.prepare != nil {
						c.prepare()
					}
					bundle, _ := h.collectBundle(t)
					out, stderr, code := h.iptscope(t, "trace", "--from", bundle, "--src", c.src, "--dst", c.dst, "--dport", fmt.Sprint(c.port), "-o", "json")
					if out == "" {
						t.Fatalf("iptscope trace: exit %d: %s", code, stderr)
					}
					var got traceJSON
					if err := json.Unmarshal([]byte(out), &got); err != nil {
						t.Fatal(err)
					}
					var answered bool
					if c.from == "" {
						answered = h.clientGet(c.dst, c.port)
					} else {
						answered = h.reaches(t, &reach{from: c.from, to: c.to, port: c.port})
					}
					kernel := mon.packet(t, c.src, c.dst, c.port)

					if c.verdict != "" && got.Verdict != c.verdict {
						t.Errorf("iptscope's verdict %s, want %s (%s)", got.Verdict, c.verdict, got.Reason)
					}
					if kv := kernel.verdict(); kv != got.Verdict {
						t.Errorf("the kernel's verdict %s, iptscope's %s", kv, got.Verdict)
					}
					if want, have := kernel.events(), got.events(); strings.Join(want, "\n") != strings.Join(have, "\n") {
						t.Errorf("the rules met differ\nkernel:\n  %s\niptscope:\n  %s\nxtables-monitor printed:\n%s", strings.Join(want, "\n  "), strings.Join(have, "\n  "), mon.last)
					}
					if kd, gd := kernel.decider(), got.decider(); kd != gd {
						t.Errorf("deciding rule: kernel %q, iptscope %q", kd, gd)
					}
					switch {
					case got.Answers == nil && c.to == "back":
						// back publishes no port: whether it listens is not
						// in the snapshot.
						t.Logf("answers unknown (live answered=%v): %s", answered, got.Reason)
					case got.Answers == nil:
						t.Errorf("iptscope cannot tell whether it answers: %s", got.Reason)
					case *got.Answers != answered:
						t.Errorf("iptscope says answers=%v, the live probe answered=%v (%s)", *got.Answers, answered, got.Reason)
					}
					if c.prepare == nil && c.from == "" {
						// The same trace live (collected by trace itself).
						live, stderr, code := h.iptscope(t, "trace", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "--src", c.src, "--dst", c.dst, "--dport", fmt.Sprint(c.port), "-o", "json")
						var lj traceJSON
						if err := json.Unmarshal([]byte(live), &lj); err != nil || lj.Verdict != got.Verdict || strings.Join(lj.events(), "\n") != strings.Join(got.events(), "\n") {
							t.Errorf("live trace (exit %d, %v: %s) differs from the bundle's: %s vs %s", code, err, stderr, lj.Verdict, got.Verdict)
						}
					}
					t.Logf("%s:%d: %s, %s; kernel and iptscope agree on %d rules", c.dst, c.port, got.Verdict, got.Reason, len(kernel.events()))
				})
			}
		})
	}
}

// tbAddrs are the host's and the client's addresses on their veth.
func (h *dockerHost) tbAddrs(t *testing.T) (host, client string) {
	t.Helper()
	get := func(ns, dev string) string {
		out, err := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev).Output()
		f := strings.Fields(string(out))
		if err != nil || len(f) < 4 {
			t.Fatalf("address of %s in %s: %v", dev, ns, err)
		}
		a, _, _ := strings.Cut(f[3], "/")
		return a
	}
	host = get(h.Name, "tbhost0")
	out, _ := exec.Command("ip", "-n", h.Name+"-c", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && !strings.HasPrefix(f[1], "lo") {
			dev, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			return host, get(h.Name+"-c", dev)
		}
	}
	t.Fatal("the client namespace has no veth")
	return "", ""
}

// clientGet reports whether an HTTP GET from the client namespace answers
// (one attempt: the trace already showed the packet's fate).
func (h *dockerHost) clientGet(dst string, port int) bool {
	return exec.Command("nsenter", "--net=/var/run/netns/"+h.Name+"-c", "curl", "-fsS", "-o", "/dev/null",
		"--connect-timeout", "3", "--max-time", "5", fmt.Sprintf("http://%s:%d/", dst, port)).Run() == nil
}

// kernelTrace is the kernel's own trace of the host's namespace: an
// nftables table (priority -350, before raw, on prerouting and output)
// sets nftrace on the TCP SYNs of the client, of the containers and of the
// host itself, and xtables-monitor --trace (iptables-nft hosts: it prints
// iptables syntax) or nft monitor trace (Docker 29's nftables backend,
// whose native rules xtables-monitor cannot print) reports every rule and
// policy each one meets.
type kernelTrace struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	last string // what the last packet's wait read, for failure messages
	key  string // the last packet found: "source/IP ID"
	h    *dockerHost
	nft  bool // nft monitor trace, not xtables-monitor
}

func (k *kernelTrace) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.buf.Write(p)
}

// startKernelTrace traces with xtables-monitor --trace.
func (h *dockerHost) startKernelTrace(t *testing.T, client string) *kernelTrace {
	t.Helper()
	return h.startKernelTraceWith(t, client, false)
}

// startKernelTraceWith traces with nft monitor trace when nftMonitor is
// set, else with xtables-monitor --trace. The tracing table is removed
// with the namespace (or by the caller's heal: it is not in the
// testbed's snapshot, so heal deletes it; call it again after a heal).
func (h *dockerHost) startKernelTraceWith(t *testing.T, client string, nftMonitor bool) *kernelTrace {
	t.Helper()
	h.addTraceTable(t, client)
	k := &kernelTrace{h: h, nft: nftMonitor}
	// Why stdbuf: the monitor's stdout is a pipe here, which C buffers by
	// blocks; a packet's events would arrive in pieces.
	args := []string{"--net=" + h.NetNS, "stdbuf", "-oL", "xtables-monitor", "--trace"}
	if nftMonitor {
		args = []string{"--net=" + h.NetNS, "stdbuf", "-oL", "nft", "-a", "monitor", "trace"}
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = k, k
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return k
}

// addTraceTable (re)creates the test's tracing table ip iptscopetrace.
func (h *dockerHost) addTraceTable(t *testing.T, client string) {
	t.Helper()
	// The client's SYNs and the containers' (172.16.0.0/12: every Docker
	// subnet of the layout) as they arrive; every SYN the host sends.
	script := fmt.Sprintf(`table ip iptscopetrace {}
delete table ip iptscopetrace
table ip iptscopetrace {
	chain pre {
		type filter hook prerouting priority -350; policy accept;
		ip saddr { %s, 172.16.0.0/12 } tcp flags & (syn | ack) == syn meta nftrace set 1
	}
	chain out {
		type filter hook output priority -350; policy accept;
		tcp flags & (syn | ack) == syn meta nftrace set 1
	}
}
`, client)
	cmd := exec.Command("nsenter", "--net="+h.NetNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f (the tracing table): %v: %s", err, out)
	}
}

// traceEvent is one line of xtables-monitor --trace for one packet.
type traceEvent struct {
	table, chain, kind, verdict, rule string
	handle                            int64 // the rule's handle (nftables)
}

type kernelPacket []traceEvent

var (
	packetLine = regexp.MustCompile(`^PACKET: \d+ ([0-9a-f]+) .*SRC=(\S+) DST=(\S+) .* ID=(\d+) .*DPORT=(\d+)`)
	traceLine  = regexp.MustCompile(`^\s*TRACE: \d+ ([0-9a-f]+) ([^:]+):([^:]+):(rule|policy|return)(?::(\S+))?\s*(.*)$`)
	// nft monitor trace: "trace id 2790e6a2 ip docker-bridges nat-PREROUTING
	// packet: iif "tbhost0" ... ip saddr A ip daddr B ... ip id N ... tcp
	// dport P ...", "... rule TEXT # handle 16 (verdict jump CHAIN)",
	// "... policy accept".
	nftPacketLine = regexp.MustCompile(`^trace id ([0-9a-f]+) \S+ \S+ \S+ packet: .*\bip saddr (\S+) ip daddr (\S+) .*\bip id (\d+) .*\btcp dport (\d+)`)
	nftTraceLine  = regexp.MustCompile(`^trace id ([0-9a-f]+) \S+ (\S+) (\S+) (rule|policy|unknown rule) (.*?)\s*$`)
	nftRuleEnd    = regexp.MustCompile(`^(.*) # handle (\d+) \(verdict ([^)]*)\)$`)
	// A rule nft monitor's cache does not have (its table was replaced
	// after the monitor started): "unknown rule handle 28 (verdict ...)".
	nftUnknownRule = regexp.MustCompile(`^()handle (\d+) \(verdict ([^)]*)\)$`)
)

// parseNftMonitor reads the events of the first SYN from src to dst:port
// in nft monitor trace's text, in the form parseXtables gives them
// (verdicts upper-case: ACCEPT, DROP, JUMP, ...).
func parseNftMonitor(text, src, dst string, port int) (kernelPacket, bool) {
	evs, _, found := parseNftMonitorKey(text, src, dst, port)
	return evs, found
}

// parseNftMonitorKey is parseNftMonitor with the packet's "source/IP ID".
func parseNftMonitorKey(text, src, dst string, port int) (kernelPacket, string, bool) {
	var evs kernelPacket
	ipID, found := "", false
	ofPacket := map[string]string{} // trace id -> IP ID of its last packet line
	seen := map[string]bool{}       // source/IP ID of the packets seen
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if m := nftPacketLine.FindStringSubmatch(l); m != nil {
			key := m[2] + "/" + m[4]
			if !seen[key] {
				// A packet is known by its first header: after a DNAT,
				// another packet may look like this one.
				seen[key] = true
				if !found && m[2] == src && m[3] == dst && m[5] == fmt.Sprint(port) {
					ipID, found = key, true
				}
			}
			ofPacket[m[1]] = key
			continue
		}
		m := nftTraceLine.FindStringSubmatch(l)
		if m == nil || !found || ofPacket[m[1]] != ipID || m[2] == "iptscopetrace" {
			continue
		}
		ev := traceEvent{table: m[2], chain: m[3], kind: m[4]}
		switch m[4] {
		case "rule", "unknown rule":
			ev.kind = "rule"
			re := nftRuleEnd
			if m[4] == "unknown rule" {
				re = nftUnknownRule
			}
			r := re.FindStringSubmatch(m[5])
			if r == nil {
				continue
			}
			ev.rule = r[1]
			ev.handle, _ = strconv.ParseInt(r[2], 10, 64)
			verdict, target, _ := strings.Cut(r[3], " ")
			ev.verdict = strings.ToUpper(verdict)
			if target != "" {
				ev.verdict += ":" + target
			}
		case "policy":
			ev.verdict = strings.ToUpper(m[5])
		}
		evs = append(evs, ev)
	}
	return evs, ipID, found
}

// parseXtables reads the events of the first SYN from src to dst:port in
// xtables-monitor --trace's text (without the tracing chain's own).
func parseXtables(text, src, dst string, port int) (kernelPacket, bool) {
	evs, _, found := parseXtablesKey(text, src, dst, port)
	return evs, found
}

// parseXtablesKey is parseXtables with the packet's "source/IP ID".
func parseXtablesKey(text, src, dst string, port int) (kernelPacket, string, bool) {
	var evs kernelPacket
	// Why the IP ID and not the trace id: the kernel's trace id is a
	// hash that can change between hooks (once the skb's hash is
	// computed), and xtables-monitor prints a PACKET line, with the
	// IP header, before each base chain's events.
	ipID, found := "", false
	ofPacket := map[string]string{} // trace id -> IP ID of its last PACKET line
	seen := map[string]bool{}       // source/IP ID of the packets seen
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if m := packetLine.FindStringSubmatch(l); m != nil {
			key := m[2] + "/" + m[4]
			if !seen[key] {
				// A packet is known by its first header: after a DNAT,
				// another packet may look like this one.
				seen[key] = true
				if !found && m[2] == src && m[3] == dst && m[5] == fmt.Sprint(port) {
					ipID, found = key, true
				}
			}
			ofPacket[m[1]] = key
			continue
		}
		m := traceLine.FindStringSubmatch(l)
		if m == nil || !found || ofPacket[m[1]] != ipID || m[2] == "iptscopetrace" {
			continue
		}
		ev := traceEvent{table: m[2], chain: m[3], kind: m[4]}
		switch m[4] {
		case "rule":
			// "0x7:ACCEPT", "0x3:JUMP:DOCKER"; the rule follows as
			// "-4 -t TABLE -A CHAIN ...".
			h, v, _ := strings.Cut(m[5], ":")
			ev.verdict = v
			ev.handle, _ = strconv.ParseInt(strings.TrimPrefix(h, "0x"), 16, 64)
			r := m[6]
			if i := strings.Index(r, " -A "); i >= 0 {
				r = r[i+1:]
			}
			ev.rule = strings.TrimSpace(r)
		case "policy":
			ev.verdict = m[5]
		}
		evs = append(evs, ev)
	}
	return evs, ipID, found
}

// packet waits for the trace of the first SYN from src to dst:port seen
// since the last call and returns its events (without the tracing
// chain's own).
func (k *kernelTrace) packet(t *testing.T, src, dst string, port int) kernelPacket {
	t.Helper()
	evs := k.find(t, src, dst, port)
	// What follows belongs to the next packet.
	k.reset()
	return evs
}

// reset forgets what the monitor printed so far (kept in last).
func (k *kernelTrace) reset() {
	k.mu.Lock()
	k.last = k.buf.String()
	k.buf.Reset()
	k.mu.Unlock()
}

// find waits for the trace of the first SYN from src to dst:port seen
// since the last reset, which it leaves to the caller: packets sent
// together are found one by one.
func (k *kernelTrace) find(t *testing.T, src, dst string, port int) kernelPacket {
	t.Helper()
	var evs kernelPacket
	prev, same := -1, 0
	read := parseXtablesKey
	if k.nft {
		read = parseNftMonitorKey
	}
	ok := waitUntil(t, fmt.Sprintf("the kernel's trace of a SYN to %s:%d", dst, port), 30*time.Second, func() bool {
		k.mu.Lock()
		text := k.buf.String()
		k.mu.Unlock()
		var found bool
		evs, k.key, found = read(text, src, dst, port)
		// Complete when two reads 200 ms apart see the same events; a
		// packet that meets no chain but the tracing one (a host whose
		// tables were deleted) after a second of quiet.
		if found && len(evs) == prev {
			same++
		} else {
			same = 0
		}
		prev = len(evs)
		return found && (len(evs) > 0 && same >= 1 || same >= 5)
	})
	if !ok {
		// Why the copy: Fatalf ends the goroutine, and the lock held
		// would stop the monitor's writes (and every later packet).
		k.mu.Lock()
		text := k.buf.String()
		k.buf.Reset()
		k.mu.Unlock()
		t.Fatalf("no kernel trace for %s:%d; the monitor printed:\n%s", dst, port, text)
	}
	k.mu.Lock()
	k.last = k.buf.String()
	k.mu.Unlock()
	return evs
}

// events are the rules and policies the packet met, as "table chain
// rule-text VERDICT" / "table chain policy VERDICT".
func (p kernelPacket) events() []string {
	var out []string
	for _, e := range p {
		switch {
		case e.kind == "rule" && !parse.TableName(e.table).IsKnown():
			// A native nftables rule: xtables-monitor cannot print it in
			// iptables syntax; its handle names it.
			out = append(out, fmt.Sprintf("%s %s handle %d", e.table, e.chain, e.handle))
		case e.kind == "rule":
			out = append(out, e.table+" "+e.chain+" "+e.rule)
		case e.kind == "policy":
			out = append(out, e.table+" "+e.chain+" policy "+e.verdict)
		}
	}
	return out
}

func (p kernelPacket) verdict() string {
	for _, e := range p {
		if e.verdict == "DROP" {
			return "drop"
		}
	}
	return "accept"
}

func (p kernelPacket) decider() string {
	for _, e := range p {
		if e.verdict == "DROP" {
			if e.kind == "policy" {
				return e.table + " " + e.chain + " policy DROP"
			}
			if !parse.TableName(e.table).IsKnown() {
				return fmt.Sprintf("%s %s handle %d", e.table, e.chain, e.handle)
			}
			return e.table + " " + e.chain + " " + e.rule
		}
	}
	return ""
}

// traceJSON is the part of iptscope.trace/v1 compared here.
type traceJSON struct {
	Verdict   string `json:"verdict"`
	Answers   *bool  `json:"answers"`
	Reason    string `json:"reason"`
	DecidedBy *int   `json:"decided_by"`
	Steps     []struct {
		Kind    string  `json:"kind"`
		Table   *string `json:"table"`
		Chain   *string `json:"chain"`
		Backend *string `json:"backend"`
		Handle  *int    `json:"handle"`
		Target  string  `json:"target"`
		Text    string  `json:"text"`
	} `json:"steps"`
}

func (j traceJSON) event(i int) string {
	s := j.Steps[i]
	table := ""
	if s.Table != nil {
		table = *s.Table
		if s.Backend != nil && *s.Backend == "nftables" {
			_, table, _ = strings.Cut(table, " ") // "ip docker-bridges": the kernel names the table only
		}
	}
	if table == "iptscopetrace" {
		return "" // the test's own tracing chain (the kernel's side skips it too)
	}
	switch {
	case s.Kind == "rule" && s.Handle != nil:
		return fmt.Sprintf("%s %s handle %d", table, *s.Chain, *s.Handle)
	case s.Kind == "rule":
		return table + " " + *s.Chain + " " + s.Text
	case s.Kind == "policy":
		return table + " " + *s.Chain + " policy " + s.Target
	}
	return ""
}

func (j traceJSON) events() []string {
	var out []string
	for i := range j.Steps {
		if e := j.event(i); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (j traceJSON) decider() string {
	if j.DecidedBy == nil || (j.Verdict != "drop" && j.Verdict != "reject") {
		return ""
	}
	return j.event(*j.DecidedBy)
}

// TestTraceAgreesWithTheKernelOnGeneratedRulesets loads random rulesets
// (jumps, gotos, returns, marks, multiport, negations, DNAT then filter;
// seeded, so a failure names its ruleset) into a bare namespace that
// routes between a client and a server namespace, sends SYNs, and requires
// the engine's path and verdict to be the kernel's own trace.
func TestTraceAgreesWithTheKernelOnGeneratedRulesets(t *testing.T) {
	requireRoot(t, "nft", "xtables-monitor", "stdbuf", "iptables-nft-restore", "ip")
	const name = "trace2gen"
	h := &dockerHost{Name: name, NetNS: "/var/run/netns/" + name}
	const (
		hostA, client = "198.18.251.1", "198.18.251.2"
		hostB, server = "198.18.252.1", "198.18.252.2"
	)
	ns := map[string]string{name: "", name + "-c": "", name + "-s": ""}
	t.Cleanup(func() {
		for n := range ns {
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for n := range ns {
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

	mon := h.startKernelTrace(t, client)
	pairs, n := 0, 0
	verdicts := map[string]int{}
	for seed := int64(1); seed <= traceSeeds(); seed++ {
		rules := generateRuleset(seed, client, server)
		cmd := exec.Command("nsenter", "--net="+h.NetNS, "iptables-nft-restore")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seed %d: iptables-nft-restore: %v: %s\n%s", seed, err, out, rules)
		}
		bundle := filepath.Join(t.TempDir(), "bundle.json")
		if _, stderr, code := h.iptscope(t, "collect", "--netns", name, "--docker-host", "unix:///nonexistent", "-o", bundle); code != 0 {
			t.Fatalf("collect: exit %d: %s", code, stderr)
		}
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
			kernel := mon.packet(t, client, pk.dst, pk.port)
			if got.Verdict == "unknown" {
				t.Errorf("seed %d %s:%d: unknown: %s", seed, pk.dst, pk.port, got.Reason)
				continue
			}
			same := kernel.verdict() == got.Verdict && strings.Join(kernel.events(), "\n") == strings.Join(got.events(), "\n") && kernel.decider() == got.decider()
			if !same {
				t.Errorf("seed %d %s:%d: kernel %s, iptscope %s (%s)\nkernel:\n  %s\niptscope:\n  %s\nruleset:\n%s", seed, pk.dst, pk.port, kernel.verdict(), got.Verdict, got.Reason,
					strings.Join(kernel.events(), "\n  "), strings.Join(got.events(), "\n  "), rules)
				continue
			}
			pairs++
			verdicts[got.Verdict]++
		}
	}
	t.Logf("%d of %d packet/ruleset pairs agree with the kernel (verdicts %v)", pairs, n, verdicts)
}

// traceSeeds is how many generated rulesets a differential loads: 10, or
// IPTSCOPE_E2E_TRACE_SEEDS (more, by hand).
func traceSeeds() int64 {
	if v, err := strconv.Atoi(os.Getenv("IPTSCOPE_E2E_TRACE_SEEDS")); err == nil && v > 0 {
		return int64(v)
	}
	return 10
}

// generateRuleset is a random iptables-restore payload for the generated
// test: filter INPUT and FORWARD with user chains U1..U4 (a chain jumps or
// goes only to later ones: iptables refuses loops), marks, multiport,
// negations, and a nat DNAT of port 8000 to the server. Every built-in
// chain starts with a rule that never matches a TCP SYN, so that each
// exists in the kernel (iptables-nft creates no empty base chain on its
// own, and the tracer shows none).
func generateRuleset(seed int64, client, server string) string {
	r := rand.New(rand.NewSource(seed))
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	match := func() string {
		var m []string
		if r.Intn(2) == 0 { // at most one -p per rule
			m = append(m, pick(
				"-p tcp -m tcp --dport "+pick("22", "80", "443", "8000", "1:100"),
				"-p tcp -m multiport --dports "+pick("22,80", "443,8000", "80:90,22")))
		}
		kinds := []func() string{
			func() string { return pick("", "! ") + "-s " + pick(client+"/32", "198.18.0.0/15", "10.0.0.0/8") },
			func() string { return pick("", "! ") + "-d " + pick(server+"/32", "198.18.251.1/32") },
			func() string { return pick("", "! ") + "-i " + pick("tgc0", "tgs0", "tg+") },
			func() string { return "-m mark --mark " + pick("0x1/0x1", "0x0/0x1", "0x2") },
			func() string { return "-m conntrack --ctstate " + pick("NEW", "ESTABLISHED", "NEW,DNAT", "DNAT") },
		}
		// One to two distinct kinds: iptables takes each of -s, -d, -i once.
		for _, k := range r.Perm(len(kinds))[:1+r.Intn(2)] {
			m = append(m, kinds[k]())
		}
		return strings.Join(m, " ")
	}
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	for _, c := range []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"} {
		fmt.Fprintf(&b, "-A %s -p udp -m udp --dport 9 -j ACCEPT\n", c)
	}
	if r.Intn(3) > 0 {
		fmt.Fprintf(&b, "-A PREROUTING -p tcp -m tcp --dport 8000 -j DNAT --to-destination %s:80\n", server)
	}
	b.WriteString("COMMIT\n*filter\n")
	fmt.Fprintf(&b, ":INPUT %s [0:0]\n:FORWARD %s [0:0]\n:OUTPUT ACCEPT [0:0]\n", pick("ACCEPT", "DROP"), pick("ACCEPT", "DROP"))
	chains := []string{"INPUT", "FORWARD", "U1", "U2", "U3", "U4"}
	for _, c := range chains[2:] {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range []string{"INPUT", "FORWARD", "OUTPUT"} {
		fmt.Fprintf(&b, "-A %s -p udp -m udp --dport 9 -j ACCEPT\n", c)
	}
	for i, c := range chains {
		for k := 0; k < 2+r.Intn(4); k++ {
			target := pick("ACCEPT", "DROP", "RETURN", "MARK --set-xmark 0x1/0x1", "JUMP", "GOTO", "JUMP")
			switch target {
			case "JUMP", "GOTO":
				first := max(i+1, 2)
				if first >= len(chains) {
					target = "-j ACCEPT"
					break
				}
				flag := "-j"
				if target == "GOTO" {
					flag = "-g"
				}
				target = flag + " " + chains[first+r.Intn(len(chains)-first)]
			default:
				target = "-j " + target
			}
			fmt.Fprintf(&b, "-A %s %s %s\n", c, match(), target)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
