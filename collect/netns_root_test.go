//go:build linux

package collect

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// requireRoot skips without root, or fails when IPTSCOPE_E2E=1 (CI).
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "this test needs root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " is not installed"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("IPTSCOPE_E2E") != "" {
		t.Fatalf("IPTSCOPE_E2E=1 but %s", why)
	}
	t.Skip(why)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNetNS creates a namespace with a bridge, a veth pair with one end on
// the bridge, an address and one iptables rule (nft backend). Its removal
// is registered before it is created. The root namespace is not touched.
func testNetNS(t *testing.T) (name, path string) {
	t.Helper()
	requireRoot(t, "ip", "nsenter", "iptables-nft")
	name, path = scratchNS(t, "c")
	ip := func(args ...string) { run(t, append([]string{"ip", "-n", name}, args...)...) }
	ip("link", "set", "lo", "up")
	ip("link", "add", "ipsbr0", "type", "bridge")
	ip("link", "add", "ipsva", "type", "veth", "peer", "name", "ipsvb")
	ip("link", "set", "ipsva", "master", "ipsbr0")
	ip("addr", "add", "10.99.77.1/24", "dev", "ipsbr0")
	ip("link", "set", "ipsbr0", "up")
	ip("link", "set", "ipsva", "up")
	run(t, "nsenter", "--net="+path, "iptables-nft", "-A", "INPUT", "-s", "10.99.77.7/32", "-m", "comment", "--comment", "iptscope-marker", "-j", "ACCEPT")
	run(t, "nsenter", "--net="+path, "sysctl", "-qw", "net.ipv4.conf.ipsbr0.route_localnet=1")
	return name, path
}

