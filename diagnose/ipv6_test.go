package diagnose

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// ipv6Bundle loads diagnose/testdata/<dir>/bundle.json: real Docker 28.5
// captures with IPv6 networks (see testdata/README.md).
func ipv6Bundle(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withIPv6Uplink gives the capture's uplink (tbhost0, which has only a
// link-local IPv6 address there) a global IPv6 address and a default
// route, as on a host that other machines reach over IPv6: without one
// no other machine can connect to its "::" bindings, and the ports table
// says so (unknown).
func withIPv6Uplink(s *snapshot.Snapshot) *snapshot.Snapshot {
	s.Addrs = append(s.Addrs, snapshot.Addr{Link: "tbhost0", Family: snapshot.FamilyIPv6, CIDR: "2001:db8:227::1/64"})
	s.Routes = append(s.Routes, snapshot.Route{Dst: "2001:db8:227::/64", Dev: "tbhost0"},
		snapshot.Route{Dst: "default", Gateway: "2001:db8:227::fe", Dev: "tbhost0"})
	return s
}

// TestIPv6ExpectedRulesMatchDocker285 derives the ip6tables rules from the
// healthy capture's Docker view and compares them with what Docker 28.5
// wrote: every rule expected is there, nothing in Docker's chains is
// unaccounted for, nothing is out of order.
func TestIPv6ExpectedRulesMatchDocker285(t *testing.T) {
	s := ipv6Bundle(t, "docker-28.5-nft-ipv6-healthy")
	e, err := Expect(s, snapshot.FamilyIPv6)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Modelled {
		t.Fatalf("IPv6 not modelled: %v", e.Notes)
	}
	d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv6)
	if err != nil {
		t.Fatal(err)
	}
	diff := Compare(e, d.Ruleset)
	for _, m := range diff.Missing {
		t.Errorf("expected but not in the capture: %s", ruleLine(m))
	}
	for _, r := range diff.Unexpected {
		t.Errorf("in Docker's chains but not expected: %s", r.SaveLine(false))
	}
	for _, p := range diff.OutOfOrder {
		t.Errorf("out of order: %q after %q", p[0].Actual.Spec(), p[1].Actual.Spec())
	}
	// Every rule line Docker wrote in its chains and hooks is expected,
	// and networks without --ipv6 (docker0, appnet, backnet) have none.
	if n := len(e.All()); n != 26 {
		t.Errorf("%d expected IPv6 rules, the capture has 26 of Docker's", n)
	}
	for _, er := range e.All() {
		if strings.Contains(er.Spec(), "docker0") {
			t.Errorf("IPv6 rule expected for docker0, which has no IPv6: %s", ruleLine(er))
		}
	}
}

