package repair

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/render"
	"github.com/iptscope/iptscope/snapshot"
)

func TestEveryFixturesPlanValidates(t *testing.T) {
	dirs, err := os.ReadDir("../fixtures")
	if err != nil {
		t.Fatal(err)
	}
	n, ops := 0, 0
	for _, d := range dirs {
		if _, err := os.Stat("../fixtures/" + d.Name() + "/bundle.json"); err != nil {
			continue
		}
		_, p := loadFixture(t, d.Name())
		if err := ValidatePlan(p); err != nil {
			t.Errorf("%s: %v", d.Name(), err)
		}
		n++
		ops += len(p.Ops)
	}
	t.Logf("%d fixture plans, %d operations validated", n, ops)
}

func TestValidatePlanRefusesWhatTheKernelWouldNot(t *testing.T) {
	rule := func(spec string) diagnose.Op {
		return diagnose.Op{Kind: diagnose.OpAppend, Family: "ipv4", Table: parse.TableNAT, Chain: "DOCKER", Spec: spec}
	}
	for name, op := range map[string]diagnose.Op{
		"a bridge name carrying a second line": rule("-i docker0\n-A INPUT -j ACCEPT -j RETURN"),
		"a carriage return":                    rule("-i docker0\r -j RETURN"),
		"an interface name of 16 bytes":        rule("-i br-0123456789abc -j RETURN"),
		"an interface name with a slash":       rule("-i br/x -j RETURN"),
		"an address that does not parse":       rule("-d 172.17.0.300/32 -j RETURN"),
		"an IPv6 address in an IPv4 rule":      rule("-d fd00::1/128 -j RETURN"),
		"a port that is not a number":          rule("-p tcp -m tcp --dport http -j RETURN"),
		"a port out of range":                  rule("-p tcp -m tcp --dport 65536 -j RETURN"),
		"a NAT destination out of range":       rule("-p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:70000"),
		"a target chain with a quote":          rule("-j DOCK\"ER"),
		"a chain name that is an option":       {Kind: diagnose.OpCreateChain, Family: "ipv4", Table: parse.TableNAT, Chain: "-F"},
		"a chain name of 29 bytes":             {Kind: diagnose.OpCreateChain, Family: "ipv4", Table: parse.TableFilter, Chain: "DOCKER-ISOLATION-STAGE-123456"},
		"an unknown table":                     {Kind: diagnose.OpAppend, Family: "ipv4", Table: "security2", Chain: "X", Spec: "-j RETURN"},
		"a sysctl outside the repair's":        {Kind: diagnose.OpSysctl, Name: "kernel.core_pattern", Value: "|/bin/sh"},
		"a sysctl path walking out":            {Kind: diagnose.OpSysctl, Name: "net.ipv4.conf.../../../kernel.route_localnet", Value: "1"},
		"a sysctl value that is not 0 or 1":    {Kind: diagnose.OpSysctl, Name: "net.ipv4.ip_forward", Value: "1\n"},
	} {
		t.Run(name, func(t *testing.T) {
			p := &diagnose.Plan{Ops: []diagnose.Op{op}}
			if err := ValidatePlan(p); !errors.Is(err, ErrUnsafePlan) {
				t.Errorf("ValidatePlan = %v, want ErrUnsafePlan", err)
			}
		})
	}
	ok := &diagnose.Plan{Ops: []diagnose.Op{
		rule("! -i br-0123456789ab -p udp -m udp --dport 65535 -j DNAT --to-destination 172.17.0.2:1"),
		rule("-p sctp -m sctp --dport 1 -j DNAT --to-destination 172.17.0.2:1"),
		{Kind: diagnose.OpSysctl, Name: "net.ipv4.conf.br-0123456789ab.route_localnet", Value: "1"},
	}}
	if err := ValidatePlan(ok); err != nil {
		t.Errorf("legal plan refused: %v", err)
	}
}

