package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// tracePacket is one packet of the kernel differential, named by who
// sends it and where to: from "" is the client namespace, "host" the
// docker host itself (127.0.0.1), else a container; to "host" is the
// host's uplink address, "local" 127.0.0.1, else a container's address.
type tracePacket struct {
	what, from, to string
	port           int
}

// The packets every host of the matrix is traced with (the standard
// layout of dockerhost.sh: web publishes 8080:80 on docker0, multi
// 127.0.0.1:9090:80 and 7000-7002, app on appnet 8081:80).
var (
	tpPublished   = tracePacket{"a published port from the client", "", "host", 8080}
	tpHostLocal   = tracePacket{"the host's own connection to a port published on 127.0.0.1", "host", "local", 9090}
	tpOtherNet    = tracePacket{"a container to a container of another network", "app", "web", 80}
	tpUnpublished = tracePacket{"a container's unpublished port, from the client", "", "web", 81}
	tpLoopbackOut = tracePacket{"a port published on 127.0.0.1 only, from the client", "", "host", 9090}
	tpHairpin     = tracePacket{"a container to its own published port (hairpin)", "web", "host", 8080}
	tpOtherNetPub = tracePacket{"a container to another network's published port", "app", "host", 8080}
	tpSameBridge  = tracePacket{"a container to a published port of its own bridge", "multi", "host", 8080}
	tpReturnPort  = tracePacket{"a container to another network's published port 8081", "web", "host", 8081}
)

var traceHealthy = []tracePacket{tpPublished, tpHostLocal, tpOtherNet, tpUnpublished, tpLoopbackOut, tpHairpin, tpOtherNetPub, tpSameBridge}

// tpOutside leaves for the client's side (nothing listens there: the
// path is what is compared; MASQUERADE is on it).
var tpOutside = tracePacket{"a container to the client's side, port 80", "web", "client", 80}

// traceBreak is a breakage the differential traces packets through:
// dockerhost.sh break KINDs (applied in order and healed once), or
// (kinds nil) a change made by apply.
type traceBreak struct {
	kinds   []string
	name    string // for apply
	apply   func(t *testing.T, h *dockerHost)
	packets []tracePacket
}

// brk is the breakage kind with the packets whose path it changes.
func brk(kind string, packets ...tracePacket) traceBreak {
	return traceBreak{kinds: []string{kind}, packets: packets}
}

// traceHost is one host of the matrix with its breakages.
type traceHost struct {
	version, backend, proxy, firewall string
	breaks                            []traceBreak
}