// TestIPv6HealthyCaptureGivesNoErrorOrWarning: a false alarm is as bad as
// a miss.
func TestIPv6HealthyCaptureGivesNoErrorOrWarning(t *testing.T) {
	s := ipv6Bundle(t, "docker-28.5-nft-ipv6-healthy")
	for _, f := range Run(s, Options{}) {
		if f.Severity.Rank() >= SeverityWarning.Rank() {
			t.Errorf("%s %s: %s\n  %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
		}
	}
	if p := NewPlan(s, Run(s, Options{})); !p.Empty() {
		t.Errorf("a plan for a healthy host: %+v", p.Ops)
	}
}

// TestIPv6NatDockerFlushed: after `ip6tables -t nat -F DOCKER` on the real
// host, dnat-missing names each IPv6 port with family ipv6 (and no IPv4
// port), and the plan restores exactly the flushed rules in one ipv6 nat
// payload.
func TestIPv6NatDockerFlushed(t *testing.T) {
	s := withIPv6Uplink(ipv6Bundle(t, "docker-28.5-nft-ipv6-nat6-docker-flushed"))
	findings := Run(s, Options{})
	var got []string
	for _, f := range findings {
		if f.Severity.Rank() < SeverityWarning.Rank() {
			continue
		}
		for _, port := range findingPorts(f) {
			got = append(got, f.ID+" "+f.Subject.Family+" "+port)
		}
		if f.ID == "dnat-missing" && f.Subject.Family == snapshot.FamilyIPv6 && !strings.HasPrefix(f.Evidence[0], "missing: ip6tables -t nat -A DOCKER ! -s fe80::/10 ") {
			t.Errorf("evidence does not name the ip6tables rule: %v", f.Evidence)
		}
		if !strings.HasSuffix(f.Title, "(IPv6)") {
			t.Errorf("title does not say IPv6: %s", f.Title)
		}
	}
	sort.Strings(got)
	// The flush also took the bridge's early RETURN (proxy on).
	want := []string{"dnat-missing ipv6 5354/udp", "dnat-missing ipv6 8088/tcp", "dnat-missing ipv6 [::1]:9091/tcp", "docker-rule-missing ipv6 ",
		// The capture's proxy is on: its "::" docker-proxy relays the ports.
		"proxy-fallback ipv6 5354/udp", "proxy-fallback ipv6 8088/tcp"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}

	p := NewPlan(s, findings)
	var lines []string
	for _, o := range p.Ops {
		if o.Family != snapshot.FamilyIPv6 || o.Table != parse.TableNAT {
			t.Errorf("operation outside ipv6 nat: %+v", o)
		}
		lines = append(lines, o.Line())
	}
	// What Docker wrote (testdata/docker-28.5-nft-ipv6-healthy/ip6tables-save.txt).
	wantLines := []string{
		"-A DOCKER -i br-68b50d44d138 -j RETURN",
		"-A DOCKER ! -s fe80::/10 ! -i br-68b50d44d138 -p tcp -m tcp --dport 8088 -j DNAT --to-destination [fd00:db8:1::2]:80",
		"-A DOCKER ! -s fe80::/10 ! -i br-68b50d44d138 -p udp -m udp --dport 5354 -j DNAT --to-destination [fd00:db8:1::3]:53",
		"-A DOCKER ! -s fe80::/10 -d ::1/128 ! -i br-68b50d44d138 -p tcp -m tcp --dport 9091 -j DNAT --to-destination [fd00:db8:1::3]:80",
	}
	sort.Strings(lines)
	sort.Strings(wantLines)
	if d := cmp.Diff(wantLines, lines); d != "" {
		t.Errorf("plan (-want +got):\n%s", d)
	}
	for _, pf := range p.Findings {
		if pf.Finding.ID == "dnat-missing" && !pf.Repaired {
			t.Errorf("not repaired: %s (%s)", pf.Finding.Title, pf.Reason)
		}
	}
}

// TestIPv6NotExpectedWhereDockerWritesNone: Docker 20.10 (ip6tables off by
// default) leaves the ip6tables dump without its chains; nothing is
// expected there, whatever the networks say.
func TestIPv6NotExpectedWhereDockerWritesNone(t *testing.T) {
	for name, s := range healthySnapshots(t) {
		if !strings.HasPrefix(name, "docker-20.10") {
			continue
		}
		t.Run(name+" expects no IPv6 rule", func(t *testing.T) {
			e, err := Expect(s, snapshot.FamilyIPv6)
			if err != nil {
				t.Fatal(err)
			}
			if e.Modelled || !slices.ContainsFunc(e.Notes, func(n string) bool { return strings.Contains(n, "ip6tables is off") }) {
				t.Errorf("modelled %v, notes %v; want not modelled, ip6tables off", e.Modelled, e.Notes)
			}
		})
	}
}

// TestIPv6ClassicWhenIp6tablesOn: a 20.10 host whose ip6tables dump has
// Docker's chains (--experimental --ip6tables) gets the classic layout in
// IPv6 for its --ipv6 networks only, with no DOCKER-USER (20.10 sets it up
// for IPv4 only) and the IPv6 DNAT form without "! -s fe80::/10" (28+).
func TestIPv6ClassicWhenIp6tablesOn(t *testing.T) {
	s := &snapshot.Snapshot{
		Schema: snapshot.Schema, DockerBackend: snapshot.BackendNFT,
		Rules: []snapshot.RuleDump{
			{Backend: snapshot.BackendNFT, Family: snapshot.FamilyIPv4, Raw: "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\nCOMMIT\n"},
			{Backend: snapshot.BackendNFT, Family: snapshot.FamilyIPv6, Raw: "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\nCOMMIT\n"},
		},
		Docker: &snapshot.Docker{Version: "20.10.24", Info: &snapshot.DockerInfo{UserlandProxy: snapshot.ProxyOn}, Networks: []snapshot.Network{
			{ID: "aaaaaaaaaaaa1", Name: "bridge", Driver: "bridge", BridgeName: "docker0", Subnets: []string{"172.17.0.0/16"}},
			{ID: "bbbbbbbbbbbb1", Name: "v6", Driver: "bridge", BridgeName: "br-bbbbbbbbbbbb", EnableIPv6: true, Subnets: []string{"172.18.0.0/16", "fd00:1::/64"}},
		}, Containers: []snapshot.Container{{Name: "c", Running: true,
			Endpoints: []snapshot.Endpoint{{Network: "v6", NetworkID: "bbbbbbbbbbbb1", IP: "172.18.0.2", IPv6: "fd00:1::2"}},
			Ports:     []snapshot.PortBinding{{HostIP: "0.0.0.0", HostPort: 80, ContainerPort: 80, Proto: "tcp"}, {HostIP: "::", HostPort: 80, ContainerPort: 80, Proto: "tcp"}}}}},
	}
	s.ParseRules()
	e, err := Expect(s, snapshot.FamilyIPv6)
	if err != nil || !e.Modelled {
		t.Fatalf("modelled %v, err %v, notes %v", e.Modelled, err, e.Notes)
	}
	var got []string
	for _, er := range e.All() {
		got = append(got, ruleLine(er))
	}
	for _, want := range []string{
		"-t nat -A DOCKER ! -i br-bbbbbbbbbbbb -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:1::2]:80",
		"-t nat -A POSTROUTING -s fd00:1::/64 ! -o br-bbbbbbbbbbbb -j MASQUERADE",
		"-t filter -A DOCKER -d fd00:1::2/128 ! -i br-bbbbbbbbbbbb -o br-bbbbbbbbbbbb -p tcp -m tcp --dport 80 -j ACCEPT",
		"-t filter -A FORWARD -j DOCKER-ISOLATION-STAGE-1",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s in\n  %s", want, strings.Join(got, "\n  "))
		}
	}
	for _, g := range got {
		if strings.Contains(g, "docker0") || strings.Contains(g, "DOCKER-USER") {
			t.Errorf("unexpected IPv6 rule for 20.10: %s", g)
		}
	}
	if slices.Contains(e.Chains[parse.TableFilter], ChainDockerUser) {
		t.Errorf("20.10 expects DOCKER-USER in ip6tables: %v", e.Chains[parse.TableFilter])
	}
}

