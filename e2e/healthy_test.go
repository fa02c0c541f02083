package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/snapshot"
)

// shapesScript creates the healthy shapes on a dockerhost.sh host.
var shapesScript, _ = filepath.Abs("testbed/shapes.sh")

// shapesVersions run the shapes on the nft backend with the proxy on.
// Docker 29 joins them as soon as dockerhost.sh knows DOCKER=29
// (testbedKnows); until then the test logs that it is left out.
var shapesVersions = []string{"20.10", "26.1", "28.5", "29"}

// testbedKnows reports whether dockerhost.sh can run Docker version v
// (its "up" lists the versions it accepts).
func testbedKnows(v string) bool {
	src, err := os.ReadFile(script)
	return err == nil && strings.Contains(string(src), "$want_docker == "+v+" ")
}

// shapesExtra are the other daemons of the shapes matrix: the legacy
// backend with the proxy off at both ends of the version range.
var shapesExtra = []matrixHost{{"28.5", "legacy", "off"}, {"20.10", "legacy", "off"}}

// shapesMatrix lists the hosts of TestHealthyShapesOnRealDocker.
// IPTSCOPE_E2E_SHAPES ("29/nft/on,28.5/nft/off") replaces it.
func shapesMatrix() []matrixHost {
	if env := os.Getenv("IPTSCOPE_E2E_SHAPES"); env != "" {
		var out []matrixHost
		for _, h := range strings.Split(env, ",") {
			f := strings.Split(h, "/")
			if len(f) == 3 {
				out = append(out, matrixHost{f[0], f[1], f[2]})
			}
		}
		return out
	}
	var out []matrixHost
	for _, v := range shapesVersions {
		out = append(out, matrixHost{v, "nft", "on"})
	}
	return append(out, shapesExtra...)
}

// shapesHostsFor keeps the hosts the testbed can run, logging the others.
func shapesHostsFor(t *testing.T, hosts []matrixHost) []matrixHost {
	var out []matrixHost
	for _, h := range hosts {
		if !testbedKnows(h.version) {
			t.Logf("Docker %s left out: dockerhost.sh does not run it yet", h.version)
			continue
		}
		out = append(out, h)
	}
	return out
}

// shapesHost is a dockerHost started with live-restore (the containers
// survive `dockerhost.sh restart`) and, before Docker 27, with
// experimental ip6tables so that the IPv6 shapes have rules to check.
type shapesHost struct {
	*dockerHost
}

func (h shapesHost) env() []string {
	return append(os.Environ(), "DOCKER="+h.Version, "BACKEND="+h.Backend, "PROXY="+h.Proxy,
		"LIVE_RESTORE=1", "DAEMON_EXTRA="+h.DaemonExtra)
}

// run runs a dockerhost.sh (script == script) or shapes.sh subcommand.
func (h shapesHost) run(path, sub string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{path, sub, h.Name}, args...)...)
	cmd.Env = h.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func startShapesHost(t *testing.T, name string, mh matrixHost) shapesHost {
	t.Helper()
	requireRoot(t, "nsenter", "ip", "busybox", "curl", "iptables-nft", "iptables-legacy")
	if mh.version == "20.10" {
		_, err := exec.LookPath("dockerd")
		require(t, err == nil, "dockerd (apt-get install docker.io) is not installed")
	}
	root := os.Getenv("TESTBED_ROOT")
	if root == "" {
		root = "/tmp/iptscope-testbed"
	}
	extra := ""
	if mh.version == "20.10" || mh.version == "26.1" {
		// Why: ip6tables is experimental before 27 (off by default).
		extra = `"experimental": true, "ip6tables": true`
	}
	h := shapesHost{&dockerHost{Name: name, Version: mh.version, Backend: mh.backend, Proxy: mh.proxy,
		State: filepath.Join(root, name), NetNS: "/var/run/netns/" + name, DaemonExtra: extra}}
	h.Socket = filepath.Join(h.State, "docker.sock")
	t.Cleanup(func() {
		if out, err := h.run(script, "down"); err != nil {
			t.Errorf("dockerhost.sh down %s: %v\n%s", name, err, out)
		}
	})
	start := time.Now()
	if out, err := h.run(script, "up"); err != nil {
		t.Fatalf("dockerhost.sh up %s: %v\n%s", name, err, out)
	}
	if out, err := h.run(shapesScript, "layout"); err != nil {
		t.Fatalf("shapes.sh layout %s: %v\n%s", name, err, out)
	}
	t.Logf("docker %s (%s, proxy %s) up with the shapes in %s", mh.version, mh.backend, mh.proxy, time.Since(start).Round(time.Second))
	return h
}