// FuzzRenderedPayloadHoldsOnlyThePlansLines proves that a plan that
// validates renders to a payload whose lines are exactly "*table", the
// declarations, one line per operation (its Line) and "COMMIT": no value
// can add a line of its own or split one.
func FuzzRenderedPayloadHoldsOnlyThePlansLines(f *testing.F) {
	f.Add("DOCKER", "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80", 1, "NEW-CHAIN")
	f.Add("DOCKER", "! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80\n-A INPUT -j ACCEPT", 1, "X")
	f.Add("POSTROUTING", "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE", 3, "DOCKER\nCOMMIT")
	f.Add("DOCKER", "-m comment --comment \"a\\\" -j ACCEPT\" -j RETURN", 2, "Y")
	f.Add("DOCKER", "-i br-x\x00 -j RETURN", 1, "Z")
	f.Fuzz(func(t *testing.T, chain, spec string, pos int, newChain string) {
		p := &diagnose.Plan{Ops: []diagnose.Op{
			{Kind: diagnose.OpCreateChain, Family: "ipv4", Table: parse.TableNAT, Chain: parse.ChainName(newChain)},
			{Kind: diagnose.OpInsert, Family: "ipv4", Table: parse.TableNAT, Chain: parse.ChainName(chain), Position: pos, Spec: spec},
			{Kind: diagnose.OpAppend, Family: "ipv4", Table: parse.TableNAT, Chain: parse.ChainName(chain), Spec: spec},
			{Kind: diagnose.OpDelete, Family: "ipv4", Table: parse.TableNAT, Chain: parse.ChainName(chain), Spec: spec},
		}}
		if ValidatePlan(p) != nil {
			return
		}
		pls := Render(p)
		if len(pls) != 1 {
			t.Fatalf("%d payloads", len(pls))
		}
		want := []string{"*nat", p.Ops[0].Line(), p.Ops[1].Line(), p.Ops[2].Line(), p.Ops[3].Line(), "COMMIT"}
		got := strings.Split(strings.TrimSuffix(pls[0].Text, "\n"), "\n")
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("payload lines %q, want %q", got, want)
		}
		for _, l := range got[1 : len(got)-1] {
			if l == "COMMIT" || strings.HasPrefix(l, "*") {
				t.Fatalf("a value made a framing line: %q", l)
			}
		}
		// The rule the payload carries is the rule the plan means.
		r, err := parse.ParseRuleSpec(parse.TableNAT, parse.ChainName(chain), spec)
		if err != nil || r.Spec() != spec {
			t.Fatalf("validated spec %q does not round-trip: %v", spec, err)
		}
	})
}

// FuzzABundleNeverMakesAnUnsafePlanOrOutput puts fuzzed values into a
// bundle's names, addresses and ports (a nat DOCKER flushed, so that the
// plan writes rules from them): whatever Load accepts, doctor's report
// and plan render without a terminal escape, and the plan validates.
func FuzzABundleNeverMakesAnUnsafePlanOrOutput(f *testing.F) {
	f.Add("web", "docker0", "172.17.0.0/16", "172.17.0.2", 8080, "tcp")
	f.Add("web\x1b]0;x\a", "docker0\n-A INPUT -j ACCEPT", "172.17.0.0/16", "172.17.0.2", 1, "udp")
	f.Add("日本語", "br-0123456789ab", "fd00::/64", "fd00::2", 65535, "sctp")
	f.Add("x", "br+", "0.0.0.0/0", "0.0.0.0", 0, "tcp")
	data, err := os.ReadFile("../fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, bridge, subnet, ip string, port int, proto string) {
		s, err := snapshot.Load(data)
		if err != nil {
			t.Fatal(err)
		}
		d := s.Docker
		d.Containers[3].Name = name
		d.Containers[3].Endpoints[0].IP = ip
		d.Containers[3].Ports[0].HostPort = port
		d.Containers[3].Ports[0].Proto = proto
		d.Networks[2].BridgeName = bridge
		d.Networks[2].Subnets = []string{subnet}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s, err = snapshot.Load(b)
		if err != nil {
			return // refused on load
		}
		rep := diagnose.NewReport(s, diagnose.ReportOptions{})
		plan := diagnose.NewPlan(s, rep.Findings)
		if err := ValidatePlan(plan); err != nil {
			t.Fatalf("a bundle Load accepts gives a plan Apply refuses: %v", err)
		}
		var out bytes.Buffer
		if err := render.DoctorText(&out, rep, render.Options{}); err != nil {
			t.Fatal(err)
		}
		var pls []render.PlanPayload
		for _, p := range Render(plan) {
			pls = append(pls, render.PlanPayload{Family: p.Family, Table: string(p.Table), Text: p.Text})
		}
		if err := render.PlanText(&out, plan, pls); err != nil {
			t.Fatal(err)
		}
		if o := out.String(); strings.ContainsRune(o, 0x1b) || strings.ContainsRune(o, 0x07) || strings.ContainsRune(o, 0x9b) {
			t.Fatalf("a terminal escape in the output:\n%q", out.String())
		}
	})
}
