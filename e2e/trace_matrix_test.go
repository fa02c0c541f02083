package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
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

// traceBreak is a breakage the differential traces packets through:
// a dockerhost.sh break KIND, or (kind "") a change made by apply.
type traceBreak struct {
	kind    string
	name    string // for apply
	apply   func(t *testing.T, h *dockerHost)
	packets []tracePacket
}

// traceHost is one host of the matrix with its breakages.
type traceHost struct {
	version, proxy, firewall string
	breaks                   []traceBreak
}

// traceMatrix: Docker 29's nftables backend (nft monitor trace), Docker
// 20.10 and 28.5 on iptables-nft (xtables-monitor), userland-proxy on
// (and off for 29's nftables backend; 28.5 and 29 on iptables-nft with
// the proxy off are TestTraceAgreesWithTheKernel's).
var traceMatrix = []traceHost{
	{version: "29", proxy: "on", firewall: "nftables", breaks: nftTraceBreaks},
	{version: "29", proxy: "off", firewall: "nftables", breaks: nftTraceBreaks},
	{version: "20.10", proxy: "on", breaks: []traceBreak{
		{kind: "nat-docker-flushed", packets: []tracePacket{tpPublished, tpOtherNetPub}},
		{kind: "docker-user-port-drop", packets: []tracePacket{tpPublished}},
		{kind: "isolation-flushed", packets: []tracePacket{tpOtherNet}},
		{kind: "nat-return-deleted", packets: []tracePacket{tpReturnPort, tpHairpin}},
	}},
	{version: "28.5", proxy: "on", breaks: []traceBreak{
		{kind: "nat-docker-flushed", packets: []tracePacket{tpPublished}},
		{kind: "raw-endpoint-deleted", packets: []tracePacket{tpUnpublished}},
		{kind: "filter-docker-flushed", packets: []tracePacket{tpPublished, tpOtherNet}},
		{kind: "forward-drop-inserted", packets: []tracePacket{tpPublished}},
	}},
}

var nftTraceBreaks = []traceBreak{
	{name: "nat-prerouting-and-output flushed", apply: func(t *testing.T, h *dockerHost) {
		h.ipt(t, "nft", "flush", "chain", "ip", "docker-bridges", "nat-prerouting-and-output")
	}, packets: []tracePacket{tpPublished, tpOtherNetPub}},
	{kind: "nft-user-table-drop", packets: []tracePacket{tpPublished}},
	{kind: "nft-table-deleted", packets: []tracePacket{tpPublished, tpOtherNet}},
	{kind: "nft-iptables-forward-drop", packets: []tracePacket{tpPublished}},
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
// hosts (Docker 29 with its nftables firewall backend, proxy on and off;
// 20.10 and 28.5 on iptables-nft with the proxy on), healthy and broken in
// named ways of the testbed, and requires the engine's path (the native
// and iptables rules met, in order, and the policies), deciding rule and
// netfilter verdict to be the kernel's own trace, and its "answers" to be
// what the live probe saw. The four daemons run in parallel.
func TestTraceMatrixAgreesWithTheKernel(t *testing.T) {
	requireRoot(t, "nft", "xtables-monitor", "stdbuf", "curl")
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
		fw := th.firewall
		if fw == "" {
			fw = "iptables-nft"
		}
		label := fmt.Sprintf("docker %s %s proxy %s", th.version, fw, th.proxy)
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			name := "tracem" + strings.ReplaceAll(th.version, ".", "") + fw[:1] + th.proxy[1:2]
			h := startDockerHostFull(t, &dockerHost{Name: name, Version: th.version, Backend: "nft", Proxy: th.proxy, Firewall: th.firewall})
			hostIP, clientIP := h.tbAddrs(t)
			if out, err := exec.Command("ip", "-n", h.Name+"-c", "route", "replace", "172.16.0.0/12", "via", hostIP).CombinedOutput(); err != nil {
				t.Fatalf("client route: %v: %s", err, out)
			}
			nftMon := th.firewall == "nftables"
			mon := h.startKernelTraceWith(t, clientIP, nftMon)
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
			bundle, _ := h.collectBundle(t)
			for _, p := range traceHealthy {
				t.Run("healthy: "+p.what, func(t *testing.T) { d.check(t, bundle, p) })
			}
			for _, b := range th.breaks {
				what := b.kind
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
					} else if out, err := h.script("break", b.kind); err != nil {
						t.Fatalf("break %s: %v\n%s", b.kind, err, out)
					}
					bundle, _ := h.collectBundle(t)
					for _, p := range b.packets {
						t.Run(p.what, func(t *testing.T) { d.check(t, bundle, p) })
					}
				})
			}
		})
	}
}