// traceMatrix: Docker 29's nftables backend (nft monitor trace), Docker
// 20.10 and 28.5 on iptables-nft (xtables-monitor) with the proxy on, and
// on legacy iptables (nfnetlink_log) 28.5 with the proxy on and off and
// 20.10 with it on. Every breakage kind of dockerhost.sh that changes a
// packet's path on a version is broken on at least one of its hosts,
// with the packets it changes (28.5 and 29 on iptables-nft with the
// proxy off are TestTraceAgreesWithTheKernel's).
var traceMatrix = []traceHost{
	{version: "29", proxy: "on", firewall: "nftables", breaks: slices.Concat(nftTraceBreaks, []traceBreak{
		brk("nft-dnat-deleted", tpPublished),
		brk("nft-vmap-element-deleted", tpPublished, tpOtherNet),
		brk("ip-forward-off", tpPublished, tpOtherNet),
	})},
	{version: "29", proxy: "off", firewall: "nftables", breaks: slices.Concat(nftTraceBreaks, []traceBreak{
		brk("nft-dnat-deleted", tpPublished),
		brk("nft-bridge-chain-flushed", tpPublished, tpUnpublished, tpOtherNet),
		brk("nft-masq-flushed", tpOutside, tpReturnPort),
		brk("ip-forward-off", tpPublished, tpOtherNet),
	})},
	{version: "20.10", proxy: "on", breaks: []traceBreak{
		brk("nat-docker-flushed", tpPublished, tpOtherNetPub),
		brk("docker-user-port-drop", tpPublished),
		brk("isolation-flushed", tpOtherNet),
		brk("nat-return-deleted", tpReturnPort, tpHairpin),
		brk("nat-docker-deleted", tpPublished, tpHostLocal),
		brk("ip-forward-off", tpPublished, tpOtherNet),
		brk("firewall-reload", tpPublished, tpOtherNet, tpUnpublished),
		brk("forward-jump-deleted", tpPublished, tpOtherNet),
		brk("masquerade-deleted", tpOutside),
		brk("bridge-down", tpPublished),
		brk("saved-rules-restored", tpPublished, tpOtherNet),
		brk("dnat-repointed", tpPublished),
		brk("forward-drop-inserted", tpPublished, tpOtherNet),
	}},
	{version: "28.5", proxy: "on", breaks: []traceBreak{
		brk("nat-docker-flushed", tpPublished),
		brk("raw-endpoint-deleted", tpUnpublished),
		brk("filter-docker-flushed", tpPublished, tpOtherNet),
		brk("forward-drop-inserted", tpPublished),
		brk("nat-docker-deleted", tpPublished, tpHostLocal),
		brk("prerouting-jump-deleted", tpPublished, tpOtherNetPub),
		brk("firewall-reload", tpPublished, tpOtherNet, tpUnpublished),
		brk("user-jump-deleted", tpPublished),
		brk("docker-user-port-drop", tpPublished),
		brk("nat-return-deleted", tpReturnPort, tpHairpin),
		brk("saved-rules-restored", tpPublished, tpOtherNet),
		// Last: legacy tables, once loaded, stay registered (empty) after
		// the heal.
		brk("legacy-leftovers", tpPublished, tpOtherNet, tpOutside),
	}},
	{version: "28.5", backend: "legacy", proxy: "on", breaks: []traceBreak{
		brk("nat-docker-flushed", tpPublished, tpOtherNetPub),
		brk("stale-dnat", tpPublished),
		brk("forward-jump-deleted", tpPublished, tpOtherNet),
		brk("port-accept-deleted", tpPublished),
		brk("docker-user-deleted", tpPublished),
		brk("forward-reject-bridge", tpReturnPort, tpOutside),
		brk("isolation-flushed", tpOtherNet),
		brk("bridge-down", tpPublished),
	}},
	{version: "28.5", backend: "legacy", proxy: "off", breaks: []traceBreak{
		brk("ip-forward-off", tpPublished, tpOtherNet),
		brk("masquerade-deleted", tpOutside, tpReturnPort),
		brk("reload-policy-drop", tpPublished, tpOtherNet),
		brk("raw-flushed", tpUnpublished),
		brk("raw-endpoint-deleted", tpUnpublished),
		brk("veth-detached", tpPublished),
		brk("br-netfilter-off", tpSameBridge, tpHairpin),
		brk("route-localnet-off", tpHostLocal),
		brk("hairpin-off", tpHairpin),
		brk("dnat-repointed", tpPublished),
		brk("filter-docker-flushed", tpPublished, tpOtherNet),
		brk("forward-drop-inserted", tpPublished, tpOtherNet),
	}},
	{version: "20.10", backend: "legacy", proxy: "on", breaks: []traceBreak{
		brk("prerouting-jump-deleted", tpPublished, tpOtherNetPub),
		brk("stale-dnat", tpPublished),
		brk("user-jump-deleted", tpPublished),
		brk("filter-docker-flushed", tpPublished, tpOtherNet),
		brk("port-accept-deleted", tpPublished),
		brk("docker-user-deleted", tpPublished),
		brk("forward-reject-bridge", tpReturnPort, tpOutside),
		brk("reload-policy-drop", tpPublished, tpOtherNet),
		brk("veth-detached", tpPublished),
		brk("br-netfilter-off", tpSameBridge, tpHairpin),
		brk("nat-docker-flushed", tpPublished),
		brk("isolation-flushed", tpOtherNet),
	}},
}

