package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/repair"
	"github.com/iptscope/iptscope/snapshot"
)

// TestRepairSpeed1000Ports (IPTSCOPE_BENCH=1; root) compares two ways of
// putting back the 1,000 DNAT rules of a flushed nat DOCKER chain in a
// throwaway namespace loaded with internal/synth.DockerHost(1000):
//
//	(a) repair.Apply: one iptables-restore --test, one iptables-save -t nat
//	    (backup), one iptables-restore --noflush, and a re-read;
//	(b) one `iptables -t nat -A DOCKER ...` exec per missing rule, what
//	    go-iptables (and Docker itself) does.
//
// A timing, not an assertion: the numbers are logged (docs/repair.md).
func TestRepairSpeed1000Ports(t *testing.T) {
	if os.Getenv("IPTSCOPE_BENCH") != "1" {
		t.Skip("set IPTSCOPE_BENCH=1 to run the repair timing")
	}
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) { benchBackend(t, backend) })
	}
}

func benchBackend(t *testing.T, backend string) {
	requireRoot(t, "ip", "iptables-"+backend)
	ns := "rbench" + backend[:1]
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	exec.Command("ip", "netns", "delete", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	lock := t.TempDir() + "/xtables.lock"
	r := collect.ExecRunner{Env: []string{"XTABLES_LOCKFILE=" + lock}}
	ctx := context.Background()
	in := func(name string, stdin []byte, args ...string) []byte {
		t.Helper()
		var out []byte
		err := collect.InNetNS(ns, func() error {
			var err error
			out, err = r.Run(ctx, name, args, stdin)
			return err
		})
		if err != nil {
			t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		return out
	}
	dump := synth.DockerHost(1000)
	in("iptables-"+backend+"-restore", dump, "-w", "5")
	snap := synth.DockerSnapshot(1000, dump, backend)

	flushAndRead := func() {
		in("iptables-"+backend, nil, "-w", "5", "-t", "nat", "-F", "DOCKER")
		raw := in("iptables-"+backend+"-save", nil, "-c")
		rs, err := parse.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		snap.Rules = []snapshot.RuleDump{{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(raw), Ruleset: rs}}
	}

	// (a) iptscope: plan + test + backup + apply + re-read and re-diagnose.
	flushAndRead()
	start := time.Now()
	plan := diagnose.NewPlan(snap, diagnose.Run(snap, diagnose.Options{}))
	planned := time.Since(start)
	n := 0
	for _, o := range plan.Ops {
		if o.Kind == diagnose.OpAppend || o.Kind == diagnose.OpInsert {
			n++
		}
	}
	if n < 1000 {
		t.Fatalf("plan restores %d rules, want >= 1000", n)
	}
	_, err := repair.Apply(ctx, plan, repair.Options{
		Runner: r, NetNS: ns, BackupDir: t.TempDir(),
		Recheck: func(ctx context.Context) ([]diagnose.Finding, error) {
			raw := in("iptables-"+backend+"-save", nil, "-c")
			rs, err := parse.Parse(raw)
			if err != nil {
				return nil, err
			}
			s2 := *snap
			s2.Rules = []snapshot.RuleDump{{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(raw), Ruleset: rs}}
			return diagnose.Run(&s2, diagnose.Options{}), nil
		},
	})
	a := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}

	// (b) one exec per rule, same rules, same order.
	flushAndRead()
	start = time.Now()
	for _, o := range plan.Ops {
		if o.Kind != diagnose.OpAppend {
			continue
		}
		in("iptables-"+backend, nil, append([]string{"-w", "5", "-t", "nat", "-A", "DOCKER"}, strings.Fields(o.Spec)...)...)
	}
	b := time.Since(start)
	t.Logf("%s, %d rules restored: (a) iptscope plan+test+backup+apply+verify %s (plan %s); (b) one iptables exec per rule %s; ratio %.0fx",
		backend, n, a.Round(time.Millisecond), planned.Round(time.Millisecond), b.Round(time.Millisecond), float64(b)/float64(a))
	fmt.Fprintf(os.Stderr, "BENCH %s rules=%d iptscope=%s per-rule-exec=%s\n", backend, n, a.Round(time.Millisecond), b.Round(time.Millisecond))
}

// TestRepairSpeedRealDocker (IPTSCOPE_BENCH=1; root, real dockerd) is the
// issue's benchmark on real daemons: a Docker host (testbed/dockerhost.sh,
// userland-proxy off so that only NAT answers, live-restore on) with one
// container publishing 1,000 ports (-p 20000-20999:20000-20999; busybox
// httpd listens on a sample of them), nat DOCKER flushed, then repaired
// three times each by
//
//	(a) `iptscope doctor --fix --yes --netns NAME` (wall time of the command);
//	(b) one `iptables -t nat -A DOCKER ...` exec per missing rule, the rules
//	    taken from the healthy host's iptables-save (what go-iptables does);
//	(c) `dockerhost.sh restart NAME` (dockerd stopped by PID and started
//	    again, live-restore keeps the container) until the sampled ports
//	    answer from the client namespace again.
//
// For each, the time until the sampled ports answer is logged too. A
// measurement, not a test: nothing is asserted on the times (docs/repair.md
// has the numbers). IPTSCOPE_BENCH_DOCKER lists the versions (default
// "28.5 20.10"), IPTSCOPE_BENCH_BACKEND the backend (default nft).
func TestRepairSpeedRealDocker(t *testing.T) {
	if os.Getenv("IPTSCOPE_BENCH") != "1" {
		t.Skip("set IPTSCOPE_BENCH=1 to run the repair timing on real Docker")
	}
	vs := strings.Fields(os.Getenv("IPTSCOPE_BENCH_DOCKER"))
	if len(vs) == 0 {
		vs = []string{"28.5", "20.10"}
	}
	backend := os.Getenv("IPTSCOPE_BENCH_BACKEND")
	if backend == "" {
		backend = "nft"
	}
	for _, v := range vs {
		t.Run("docker "+v+" "+backend, func(t *testing.T) { benchRealDocker(t, v, backend) })
	}
}

// samplePorts are the published ports busybox httpd listens on.
var samplePorts = []int{20000, 20333, 20666, 20999}

func benchRealDocker(t *testing.T, version, backend string) {
	requireRoot(t, "nsenter", "ip", "busybox", "curl", "iptables-"+backend)
	if version == "20.10" {
		_, err := exec.LookPath("dockerd")
		require(t, err == nil, "dockerd (apt-get install docker.io) is not installed")
	}
	name := "rbr" + strings.ReplaceAll(version, ".", "") + backend[:1]
	h, hostIP := startBigHost(t, &dockerHost{Name: name, Version: version, Backend: backend, Proxy: "off"})
	healthy := h.ipt(t, "iptables-save", "-t", "nat")
	var rules [][]string
	for _, l := range strings.Split(healthy, "\n") {
		if strings.HasPrefix(l, "-A DOCKER ") {
			rules = append(rules, strings.Fields(strings.TrimPrefix(l, "-A DOCKER ")))
		}
	}
	if len(rules) < 1000 {
		t.Fatalf("healthy nat DOCKER has %d rules, want >= 1000", len(rules))
	}
	flush := func() {
		t.Helper()
		h.ipt(t, "iptables", "-w", "-t", "nat", "-F", "DOCKER")
		if d := h.waitPorts(t, hostIP, 3*time.Second); d >= 0 {
			t.Fatal("a sampled port still answers with nat DOCKER flushed (is the userland proxy off?)")
		}
	}
	type result struct{ cmd, answer time.Duration }
	var a, b, c []result
	backups := t.TempDir()
	for round := 0; round < 3; round++ {
		// (a) iptscope doctor --fix --yes, the whole command.
		flush()
		start := time.Now()
		_, stderr, code := h.iptscope(t, "doctor", "--fix", "--yes", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "--backup-dir", backups)
		cmd := time.Since(start)
		if code != 0 {
			t.Fatalf("doctor --fix: exit %d: %s", code, stderr)
		}
		a = append(a, result{cmd, cmd + h.waitPorts(t, hostIP, 30*time.Second)})

		// (b) one iptables exec per rule, from inside the namespace (no
		// nsenter per rule: go-iptables execs iptables directly).
		flush()
		ipt := "iptables-" + backend
		lock := "XTABLES_LOCKFILE=" + filepath.Join(h.State, "xtables.lock")
		start = time.Now()
		err := collect.InNetNS(h.Name, func() error {
			for _, r := range rules {
				c := exec.Command(ipt, append([]string{"-w", "5", "-t", "nat", "-A", "DOCKER"}, r...)...)
				c.Env = append(os.Environ(), lock)
				if out, err := c.CombinedOutput(); err != nil {
					return fmt.Errorf("%s %s: %w: %s", ipt, strings.Join(r, " "), err, out)
				}
			}
			return nil
		})
		cmd = time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, result{cmd, cmd + h.waitPorts(t, hostIP, 30*time.Second)})

		// (c) dockerd restart with live-restore.
		flush()
		cmd, total := restartAndWait(t, h, hostIP)
		c = append(c, result{cmd, total})
	}
	ms := func(rs []result, answer bool) string {
		var out []string
		for _, r := range rs {
			d := r.cmd
			if answer {
				d = r.answer
			}
			out = append(out, d.Round(10*time.Millisecond).String())
		}
		return strings.Join(out, ", ")
	}
	sv := strings.TrimSpace(string(h.docker(t, "version", "--format", "{{.Server.Version}}")))
	t.Logf("Docker %s, %s, userland-proxy off, live-restore on, %d nat DOCKER rules restored:", sv, backend, len(rules))
	t.Logf("  (a) iptscope doctor --fix --yes:    command %s; ports answer %s", ms(a, false), ms(a, true))
	t.Logf("  (b) one iptables exec per rule:     command %s; ports answer %s", ms(b, false), ms(b, true))
	t.Logf("  (c) dockerd restart, live-restore:  command %s; ports answer %s", ms(c, false), ms(c, true))
	fmt.Fprintf(os.Stderr, "BENCH real docker=%s backend=%s rules=%d a=[%s] b=[%s] c=[%s] (ports answer)\n", sv, backend, len(rules), ms(a, true), ms(b, true), ms(c, true))
}

