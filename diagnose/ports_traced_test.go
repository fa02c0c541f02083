package diagnose

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iptscope/iptscope/trace"
)

// TestEngineAndExpectedRulesAgreeOnEveryFixture: on every fixture bundle
// (real captures, broken and healthy, every Docker version, backend and
// proxy mode) the ports table is the same whether the engine decides the
// paths or Docker's expected rules alone do, and the engine decides most
// rows (it is not silently out of the way).
func TestEngineAndExpectedRulesAgreeOnEveryFixture(t *testing.T) {
	decided, rows := 0, 0
	for _, b := range bundles(t) {
		got, want := Ports(b.snap), PortsByExpectedRules(b.snap)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: the engine changes the ports table (-expected rules +engine):\n%s", b.dir, diff)
		}
		for _, v := range NewEnv(b.snap).portVerdicts() {
			rows++
			switch {
			case v.Path != trace.PortUnknown:
				decided++
			case v.HostIP == "::" && strings.Contains(v.Reason, "no IPv6 address on an uplink"):
				// The capture hosts have no IPv6 uplink: no client to
				// trace from; the expected rules judge these rows.
			default:
				t.Errorf("%s: %s %s:%d/%s: the engine cannot decide: %s", b.dir, v.Container, v.HostIP, v.HostPort, v.Proto, v.Reason)
			}
		}
	}
	t.Logf("%d bindings traced over %d bundles, %d decided by the engine", rows, len(bundles(t)), decided)
	if decided < 500 {
		t.Errorf("the engine decided only %d of %d bindings", decided, rows)
	}
}

// TestEngineOverridesTheExpectedRules: where the engine decides
// otherwise, the row takes its path, its reason and the deciding rule.
// Here an administrator's DROP in raw PREROUTING for one published port:
// the expected rules' reading does not look at the raw table's other
// rules, the kernel (and the engine) drops the SYN there.
func TestEngineOverridesTheExpectedRules(t *testing.T) {
	s := loadBundle(t, "docker-28.5-nft-proxy-off-healthy")
	var port int
	for _, p := range PortsByExpectedRules(s) {
		if p.Path == PathNAT && p.HostIP == "0.0.0.0" {
			port = p.HostPort
			break
		}
	}
	if port == 0 {
		t.Fatal("no published port on the NAT path in the capture")
	}
	insertRule(t, s, "raw", "PREROUTING", fmt.Sprintf("-p tcp -m tcp --dport %d -j DROP", port), 1)
	for _, p := range Ports(s) {
		if p.HostPort != port || p.HostIP != "0.0.0.0" {
			continue
		}
		if p.Path != PathBroken || !strings.HasPrefix(p.Reason, "traced: ") || !strings.Contains(p.Reason, "raw PREROUTING rule 1: -A PREROUTING -p tcp") ||
			!strings.Contains(p.Reason, "expected rules alone would say nat") {
			t.Errorf("port %d: %s (%s), want broken by raw PREROUTING rule 1", port, p.Path, p.Reason)
		}
		t.Logf("port %d: %s: %s", port, p.Path, p.Reason)
		return
	}
	t.Fatalf("port %d not in the ports table", port)
}