var nftTraceBreaks = []traceBreak{
	{name: "nat-prerouting-and-output flushed", apply: func(t *testing.T, h *dockerHost) {
		h.ipt(t, "nft", "flush", "chain", "ip", "docker-bridges", "nat-prerouting-and-output")
	}, packets: []tracePacket{tpPublished, tpOtherNetPub}},
	brk("nft-user-table-drop", tpPublished),
	brk("nft-table-deleted", tpPublished, tpOtherNet),
	brk("nft-iptables-forward-drop", tpPublished),
}

// traceTally counts what the differential compared.
type traceTally struct {
	mu              sync.Mutex
	pairs, agreed   int
	answersUnknown  []string
	verdicts, hosts map[string]int
}

func (tt *traceTally) add(host, verdict string, agreed bool, answersUnknown string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.pairs++
	if agreed {
		tt.agreed++
	}
	tt.verdicts[verdict]++
	tt.hosts[host]++
	if answersUnknown != "" {
		tt.answersUnknown = append(tt.answersUnknown, answersUnknown)
	}
}

// TestTraceMatrixAgreesWithTheKernel sends real packets on real Docker
// hosts (traceMatrix), healthy and broken in named ways of the testbed,
// and requires the engine's path (the native and iptables rules met, in
// order, and the policies), deciding rule and netfilter verdict to be the
// kernel's own trace, and its "answers" to be what the live probe saw.
// The daemons run in parallel; the packets of one state are sent
// together.
func TestTraceMatrixAgreesWithTheKernel(t *testing.T) {
	requireRoot(t, "nft", "xtables-monitor", "stdbuf", "curl", "iptables-legacy-save")
	tally := &traceTally{verdicts: map[string]int{}, hosts: map[string]int{}}
	start := time.Now()
	t.Cleanup(func() {
		t.Logf("kernel differential: %d packet/ruleset pairs, %d agree (verdicts %v; per host %v) in %s", tally.pairs, tally.agreed, tally.verdicts, tally.hosts, time.Since(start).Round(time.Second))
		for _, u := range tally.answersUnknown {
			t.Logf("answers unknown: %s", u)
		}
	})
	for _, th := range traceMatrix {
		if !testbedKnows(th.version) {
			require(t, false, "Docker "+th.version+" is not available to the testbed")
			continue
		}
		backend := th.backend
		if backend == "" {
			backend = "nft"
		}
		fw := "iptables-" + backend
		if th.firewall == "nftables" {
			fw = "nftables"
		}
		label := fmt.Sprintf("docker %s %s proxy %s", th.version, fw, th.proxy)
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			// trace2 + version + n(ftables), i(ptables-nft) or l(egacy) +
			// n (proxy on) or f (off).
			name := "trace2" + strings.ReplaceAll(th.version, ".", "") + map[string]string{"nftables": "n", "iptables-nft": "i", "iptables-legacy": "l"}[fw] + th.proxy[1:2]
			h := startDockerHostFull(t, &dockerHost{Name: name, Version: th.version, Backend: backend, Proxy: th.proxy, Firewall: th.firewall})
			hostIP, clientIP := h.tbAddrs(t)
			if out, err := exec.Command("ip", "-n", h.Name+"-c", "route", "replace", "172.16.0.0/12", "via", hostIP).CombinedOutput(); err != nil {
				t.Fatalf("client route: %v: %s", err, out)
			}
			var mon kernelReader
			switch {
			case backend == "legacy":
				h.addTraceTable(t, clientIP)
				mon = &legacyReader{nf: startNflogTrace(t, h.NetNS), netns: h.NetNS}
			default:
				mon = &nftReader{h.startKernelTraceWith(t, clientIP, th.firewall == "nftables")}
			}
			ips := map[string]string{}
			for _, c := range h.inspectContainers(t) {
				for _, n := range c.NetworkSettings.Networks {
					if n.IPAddress != "" {
						ips[strings.TrimPrefix(c.Name, "/")] = n.IPAddress
						break
					}
				}
			}
			d := &traceDiff{h: h, mon: mon, hostIP: hostIP, clientIP: clientIP, ips: ips, tally: tally, label: label}
			t.Run("healthy", func(t *testing.T) { d.checkAll(t, traceHealthy) })
			for _, b := range th.breaks {
				what := strings.Join(b.kinds, "+")
				if what == "" {
					what = b.name
				}
				t.Run("after "+what, func(t *testing.T) {
					t.Cleanup(func() {
						h.heal(t)
						h.addTraceTable(t, clientIP) // heal deletes what is not in its snapshot
					})
					if b.apply != nil {
						b.apply(t, h)
					}
					for _, k := range b.kinds {
						if out, err := h.script("break", k); err != nil {
							t.Fatalf("break %s: %v\n%s", k, err, out)
						}
					}
					if slices.Contains(b.kinds, "legacy-leftovers") {
						// Both backends: nfnetlink_log for the legacy copy.
						n := d.mon
						d.mon = &bothReader{n: n.(*nftReader), l: &legacyReader{nf: startNflogTrace(t, h.NetNS), netns: h.NetNS}}
						defer func() { d.mon = n }()
					}
					d.checkAll(t, b.packets)
				})
			}
		})
	}
}

