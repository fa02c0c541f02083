package e2e

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/snapshot"
)

// fixKinds are the broken states `doctor --fix` must repair.
var fixKinds = []string{"nat-docker-flushed", "nat-docker-deleted", "prerouting-jump-deleted", "ip-forward-off", "firewall-reload", "stale-dnat"}

// adminLine matches what dockerhost.sh admin-rules adds (and what a
// firewall reload deletes with everything else).
var adminLine = regexp.MustCompile(`ADMIN-CHAIN|-A DOCKER-USER -s 198\.51\.100\.0/24 -j DROP`)

// TestFixOnRealDocker breaks real daemons (dockerMatrix: 20.10, 28.5 and
// 29, nft and legacy, userland-proxy on and off; 26.1 nft, proxy on and
// off) in each way of fixKinds and checks
// that `iptscope doctor --fix --yes` repairs them without a daemon
// restart: every port answers, doctor exits 0, Docker's rules equal the
// healthy ones (same rules per chain; the order Docker keeps where it
// matters), the admin's rules are untouched, a second --fix changes
// nothing, and Docker can still remove and re-create a published
// container with no rule left behind.
//
// Hosts run in parallel bounded by `go test -parallel` (CI: 2).
func TestFixOnRealDocker(t *testing.T) {
	hosts := dockerMatrix("off", "on")
	start := time.Now()
	t.Cleanup(func() { t.Logf("fix e2e: %d hosts in %s", len(hosts), time.Since(start).Round(time.Second)) })
	for _, hh := range hosts {
		name := "fx" + strings.ReplaceAll(hh.version, ".", "") + hh.backend[:1] + hh.proxy[1:2]
		t.Run("docker "+hh.version+" "+hh.backend+" proxy "+hh.proxy, func(t *testing.T) {
			t.Parallel()
			h := startDockerHost(t, name, hh.version, hh.backend, hh.proxy)
			if out, err := h.script("admin-rules"); err != nil {
				t.Fatalf("admin-rules: %v\n%s", err, out)
			}
			healthy := h.saveV4(t)
			backups := t.TempDir()
			for _, kind := range fixKinds {
				t.Run("after "+kind+" --fix repairs the host", func(t *testing.T) {
					t.Cleanup(func() {
						if out, err := h.script("heal"); err != nil {
							t.Errorf("heal: %v\n%s", err, out)
						}
					})
					if out, err := h.script("break", kind); err != nil {
						t.Fatalf("break %s: %v\n%s", kind, err, out)
					}
					fixStart := time.Now()
					out, stderr, code := h.fix(t, backups)
					t.Logf("fix took %s", time.Since(fixStart).Round(time.Millisecond))
					if code != 0 {
						t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
					}
					if !strings.Contains(out, "backup of the touched tables: "+backups) && kind != "ip-forward-off" {
						t.Errorf("no backup path printed:\n%s", out)
					}
					h.requireProbe(t)
					if rep, code, stderr := h.doctor(t, ""); code != 0 {
						for _, f := range rep.Findings {
							t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
						}
						t.Errorf("doctor after --fix: exit %d (%s)", code, stderr)
					}
					after := h.saveV4(t)
					want := healthy
					if kind == "firewall-reload" {
						// The reload deleted the admin's rules too: compare
						// Docker's rules only (and policies are never
						// restored: the reload set them to ACCEPT).
						want, after = dockerOnly(healthy), dockerOnly(after)
					}
					compareChains(t, want, after)
					h.requireDockerOrder(t)

					again := h.saveV4(t)
					out, stderr, code = h.fix(t, backups)
					if code != 0 || !strings.Contains(out, "nothing to repair") {
						t.Errorf("second --fix: exit %d, want 0 and \"nothing to repair\":\n%s\n%s", code, out, stderr)
					}
					if now := h.saveV4(t); now != again {
						t.Errorf("second --fix changed the rules")
					}

					// Docker still owns its rules: remove and re-create web.
					h.docker(t, "rm", "-f", "web")
					if s := h.saveV4(t); strings.Contains(s, "--dport 8080 -j DNAT") {
						t.Errorf("after docker rm web, a DNAT for 8080 is left behind:\n%s", grep(s, "8080"))
					}
					h.docker(t, "run", "-d", "--name", "web", "-p", "8080:80", "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
					if s := h.saveV4(t); !strings.Contains(s, "--dport 8080 -j DNAT") {
						t.Errorf("after docker run web, no DNAT for 8080")
					}
					h.requireProbe(t)
				})
			}
		})
	}
}

// fix runs `iptscope doctor --fix --yes` for the host.
func (h *dockerHost) fix(t *testing.T, backups string) (string, string, int) {
	t.Helper()
	return h.iptscope(t, "doctor", "--fix", "--yes", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "--backup-dir", backups)
}

// requireProbe waits (probeDeadline at most) until every port answers as on
// a healthy host.
func (h *dockerHost) requireProbe(t *testing.T) {
	t.Helper()
	var out string
	var err error
	if !waitUntil(t, "every port answers as on a healthy host", probeDeadline, func() bool {
		out, err = h.script("probe")
		return err == nil
	}) {
		t.Errorf("probe: %v\n%s", err, out)
	}
}

// saveV4 is the daemon backend's IPv4 iptables-save, without counters and
// comments.
func (h *dockerHost) saveV4(t *testing.T) string {
	t.Helper()
	raw := h.ipt(t, "iptables-save")
	var b strings.Builder
	for _, l := range strings.Split(raw, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		l = counters.ReplaceAllString(l, "")
		b.WriteString(l + "\n")
	}
	return b.String()
}

var counters = regexp.MustCompile(` ?\[\d+:\d+\]`)

// dockerOnly drops the admin's rules and the built-in chains' policies.
func dockerOnly(save string) string {
	var b strings.Builder
	for _, l := range strings.Split(save, "\n") {
		if adminLine.MatchString(l) {
			continue
		}
		if strings.HasPrefix(l, ":") {
			l = strings.Fields(l)[0]
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// chains groups a save text's rule lines by table and chain, sorted: the
// rules are compared as sets per chain, the order Docker needs is checked
// by requireDockerOrder.
func chains(save string) map[string][]string {
	out := map[string][]string{}
	table := ""
	for _, l := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, ":"):
			name := strings.Fields(l[1:])[0]
			k := table + " " + name
			if _, ok := out[k]; !ok {
				out[k] = []string{}
			}
		case strings.HasPrefix(l, "-A "):
			k := table + " " + strings.Fields(l)[1]
			out[k] = append(out[k], l)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

func compareChains(t *testing.T, want, got string) {
	t.Helper()
	w, g := chains(want), chains(got)
	keys := map[string]bool{}
	for k := range w {
		keys[k] = true
	}
	for k := range g {
		keys[k] = true
	}
	for k := range keys {
		if strings.Join(w[k], "\n") != strings.Join(g[k], "\n") {
			_, inW := w[k]
			_, inG := g[k]
			if inW && inG && len(w[k]) == 0 && len(g[k]) == 0 {
				continue
			}
			t.Errorf("chain %s differs from the healthy host:\nhealthy:\n  %s\nrepaired:\n  %s", k, strings.Join(w[k], "\n  "), strings.Join(g[k], "\n  "))
		}
	}
}

// requireDockerOrder checks with iptscope's own model that no two of
// Docker's rules are in an order Docker never writes.
func (h *dockerHost) requireDockerOrder(t *testing.T) {
	t.Helper()
	_, data := h.collectBundle(t)
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	e, err := diagnose.Expect(s, snapshot.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.PickDump(snapshot.BackendAuto, snapshot.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range diagnose.Compare(e, d.Ruleset).OutOfOrder {
		t.Errorf("out of Docker's order in %s %s: %q comes after %q", p[0].Actual.Table, p[0].Actual.Chain, p[0].Actual.Spec(), p[1].Actual.Spec())
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var _ = os.Getenv
