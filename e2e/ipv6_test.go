package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestIPv6OnRealDocker runs Docker 28.5 (ip6tables on by default) with an
// IPv6 network and a published container, and gives the testbed's veth
// pair IPv6 addresses (only inside the host's and the client's
// namespaces) so that the port can be reached over IPv6 from the client:
//
//	NAME-c  tbcli0 fd00:198:18::2/64  <-- veth -->  tbhost0 fd00:198:18::1/64  NAME
//	                                                 v6net fd00:db8:1::/64: v6web -p 8088:80
//
// The healthy host must give no error or warning; flushing ip6tables nat
// DOCKER must give dnat-missing for 8088/tcp with family ipv6; `doctor
// --fix` must put back exactly the healthy ip6tables rules, and the port
// must answer over IPv6 again. With userland-proxy off the break is
// visible from the client (no docker-proxy fallback); with it on only the
// rules tell.
func TestIPv6OnRealDocker(t *testing.T) {
	for _, proxy := range []string{"off", "on"} {
		name := "v6e285n" + proxy[1:2] // v6e285nf, v6e285nn
		t.Run("docker 28.5 nft proxy "+proxy, func(t *testing.T) {
			t.Parallel()
			requireRoot(t, "curl")
			h := startDockerHost(t, name, "28.5", "nft", proxy)
			h.docker(t, "network", "create", "--ipv6", "--subnet", "fd00:db8:1::/64", "v6net")
			h.docker(t, "run", "-d", "--name", "v6web", "--network", "v6net", "-p", "8088:80",
				"bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
			for _, c := range [][]string{
				{"ip", "-n", h.Name, "addr", "replace", "fd00:198:18::1/64", "dev", "tbhost0", "nodad"},
				{"ip", "-n", h.Name + "-c", "addr", "replace", "fd00:198:18::2/64", "dev", "tbcli0", "nodad"},
				{"ip", "-n", h.Name + "-c", "-6", "route", "replace", "default", "via", "fd00:198:18::1"},
			} {
				if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
				}
			}
			if out, err := h.script("snapshot"); err != nil {
				t.Fatalf("dockerhost.sh snapshot: %v\n%s", err, out)
			}
			if !h.getV6(t, probeDeadline) {
				t.Fatal("the healthy host does not answer on [fd00:198:18::1]:8088 from the client")
			}
			healthy := h.saveV6(t)
			if !strings.Contains(healthy, "--to-destination [fd00:db8:1::2]:80") {
				t.Fatalf("Docker wrote no IPv6 DNAT for 8088:\n%s", healthy)
			}

			t.Run("the healthy IPv6 host exits 0 with no error or warning", func(t *testing.T) {
				rep, code, stderr := h.doctor(t, "")
				for _, f := range rep.Findings {
					if f.Severity == "error" || f.Severity == "warning" {
						t.Errorf("false alarm: %s %s: %s", f.Severity, f.ID, f.Title)
					}
				}
				if code != 0 || rep.Status != "ok" {
					t.Errorf("exit %d, status %q; want 0, ok (stderr: %s)", code, rep.Status, stderr)
				}
				full := h.doctorReport(t)
				if path, why := full.portPath("::", 8088); path != "nat" {
					t.Errorf("ports table [::]:8088: %q (%s), want its own row with path nat", path, why)
				}
			})

			t.Run("after ip6tables nat DOCKER is flushed dnat-missing names 8088/tcp in ipv6 and --fix restores it", func(t *testing.T) {
				t.Cleanup(func() { h.heal(t) })
				h.ipt(t, "ip6tables", "-t", "nat", "-F", "DOCKER")
				if proxy == "off" && h.getV6(t, 0) {
					t.Errorf("with userland-proxy off the port still answers over IPv6 after the flush")
				}
				if proxy == "on" && !h.getV6(t, probeDeadline) {
					t.Errorf("with userland-proxy on the port does not answer over IPv6 after the flush (docker-proxy should relay it)")
				}
				rep := h.doctorFindings(t)
				var v6, v4 []string
				for _, f := range rep.Findings {
					if f.ID != "dnat-missing" {
						continue
					}
					if f.Subject.Family == "ipv6" {
						v6 = append(v6, f.Subject.Port)
						if !strings.Contains(strings.Join(f.Evidence, "\n"), "ip6tables -t nat -A DOCKER ! -s fe80::/10") {
							t.Errorf("evidence does not show the ip6tables rule: %v", f.Evidence)
						}
					} else {
						v4 = append(v4, f.Subject.Port)
					}
				}
				if strings.Join(v6, ",") != "8088/tcp" || len(v4) != 0 {
					t.Errorf("dnat-missing ports: ipv6 %v, ipv4 %v; want ipv6 [8088/tcp] only", v6, v4)
				}
				// The ports table judges the IPv6 row on the ip6tables rules:
				// broken with the proxy off, relayed by docker-proxy with it on.
				wantPath := map[string]string{"off": "broken", "on": "proxy-only"}[proxy]
				if path, why := rep.portPath("::", 8088); path != wantPath {
					t.Errorf("ports table [::]:8088: %q (%s), want %q", path, why, wantPath)
				}
				if path, _ := rep.portPath("0.0.0.0", 8088); path != "nat" {
					t.Errorf("ports table 0.0.0.0:8088: %q, want nat (IPv4 untouched)", path)
				}

				out, stderr, code := h.fix(t, t.TempDir())
				if code != 0 {
					t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
				}
				if !strings.Contains(out, "applied ipv6 nat") {
					t.Errorf("--fix did not apply an ipv6 nat payload:\n%s", out)
				}
				compareChains(t, healthy, h.saveV6(t))
				if !h.getV6(t, probeDeadline) {
					t.Errorf("after --fix the port does not answer over IPv6 from the client")
				}
				if rep, code, _ := h.doctor(t, ""); code != 0 {
					for _, f := range rep.Findings {
						t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
					}
					t.Errorf("doctor after --fix: exit %d", code)
				}
			})

			t.Run("after a REJECT on top of ip6tables FORWARD forward-blocked is reported for IPv6 and --fix leaves it", func(t *testing.T) {
				t.Cleanup(func() { h.heal(t) })
				h.ipt(t, "ip6tables", "-w", "-I", "FORWARD", "1", "-j", "REJECT")
				if h.getV6(t, 0) {
					t.Errorf("the port still answers over IPv6 behind the REJECT")
				}
				rep := h.doctorFindings(t)
				var got []string
				for _, f := range rep.Findings {
					if f.Severity == "error" || f.Severity == "warning" {
						got = append(got, f.ID+" "+f.Subject.Family)
					}
				}
				if strings.Join(got, ",") != "forward-blocked ipv6" {
					t.Errorf("errors/warnings %v, want [forward-blocked ipv6]", got)
				}
				if path, why := rep.portPath("::", 8088); path != "broken" || !strings.Contains(why, "REJECT") {
					t.Errorf("ports table [::]:8088: %q (%s), want broken by the REJECT", path, why)
				}
				before := h.saveV6(t)
				if _, _, code := h.fix(t, t.TempDir()); code != 1 {
					t.Errorf("doctor --fix: exit %d, want 1 (the REJECT is not Docker's to remove)", code)
				}
				if after := h.saveV6(t); after != before {
					t.Errorf("--fix changed the ip6tables rules:\n%s", after)
				}
			})

			t.Run("after IPv6 forwarding is turned off ipv6-forward-disabled is reported and --fix turns it on", func(t *testing.T) {
				t.Cleanup(func() { h.heal(t) })
				h.ipt(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
				if h.getV6(t, 0) {
					t.Errorf("the port still answers over IPv6 with forwarding off")
				}
				rep := h.doctorFindings(t)
				var ids []string
				for _, f := range rep.Findings {
					if f.Severity == "error" || f.Severity == "warning" {
						ids = append(ids, f.ID)
					}
				}
				if strings.Join(ids, ",") != "ipv6-forward-disabled" {
					t.Errorf("errors/warnings %v, want [ipv6-forward-disabled]", ids)
				}
				if path, why := rep.portPath("::", 8088); path != "broken" || !strings.Contains(why, "net.ipv6.conf.all.forwarding=0") {
					t.Errorf("ports table [::]:8088: %q (%s), want broken by forwarding", path, why)
				}
				out, stderr, code := h.fix(t, t.TempDir())
				if code != 0 {
					t.Fatalf("doctor --fix: exit %d\n%s\n%s", code, out, stderr)
				}
				if v := strings.TrimSpace(h.ipt(t, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); v != "1" {
					t.Errorf("after --fix net.ipv6.conf.all.forwarding = %s", v)
				}
				if !h.getV6(t, probeDeadline) {
					t.Errorf("after --fix the port does not answer over IPv6 from the client")
				}
				if _, code, _ := h.doctor(t, ""); code != 0 {
					t.Errorf("doctor after --fix: exit %d", code)
				}
			})
		})
	}
}

// getV6 tries an HTTP GET of [fd00:198:18::1]:8088 from the client
// namespace until it answers, for up to deadline (0: once; for a port that
// must not answer, one attempt is the answer).
func (h *dockerHost) getV6(t *testing.T, deadline time.Duration) bool {
	t.Helper()
	return waitUntil(t, "[fd00:198:18::1]:8088 answers from the client", deadline, func() bool {
		// Why curl: busybox-static's wget crashes on IPv6 literals here.
		cmd := exec.Command("nsenter", "--net=/var/run/netns/"+h.Name+"-c", "curl", "-g", "-fsS", "-o", "/dev/null",
			"--connect-timeout", "3", "--max-time", "6", "http://[fd00:198:18::1]:8088/")
		return cmd.Run() == nil
	})
}

// saveV6 is the daemon backend's ip6tables-save, without counters and
// comments.
func (h *dockerHost) saveV6(t *testing.T) string {
	t.Helper()
	raw := h.ipt(t, "ip6tables-save")
	var b strings.Builder
	for _, l := range strings.Split(raw, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		b.WriteString(counters.ReplaceAllString(l, "") + "\n")
	}
	return b.String()
}

// doctorReport runs the live doctor and decodes the whole report whatever
// the exit code.
func (h *dockerHost) doctorReport(t *testing.T) fullReport {
	t.Helper()
	stdout, stderr, code := h.iptscope(t, "doctor", "-o", "json", "--netns", h.Name, "--docker-host", "unix://"+h.Socket)
	var rep fullReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("iptscope doctor: exit %d: %v; stderr %s", code, err, stderr)
	}
	return rep
}