// kernelSide is what the kernel's trace says of one packet: the rules and
// policies met (as traceJSON.events gives them), netfilter's verdict
// (accept or drop) and the dropping rule or policy.
type kernelSide struct {
	events           []string
	verdict, decider string
}

// kernelReader is a kernel trace of one host: find waits for the first
// SYN from src to dst:port since the last reset.
type kernelReader interface {
	prepare(t *testing.T) // before the packets of one state are sent
	find(t *testing.T, src, dst string, port int) kernelSide
	reset()
	printed() string // what the last find read, for failure messages
}

// nftReader reads xtables-monitor --trace or nft monitor trace.
type nftReader struct{ k *kernelTrace }

func (r *nftReader) prepare(*testing.T) {}
func (r *nftReader) find(t *testing.T, src, dst string, port int) kernelSide {
	t.Helper()
	p := r.k.find(t, src, dst, port)
	return kernelSide{events: p.events(), verdict: p.verdict(), decider: p.decider()}
}
func (r *nftReader) reset()          { r.k.reset() }
func (r *nftReader) printed() string { return r.k.last }

// legacyReader reads nfnetlink_log against the legacy rules of the state
// (ip_tables' trace names a rule by its position only).
type legacyReader struct {
	nf    *nflogTrace
	netns string
	dump  legacyDump
}

func (r *legacyReader) prepare(t *testing.T) { r.dump = legacySave(t, r.netns) }
func (r *legacyReader) find(t *testing.T, src, dst string, port int) kernelSide {
	t.Helper()
	p := readLegacyTrace(t, r.nf.find(t, src, dst, port), r.dump)
	return kernelSide(p)
}
func (r *legacyReader) reset()          { r.nf.reset() }
func (r *legacyReader) printed() string { return r.nf.last }

// bothReader reads a host whose rules are in both iptables backends
// (legacy-leftovers): xtables-monitor for iptables-nft's and Docker's
// native rules, nfnetlink_log for the legacy ones. The two report in no
// common order, so each backend's rules are compared apart: the events
// are the nft ones ("nft: ..."), then the legacy ones ("legacy: ..."),
// without the nat table's. Why not nat: among chains of equal priority
// the kernel runs the one registered last first, and the first nat table
// with a rule for the packet binds its NAT; the testbed's legacy copy is
// loaded after Docker's rules, so its nat chain ran first, the opposite
// of a switch of backends (the engine's assumption, which the snapshot
// cannot confirm). The copies give the same NAT and the same verdict.
type bothReader struct {
	n *nftReader
	l *legacyReader
}

