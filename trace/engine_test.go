package trace

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse/nft"
	"github.com/iptscope/iptscope/snapshot"
)

// host is a small Docker host: eth0 198.51.100.1/24 with a default route,
// docker0 172.17.0.1/16 with web at 172.17.0.2 (publishing 8080:80) and
// db at 172.17.0.3, forwarding and br_netfilter on.
func host(t testing.TB, rules string, more ...func(*snapshot.Snapshot)) *snapshot.Snapshot {
	t.Helper()
	s := &snapshot.Snapshot{
		Schema:          snapshot.Schema,
		IptablesBackend: snapshot.BackendNFT,
		DockerBackend:   snapshot.BackendNFT,
		Links: []snapshot.Link{
			{Name: "lo", Kind: "device", Up: true}, {Name: "eth0", Kind: "device", Up: true}, {Name: "docker0", Kind: "bridge", Up: true},
			{Name: "veth1", Kind: "veth", Master: "docker0", Hairpin: ptr(false), Up: true},
			{Name: "veth2", Kind: "veth", Master: "docker0", Hairpin: ptr(true), Up: true},
		},
		Addrs: []snapshot.Addr{
			{Link: "lo", Family: "ipv4", CIDR: "127.0.0.1/8"},
			{Link: "eth0", Family: "ipv4", CIDR: "198.51.100.1/24"},
			{Link: "docker0", Family: "ipv4", CIDR: "172.17.0.1/16"},
		},
		Routes: []snapshot.Route{
			{Dst: "default", Gateway: "198.51.100.254", Dev: "eth0", Table: 254},
			{Dst: "198.51.100.0/24", Dev: "eth0", Table: 254},
			{Dst: "172.17.0.0/16", Dev: "docker0", Table: 254},
		},
		Sysctls: map[string]snapshot.Sysctl{
			"net.ipv4.ip_forward":                  {Value: "1", Present: true},
			"net.bridge.bridge-nf-call-iptables":   {Value: "1", Present: true},
			"net.ipv4.conf.docker0.route_localnet": {Value: "0", Present: true},
		},
		Docker: &snapshot.Docker{
			Networks: []snapshot.Network{{Name: "bridge", BridgeName: "docker0", Subnets: []string{"172.17.0.0/16"}, Gateways: []string{"172.17.0.1"}}},
			Containers: []snapshot.Container{
				{Name: "web", Running: true, Endpoints: []snapshot.Endpoint{{Network: "bridge", IP: "172.17.0.2", HostVeth: "veth1"}},
					Ports: []snapshot.PortBinding{{HostIP: "0.0.0.0", HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
				{Name: "db", Running: true, Endpoints: []snapshot.Endpoint{{Network: "bridge", IP: "172.17.0.3", HostVeth: "veth2"}}},
			},
		},
		Rules: []snapshot.RuleDump{{Backend: snapshot.BackendNFT, Family: snapshot.FamilyIPv4, Raw: rules}},
	}
	for _, f := range more {
		f(s)
	}
	s.ParseRules()
	for _, d := range s.Rules {
		if d.Error != "" {
			t.Fatal(d.Error)
		}
	}
	return s
}

const dockerNAT = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
`

func filter(forward string) string {
	return `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
` + forward + `COMMIT
`
}

const dockerForward = `-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
`

func pk(src, dst string, dport uint16, in string) Packet {
	return Packet{Proto: "tcp", Src: netip.MustParseAddr(src), SrcPort: 40000, Dst: netip.MustParseAddr(dst), DstPort: dport, InIface: in, State: StateNew}
}

// want is what a case expects: the verdict, where it ends, and the
// deciding step as "HOOK table CHAIN rule" ("" when none decides).
type want struct {
	verdict   Verdict
	reaches   Reach
	container string
	decider   string
	answers   string // "yes", "no", "?"
}

func check(t *testing.T, r *Result, w want) {
	t.Helper()
	got := ""
	if s := r.Deciding(); s != nil {
		got = string(s.Hook) + " " + string(s.Table) + " " + string(s.Chain) + " " + itoa(s.Rule)
		if s.IsKernel() {
			got = s.Target
		}
	}
	ans := "?"
	if r.Answers != nil {
		ans = map[bool]string{true: "yes", false: "no"}[*r.Answers]
	}
	if r.Verdict != w.verdict || r.Reaches != w.reaches || r.Container != w.container || got != w.decider || ans != w.answers {
		t.Errorf("got %s/%s/%q decided by %q answers %s, want %s/%s/%q decided by %q answers %s\n%s",
			r.Verdict, r.Reaches, r.Container, got, ans, w.verdict, w.reaches, w.container, w.decider, w.answers, dumpResult(r))
	}
}

func itoa(n int) string {
	if n == 0 {
		return "policy"
	}
	return strconv.Itoa(n)
}

func TestTrace(t *testing.T) {
	base := dockerNAT + filter(dockerForward)
	cases := []struct {
		name  string
		rules string
		more  []func(*snapshot.Snapshot)
		p     Packet
		want  want
	}{
		{"a published port from outside is DNATed to its container and admitted by DOCKER", base, nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"an unpublished port from outside reaches the host, where nothing known listens", base, nil,
			pk("203.0.113.9", "198.51.100.1", 9999, "eth0"), want{Accept, ReachHost, "", "", "?"}},
		{"a container's own address from outside falls to the FORWARD policy", base, nil,
			pk("198.51.100.7", "172.17.0.3", 80, "eth0"), want{Drop, ReachNowhere, "", "FORWARD filter FORWARD policy", "no"}},
		{"a DOCKER-USER drop stops a published port", dockerNAT + filter(dockerForward+"-A DOCKER-USER -s 203.0.113.0/24 -j DROP\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "FORWARD filter DOCKER-USER 1", "no"}},
		{"a negated source passes the DOCKER-USER drop", dockerNAT + filter(dockerForward+"-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A DOCKER-USER ! -s 203.0.113.0/24 -j DROP\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a negated source passes the DOCKER-USER drop, which drops the reply (no ESTABLISHED accept before it)", dockerNAT + filter(dockerForward+"-A DOCKER-USER ! -s 203.0.113.0/24 -j DROP\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "no"}},
		{"a REJECT of what comes in on the bridge kills the replies", dockerNAT + filter("-A FORWARD -i docker0 -j REJECT\n"+dockerForward), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "no"}},
		{"REJECT is a reject", dockerNAT + filter("-A FORWARD -p tcp -m multiport --dports 22,80:90 -j REJECT --reject-with icmp-port-unreachable\n"+dockerForward), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Reject, ReachNowhere, "", "FORWARD filter FORWARD 1", "no"}},
		{"a goto returns to the caller's caller", dockerNAT + filter("-A FORWARD -j A\n-A FORWARD -j DROP\n-A A -g B\n-A A -j ACCEPT\n-A B -p tcp -j RETURN\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "FORWARD filter FORWARD 2", "no"}},
		{"a mark set in one chain is matched in another", dockerNAT + filter("-A FORWARD -j MARK --set-xmark 0x10/0xff\n-A FORWARD -m mark --mark 0x10/0xf0 -j A\n-A A -j ACCEPT\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a mark that does not match is passed", dockerNAT + filter("-A FORWARD -m mark --mark 0x1 -j ACCEPT\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "FORWARD filter FORWARD policy", "no"}},
		{"a match the engine does not model makes the verdict unknown at that rule", dockerNAT + filter("-A FORWARD -m limit --limit 5/sec -j ACCEPT\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Unknown, ReachUnknown, "", "FORWARD filter FORWARD 1", "?"}},
		{"an unmodelled match in a rule another match already fails is passed", dockerNAT + filter("-A FORWARD -p udp -m limit --limit 5/sec -j DROP\n-A FORWARD -j ACCEPT\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"an unmodelled match on a LOG rule changes nothing", dockerNAT + filter("-A FORWARD -m limit --limit 5/sec -j LOG\n-A FORWARD -j ACCEPT\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a jump to a chain the table lacks is unknown", dockerNAT + filter("-A FORWARD -j NOPE\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Unknown, ReachUnknown, "", "FORWARD filter FORWARD 1", "?"}},
		{"a jump loop is reported", dockerNAT + filter("-A FORWARD -j A\n-A A -j B\n-A B -j A\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Unknown, ReachUnknown, "", "FORWARD filter B 1", "?"}},
		{"a goto loop is reported", dockerNAT + filter("-A FORWARD -j A\n-A A -g B\n-A B -g A\n"), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Unknown, ReachUnknown, "", "FORWARD filter B 1", "?"}},
		{"a published port of a container whose bridge is down goes nowhere", base, []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.Links[2].Up = false
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "BRIDGE", "no"}},
		{"a published port of a container whose veth is off its bridge goes nowhere", base, []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.Links[3].Master = ""
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "BRIDGE", "no"}},
		{"forwarding off drops a DNATed packet after PREROUTING", base, []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.Sysctls["net.ipv4.ip_forward"] = snapshot.Sysctl{Value: "0", Present: true}
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "ROUTE", "no"}},
		{"an established packet of a published port is admitted by conntrack", base, nil,
			func() Packet {
				p := pk("203.0.113.9", "198.51.100.1", 8080, "eth0")
				p.State = StateEstablished
				return p
			}(),
			want{Accept, ReachContainer, "web", "", "yes"}},
		{"a container reaches the outside, masqueraded", base, nil,
			pk("172.17.0.3", "192.0.2.10", 443, "docker0"), want{Accept, ReachElsewhere, "", "", "?"}},
		{"a container without MASQUERADE gets no reply from outside", filter(dockerForward), nil,
			pk("172.17.0.3", "192.0.2.10", 443, "docker0"), want{Accept, ReachElsewhere, "", "", "no"}},
		{"container to container on one bridge passes FORWARD under br_netfilter", base, nil,
			pk("172.17.0.3", "172.17.0.2", 80, "veth2"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a bridged frame skips iptables when br_netfilter is off", dockerNAT + filter("-A FORWARD -j DROP\n"), []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.Sysctls["net.bridge.bridge-nf-call-iptables"] = snapshot.Sysctl{Value: "0", Present: true}
		}}, pk("172.17.0.3", "172.17.0.2", 80, "docker0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a container's connection to a host port is not DNATed from its own bridge (nat DOCKER returns) and meets the placeholder", base, nil,
			pk("172.17.0.2", "198.51.100.1", 8080, "docker0"), want{Accept, ReachHost, "", "", "no"}},
		{"a docker-proxy answers a port whose DNAT is gone", filter(dockerForward), []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.Proxies = []snapshot.Proxy{{PID: 42, Proto: "tcp", HostIP: "0.0.0.0", HostPort: 8080, ContainerIP: "172.17.0.2", ContainerPort: 80}}
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachHost, "", "", "yes"}},
		{"without a proxy dockerd's placeholder holds the port and never serves it", filter(dockerForward), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachHost, "", "", "no"}},
		{"a set member is matched", dockerNAT + filter("-A FORWARD -m set --match-set blocked src -j DROP\n"+dockerForward), []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.IPSets = []snapshot.IPSet{{Name: "blocked", Type: "hash:net", Members: []string{"203.0.113.0/24", "203.0.113.9 nomatch"}}, {Name: "other", Type: "hash:ip"}}
		}}, pk("203.0.113.8", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "FORWARD filter FORWARD 1", "no"}},
		{"a nomatch entry excludes its address from a set", dockerNAT + filter("-A FORWARD -m set --match-set blocked src -j DROP\n"+dockerForward), []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.IPSets = []snapshot.IPSet{{Name: "blocked", Type: "hash:net", Members: []string{"203.0.113.0/24", "203.0.113.9 nomatch"}}}
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a set the snapshot lacks is unknown", dockerNAT + filter("-A FORWARD -m set --match-set blocked src -j DROP\n"+dockerForward), nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Unknown, ReachUnknown, "", "FORWARD filter FORWARD 1", "?"}},
		{"an ip,port set", dockerNAT + filter("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -m set ! --match-set svc dst,dst -j DROP\n"+dockerForward), []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.IPSets = []snapshot.IPSet{{Name: "svc", Type: "hash:ip,port", Members: []string{"172.17.0.2,tcp:80"}}}
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachContainer, "web", "", "yes"}},
		{"the other backend's DROP policy also applies", base, []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) {
			s.Rules = append(s.Rules, snapshot.RuleDump{Backend: snapshot.BackendLegacy, Family: snapshot.FamilyIPv4, Raw: "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"})
		}}, pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Drop, ReachNowhere, "", "FORWARD filter FORWARD policy", "no"}},
		{"the host's own connection to a published port is DNATed in OUTPUT", strings.Replace(base, "! -d 127.0.0.0/8 ", "", 1), nil,
			pk("198.51.100.1", "198.51.100.1", 8080, ""), want{Accept, ReachContainer, "web", "", "yes"}},
		{"a loopback source may not leave on docker0 without route_localnet", strings.Replace(strings.Replace(base, "! -d 127.0.0.0/8 ", "", 1), "! -i docker0 -p tcp", "-p tcp", 1), nil,
			pk("127.0.0.1", "127.0.0.1", 8080, ""), want{Drop, ReachNowhere, "", "ROUTE", "no"}},
		{"a raw dump cannot tell addrtype", base, []func(*snapshot.Snapshot){func(s *snapshot.Snapshot) { s.Addrs, s.Routes = nil, nil }},
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Unknown, ReachUnknown, "", "PREROUTING nat PREROUTING 1", "?"}},
		{"NOTRACK skips nat", "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j CT --notrack\nCOMMIT\n" + base, nil,
			pk("203.0.113.9", "198.51.100.1", 8080, "eth0"), want{Accept, ReachHost, "", "", "no"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check(t, Trace(host(t, c.rules, c.more...), c.p), c.want)
		})
	}
}

func TestHairpinToItselfNeedsHairpinMode(t *testing.T) {
	rules := strings.Replace(dockerNAT, "-A DOCKER -i docker0 -j RETURN\n", "", 1)
	rules = strings.Replace(rules, "! -i docker0 -p tcp", "-p tcp", 1)
	r := Trace(host(t, rules+filter(dockerForward)), pk("172.17.0.2", "198.51.100.1", 8080, "docker0"))
	check(t, r, want{Drop, ReachNowhere, "", "BRIDGE", "no"})
}

func TestDefaultInIface(t *testing.T) {
	s := host(t, dockerNAT)
	for src, want := range map[string]string{"203.0.113.9": "eth0", "172.17.0.2": "docker0", "198.51.100.1": "", "127.0.0.1": ""} {
		got, err := DefaultInIface(s, netip.MustParseAddr(src))
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", src, got, err, want)
		}
	}
	if _, err := DefaultInIface(&snapshot.Snapshot{}, netip.MustParseAddr("1.2.3.4")); err == nil {
		t.Error("a snapshot without addresses gives no interface")
	}
}

func TestStepsNameAddressesTheWayDockerDoes(t *testing.T) {
	r := Trace(host(t, dockerNAT+filter(dockerForward)), pk("203.0.113.9", "198.51.100.1", 8080, "eth0"))
	var notes []string
	for _, s := range r.Steps {
		notes = append(notes, s.Note, s.Text)
	}
	all := strings.Join(notes, "\n")
	if want := "DNAT → 172.17.0.2:80 (web)"; !strings.Contains(all, want) {
		t.Errorf("no %q in the steps:\n%s", want, all)
	}
	if r.Names["172.17.0.2"] != "web" {
		t.Errorf("names: %v", r.Names)
	}
}

// legacy makes host's rules legacy iptables' (and says the snapshot read
// the nftables ruleset: it has no native table).
func legacy(s *snapshot.Snapshot) {
	s.IptablesBackend, s.DockerBackend = snapshot.BackendLegacy, snapshot.BackendLegacy
	for i := range s.Rules {
		s.Rules[i].Backend = snapshot.BackendLegacy
	}
	s.Nftables = &snapshot.NftRuleset{Ruleset: &nft.Ruleset{}}
}

// What the kernel's own trace of real hosts showed (e2e's differential),
// in small.
func TestWhatTheKernelTraceShowed(t *testing.T) {
	steps := func(r *Result) string {
		var out []string
		for _, s := range r.Steps {
			if !s.IsKernel() {
				out = append(out, string(s.Hook)+" "+string(s.Table)+" "+string(s.Chain)+" "+itoa(s.Rule))
			}
		}
		return strings.Join(out, ", ")
	}
	raw := "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	base := raw + dockerNAT + filter(dockerForward)
	from := pk("203.0.113.9", "198.51.100.1", 8080, "eth0")

	t.Run("a legacy table's empty built-in chains are on their hooks", func(t *testing.T) {
		r := Trace(host(t, base, legacy), from)
		check(t, r, want{Accept, ReachContainer, "web", "", "yes"})
		if got, want := steps(r), "PREROUTING raw PREROUTING policy, PREROUTING nat PREROUTING 1, PREROUTING nat DOCKER 2, FORWARD filter FORWARD 1, FORWARD filter DOCKER-USER policy, FORWARD filter FORWARD 3, FORWARD filter DOCKER 1, POSTROUTING nat POSTROUTING policy"; got != want {
			t.Errorf("steps\n got %s\nwant %s", got, want)
		}
		// iptables-nft creates none until something needs it.
		if got := steps(Trace(host(t, base), from)); strings.Contains(got, "raw PREROUTING policy") {
			t.Errorf("an iptables-nft host without its nftables ruleset shows raw's empty chain: %s", got)
		}
	})
	t.Run("no nat chain runs when no rule needs conntrack", func(t *testing.T) {
		reload := raw + "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n" +
			"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
		r := Trace(host(t, reload, legacy), from)
		check(t, r, want{Accept, ReachHost, "", "", "no"})
		if got, want := steps(r), "PREROUTING raw PREROUTING policy, INPUT filter INPUT policy"; got != want {
			t.Errorf("steps\n got %s\nwant %s", got, want)
		}
		// A rule that needs conntrack brings the nat chains back.
		r = Trace(host(t, strings.Replace(reload, ":FORWARD DROP [0:0]\n", ":FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate NEW -j DROP\n", 1), legacy), from)
		if got := steps(r); !strings.Contains(got, "nat PREROUTING policy") {
			t.Errorf("with conntrack on, nat PREROUTING is walked: %s", got)
		}
	})
	t.Run("a bridged DNAT back out of its port stops before FORWARD", func(t *testing.T) {
		rules := strings.Replace(dockerNAT, "-A DOCKER -i docker0 -j RETURN\n", "", 1)
		rules = strings.Replace(rules, "! -i docker0 -p tcp", "-p tcp", 1)
		r := Trace(host(t, rules+filter(dockerForward)), pk("172.17.0.2", "198.51.100.1", 8080, "docker0"))
		check(t, r, want{Drop, ReachNowhere, "", "BRIDGE", "no"})
		if got := steps(r); strings.Contains(got, "FORWARD") {
			t.Errorf("the frame passed FORWARD: %s", got)
		}
	})
	t.Run("a DNAT routed back onto its own bridge without br_netfilter gets no answer", func(t *testing.T) {
		rules := strings.Replace(dockerNAT, "-A DOCKER -i docker0 -j RETURN\n", "", 1)
		rules = strings.Replace(rules, "! -i docker0 -p tcp", "-p tcp", 1)
		brOff := func(s *snapshot.Snapshot) {
			s.Sysctls["net.bridge.bridge-nf-call-iptables"] = snapshot.Sysctl{Value: "0", Present: true}
		}
		r := Trace(host(t, rules+filter(dockerForward), brOff), pk("172.17.0.3", "198.51.100.1", 8080, "docker0"))
		check(t, r, want{Accept, ReachContainer, "web", "", "no"})
	})
}
