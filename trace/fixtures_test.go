package trace

import (
	"bufio"
	"bytes"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// probe is one line of a fixture's probe.txt: what a real client saw.
type probe struct {
	port     uint16
	answered bool
	from     string // client or host
	dst      netip.Addr
}

func readProbes(t *testing.T, path string) []probe {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []probe
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		kv := map[string]string{}
		for f := range strings.FieldsSeq(sc.Text()) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		u, err := url.Parse(kv["url"])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		port, _ := strconv.Atoi(u.Port())
		out = append(out, probe{port: uint16(port), answered: kv["answered"] == "yes", from: kv["from"], dst: netip.MustParseAddr(u.Hostname())})
	}
	return out
}

// clientAddr is the client namespace's address: the other end of the
// host's /30 towards it (the testbed gives the host .1, the client .2).
func clientAddr(t *testing.T, s *snapshot.Snapshot, hostAddr netip.Addr) netip.Addr {
	t.Helper()
	for _, a := range s.Addrs {
		p, err := netip.ParsePrefix(a.CIDR)
		if err == nil && p.Addr() == hostAddr {
			return hostAddr.Next()
		}
	}
	t.Fatalf("the host has no address %s", hostAddr)
	return netip.Addr{}
}

// probePacket is the SYN a probe sent.
func probePacket(t *testing.T, s *snapshot.Snapshot, pr probe) Packet {
	t.Helper()
	p := Packet{Proto: "tcp", SrcPort: 40000, Dst: pr.dst, DstPort: pr.port, State: StateNew}
	if pr.from == "host" {
		p.Src = netip.MustParseAddr("127.0.0.1")
		if pr.dst.Is6() {
			p.Src = netip.IPv6Loopback()
		}
		return p
	}
	p.Src = clientAddr(t, s, pr.dst)
	in, err := DefaultInIface(s, p.Src)
	if err != nil {
		t.Fatal(err)
	}
	p.InIface = in
	return p
}

func loadBundle(t testing.TB, dir string) *snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTheEngineAgreesWithEveryLiveProbe traces every probe every fixture
// recorded on a real host and requires the engine's answer to be what the
// client saw, wherever the engine decides. The undecided ones are counted
// and must each have a reason.
func TestTheEngineAgreesWithEveryLiveProbe(t *testing.T) {
	dirs, _ := filepath.Glob("../fixtures/*/probe.txt")
	// The healthy shapes: one folder per daemon under each shape.
	shapes, _ := filepath.Glob("../fixtures/healthy-shapes-*/*/probe.txt")
	dirs = append(dirs, shapes...)
	if len(dirs) == 0 {
		t.Fatal("no fixtures")
	}
	compared, unknown := 0, map[string]int{}
	for _, pt := range dirs {
		dir := filepath.Dir(pt)
		if _, err := os.Stat(filepath.Join(dir, "bundle.json")); err != nil {
			continue
		}
		s := loadBundle(t, dir)
		for _, pr := range readProbes(t, pt) {
			p := probePacket(t, s, pr)
			r := Trace(s, p)
			name := filepath.Base(dir) + " " + pr.from + " " + strconv.Itoa(int(pr.port))
			if r.Answers == nil {
				if r.Reason == "" {
					t.Errorf("%s: undecided without a reason", name)
				}
				unknown[r.Reason]++
				continue
			}
			compared++
			if *r.Answers != pr.answered {
				t.Errorf("%s: the engine says answers=%v, the live probe answered=%v\n%s", name, *r.Answers, pr.answered, dumpResult(r))
			}
		}
	}
	t.Logf("%d probes compared", compared)
	for why, n := range unknown {
		t.Logf("undecided %d: %s", n, why)
	}
}

func dumpResult(r *Result) string {
	var b strings.Builder
	b.WriteString(string(r.Verdict) + " " + string(r.Reaches) + " " + r.Container + ": " + r.Reason + "\n")
	for i, s := range r.Steps {
		mark := "  "
		if i == r.Decider {
			mark = "=>"
		}
		b.WriteString(mark + " " + string(s.Hook) + " " + string(s.Table) + " " + string(s.Chain) + " " + strconv.Itoa(s.Rule) + " " + s.Target + " | " + s.Text + " " + s.Note + s.Unknown + "\n")
	}
	return b.String()
}