func (r *bothReader) prepare(t *testing.T) { r.l.prepare(t) }
func (r *bothReader) find(t *testing.T, src, dst string, port int) kernelSide {
	t.Helper()
	a := r.n.find(t, src, dst, port)
	b := kernelSide(readLegacyTrace(t, r.l.nf.findKey(t, r.n.k.key), r.l.dump))
	ks := kernelSide{verdict: "accept"}
	for _, e := range a.events {
		if !strings.HasPrefix(e, "nat ") {
			ks.events = append(ks.events, "nft: "+e)
		}
	}
	for _, e := range b.events {
		if !strings.HasPrefix(e, "nat ") {
			ks.events = append(ks.events, "legacy: "+e)
		}
	}
	for _, x := range []kernelSide{a, b} {
		if x.verdict == "drop" {
			ks.verdict, ks.decider = "drop", x.decider
		}
	}
	return ks
}
func (r *bothReader) reset()          { r.n.reset(); r.l.reset() }
func (r *bothReader) printed() string { return r.n.printed() + "\nnfnetlink_log:\n" + r.l.printed() }

// eventsByBackend are events with the nft ones first and no nat table's,
// as bothReader gives them.
func (j traceJSON) eventsByBackend() []string {
	var nft, legacy []string
	for i, s := range j.Steps {
		e := j.event(i)
		switch {
		case e == "" || strings.HasPrefix(e, "nat "):
		case s.Backend != nil && *s.Backend == "legacy":
			legacy = append(legacy, "legacy: "+e)
		default:
			nft = append(nft, "nft: "+e)
		}
	}
	return append(nft, legacy...)
}

// traceDiff compares the engine with the kernel on one host.
type traceDiff struct {
	h                *dockerHost
	mon              kernelReader
	hostIP, clientIP string
	ips              map[string]string
	tally            *traceTally
	label            string
}

func (d *traceDiff) addr(t *testing.T, who string) string {
	t.Helper()
	switch who {
	case "":
		return d.clientIP
	case "host":
		return d.hostIP
	case "local":
		return "127.0.0.1"
	case "client":
		return d.clientIP
	}
	ip := d.ips[who]
	if ip == "" {
		t.Fatalf("no address for container %s (have %v)", who, d.ips)
	}
	return ip
}

// sent is one packet of a state: the engine's trace and the live answer.
type sent struct {
	p        tracePacket
	src, dst string
	got      traceJSON
	answered bool
}

// checkAll collects a bundle of the host's state, traces every packet
// over it, sends them all at once (each a live probe: curl from the
// client or the host, busybox nc from a container), then reads the
// kernel's trace of each and compares, one subtest per packet.
func (d *traceDiff) checkAll(t *testing.T, packets []tracePacket) {
	t.Helper()
	bundle, _ := d.h.collectBundle(t)
	d.mon.prepare(t)
	d.mon.reset()
	ss := make([]*sent, len(packets))
	seen := map[string]bool{}
	for i, p := range packets {
		s := &sent{p: p, src: d.addr(t, p.from), dst: d.addr(t, p.to)}
		if p.from == "host" {
			s.src = "127.0.0.1"
		}
		if k := fmt.Sprint(s.src, s.dst, p.port); seen[k] {
			t.Fatalf("two packets from %s to %s:%d in one state: the kernel's trace cannot tell them apart", s.src, s.dst, p.port)
		} else {
			seen[k] = true
		}
		out, stderr, code := d.h.iptscope(t, "trace", "--from", bundle, "--src", s.src, "--dst", s.dst, "--dport", fmt.Sprint(p.port), "-o", "json")
		if out == "" {
			t.Fatalf("iptscope trace %s: exit %d: %s", p.what, code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &s.got); err != nil {
			t.Fatal(err)
		}
		ss[i] = s
	}
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.answered = d.live(s)
		}()
	}
	wg.Wait()
	for _, s := range ss {
		t.Run(s.p.what, func(t *testing.T) { d.compare(t, s) })
	}
	d.mon.reset()
}

