package repair

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
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