func TestExecFromLockedThreadSeesTheNamespace(t *testing.T) {
	_, path := testNetNS(t)
	// Many rounds: some land on the main thread, which must come back
	// (a regression: a locked main thread left in the namespace made the
	// next Collect read the wrong one).
	for i := range 30 {
		var out []byte
		err := inNetNS(path, func() error {
			var err error
			out, err = ExecRunner{}.Run(context.Background(), "iptables-nft-save", nil, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "iptscope-marker") {
			t.Fatalf("round %d: iptables-nft-save from the switched thread did not see the namespace's rule:\n%s", i, out)
		}
	}
	if here, err := resolveNetNS(""); err != nil || here.other {
		t.Errorf("the current namespace no longer resolves to itself: %+v %v", here, err)
	}
	root, _ := ExecRunner{}.Run(context.Background(), "iptables-nft-save", nil, nil)
	if strings.Contains(string(root), "iptscope-marker") {
		t.Error("the namespace's rule leaked into the root namespace")
	}
}

func TestSysctlsAreReadInTheThreadsNamespace(t *testing.T) {
	_, path := testNetNS(t)
	names := []string{"net.ipv4.conf.ipsbr0.route_localnet"}
	var got map[string]snapshot.Sysctl
	if err := inNetNS(path, func() error {
		var err error
		got, err = readSysctls(names)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if s := got[names[0]]; !s.Present || s.Value != "1" {
		t.Errorf("in the namespace: %+v", s)
	}
	here, err := readSysctls(names)
	if err != nil {
		t.Fatal(err)
	}
	if s := here[names[0]]; s.Present {
		t.Errorf("the root namespace has no ipsbr0, but read %+v", s)
	}
}

func TestCollectReadsOnlyTheNamedNamespace(t *testing.T) {
	name, _ := testNetNS(t)
	s := Collect(context.Background(), Options{NetNS: name, DockerHost: "unix://" + filepath.Join(t.TempDir(), "none.sock")})

	var names []string
	links := map[string]snapshot.Link{}
	for _, l := range s.Links {
		names = append(names, l.Name)
		links[l.Name] = l
	}
	if got := strings.Join(names, ","); got != "lo,ipsbr0,ipsvb,ipsva" && got != "lo,ipsbr0,ipsva,ipsvb" {
		t.Errorf("links %s, want exactly lo, ipsbr0 and the veth pair", got)
	}
	br, va, vb := links["ipsbr0"], links["ipsva"], links["ipsvb"]
	if br.Kind != "bridge" || va.Kind != "veth" || va.Master != "ipsbr0" || va.MasterIndex != br.Index || va.PeerIndex != vb.Index || vb.PeerIndex != va.Index || !va.Up {
		t.Errorf("links: %+v %+v %+v", br, va, vb)
	}
	var cidrs []string
	for _, a := range s.Addrs {
		if a.Family == snapshot.FamilyIPv4 {
			cidrs = append(cidrs, a.Link+"="+a.CIDR)
		}
	}
	if got := strings.Join(cidrs, " "); got != "lo=127.0.0.1/8 ipsbr0=10.99.77.1/24" {
		t.Errorf("ipv4 addresses %q", got)
	}
	var route bool
	for _, r := range s.Routes {
		route = route || (r.Dst == "10.99.77.0/24" && r.Dev == "ipsbr0")
		if r.Dst == "default" {
			t.Errorf("a default route is not the namespace's: %+v", r)
		}
	}
	if !route {
		t.Errorf("routes %+v", s.Routes)
	}

	d := s.Dump(snapshot.BackendNFT, snapshot.FamilyIPv4)
	if d == nil || d.Ruleset == nil {
		t.Fatalf("no nft ipv4 dump: %+v", s.Rules)
	}
	in := d.Ruleset.Table("filter").Chain("INPUT")
	if in == nil || len(in.Rules) != 1 || in.Rules[0].Comment() != "iptscope-marker" {
		t.Errorf("filter INPUT: %+v", in)
	}
	if s.DockerBackend != snapshot.BackendNone {
		t.Errorf("docker backend %q", s.DockerBackend)
	}
	if v := s.Sysctls["net.ipv4.conf.ipsbr0.route_localnet"]; v != (snapshot.Sysctl{Value: "1", Present: true}) {
		t.Errorf("route_localnet %+v", v)
	}
	if v := s.Sysctls["net.ipv4.ip_forward"]; !v.Present || v.Value != "0" {
		t.Errorf("ip_forward in a fresh namespace %+v", v)
	}
	if len(s.Proxies) != 0 {
		t.Errorf("proxies %+v", s.Proxies)
	}
	if s.Docker == nil || !strings.HasPrefix(s.Docker.Error, "docker API not reachable at unix://") {
		t.Errorf("docker %+v", s.Docker)
	}
	for _, e := range s.Errors {
		if e.Part != "docker" && !strings.HasPrefix(e.Part, "iptables legacy") {
			t.Errorf("unexpected part error %+v", e)
		}
	}
	if s.Host.NetNS != name || s.Host.NetNSInode == 0 {
		t.Errorf("host %+v", s.Host)
	}
}

// BenchmarkCollect measures Collect on a namespace prepared by hand, e.g.
// with 100k rules:
//
//	go run ./hack/synth -ports 33000 > /tmp/docker-100k.txt
//	ip netns add bench && ip netns exec bench iptables-nft-restore -c < /tmp/docker-100k.txt
//	IPTSCOPE_BENCH_NETNS=bench go test -run - -bench Collect ./collect
func BenchmarkCollect(b *testing.B) {
	ns := os.Getenv("IPTSCOPE_BENCH_NETNS")
	if ns == "" || os.Geteuid() != 0 {
		b.Skip("set IPTSCOPE_BENCH_NETNS to a prepared namespace and run as root")
	}
	for b.Loop() {
		s := Collect(context.Background(), Options{NetNS: ns, DockerHost: "unix:///nonexistent.sock"})
		for _, d := range s.Rules {
			if d.Error != "" {
				b.Fatal(d.Error)
			}
		}
	}
}

func TestLegacyTablesAreSeenFromTheThreadsNamespace(t *testing.T) {
	_, path := testNetNS(t)
	requireRoot(t, "iptables-legacy")
	in := func() (has, known bool) {
		if err := inNetNS(path, func() error {
			has, known = legacyTableNames(IPv4)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return has, known
	}
	if has, known := in(); has || !known {
		// The namespace has only an nft rule.
		t.Fatalf("a namespace without legacy tables: has %v, known %v", has, known)
	}
	lock := "XTABLES_LOCKFILE=" + filepath.Join(t.TempDir(), "xtables.lock")
	cmd := exec.Command("nsenter", "--net="+path, "iptables-legacy", "-w", "-A", "INPUT", "-s", "10.99.77.8/32", "-j", "ACCEPT")
	cmd.Env = append(os.Environ(), lock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if has, known := in(); !has || !known {
		t.Errorf("after a legacy rule: has %v, known %v", has, known)
	}
	dumps := collectRules(context.Background(), ExecRunner{Env: []string{lock}}, rulesPlan{backends: []string{"legacy"},
		inNS: func(f func() error) error { return inNetNS(path, f) }, legacyTables: legacyTableNames})
	if d := dumps[0]; d.Error != "" || !strings.Contains(d.Raw, "10.99.77.8/32") {
		t.Errorf("legacy ipv4 dump: error %q, raw %q", d.Error, d.Raw)
	}
	if d := dumps[1]; d.Error != "" || d.Raw != "" {
		t.Errorf("legacy ipv6 dump (no table): error %q, raw %q", d.Error, d.Raw)
	}
}