// live sends s's packet for real (one attempt) and reports whether it
// was answered.
func (d *traceDiff) live(s *sent) bool {
	switch s.p.from {
	case "":
		return d.h.clientGet(s.dst, s.p.port)
	case "host":
		return exec.Command("nsenter", "--net="+d.h.NetNS, "curl", "-fsS", "-o", "/dev/null",
			"--connect-timeout", "3", "--max-time", "6", fmt.Sprintf("http://127.0.0.1:%d/", s.p.port)).Run() == nil
	}
	cmd := exec.Command("bash", script, "docker", d.h.Name, "exec", "-i", s.p.from, "/bin/busybox", "nc", "-w", "5", s.dst, fmt.Sprint(s.p.port))
	cmd.Env = append(os.Environ(), "DOCKER="+d.h.Version, "BACKEND="+d.h.Backend, "PROXY="+d.h.Proxy, "FIREWALL="+d.h.Firewall)
	cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
	out, _ := cmd.Output()
	return strings.HasPrefix(string(out), "HTTP/1.")
}

// compare reads the kernel's trace of s and compares it with the engine's.
func (d *traceDiff) compare(t *testing.T, s *sent) {
	t.Helper()
	got, p := s.got, s.p
	kernel := d.mon.find(t, s.src, s.dst, p.port)
	agreed := true
	fail := func(format string, args ...any) {
		t.Helper()
		agreed = false
		t.Errorf(format, args...)
	}
	if got.Verdict == "unknown" {
		fail("iptscope's verdict is unknown: %s", got.Reason)
	}
	if kv, gv := kernel.verdict, got.netfilterVerdict(); kv != gv {
		fail("netfilter's verdict: kernel %s, iptscope %s (%s: %s)", kv, gv, got.Verdict, got.Reason)
	}
	have := got.events()
	if _, ok := d.mon.(*bothReader); ok {
		have = got.eventsByBackend()
	}
	if want := kernel.events; strings.Join(want, "\n") != strings.Join(have, "\n") {
		fail("the rules met differ\nkernel:\n  %s\niptscope:\n  %s\nthe monitor printed:\n%s", strings.Join(want, "\n  "), strings.Join(have, "\n  "), d.mon.printed())
	}
	if kd, gd := kernel.decider, got.decider(); kd != gd {
		fail("deciding rule: kernel %q, iptscope %q", kd, gd)
	}
	unknownAnswer := ""
	if got.Answers == nil {
		// Only where the snapshot cannot tell: a port nothing publishes
		// (whether a process listens there is not in it).
		unknownAnswer = fmt.Sprintf("%s, %s (%s -> %s:%d): live answered=%v; %s", d.label, p.what, s.src, s.dst, p.port, s.answered, got.Reason)
	} else if *got.Answers != s.answered {
		fail("iptscope says answers=%v, the live probe answered=%v (%s)", *got.Answers, s.answered, got.Reason)
	}
	d.tally.add(d.label, got.Verdict, agreed, unknownAnswer)
	t.Logf("%s -> %s:%d: %s, answers %v (live %v), %s; kernel and iptscope agree on %d events", s.src, s.dst, p.port, got.Verdict, fmtAnswers(got.Answers), s.answered, got.Reason, len(kernel.events))
}

func fmtAnswers(a *bool) string {
	if a == nil {
		return "unknown"
	}
	return fmt.Sprint(*a)
}

// netfilterVerdict is what netfilter did with the packet: a drop by a
// kernel decision outside netfilter (the routing decision, a bridge port
// without hairpin mode) follows netfilter's accept, which is what the
// kernel's trace shows; a REJECT is a drop there.
func (j traceJSON) netfilterVerdict() string {
	switch j.Verdict {
	case "reject":
		return "drop"
	case "drop":
		if j.DecidedBy != nil && *j.DecidedBy < len(j.Steps) && j.Steps[*j.DecidedBy].Kind == "kernel" {
			return "accept"
		}
	}
	return j.Verdict
}