// TestHealthyShapesOnRealDocker runs every legal shape of shapes.sh on
// one real host per daemon of shapesMatrix (issue 10): port mappings of
// every form (ranges, udp, tcp+udp on one port, host addresses,
// 127.0.0.1, [::1], two host ports to one container port, one container
// port on two host addresses, random host ports), a container on two
// networks, network modes host/none/container:X, stopped, paused and
// created containers, internal, icc=false, masquerade-off, custom bridge
// name and MTU, dual-stack and (28+) IPv6-only networks, an option the
// version ignores (<27: gateway_mode_ipv4=routed), 28+'s gateway modes
// routed and nat-unprotected and trusted_host_interfaces, an internal
// icc=false network, 12 containers on one network. On each host, before and after a live-restore restart of
// dockerd:
//
//   - every published TCP port answers (shapes.sh probe);
//   - doctor exits 0 with no error or warning, and no port is broken or
//     proxy-only;
//   - iptscope's expectation (diagnose.Expect) is exactly what Docker
//     wrote into its chains: nothing missing, unexpected or out of order;
//   - doctor --fix --yes changes nothing: iptables-save and
//     ip6tables-save of the daemon's backend, counters aside, are
//     byte-identical before and after.
func TestHealthyShapesOnRealDocker(t *testing.T) {
	hosts := shapesHostsFor(t, shapesMatrix())
	start := time.Now()
	t.Cleanup(func() { t.Logf("healthy shapes e2e: %d hosts in %s", len(hosts), time.Since(start).Round(time.Second)) })
	for _, mh := range hosts {
		name := "hs" + strings.ReplaceAll(mh.version, ".", "") + mh.backend[:1] + mh.proxy[1:2] // hs2010nn, hs285lf, ...
		t.Run("docker "+mh.version+" "+mh.backend+" proxy "+mh.proxy, func(t *testing.T) {
			t.Parallel()
			h := startShapesHost(t, name, mh)
			list, err := h.run(shapesScript, "list")
			if err != nil {
				t.Fatalf("shapes.sh list: %v\n%s", err, list)
			}
			t.Logf("%d shapes on %s:\n%s", len(strings.Split(strings.TrimSpace(list), "\n")), name, list)
			h.requireHealthy(t, "the healthy shapes", false)
			if out, err := h.run(script, "restart"); err != nil {
				t.Fatalf("dockerhost.sh restart: %v\n%s", err, out)
			}
			h.requireHealthy(t, "after a live-restore restart the shapes", true)
		})
	}
}

// requireHealthy checks one round: probe, doctor, --fix is a no-op.
// restarted says the daemon was restarted (shapes.sh AFTER_RESTART).
func (h shapesHost) requireHealthy(t *testing.T, what string, restarted bool) {
	t.Helper()
	t.Run(what+" answer", func(t *testing.T) {
		var out string
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for {
			cmd := exec.Command("bash", shapesScript, "probe", h.Name)
			cmd.Env = h.env()
			if restarted {
				cmd.Env = append(cmd.Env, "AFTER_RESTART=1")
			}
			o, e := cmd.CombinedOutput()
			if out, err = string(o), e; err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Errorf("shapes.sh probe: %v\n%s", err, out)
		}
	})
	t.Run(what+" give exit 0, no error or warning and no broken port", func(t *testing.T) {
		rep, code, stderr := h.doctor(t, "")
		for _, f := range rep.Findings {
			if f.Severity == "error" || f.Severity == "warning" {
				t.Errorf("false alarm: %s %s: %s\n  %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
			}
		}
		if code != 0 || rep.Status != "ok" {
			t.Errorf("exit %d, status %q; want 0, ok (stderr: %s)", code, rep.Status, stderr)
		}
		if len(rep.Ports) == 0 {
			t.Errorf("the ports table is empty")
		}
		for _, p := range rep.Ports {
			if p.Path == "proxy-only" && strings.Contains(p.Reason, "Docker's only path for it") {
				continue // a host IPv6 binding of an IPv4-only container (routed IPv4 network)
			}
			if p.Path == "broken" || p.Path == "proxy-only" {
				t.Errorf("port %s:%d: path %q (%s) on a healthy host", p.HostIP, p.HostPort, p.Path, p.Reason)
			}
		}
	})
	t.Run(what+" have exactly the rules iptscope expects", func(t *testing.T) {
		_, data := h.collectBundle(t)
		s, err := snapshot.Load(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
			e, err := diagnose.Expect(s, fam)
			if err != nil {
				t.Fatal(err)
			}
			if !e.Modelled {
				t.Errorf("%s: not modelled: %v", fam, e.Notes)
				continue
			}
			d, err := s.PickDump(snapshot.BackendAuto, fam)
			if err != nil {
				t.Fatal(err)
			}
			diff := diagnose.Compare(e, d.Ruleset)
			for _, m := range diff.Missing {
				t.Errorf("%s: expected, not written by Docker: -t %s -A %s %s", fam, m.Table, m.Chain, m.Spec())
			}
			for _, u := range diff.Unexpected {
				if fam == snapshot.FamilyIPv6 && e.Era == diagnose.EraClassic && strings.HasPrefix(string(u.Chain), "DOCKER-ISOLATION-STAGE-") {
					continue // known gap: ≤27's ip6tables INC rules of IPv4-only networks (see diagnose/healthy_shapes_test.go)
				}
				t.Errorf("%s: written by Docker, not expected: -t %s %s", fam, u.Table, u.SaveLine(false))
			}
			for _, p := range diff.OutOfOrder {
				t.Errorf("%s: out of Docker's order in %s %s: %q after %q", fam, p[0].Actual.Table, p[0].Actual.Chain, p[0].Actual.Spec(), p[1].Actual.Spec())
			}
		}
	})
	t.Run(what+" are left as they are by doctor --fix --yes", func(t *testing.T) {
		v4, v6 := h.saveV4(t), h.saveV6(t)
		out, stderr, code := h.fix(t, t.TempDir())
		if code != 0 {
			t.Errorf("doctor --fix --yes: exit %d\n%s\n%s", code, out, stderr)
		}
		if got := h.saveV4(t); got != v4 {
			t.Errorf("doctor --fix changed the IPv4 rules:\n%s", lineDiff(v4, got))
		}
		if got := h.saveV6(t); got != v6 {
			t.Errorf("doctor --fix changed the IPv6 rules:\n%s", lineDiff(v6, got))
		}
	})
}

// lineDiff lists the lines only in a ("-") or only in b ("+").
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+l)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return "(same lines, other order)"
	}
	return strings.Join(out, "\n")
}
