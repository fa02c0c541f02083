package e2e

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// variantHosts are the daemons the layout variants run on: 20.10 and 28.5
// with the nft backend and the proxy on and off, plus one legacy host;
// Docker 29 (iptables firewall backend) with nft and proxy off, legacy and
// proxy on.
var variantHosts = []struct{ version, backend, proxy string }{
	{"20.10", "nft", "on"},
	{"20.10", "nft", "off"},
	{"28.5", "nft", "on"},
	{"28.5", "nft", "off"},
	{"28.5", "legacy", "on"},
	{"29", "nft", "off"},
	{"29", "legacy", "on"},
}

// layoutVariants adds, on top of dockerhost.sh's standard layout, the
// configurations real hosts have and the fixtures do not:
//
//	noicc   -o com.docker.network.bridge.enable_icc=false       icc  -p 8082:80
//	nomasq  -o com.docker.network.bridge.enable_ip_masquerade=false  nm   -p 8083:80
//	custom  -o com.docker.network.bridge.name=mybr0              cb   -p 8084:80
//	v6net   --ipv6 --subnet fd00:db8:1::/64                      v6c  -p 8085:80
//	bridge                                                        udp  -p 5353:53/udp
//	bridge                                                        stopped -p 8090:80 (stopped)
//	appnet + custom (docker network connect)                      dual -p 8086:80
//	--network host, --network none                                hostc, nonec
//
// It then re-takes dockerhost.sh's snapshot so that "heal" returns here.
func (h *dockerHost) layoutVariants(t *testing.T) {
	t.Helper()
	start := time.Now()
	h.docker(t, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "noicc")
	h.docker(t, "network", "create", "-o", "com.docker.network.bridge.enable_ip_masquerade=false", "nomasq")
	h.docker(t, "network", "create", "-o", "com.docker.network.bridge.name=mybr0", "custom")
	h.docker(t, "network", "create", "--ipv6", "--subnet", "fd00:db8:1::/64", "v6net")
	run := func(name string, args ...string) {
		h.docker(t, append([]string{"run", "-d", "--name", name}, args...)...)
	}
	httpd := []string{"bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"}
	sleep := []string{"bb:local", "/bin/busybox", "sleep", "100000"}
	run("icc", append([]string{"--network", "noicc", "-p", "8082:80"}, httpd...)...)
	run("nm", append([]string{"--network", "nomasq", "-p", "8083:80"}, httpd...)...)
	run("cb", append([]string{"--network", "custom", "-p", "8084:80"}, httpd...)...)
	run("v6c", append([]string{"--network", "v6net", "-p", "8085:80"}, httpd...)...)
	run("udp", append([]string{"-p", "5353:53/udp"}, sleep...)...)
	run("stopped", append([]string{"-p", "8090:80"}, httpd...)...)
	h.docker(t, "stop", "-t", "1", "stopped")
	run("dual", append([]string{"--network", "appnet", "-p", "8086:80"}, httpd...)...)
	h.docker(t, "network", "connect", "custom", "dual")
	run("hostc", append([]string{"--network", "host"}, sleep...)...)
	run("nonec", append([]string{"--network", "none"}, sleep...)...)
	if out, err := h.script("snapshot"); err != nil {
		t.Fatalf("dockerhost.sh snapshot %s: %v\n%s", h.Name, err, out)
	}
	t.Logf("layout variants on %s in %s", h.Name, time.Since(start).Round(time.Second))
}