// traceDiff compares the engine with the kernel on one host.
type traceDiff struct {
	h                *dockerHost
	mon              *kernelTrace
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
	}
	ip := d.ips[who]
	if ip == "" {
		t.Fatalf("no address for container %s (have %v)", who, d.ips)
	}
	return ip
}

// check traces p over bundle, sends it for real, reads the kernel's trace
// and compares.
func (d *traceDiff) check(t *testing.T, bundle string, p tracePacket) {
	t.Helper()
	src, dst := d.addr(t, p.from), d.addr(t, p.to)
	if p.from == "host" {
		src = "127.0.0.1"
	}
	out, stderr, code := d.h.iptscope(t, "trace", "--from", bundle, "--src", src, "--dst", dst, "--dport", fmt.Sprint(p.port), "-o", "json")
	if out == "" {
		t.Fatalf("iptscope trace: exit %d: %s", code, stderr)
	}
	var got traceJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	var answered bool
	switch {
	case p.from == "":
		answered = d.h.clientGet(dst, p.port)
	case p.from == "host":
		answered = d.h.getLocal(t, p.port)
	default:
		answered = d.h.reaches(t, &reach{from: p.from, to: p.to, port: p.port})
	}
	kernel := d.mon.packet(t, src, dst, p.port)
	agreed := true
	fail := func(format string, args ...any) {
		t.Helper()
		agreed = false
		t.Errorf(format, args...)
	}
	if got.Verdict == "unknown" {
		fail("iptscope's verdict is unknown: %s", got.Reason)
	}
	if kv, gv := kernel.verdict(), got.netfilterVerdict(); kv != gv {
		fail("netfilter's verdict: kernel %s, iptscope %s (%s: %s)", kv, gv, got.Verdict, got.Reason)
	}
	if want, have := kernel.events(), got.events(); strings.Join(want, "\n") != strings.Join(have, "\n") {
		fail("the rules met differ\nkernel:\n  %s\niptscope:\n  %s\nthe monitor printed:\n%s", strings.Join(want, "\n  "), strings.Join(have, "\n  "), d.mon.last)
	}
	if kd, gd := kernel.decider(), got.decider(); kd != gd {
		fail("deciding rule: kernel %q, iptscope %q", kd, gd)
	}
	unknownAnswer := ""
	if got.Answers == nil {
		// Only where the snapshot cannot tell: a port nothing publishes
		// (whether a process listens there is not in it).
		unknownAnswer = fmt.Sprintf("%s, %s (%s -> %s:%d): live answered=%v; %s", d.label, p.what, src, dst, p.port, answered, got.Reason)
	} else if *got.Answers != answered {
		fail("iptscope says answers=%v, the live probe answered=%v (%s)", *got.Answers, answered, got.Reason)
	}
	d.tally.add(d.label, got.Verdict, agreed, unknownAnswer)
	t.Logf("%s -> %s:%d: %s, answers %v (live %v), %s; kernel and iptscope agree on %d events", src, dst, p.port, got.Verdict, fmtAnswers(got.Answers), answered, got.Reason, len(kernel.events()))
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
