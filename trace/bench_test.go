package trace

import (
	"fmt"
	"net/netip"
	"strings"
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
// over two workers (a reused lean Result each) give EachPort's verdicts
// (without the texts a lean trace leaves out), each once, at EachPort's
// index (run with -race, it also checks that a
// Tracer is safe for concurrent traces).
func TestScanPortsParallelIsEachPort(t *testing.T) {
	s := bigHost(t, 1000)
	var want []string
	New(s).EachPort(func(v PortVerdict) {
		want = append(want, fmt.Sprintf("%s %s:%d %s %s %s", v.Container, v.HostIP, v.HostPort, v.Path, v.Reason, leanDump(v.Trace)))
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

// TestLeanScansShareRepliesOnlyWhenNoRuleLooksAtTheSource: a lean scan
// walks one reply per bridge and client when no rule on the forward hook
// looks at a packet's source, else every reply. A FORWARD rule that drops
// one container's replies by their source address (or port) must stop
// that container's port alone, as a full trace of each port says; one
// that drops every reply off a bridge stops them all.
func TestLeanScansShareRepliesOnlyWhenNoRuleLooksAtTheSource(t *testing.T) {
	const ports = 300
	victim := ""
	for _, tc := range []struct {
		name   string
		rule   func(s *snapshot.Snapshot) string
		broken func(c snapshot.Container) bool
	}{
		{"by source address", func(s *snapshot.Snapshot) string {
			c := s.Docker.Containers[117]
			victim = c.Name
			return "-A FORWARD -s " + c.Endpoints[0].IP + "/32 -p tcp -j DROP"
		}, func(c snapshot.Container) bool { return c.Name == victim }},
		{"by source port", func(s *snapshot.Snapshot) string {
			return "-A FORWARD -p tcp -m tcp --sport 80 -m conntrack --ctstate ESTABLISHED -j REJECT"
		}, func(snapshot.Container) bool { return true }},
		{"by source port of another service", func(s *snapshot.Snapshot) string {
			return "-A FORWARD -p tcp -m multiport --sports 81,82 -j DROP"
		}, func(snapshot.Container) bool { return false }},
		{"every reply off docker0", func(s *snapshot.Snapshot) string {
			return "-A FORWARD -i docker0 -j DROP"
		}, func(c snapshot.Container) bool {
			return netip.MustParsePrefix("10.100.0.0/22").Contains(netip.MustParseAddr(c.Endpoints[0].IP)) // docker0's
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := bigHost(t, ports)
			rule := tc.rule(s)
			healthy := string(synth.DockerHost(ports))
			at := strings.Index(healthy, "[9000:540000] -A FORWARD -j DOCKER-USER\n")
			if at < 0 {
				t.Fatal("synth's dump has no FORWARD -j DOCKER-USER")
			}
			dump := healthy[:at] + rule + "\n" + healthy[at:]
			s = synth.WithUplink(synth.DockerSnapshot(ports, []byte(dump), "nft"))
			var full []PortVerdict
			New(s).EachPort(func(v PortVerdict) { full = append(full, v) })
			byName := map[string]snapshot.Container{}
			for _, c := range s.Docker.Containers {
				byName[c.Name] = c
			}
			i, stopped := 0, 0
			New(s).ScanPorts(func(v PortVerdict) {
				f := full[i]
				i++
				if v.Path != f.Path || v.Reason != f.Reason || leanDump(f.Trace) != dumpResult(v.Trace) {
					t.Fatalf("%s: lean %s (%s), full %s (%s)", v.Container, v.Path, v.Reason, f.Path, f.Reason)
				}
				want := tc.broken(byName[v.Container])
				if got := v.Trace.ReplyStop != nil; got != want || (f.Trace.ReplyStop != nil) != want {
					t.Fatalf("%s: reply stopped %v (full trace: %v), want %v", v.Container, got, f.Trace.ReplyStop != nil, want)
				}
				if want {
					stopped++
					if v.Path != PortBroken || v.Trace.ReplyStop.Chain != "FORWARD" || v.Trace.ReplyStop.Rule != 1 {
						t.Fatalf("%s: %s, reply stopped by %+v", v.Container, v.Path, v.Trace.ReplyStop)
					}
				}
			})
			if i != len(full) || i != ports {
				t.Fatalf("%d lean verdicts, %d full ones, %d ports", i, len(full), ports)
			}
			t.Logf("%s: %d of %d ports stopped", rule, stopped, ports)
		})
	}
}
