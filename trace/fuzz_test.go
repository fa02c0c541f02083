package trace

import (
	"net/netip"
	"os"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// FuzzTrace traces packets through arbitrary rulesets: the engine must
// never panic, must end (a jump or goto loop is reported as unknown), and
// must return a well-formed result, the same over a prepared Tracer.
func FuzzTrace(f *testing.F) {
	f.Add(dockerNAT+filter(dockerForward), uint16(8080), byte(9), uint8(0), false)
	f.Add(dockerNAT+filter("-A FORWARD -j A\n-A A -g B\n-A B -g A\n"), uint16(80), byte(3), uint8(1), true)
	f.Add(filter("-A FORWARD -m mark --mark 0x1/0x1 -j RETURN\n-A FORWARD -j MARK --set-xmark 0x1/0x1\n-A FORWARD -j C\n-A C -j RETURN\n"), uint16(22), byte(2), uint8(2), false)
	for _, fx := range []string{"docker-28.5-nft-proxy-off-healthy", "docker-20.10-legacy-proxy-on-healthy", "docker-29-nft-proxy-off-stale-dnat"} {
		if data, err := os.ReadFile("../fixtures/" + fx + "/iptables-save.txt"); err == nil {
			f.Add(string(data), uint16(8080), byte(2), uint8(0), false)
		}
	}
	f.Fuzz(func(t *testing.T, rules string, dport uint16, last byte, inSel uint8, established bool) {
		rs, err := parse.Parse([]byte(rules))
		if err != nil {
			return
		}
		s := host(t, "")
		s.Rules = []snapshot.RuleDump{{Backend: snapshot.BackendNFT, Family: snapshot.FamilyIPv4, Raw: rules, Ruleset: rs}}
		ins := []string{"eth0", "docker0", "veth1", "", "lo", "nosuch"}
		in := ins[int(inSel)%len(ins)]
		src := netip.AddrFrom4([4]byte{172, 17, 0, last})
		if in == "eth0" {
			src = netip.AddrFrom4([4]byte{203, 0, 113, last})
		}
		if in == "" {
			src = netip.MustParseAddr("198.51.100.1")
		}
		p := Packet{Proto: "tcp", Src: src, SrcPort: 40000, Dst: netip.AddrFrom4([4]byte{198, 51, 100, 1 + last%3}), DstPort: dport, InIface: in, State: StateNew}
		if established {
			p.State = StateEstablished
		}
		r := Trace(s, p)
		// A Tracer that has indexed its chains gives what a fresh one
		// gives.
		tr := New(s)
		tr.Trace(p)
		tr.Trace(p)
		if a, b := dumpResult(r), dumpResult(tr.Trace(p)); a != b {
			t.Fatalf("fresh and prepared Tracers differ\nfresh:\n%s\nprepared:\n%s", a, b)
		}
		switch r.Verdict {
		case Accept, Drop, Reject, Unknown:
		default:
			t.Fatalf("verdict %q", r.Verdict)
		}
		switch r.Reaches {
		case ReachContainer, ReachHost, ReachElsewhere, ReachNowhere, ReachUnknown:
		default:
			t.Fatalf("reaches %q", r.Reaches)
		}
		if r.Decider < -1 || r.Decider >= len(r.Steps) {
			t.Fatalf("decider %d of %d steps", r.Decider, len(r.Steps))
		}
		if r.Verdict == Unknown && r.Reason == "" {
			t.Fatal("unknown without a reason")
		}
		if (r.Verdict == Drop || r.Verdict == Reject) && (r.Answers == nil || *r.Answers) {
			t.Fatal("a dropped packet cannot be answered")
		}
		if r.Reaches == ReachContainer && r.Container == "" {
			t.Fatal("a container without a name")
		}
	})
}
