package e2e

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// breakages are field breakages beyond the fixtures' (dockerhost.sh break
// KINDs), each with what doctor must say and what --fix must do:
//   - want: the error/warning IDs (exactly these);
//   - broken: the host ports the ports table must call "broken" (the
//     others "nat" or "local-only"), as `dockerhost.sh probe` finds them;
//   - repaired: --fix puts back Docker's rules and every port answers;
//     false: the cause is not Docker's (a host firewall rule, the admin's
//     DOCKER-USER policy) and --fix must leave the rules as they are.
//
// only28 kinds need Docker 28's raw table.
var breakages = []struct {
	kind     string
	want     []string
	broken   []int
	repaired bool
	only28   bool
}{
	{kind: "forward-jump-deleted", want: nil, broken: []int{8080, 7000, 7001, 7002}, repaired: true}, // want set per version below
	{kind: "port-accept-deleted", want: []string{"forward-accept-missing"}, broken: []int{8080}, repaired: true},
	{kind: "docker-user-deleted", want: []string{"docker-chain-missing"}, repaired: true},
	{kind: "forward-reject-bridge", want: []string{"forward-blocked"}, broken: []int{8080, 7000, 7001, 7002}},
	{kind: "docker-user-port-drop", want: nil, broken: []int{8080}},
	{kind: "raw-endpoint-deleted", want: []string{"raw-drop-missing"}, repaired: true, only28: true},
}

// TestBreakagesOnRealDocker breaks real daemons in the ways of breakages
// and checks doctor's findings and ports table, then `doctor --fix --yes`.
// Two hosts (20.10 nft proxy on, 28.5 nft proxy off), run in parallel:
// about 2 minutes on a 2-CPU runner.
func TestBreakagesOnRealDocker(t *testing.T) {
	hosts := []matrixHost{{"20.10", "nft", "on"}, {"28.5", "nft", "off"}}
	start := time.Now()
	t.Cleanup(func() { t.Logf("breakages e2e: %d hosts in %s", len(hosts), time.Since(start).Round(time.Second)) })
	for _, hh := range hosts {
		name := "bk" + strings.ReplaceAll(hh.version, ".", "") + hh.backend[:1] + hh.proxy[1:2]
		t.Run("docker "+hh.version+" "+hh.backend+" proxy "+hh.proxy, func(t *testing.T) {
			t.Parallel()
			h := startDockerHost(t, name, hh.version, hh.backend, hh.proxy)
			if out, err := h.script("admin-rules"); err != nil {
				t.Fatalf("admin-rules: %v\n%s", err, out)
			}
			backups := t.TempDir()
			for _, k := range breakages {
				if k.only28 && hh.version != "28.5" {
					continue
				}
				want := slices.Clone(k.want)
				if k.kind == "forward-jump-deleted" {
					// 20.10-27: docker0's "-o docker0 -j DOCKER" is one of its
					// per-network FORWARD rules; 28+: one jump to DOCKER-FORWARD
					// (every network: 8081 too).
					want = []string{"docker-jump-missing", "forward-accept-missing"}
				}
				broken := k.broken
				if k.kind == "forward-jump-deleted" && hh.version == "28.5" {
					want, broken = []string{"docker-jump-missing"}, []int{8080, 8081, 7000, 7001, 7002}
				}
				sort.Strings(want)
				says := "reports " + strings.Join(want, ", ")
				if len(want) == 0 {
					says = "reports no error or warning"
				}
				t.Run("after "+k.kind+" doctor "+says, func(t *testing.T) {
					t.Cleanup(func() {
						if out, err := h.script("heal"); err != nil {
							t.Errorf("heal: %v\n%s", err, out)
						}
					})
					if out, err := h.script("break", k.kind); err != nil {
						t.Fatalf("break %s: %v\n%s", k.kind, err, out)
					}
					rep, code, stderr := h.doctor(t, "")
					var got []string
					for _, f := range rep.Findings {
						if (f.Severity == "error" || f.Severity == "warning") && !slices.Contains(got, f.ID) {
							got = append(got, f.ID)
						}
					}
					sort.Strings(got)
					if !slices.Equal(got, want) {
						t.Errorf("error/warning IDs %v, want %v", got, want)
					}
					if wantCode := map[bool]int{true: 1, false: 0}[len(want) > 0]; code != wantCode {
						t.Errorf("doctor exit %d, want %d (%s)", code, wantCode, stderr)
					}
					for _, p := range rep.Ports {
						isBroken := p.Path == "broken"
						if p.HostIP != "127.0.0.1" && isBroken != slices.Contains(broken, p.HostPort) {
							t.Errorf("port %d: path %q (%s); broken ports should be %v", p.HostPort, p.Path, p.Reason, broken)
						}
					}
					before := h.saveV4(t)
					out, stderr, code := h.fix(t, backups)
					if k.repaired {
						if code != 0 {
							t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
						}
						h.requireProbe(t)
						if rep, code, _ := h.doctor(t, ""); code != 0 {
							for _, f := range rep.Findings {
								t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
							}
							t.Errorf("doctor after --fix: exit %d", code)
						}
						h.requireDockerOrder(t)
						return
					}
					if after := h.saveV4(t); after != before {
						t.Errorf("--fix changed rules that are not Docker's to repair:\nbefore:\n%s\nafter:\n%s", before, after)
					}
					if wantCode := map[bool]int{true: 1, false: 0}[len(want) > 0]; code != wantCode {
						t.Errorf("doctor --fix: exit %d, want %d\n%s\n%s", code, wantCode, out, stderr)
					}
				})
			}
		})
	}
}
