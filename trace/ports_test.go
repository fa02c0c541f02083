package trace_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
	"github.com/iptscope/iptscope/trace"
)

// Why an external test package: diagnose is to call trace.Ports for the
// ports table, and a test of package trace importing diagnose would then
// be an import cycle.

func fixtureBundles(t testing.TB) []string {
	t.Helper()
	dirs, _ := filepath.Glob("../fixtures/*/bundle.json")
	shapes, _ := filepath.Glob("../fixtures/healthy-shapes-*/*/bundle.json")
	dirs = append(dirs, shapes...)
	if len(dirs) == 0 {
		t.Fatal("no fixture bundles")
	}
	sort.Strings(dirs)
	return dirs
}

func load(t testing.TB, path string) *snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// portKey names a row of either table.
func portKey(container, hostIP string, port int, proto string) string {
	if hostIP == "" {
		hostIP = "0.0.0.0"
	}
	return fmt.Sprintf("%s %s:%d/%s", container, hostIP, port, proto)
}

// TestPortsAgreeWithTheDiagnosePortsTable compares, on every fixture
// bundle, the engine's path for each published port (trace.Ports) with
// diagnose's ports table today (diagnose.Ports): the same path for every
// row the table has. Where they differ, the live probe of the fixture (a
// real client's GET from the client namespace) says who is right; every
// disagreement is listed, and one where the engine contradicts the probe
// fails the test.
func TestPortsAgreeWithTheDiagnosePortsTable(t *testing.T) {
	rows, same, folded := 0, 0, 0
	var differ []string
	paths := map[string]int{}
	for _, path := range fixtureBundles(t) {
		dir := filepath.Dir(path)
		name := strings.TrimPrefix(dir, "../fixtures/")
		s := load(t, path)
		engine := map[string]trace.PortVerdict{}
		for _, v := range trace.Ports(s) {
			engine[portKey(v.Container, v.HostIP, v.HostPort, v.Proto)] = v
		}
		probes := clientProbes(t, filepath.Join(dir, "probe.txt"))
		for _, p := range diagnose.Ports(s) {
			key := portKey(p.Container, p.HostIP, p.HostPort, p.Proto)
			v, ok := engine[key]
			if !ok {
				if p.HostIP == "::" {
					folded++ // the engine judges "::" on its own; diagnose folds some into the 0.0.0.0 row
					continue
				}
				t.Errorf("%s: %s: in the ports table (%s), not in trace.Ports", name, key, p.Path)
				continue
			}
			rows++
			paths[string(v.Path)]++
			if string(v.Path) == string(p.Path) {
				same++
				continue
			}
			live := "no live probe"
			if a, probed := probes[p.HostPort]; probed && p.HostIP != "127.0.0.1" {
				live = fmt.Sprintf("live probe answered=%v", a)
				answers := v.Path == trace.PortNAT || v.Path == trace.PortProxyOnly
				if v.Path != trace.PortUnknown && answers != a {
					t.Errorf("%s: %s: the engine says %s, the live probe answered=%v (%s)", name, key, v.Path, a, v.Reason)
				}
			}
			decider := ""
			if d := v.Deciding(); d != nil {
				decider = fmt.Sprintf(" [%s %s %s rule %d]", d.Hook, d.Table, d.Chain, d.Rule)
			}
			differ = append(differ, fmt.Sprintf("%s: %s: ports table %s (%s), engine %s%s (%s); %s", name, key, p.Path, p.Reason, v.Path, decider, v.Reason, live))
		}
	}
	t.Logf("%d rows over %d bundles: %d the same, %d differ (%d rows on :: not compared); the engine's paths %v", rows, len(fixtureBundles(t)), same, len(differ), folded, paths)
	for _, d := range differ {
		t.Log("differs: " + d)
	}
}

// clientProbes are a fixture's probes from the client namespace: host
// port -> answered.
func clientProbes(t *testing.T, path string) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(data), "\n") {
		kv := map[string]string{}
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		if kv["from"] != "client" || kv["expect"] == "no" {
			continue
		}
		var port int
		fmt.Sscan(kv["port"], &port)
		out[port] = kv["answered"] == "yes"
	}
	return out
}

// host1000 is synth's Docker host with 1,000 published ports and the
// addresses and routes the tracer needs (as bench_test.go's bigHost).
func host1000(tb testing.TB) *snapshot.Snapshot {
	tb.Helper()
	s := synth.DockerSnapshot(1000, synth.DockerHost(1000), "nft")
	s.Addrs = []snapshot.Addr{{Link: "lo", Family: "ipv4", CIDR: "127.0.0.1/8"}, {Link: "eth0", Family: "ipv4", CIDR: "198.51.100.1/24"}}
	s.Routes = []snapshot.Route{{Dst: "198.51.100.0/24", Dev: "eth0", Table: 254}}
	s.Links = []snapshot.Link{{Name: "lo", Up: true}, {Name: "eth0", Up: true}}
	for _, n := range s.Docker.Networks {
		p := netip.MustParsePrefix(n.Subnets[0])
		s.Addrs = append(s.Addrs, snapshot.Addr{Link: n.BridgeName, Family: "ipv4", CIDR: fmt.Sprintf("%s/%d", p.Addr().Next(), p.Bits())})
		s.Routes = append(s.Routes, snapshot.Route{Dst: n.Subnets[0], Dev: n.BridgeName, Table: 254})
		s.Links = append(s.Links, snapshot.Link{Name: n.BridgeName, Kind: "bridge", Up: true})
	}
	return s
}