// TestIPv6ForwardBlockedAndDockerUserDrop: the FORWARD and DOCKER-USER
// checks read the ip6tables rules too. On the real 28.5 IPv6 capture, a
// catch-all REJECT on top of ip6tables FORWARD (RHEL's saved ruleset) gives
// forward-blocked (IPv6) and breaks the IPv6 rows of the ports table only;
// an ip6tables DOCKER-USER DROP of container port 80 gives docker-user-drop
// (IPv6) naming [::]:8088.
func TestIPv6ForwardBlockedAndDockerUserDrop(t *testing.T) {
	s := withIPv6Uplink(ipv6Bundle(t, "docker-28.5-nft-ipv6-healthy"))
	insertRuleFam(t, s, snapshot.FamilyIPv6, "filter", "FORWARD", "-j REJECT --reject-with icmp6-adm-prohibited", 1)
	var got []string
	for _, f := range Run(s, Options{}) {
		if f.Severity.Rank() >= SeverityWarning.Rank() {
			got = append(got, f.ID+" "+f.Subject.Family+" "+f.Title)
		}
	}
	want := []string{"forward-blocked ipv6 Rule 1 of FORWARD rejects traffic of Docker networks before Docker's rules see it (IPv6)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}
	for _, p := range Ports(s) {
		v6 := strings.Contains(p.HostIP, ":") && !strings.HasPrefix(p.HostIP, "::1")
		if broken := p.Path == PathBroken; broken != v6 {
			t.Errorf("%s: %s (%s)", p.HostAddr(), p.Path, p.Reason)
		}
	}

	s = withIPv6Uplink(ipv6Bundle(t, "docker-28.5-nft-ipv6-healthy"))
	insertRuleFam(t, s, snapshot.FamilyIPv6, "filter", "DOCKER-USER", "-p tcp -m tcp --dport 80 -j DROP", 1)
	var drop []Finding
	for _, f := range Run(s, Options{}) {
		if f.ID == "docker-user-drop" {
			drop = append(drop, f)
		}
	}
	if len(drop) != 1 || drop[0].Subject.Family != snapshot.FamilyIPv6 || drop[0].Subject.Port != "8088/tcp" ||
		!strings.Contains(strings.Join(drop[0].Evidence, "\n"), "-> [fd00:db8:1::2]:80 (container v6web)") {
		t.Errorf("docker-user-drop findings: %+v", drop)
	}
}