// waitPorts polls the sampled ports from the client namespace until all
// answer and returns how long that took, or -1 after limit.
func (h *dockerHost) waitPorts(t *testing.T, hostIP string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		all := true
		for _, p := range samplePorts {
			c := exec.Command("nsenter", "--net=/var/run/netns/"+h.Name+"-c", "curl", "-fsS", "-o", "/dev/null",
				"--connect-timeout", "0.5", "--max-time", "1", fmt.Sprintf("http://%s:%d/", hostIP, p))
			if c.Run() != nil {
				all = false
				break
			}
		}
		if all {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// startBigHost starts h (live-restore on) with one container publishing
// the 1,000 ports 20000-20999, waits until the sampled ports answer, and
// returns h and its host address: the host of the IPTSCOPE_BENCH timings.
func startBigHost(t *testing.T, h *dockerHost) (*dockerHost, string) {
	t.Helper()
	t.Setenv("LIVE_RESTORE", "1")
	root := os.Getenv("TESTBED_ROOT")
	if root == "" {
		root = "/tmp/iptscope-testbed"
	}
	name := h.Name
	h.State, h.NetNS = filepath.Join(root, name), "/var/run/netns/"+name
	h.Socket = filepath.Join(h.State, "docker.sock")
	t.Cleanup(func() {
		if out, err := h.script("down"); err != nil {
			t.Errorf("dockerhost.sh down %s: %v\n%s", name, err, out)
		}
	})
	if out, err := h.script("up"); err != nil {
		t.Fatalf("dockerhost.sh up %s: %v\n%s", name, err, out)
	}
	var listen []string
	for _, p := range samplePorts[:len(samplePorts)-1] {
		listen = append(listen, strconv.Itoa(p))
	}
	start := time.Now()
	h.docker(t, "run", "-d", "--name", "big", "-p", "20000-20999:20000-20999", "bb:local", "/bin/sh", "-c",
		"for p in "+strings.Join(listen, " ")+"; do /bin/busybox httpd -p $p -h /www; done; exec /bin/busybox httpd -f -p "+
			strconv.Itoa(samplePorts[len(samplePorts)-1])+" -h /www")
	t.Logf("docker run with 1,000 published ports took %s", time.Since(start).Round(time.Millisecond))
	env, err := h.script("env")
	if err != nil {
		t.Fatalf("dockerhost.sh env: %v\n%s", err, env)
	}
	var hostIP string
	for _, l := range strings.Split(env, "\n") {
		if x, ok := strings.CutPrefix(l, "NETX="); ok {
			hostIP = "198.18." + x + ".1"
		}
	}
	if d := h.waitPorts(t, hostIP, 60*time.Second); d < 0 {
		t.Fatal("the sampled ports do not answer on the healthy host")
	}
	return h, hostIP
}

// restartAndWait restarts h's dockerd (dockerhost.sh restart) and waits
// until the sampled ports answer again: how long the restart command took,
// and how long until the ports answered.
func restartAndWait(t *testing.T, h *dockerHost, hostIP string) (cmd, total time.Duration) {
	t.Helper()
	start := time.Now()
	if out, err := h.script("restart"); err != nil {
		t.Fatalf("dockerhost.sh restart: %v\n%s", err, out)
	}
	cmd = time.Since(start)
	d := h.waitPorts(t, hostIP, 120*time.Second)
	if d < 0 {
		t.Fatal("the sampled ports did not answer within 120 s of the restart")
	}
	return cmd, cmd + d
}
