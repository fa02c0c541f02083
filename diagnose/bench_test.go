package diagnose

import (
	"bytes"
	"testing"

	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// Benchmarks over internal/synth.DockerHost(1000): a Docker 28.x host with
// 1,000 published ports and the Docker view its rules imply. Run with
//
//	go test -run '^$' -bench Doctor1000 -count 6 ./diagnose | benchstat -
//
// Why not b.Loop: Go 1.26.8 crashes on some b.Loop bodies.

// BenchmarkDoctor1000Ports is `iptscope doctor` minus I/O on a healthy host:
// every check and every port judged (NewReport).
func BenchmarkDoctor1000Ports(b *testing.B) {
	s := synth.DockerSnapshot(1000, synth.DockerHost(1000), "nft")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Healthy but for 1,000 docker-proxy processes: proxy-overhead's
		// warning is the only one.
		for _, f := range NewReport(s, ReportOptions{}).Findings {
			if f.Severity != SeverityInfo && f.ID != "proxy-overhead" {
				b.Fatalf("%s %s: %s", f.Severity, f.ID, f.Title)
			}
		}
	}
}

// BenchmarkDoctorFix1000PortsNATFlushed is what `doctor --fix` computes
// before it execs anything on a host whose nat DOCKER chain was flushed:
// the report, then the plan (1,000 DNAT rules and the RETURNs to put back).
func BenchmarkDoctorFix1000PortsNATFlushed(b *testing.B) {
	s := synth.DockerSnapshot(1000, synth.FlushChain(synth.DockerHost(1000), "nat", "DOCKER"), "nft")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReport(s, ReportOptions{})
		if p := NewPlan(s, r.Findings); len(p.Ops) < 1000 {
			b.Fatalf("plan has %d ops, want >= 1000", len(p.Ops))
		}
	}
}

// BenchmarkRun1000PortsNATFlushed is the checks alone (diagnose.Run), the
// part `doctor --fix` also repeats after applying.
func BenchmarkRun1000PortsNATFlushed(b *testing.B) {
	s := synth.DockerSnapshot(1000, synth.FlushChain(synth.DockerHost(1000), "nat", "DOCKER"), "nft")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if f := Run(s, Options{}); len(f) == 0 {
			b.Fatal("no finding on a flushed nat DOCKER")
		}
	}
}

// BenchmarkDoctor1000PortsRepointed: every DNAT re-pointed to port 81 of
// its (live) container, as a saved ruleset restored after the containers
// were re-created with other mappings leaves them: 1,000 stale DNATs that
// each take one of Docker's 1,000 ports. Report and plan.
func BenchmarkDoctor1000PortsRepointed(b *testing.B) {
	dump := bytes.ReplaceAll(synth.DockerHost(1000), []byte(":80\n"), []byte(":81\n"))
	s := synth.DockerSnapshot(1000, dump, "nft")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReport(s, ReportOptions{})
		if p := NewPlan(s, r.Findings); len(p.Ops) < 2000 {
			b.Fatalf("plan has %d ops, want >= 2000 (1,000 deletions, 1,000 DNATs)", len(p.Ops))
		}
	}
}

// BenchmarkDoctor33000Ports is NewReport on a healthy 33,000-port host
// (about 100,000 rules): the scale the doctor must answer in under a
// second.
func BenchmarkDoctor33000Ports(b *testing.B) {
	s := synth.DockerSnapshot(33000, synth.DockerHost(33000), "nft")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := NewReport(s, ReportOptions{}); len(r.Ports) < 33000 {
			b.Fatalf("%d ports judged, want 33,000", len(r.Ports))
		}
	}
}

// BenchmarkExpectCompare33000Ports is the expected ruleset of that host
// and its comparison with the dump, the core of every rule check.
func BenchmarkExpectCompare33000Ports(b *testing.B) {
	s := synth.DockerSnapshot(33000, synth.DockerHost(33000), "nft")
	rs := s.Rules[0].Ruleset
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := Expect(s, snapshot.FamilyIPv4)
		if err != nil {
			b.Fatal(err)
		}
		if d := Compare(e, rs); len(d.Missing) != 0 {
			b.Fatalf("%d missing", len(d.Missing))
		}
	}
}

// BenchmarkDoctorRulesOnly100kRules is `doctor --from` a pasted
// iptables-save of a 33,000-port host (about 100,000 rules): Docker's
// view inferred from the rules, then every rule check and the ports table.
func BenchmarkDoctorRulesOnly100kRules(b *testing.B) {
	rs, err := parse.Parse(synth.DockerHost(33000))
	if err != nil {
		b.Fatal(err)
	}
	s := snapshot.FromDump("", rs, "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := NewReport(s, ReportOptions{RulesOnly: true}); len(r.Ports) < 33000 {
			b.Fatalf("%d ports judged, want 33,000", len(r.Ports))
		}
	}
}

// BenchmarkInferFromRules100kRules is the inference alone of Docker's view
// from a 33,000-port host's rules (about 100,000): what the doctor does
// first for a pasted dump, or live without a Docker API.
func BenchmarkInferFromRules100kRules(b *testing.B) {
	rs, err := parse.Parse(synth.DockerHost(33000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if inf, why := InferFromRules(rs, snapshot.FamilyIPv4); inf == nil || len(inf.Docker.Containers) < 33000 {
			b.Fatalf("inference: %v %s", inf, why)
		}
	}
}
