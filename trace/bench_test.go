package trace

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/snapshot"
)

// bigHost is synth's Docker host with 33,000 published ports (100,723
// rules, parsed once) and the addresses and routes the tracer needs: eth0
// 198.51.100.1/24, each network's bridge with its subnet.
func bigHost(b testing.TB, ports int) *snapshot.Snapshot {
	b.Helper()
	return synth.WithUplink(synth.DockerSnapshot(ports, synth.DockerHost(ports), "nft"))
}

// BenchmarkTrace100kRules traces the last published port of a 100k-rule
// host (its DNAT and ACCEPT are the last of 33,000 in their chains: the
// longest walk there is).
func BenchmarkTrace100kRules(b *testing.B) {
	const ports = 33000
	s := bigHost(b, ports)
	last := s.Docker.Containers[len(s.Docker.Containers)-1]
	p := Packet{Proto: "tcp", Src: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, Dst: netip.MustParseAddr("198.51.100.1"),
		DstPort: uint16(last.Ports[0].HostPort), InIface: "eth0", State: StateNew}
	if r := Trace(s, p); r.Container != last.Name {
		b.Fatalf("the trace does not reach %s: %s %s", last.Name, r.Verdict, r.Reason)
	}
	b.Run("new and trace", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Trace(s, p)
		}
	})
	b.Run("trace over a Tracer", func(b *testing.B) {
		t := New(s)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t.Trace(p)
		}
	})
}

// BenchmarkTracePortsOf1000PortHost traces every published port of a
// 1,000-port host once, over one Tracer: what a ports table through the
// engine costs.
func BenchmarkTracePortsOf1000PortHost(b *testing.B) {
	s := bigHost(b, 1000)
	var pkts []Packet
	for _, c := range s.Docker.Containers {
		pkts = append(pkts, Packet{Proto: "tcp", Src: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, Dst: netip.MustParseAddr("198.51.100.1"),
			DstPort: uint16(c.Ports[0].HostPort), InIface: "eth0", State: StateNew})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := New(s)
		for _, p := range pkts {
			t.Trace(p)
		}
	}
}

// TestEveryPortOfA1000PortHostOverOneTracer: the ports of a 1,000-port
// host traced over one Tracer (its chains indexed by port and address
// after the first) give what a fresh Tracer per port gives, each to its
// container.
func TestEveryPortOfA1000PortHostOverOneTracer(t *testing.T) {
	s := bigHost(t, 1000)
	shared := New(s)
	for _, c := range s.Docker.Containers {
		p := Packet{Proto: "tcp", Src: netip.MustParseAddr("198.51.100.7"), SrcPort: 40000, Dst: netip.MustParseAddr("198.51.100.1"),
			DstPort: uint16(c.Ports[0].HostPort), InIface: "eth0", State: StateNew}
		a, b := New(s).Trace(p), shared.Trace(p)
		if b.Container != c.Name || dumpResult(a) != dumpResult(b) {
			t.Fatalf("port %d: fresh and shared Tracers differ (want %s)\nfresh:\n%s\nshared:\n%s", p.DstPort, c.Name, dumpResult(a), dumpResult(b))
		}
	}
}

// TestScanPortsParallelIsEachPort: the ports of a 1,000-port host traced
// over two workers (a reused Result each) give EachPort's verdicts, each
// once, at EachPort's index (run with -race, it also checks that a
// Tracer is safe for concurrent traces).
func TestScanPortsParallelIsEachPort(t *testing.T) {
	s := bigHost(t, 1000)
	var want []string
	New(s).EachPort(func(v PortVerdict) {
		want = append(want, fmt.Sprintf("%s %s:%d %s %s %s", v.Container, v.HostIP, v.HostPort, v.Path, v.Reason, dumpResult(v.Trace)))
	})
	got := make([]string, len(want))
	var mu sync.Mutex
	calls := 0
	New(s).ScanPortsParallel(2, func(i int, v PortVerdict) {
		line := fmt.Sprintf("%s %s:%d %s %s %s", v.Container, v.HostIP, v.HostPort, v.Path, v.Reason, dumpResult(v.Trace))
		mu.Lock()
		defer mu.Unlock()
		calls++
		if got[i] != "" {
			t.Errorf("index %d yielded twice", i)
		}
		got[i] = line
	})
	if calls != len(want) {
		t.Fatalf("%d verdicts, want %d", calls, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("port %d:\nparallel: %s\neach:     %s", i, got[i], want[i])
		}
	}
}