// leanDump is dumpResult of what a lean trace (ScanPorts) keeps of r:
// the texts of rules' steps, no text for any other step, no notes.
func leanDump(r *Result) string {
	c := *r
	c.Steps = slices.Clone(r.Steps)
	for i := range c.Steps {
		if c.Steps[i].Rule == 0 {
			c.Steps[i].Text = ""
		}
		c.Steps[i].Note = ""
	}
	return dumpResult(&c)
}

// TestALeanTraceIsTheFullOneWithoutTexts: every published port of every
// fixture bundle traced lean (ScanPorts, one Result reused) gives the
// full trace's verdict, reason and steps (EachPort), without the texts a
// lean trace leaves out.
func TestALeanTraceIsTheFullOneWithoutTexts(t *testing.T) {
	bundles, _ := filepath.Glob("../fixtures/*/bundle.json")
	shapes, _ := filepath.Glob("../fixtures/healthy-shapes-*/*/bundle.json")
	n, differ := 0, 0
	for _, b := range append(bundles, shapes...) {
		s := loadBundle(t, filepath.Dir(b))
		var full []PortVerdict
		New(s).EachPort(func(v PortVerdict) { full = append(full, v) })
		i := 0
		New(s).ScanPorts(func(v PortVerdict) {
			defer func() { i++ }()
			if i >= len(full) {
				t.Fatalf("%s: more lean verdicts than full ones", b)
			}
			f := full[i]
			if v.Container != f.Container || v.HostPort != f.HostPort || v.Path != f.Path || v.Reason != f.Reason {
				t.Errorf("%s %s %d: lean %s (%s), full %s (%s)", b, v.Container, v.HostPort, v.Path, v.Reason, f.Path, f.Reason)
				return
			}
			if (v.Trace == nil) != (f.Trace == nil) {
				t.Errorf("%s %s %d: lean and full differ in having a trace", b, v.Container, v.HostPort)
				return
			}
			if v.Trace == nil {
				return
			}
			n++
			if got, want := dumpResult(v.Trace), leanDump(f.Trace); got != want {
				t.Errorf("%s %s %d: lean trace\n%s\nfull trace without its texts\n%s", b, v.Container, v.HostPort, got, want)
			}
			if leanDump(f.Trace) != dumpResult(f.Trace) {
				differ++
			}
			if ls, fs := v.Trace.ReplyStop, f.Trace.ReplyStop; (ls == nil) != (fs == nil) ||
				ls != nil && (ls.Table != fs.Table || ls.Chain != fs.Chain || ls.Rule != fs.Rule || ls.Target != fs.Target) {
				t.Errorf("%s %s %d: lean and full differ in the reply's stop: %+v, %+v", b, v.Container, v.HostPort, ls, fs)
			}
		})
		if i != len(full) {
			t.Errorf("%s: %d lean verdicts, %d full ones", b, i, len(full))
		}
	}
	if n == 0 || differ == 0 {
		t.Fatalf("%d traces compared, %d with texts a lean trace leaves out: the test compares nothing", n, differ)
	}
	t.Logf("%d traces compared (%d with texts a lean trace leaves out)", n, differ)
}

// TestAPreparedTracerGivesWhatAFreshOneGives traces every probe of every
// fixture over a Tracer that has seen them all twice (its chains indexed
// by port and address) and over a fresh one (rule after rule): the
// results must be the same.
func TestAPreparedTracerGivesWhatAFreshOneGives(t *testing.T) {
	dirs, _ := filepath.Glob("../fixtures/*/probe.txt")
	shapes, _ := filepath.Glob("../fixtures/healthy-shapes-*/*/probe.txt")
	n := 0
	for _, pt := range append(dirs, shapes...) {
		dir := filepath.Dir(pt)
		if _, err := os.Stat(filepath.Join(dir, "bundle.json")); err != nil {
			continue
		}
		s := loadBundle(t, dir)
		var pkts []Packet
		for _, pr := range readProbes(t, pt) {
			pkts = append(pkts, probePacket(t, s, pr))
		}
		warm := New(s)
		for range 2 {
			for _, p := range pkts {
				warm.Trace(p)
			}
		}
		for _, p := range pkts {
			n++
			if a, b := dumpResult(New(s).Trace(p)), dumpResult(warm.Trace(p)); a != b {
				t.Errorf("%s %s:%d: fresh and prepared Tracers differ\nfresh:\n%s\nprepared:\n%s", filepath.Base(dir), p.Dst, p.DstPort, a, b)
			}
		}
	}
	t.Logf("%d traces compared", n)
}