// TestDoctorVariantsOnRealDocker runs the live doctor on hosts with the
// layout variants above: a healthy host must give exit 0 and no error or
// warning (a false alarm is a bug); then a few breakages of the variants
// must give the right IDs on the right subjects.
func TestDoctorVariantsOnRealDocker(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() {
		t.Logf("variants e2e: %d hosts in %s", len(variantHosts), time.Since(start).Round(time.Second))
	})
	for _, hh := range variantHosts {
		name := "va" + strings.ReplaceAll(hh.version, ".", "") + hh.backend[:1] + hh.proxy[1:2] // va2010nn, va285lf, ...
		t.Run("docker "+hh.version+" "+hh.backend+" proxy "+hh.proxy, func(t *testing.T) {
			t.Parallel()
			h := startDockerHost(t, name, hh.version, hh.backend, hh.proxy)
			h.layoutVariants(t)

			t.Run("the healthy host with every variant exits 0 with no error or warning", func(t *testing.T) {
				rep, code, stderr := h.doctor(t, "")
				for _, f := range rep.Findings {
					if f.Severity == "error" || f.Severity == "warning" {
						t.Errorf("false alarm: %s %s: %s\n  %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
					}
				}
				if code != 0 || rep.Status != "ok" {
					t.Errorf("exit %d, status %q; want 0, ok (stderr: %s)", code, rep.Status, stderr)
				}
				for _, p := range rep.Ports {
					if p.HostPort == 8090 {
						t.Errorf("the stopped container's port 8090 is reported: %+v", p)
					}
				}
			})

			t.Run("with the Docker API unreachable the healthy host gives only docker-unreachable, partial", func(t *testing.T) {
				rep := h.doctorFindings(t, "--docker-host", "unix:///nonexistent/docker.sock")
				for _, f := range rep.Findings {
					if (f.Severity == "error" || f.Severity == "warning") && f.ID != "docker-unreachable" {
						t.Errorf("false alarm from the inferred view: %s %s: %s\n  %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
					}
				}
				if !rep.Partial || len(subjects(rep, "docker-unreachable", func(f finding) string { return f.ID })) != 1 {
					t.Errorf("partial %v, findings %+v; want partial with docker-unreachable", rep.Partial, rep.Findings)
				}
			})

			t.Run("after nat DOCKER is flushed the variants' ports have dnat-missing", func(t *testing.T) {
				t.Cleanup(func() { h.heal(t) })
				h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
				rep := h.doctorFindings(t)
				ports := subjects(rep, "dnat-missing", func(f finding) string { return f.Subject.Port })
				for _, want := range []string{"5353/udp", "8082/tcp", "8083/tcp", "8084/tcp", "8085/tcp", "8086/tcp"} {
					if !slices.Contains(ports, want) {
						t.Errorf("dnat-missing for %s not reported; got %v", want, ports)
					}
				}
				if slices.Contains(ports, "8090/tcp") {
					t.Errorf("dnat-missing for the stopped container's 8090/tcp: %v", ports)
				}
				if hh.proxy == "on" {
					// docker-proxy's arguments still tell the ports.
					rep := h.doctorFindings(t, "--docker-host", "unix:///nonexistent/docker.sock")
					ports := subjects(rep, "dnat-missing", func(f finding) string { return f.Subject.Port })
					for _, want := range []string{"5353/udp", "8080/tcp", "8082/tcp", "8084/tcp"} {
						if !slices.Contains(ports, want) {
							t.Errorf("API unreachable: dnat-missing for %s not reported; got %v", want, ports)
						}
					}
				}
			})

			t.Run("after the custom bridge's MASQUERADE is deleted masquerade-missing names it", func(t *testing.T) {
				t.Cleanup(func() { h.heal(t) })
				subnet := h.subnetOf(t, "custom")
				h.ipt(t, "iptables", "-t", "nat", "-D", "POSTROUTING", "-s", subnet, "!", "-o", "mybr0", "-j", "MASQUERADE")
				rep := h.doctorFindings(t)
				nets := subjects(rep, "masquerade-missing", func(f finding) string { return f.Subject.Network })
				if !slices.Equal(nets, []string{"custom"}) {
					t.Errorf("masquerade-missing for %v; want [custom] (nomasq has none by design)", nets)
				}
			})
		})
	}
}

// finding is one finding of a decoded report, with its subject and the
// subjects it affects (one finding per cause: nat DOCKER flushed is one
// dnat-missing affecting every port).
type finding struct {
	ID       string    `json:"id"`
	Key      string    `json:"key"`
	Severity string    `json:"severity"`
	Title    string    `json:"title"`
	Evidence []string  `json:"evidence"`
	Subject  subject   `json:"subject"`
	Affected []subject `json:"affected"`
}

// subject is a finding's subject.
type subject struct {
	Network   string `json:"network"`
	Container string `json:"container"`
	Port      string `json:"port"`
	Family    string `json:"family"`
}

type fullReport struct {
	Status   string    `json:"status"`
	Partial  bool      `json:"partial"`
	Notes    []string  `json:"notes"`
	Findings []finding `json:"findings"`
	Ports    []struct {
		HostIP      string `json:"host_ip"`
		HostPort    int    `json:"host_port"`
		ContainerIP string `json:"container_ip"`
		Path        string `json:"path"`
		Reason      string `json:"reason"`
	} `json:"ports"`
}

// portPath returns the path and reason of the ports-table row for a host
// address and port ("" when there is none).
func (r fullReport) portPath(hostIP string, port int) (string, string) {
	for _, p := range r.Ports {
		if p.HostIP == hostIP && p.HostPort == port {
			return p.Path, p.Reason
		}
	}
	return "", ""
}

// doctorFindings runs the live doctor (with extra flags instead of the
// host's --docker-host when given) and decodes the findings with their
// subjects; it expects exit 1.
func (h *dockerHost) doctorFindings(t *testing.T, extra ...string) fullReport {
	t.Helper()
	args := []string{"doctor", "-o", "json", "--netns", h.Name}
	if len(extra) == 0 {
		extra = []string{"--docker-host", "unix://" + h.Socket}
	}
	stdout, stderr, code := h.iptscope(t, append(args, extra...)...)
	var rep fullReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("iptscope doctor: exit %d: %v; stderr %s", code, err, stderr)
	}
	if code != 1 || rep.Status != "problems" {
		t.Errorf("exit %d, status %q; want 1, problems", code, rep.Status)
	}
	if t.Failed() {
		for _, f := range rep.Findings {
			t.Logf("%s %s: %s %+v", f.Severity, f.ID, f.Title, f.Subject)
		}
	}
	return rep
}

