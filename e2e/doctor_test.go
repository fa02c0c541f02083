package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// doctorReport is the part of `iptscope doctor -o json`
// (iptscope.doctor/v1) the e2e test reads.
type doctorReport struct {
	Schema   string `json:"schema"`
	Status   string `json:"status"`
	Findings []struct {
		ID       string   `json:"id"`
		Severity string   `json:"severity"`
		Title    string   `json:"title"`
		Evidence []string `json:"evidence"`
		Fix      string   `json:"fix"`
	} `json:"findings"`
	Ports []struct {
		HostIP   string `json:"host_ip"`
		HostPort int    `json:"host_port"`
		Path     string `json:"path"`
		Reason   string `json:"reason"`
	} `json:"ports"`
}

// problemIDs returns the IDs of the error and warning findings, sorted,
// each once.
func (r doctorReport) problemIDs() []string {
	var ids []string
	for _, f := range r.Findings {
		if f.Severity == "error" || f.Severity == "warning" {
			ids = append(ids, f.ID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// brokenKinds are dockerhost.sh's break KINDs with the error/warning IDs
// doctor must report for each (at least these; proxy-fallback is added
// below where the proxy is on). legacy-leftovers is left out: it gives
// the same ID as backend-split, which covers that code path.
var brokenKinds = []struct {
	kind string
	want []string
	// natBroken: external connections are not DNAT'd, so with the proxy
	// on they reach docker-proxy (proxy-fallback).
	natBroken bool
}{
	{"nat-docker-flushed", []string{"dnat-missing"}, true},
	{"nat-docker-deleted", []string{"docker-chain-missing"}, true},
	{"prerouting-jump-deleted", []string{"docker-jump-missing"}, true},
	{"ip-forward-off", []string{"ip-forward-disabled"}, false},
	{"stale-dnat", []string{"dnat-stale"}, false},
	{"firewall-reload", []string{"docker-chain-missing", "masquerade-missing"}, true},
	{"backend-split", []string{"backend-split"}, false},
}

// TestDoctorOnRealDocker runs the live `iptscope doctor -o json --netns`
// from the root namespace against real daemons: exit 0 and no error or
// warning on the healthy host; after each `dockerhost.sh break KIND`
// exit 1 with the expected IDs, then `heal` before the next kind.
//
// Matrix (dockerMatrix): Docker 20.10, 28.5 and 29 (iptables firewall
// backend), nft and legacy, userland-proxy on and off, plus 26.1 nft with
// the proxy on and off: 14 hosts. Measured on a 2-CPU runner: a host comes up with its
// layout in about 10 s and each break/doctor/heal round takes under a
// second, so the whole matrix stays around a minute; hosts run in
// parallel, bounded by `go test -parallel` (default GOMAXPROCS).
func TestDoctorOnRealDocker(t *testing.T) {
	hosts := dockerMatrix("on", "off")
	start := time.Now()
	t.Cleanup(func() { t.Logf("doctor e2e: %d hosts in %s", len(hosts), time.Since(start).Round(time.Second)) })
	for _, hh := range hosts {
		name := "dr" + strings.ReplaceAll(hh.version, ".", "") + hh.backend[:1] + hh.proxy[1:2] // dr2010nf, dr285ln, ...
		t.Run("docker "+hh.version+" "+hh.backend+" proxy "+hh.proxy, func(t *testing.T) {
			t.Parallel()
			h := startDockerHost(t, name, hh.version, hh.backend, hh.proxy)
			hostStart := time.Now()

			t.Run("the healthy host exits 0 with no error or warning", func(t *testing.T) {
				rep, code, stderr := h.doctor(t, "")
				for _, f := range rep.Findings {
					if f.Severity == "error" || f.Severity == "warning" {
						t.Errorf("false alarm: %s %s: %s\n  %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
					}
				}
				if code != 0 || rep.Status != "ok" {
					t.Errorf("exit %d, status %q; want 0, ok (stderr: %s)", code, rep.Status, stderr)
				}
			})

			for _, k := range brokenKinds {
				want := slices.Clone(k.want)
				if k.natBroken && hh.proxy == "on" {
					want = append(want, "proxy-fallback")
				}
				sort.Strings(want)
				t.Run("after "+k.kind+" it exits 1 and reports "+strings.Join(want, ", "), func(t *testing.T) {
					// heal is registered before break: a failure below still
					// leaves a healthy host for the next kind.
					t.Cleanup(func() {
						if out, err := h.script("heal"); err != nil {
							t.Errorf("dockerhost.sh heal %s: %v\n%s", h.Name, err, out)
						}
					})
					if out, err := h.script("break", k.kind); err != nil {
						t.Fatalf("dockerhost.sh break %s %s: %v\n%s", h.Name, k.kind, err, out)
					}
					pathDir := ""
					if k.kind == "backend-split" {
						// The admin's iptables is the other backend (see
						// dockerhost.sh load_env: HOSTBIN).
						other := map[string]string{"nft": "legacy", "legacy": "nft"}[h.Backend]
						pathDir = filepath.Join(h.State, "bin-"+other)
					}
					rep, code, stderr := h.doctor(t, pathDir)
					got := rep.problemIDs()
					if gap := findGap("doctor", hh, k.kind); gap != nil {
						gap.check(t, got, want)
						return
					}
					for _, id := range want {
						if !slices.Contains(got, id) {
							t.Errorf("%s not reported; got %v", id, got)
						}
					}
					if hh.proxy == "off" && slices.Contains(got, "proxy-fallback") {
						t.Errorf("proxy-fallback with userland-proxy off: %v", got)
					}
					if k.natBroken && hh.proxy == "on" {
						for _, p := range rep.Ports {
							if p.HostIP != "127.0.0.1" && p.Path != "proxy-only" {
								t.Errorf("port %s:%d: path %q (%s), want proxy-only", p.HostIP, p.HostPort, p.Path, p.Reason)
							}
						}
					}
					if code != 1 || rep.Status != "problems" {
						t.Errorf("exit %d, status %q; want 1, problems (got IDs %v; stderr: %s)", code, rep.Status, got, stderr)
					}
					if t.Failed() {
						for _, f := range rep.Findings {
							t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
						}
					}
				})
			}
			t.Logf("doctor rounds on %s took %s", name, time.Since(hostStart).Round(time.Second))
		})
	}
}

// doctor runs `iptscope doctor -o json --netns NAME --docker-host
// unix://SOCK` from the root namespace in the host's environment (with
// pathDir first in PATH when set) and decodes the report.
func (h *dockerHost) doctor(t *testing.T, pathDir string) (doctorReport, int, string) {
	t.Helper()
	args := []string{"doctor", "-o", "json", "--netns", h.Name, "--docker-host", "unix://" + h.Socket}
	var stdout, stderr string
	var code int
	start := time.Now()
	if pathDir == "" {
		stdout, stderr, code = h.iptscope(t, args...)
	} else {
		stdout, stderr, code = h.iptscopeWithPath(t, pathDir, args...)
	}
	t.Logf("doctor took %s", time.Since(start).Round(time.Millisecond))
	var rep doctorReport
	if code == 2 || json.Unmarshal([]byte(stdout), &rep) != nil {
		t.Fatalf("iptscope doctor: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if rep.Schema != "iptscope.doctor/v1" {
		t.Errorf("schema %q", rep.Schema)
	}
	return rep, code, stderr
}

// iptscopeWithPath is dockerHost.iptscope with pathDir, instead of the
// daemon's backend folder, first in PATH: the iptables an admin sees.
func (h *dockerHost) iptscopeWithPath(t *testing.T, pathDir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(iptscopeBin, args...)
	cmd.Env = append(os.Environ(),
		"PATH="+pathDir+":"+os.Getenv("PATH"),
		"XTABLES_LOCKFILE="+filepath.Join(h.State, "xtables.lock"))
	return runCmd(t, cmd)
}