// BenchmarkPortsTable1000PortHost is the ports table of a 1,000-port host
// both ways, side by side: diagnose's own judgement (diagnose.Ports) and
// the engine's (trace.Ports: one Tracer, one trace per port, the Tracer's
// preparation included).
//
//	go test -run '^$' -bench PortsTable -count 6 ./trace
func BenchmarkPortsTable1000PortHost(b *testing.B) {
	s := host1000(b)
	for _, v := range trace.Ports(s) {
		if v.Path != trace.PortNAT && v.Path != trace.PortProxyOnly {
			b.Fatalf("%s %d: %s (%s)", v.Container, v.HostPort, v.Path, v.Reason)
		}
	}
	b.Run("diagnose.Ports", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			diagnose.Ports(s)
		}
	})
	b.Run("trace.Ports", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			trace.Ports(s)
		}
	})
}

// TestPortsOfA1000PortHost: every port of the synthetic host is reached
// the way diagnose's ports table says.
func TestPortsOfA1000PortHost(t *testing.T) {
	s := host1000(t)
	want := map[string]string{}
	for _, p := range diagnose.Ports(s) {
		want[portKey(p.Container, p.HostIP, p.HostPort, p.Proto)] = string(p.Path)
	}
	got := trace.Ports(s)
	if len(got) != len(want) {
		t.Fatalf("%d ports, the ports table has %d", len(got), len(want))
	}
	for _, v := range got {
		if k := portKey(v.Container, v.HostIP, v.HostPort, v.Proto); string(v.Path) != want[k] {
			t.Errorf("%s: engine %s (%s), ports table %s", k, v.Path, v.Reason, want[k])
		}
	}
}

// nftHost1000 is the Docker 29 nftables-backend capture (proxy off) with
// 1,000 more ports published by web: its DNAT rule for 8080 copied for
// host ports 10000-10999, each binding in Docker's view.
func nftHost1000(tb testing.TB) *snapshot.Snapshot {
	tb.Helper()
	s := load(tb, "../fixtures/docker-29-nftables-proxy-off-healthy/bundle.json")
	tab := s.NftTable(nft.FamilyIP, "docker-bridges")
	c := tab.Chain("nat-prerouting-and-output")
	var dnat *nft.Rule
	for _, r := range c.Rules {
		for _, x := range r.Exprs {
			if x.Kind == nft.KindMatch && x.Match.Left.Selector == "tcp dport" && x.Match.Right.Value == "8080" {
				dnat = r
			}
		}
	}
	if dnat == nil {
		tb.Fatal("no DNAT for 8080 in the capture")
	}
	var web *snapshot.Container
	for i := range s.Docker.Containers {
		if s.Docker.Containers[i].Name == "web" {
			web = &s.Docker.Containers[i]
		}
	}
	for p := 10000; p < 11000; p++ {
		r := *dnat
		r.Handle, r.Index = 100000+p, len(c.Rules)
		r.Exprs = slices.Clone(dnat.Exprs)
		for i, x := range r.Exprs {
			if x.Kind == nft.KindMatch && x.Match.Left.Selector == "tcp dport" {
				m := *x.Match
				m.Right.Value = strconv.Itoa(p)
				r.Exprs[i].Match = &m
			}
		}
		c.Rules = append(c.Rules, &r)
		web.Ports = append(web.Ports, snapshot.PortBinding{HostIP: "0.0.0.0", HostPort: p, ContainerPort: 80, Proto: "tcp"})
	}
	return s
}

// BenchmarkPortsTable1000PortNftablesHost: the ports table of a Docker 29
// nftables-backend host with 1,000 more published ports, both ways.
func BenchmarkPortsTable1000PortNftablesHost(b *testing.B) {
	s := nftHost1000(b)
	for _, v := range trace.Ports(s) {
		if v.HostPort >= 10000 && v.Path != trace.PortNAT {
			b.Fatalf("%s %d: %s (%s)", v.Container, v.HostPort, v.Path, v.Reason)
		}
	}
	b.Run("diagnose.Ports", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			diagnose.Ports(s)
		}
	})
	b.Run("trace.Ports", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			trace.Ports(s)
		}
	})
}

// TestPortsOverOneTracerAreFreshTraces: on the synthetic 1,000-port hosts
// (iptables and nftables), every port traced over Ports' one Tracer (its
// chains indexed) is what a fresh Tracer gives (rule after rule).
func TestPortsOverOneTracerAreFreshTraces(t *testing.T) {
	for name, s := range map[string]*snapshot.Snapshot{"iptables": host1000(t), "nftables": nftHost1000(t)} {
		n := 0
		for _, v := range trace.Ports(s) {
			if v.Trace == nil {
				continue
			}
			n++
			fresh := trace.New(s).Trace(v.Trace.Packet)
			if a, b := stepsOf(fresh), stepsOf(v.Trace); a != b {
				t.Fatalf("%s %s:%d: fresh and shared Tracers differ\nfresh:\n%s\nshared:\n%s", name, v.Container, v.HostPort, a, b)
			}
		}
		t.Logf("%s: %d ports compared", name, n)
	}
}

func stepsOf(r *trace.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %d: %s\n", r.Verdict, r.Reaches, r.Container, r.Decider, r.Reason)
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "%s %s %s %d %d %s %s\n", s.Hook, s.Table, s.Chain, s.Rule, s.Handle, s.Target, s.Note)
	}
	return b.String()
}