// subjects returns the sorted, distinct key(f) of the error/warning
// findings with that id.
func subjects(rep fullReport, id string, key func(finding) string) []string {
	var out []string
	for _, f := range rep.Findings {
		if f.ID != id || f.Severity != "error" && f.Severity != "warning" {
			continue
		}
		each := []finding{f}
		if len(f.Affected) > 0 {
			each = nil
			for _, a := range f.Affected {
				g := f
				g.Subject = a
				each = append(each, g)
			}
		}
		for _, g := range each {
			if k := key(g); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// heal runs dockerhost.sh heal.
func (h *dockerHost) heal(t *testing.T) {
	t.Helper()
	if out, err := h.script("heal"); err != nil {
		t.Errorf("dockerhost.sh heal %s: %v\n%s", h.Name, err, out)
	}
}

// subnetOf returns the first IPv4 subnet of a network.
func (h *dockerHost) subnetOf(t *testing.T, network string) string {
	t.Helper()
	for _, n := range h.inspectNetworks(t) {
		if n.Name != network {
			continue
		}
		for _, c := range n.IPAM.Config {
			if !strings.Contains(c.Subnet, ":") {
				return c.Subnet
			}
		}
	}
	t.Fatalf("network %s has no IPv4 subnet", network)
	return ""
}

// TestIptablesFalseOnRealDocker: a real 28.5 daemon configured with
// "iptables": false writes no rule. doctor must read that from the
// daemon's configuration: exit 0, the docker-iptables-disabled info, every
// port proxy-only (and answering from the client through docker-proxy),
// and --fix plans nothing.
func TestIptablesFalseOnRealDocker(t *testing.T) {
	h := startDockerHostWith(t, "ipf285n", "28.5", "nft", "on", `"iptables": false`)
	if save := h.saveV4(t); strings.Contains(save, "DOCKER") {
		t.Fatalf("a daemon with iptables=false wrote rules:\n%s", save)
	}
	h.requireProbe(t)
	rep, code, stderr := h.doctor(t, "")
	var ids []string
	for _, f := range rep.Findings {
		ids = append(ids, f.Severity+" "+f.ID)
		if f.Severity == "error" || f.Severity == "warning" {
			t.Errorf("false alarm: %s %s: %s", f.Severity, f.ID, f.Title)
		}
	}
	if code != 0 || !slices.Contains(ids, "info docker-iptables-disabled") {
		t.Errorf("exit %d (%s), findings %v; want 0 with docker-iptables-disabled", code, stderr, ids)
	}
	for _, p := range rep.Ports {
		if p.HostIP != "127.0.0.1" && p.Path != "proxy-only" {
			t.Errorf("port %d: %s (%s), want proxy-only", p.HostPort, p.Path, p.Reason)
		}
	}
	out, stderr, code := h.iptscope(t, "doctor", "--fix", "--dry-run", "--netns", h.Name, "--docker-host", "unix://"+h.Socket)
	if code != 0 || !strings.Contains(out, "nothing to repair") {
		t.Errorf("--fix --dry-run: exit %d, want 0 and nothing to repair\n%s\n%s", code, out, stderr)
	}
}

// TestDaemonElsewhereOnRealDocker: doctor run in the root namespace
// against the socket of a daemon that runs in another namespace (as with
// rootless Docker or a wrong DOCKER_HOST) reads rules, links and processes
// that are not the daemon's. It must say so and check nothing: exit 2,
// status unknown, no finding, no port judged, and an empty plan. Only
// --dry-run is run: nothing may ever be applied to the root namespace.
func TestDaemonElsewhereOnRealDocker(t *testing.T) {
	h := startDockerHost(t, "else285n", "28.5", "nft", "on")
	stdout, stderr, code := h.iptscope(t, "doctor", "-o", "json", "--docker-host", "unix://"+h.Socket)
	var rep fullReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("doctor: exit %d: %v\n%s", code, err, stderr)
	}
	if code != 2 || rep.Status != "unknown" || len(rep.Findings) != 0 {
		t.Errorf("exit %d, status %q, %d findings; want 2, unknown, none", code, rep.Status, len(rep.Findings))
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "does not run in this network namespace") {
		t.Errorf("notes do not say where the daemon is: %q", rep.Notes)
	}
	for _, p := range rep.Ports {
		if p.Path != "unknown" && p.Path != "local-only" {
			t.Errorf("port %d judged %s (%s) on rules that are not the daemon's", p.HostPort, p.Path, p.Reason)
		}
	}
	out, stderr, code := h.iptscope(t, "doctor", "--fix", "--dry-run", "--docker-host", "unix://"+h.Socket)
	if code != 2 || !strings.Contains(out+stderr, "nothing to repair") || strings.Contains(out, "payload") {
		t.Errorf("--fix --dry-run (exit %d) planned something for another namespace:\n%s\n%s", code, out, stderr)
	}
}
