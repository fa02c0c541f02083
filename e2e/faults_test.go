package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFixFaultsOnRealDocker breaks a real daemon (28.5, legacy backend,
// userland-proxy off) by flushing nat DOCKER and runs `doctor --fix --yes`
// against faults it must survive with the host exactly as before: the
// xtables lock held by another process (exit 2, iptscope's message names
// the lock and the holder), a full disk and a read-only folder for the
// backup (each a tmpfs in a private mount namespace). The refused and
// killed iptables-restore are tested through the host seam (repair's
// faults_test.go): a real kernel cannot be made to refuse half a payload
// that passed --test.
func TestFixFaultsOnRealDocker(t *testing.T) {
	requireRoot(t, "flock", "unshare", "mount")
	h := startDockerHost(t, "reliabflt", "28.5", "legacy", "off")
	if out, err := h.script("break", "nat-docker-flushed"); err != nil {
		t.Fatalf("break: %v\n%s", err, out)
	}
	broken := h.saveV4(t)

	t.Run("a held xtables lock: exit 2 naming the lock and its holder, nothing changed", func(t *testing.T) {
		lock := filepath.Join(h.State, "xtables.lock")
		// -o: the lock is flock's alone (its sleep child does not inherit
		// it), so killing flock's process group releases it.
		holder := exec.Command("flock", "-o", lock, "sleep", "120")
		holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
			_ = holder.Wait()
		}()
		if !waitUntil(t, "flock holds "+lock, probeDeadline, func() bool { return heldBy(lock) }) {
			t.Fatal("the lock was never taken")
		}
		start := time.Now()
		out, stderr, code := h.fix(t, t.TempDir())
		t.Logf("fix gave up after %s", time.Since(start).Round(100*time.Millisecond))
		if code != 2 {
			t.Errorf("exit %d, want 2\n%s\n%s", code, out, stderr)
		}
		for _, want := range []string{"the xtables lock " + lock + " is held by", "(flock)", "nothing was changed"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		if strings.Contains(stderr, "refused the payload") {
			t.Errorf("a held lock reported as a refused payload:\n%s", stderr)
		}
		if now := h.saveV4(t); now != broken {
			t.Errorf("the rules changed:\n%s", now)
		}
	})

	for _, fault := range []struct{ name, mount, want string }{
		{"a full disk for the backup", "size=64k", "no space left on device"},
		{"a read-only backup folder", "ro,size=64k", "read-only file system"},
	} {
		t.Run(fault.name+": exit 2, nothing changed", func(t *testing.T) {
			dir := t.TempDir()
			// A private mount namespace: the tmpfs is seen by this
			// command alone and goes with it.
			sh := `mount -t tmpfs -o "$1" iptscope-test "$2" || exit 90
dd if=/dev/zero of="$2/fill" bs=4k 2>/dev/null
shift 2
exec "$@"`
			args := []string{"-m", "--propagation", "private", "sh", "-c", sh, "sh", fault.mount, dir,
				iptscopeBin, "doctor", "--fix", "--yes", "--netns", h.Name, "--docker-host", "unix://" + h.Socket, "--backup-dir", dir}
			cmd := exec.Command("unshare", args...)
			cmd.Env = h.hostEnv()
			out, stderr, code := runCmd(t, cmd)
			if code != 2 || !strings.Contains(stderr, fault.want) || !strings.Contains(stderr, "nothing was changed") {
				t.Errorf("exit %d, want 2 and %q:\n%s\n%s", code, fault.want, out, stderr)
			}
			if now := h.saveV4(t); now != broken {
				t.Errorf("the rules changed:\n%s", now)
			}
		})
	}

	// And without a fault the same host is repaired.
	if _, stderr, code := h.fix(t, t.TempDir()); code != 0 {
		t.Fatalf("doctor --fix without a fault: exit %d: %s", code, stderr)
	}
	h.requireProbe(t)
}

// heldBy reports whether some process holds a lock on the file.
func heldBy(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return true
}

// TestFixOddStateOnRealDocker: unusual but legal Docker state on a real
// 28.5 (nft, proxy off): UDP ports 1 and 65535, a long container
// name, a container with a published port on two networks, an IPv6-only network, 40 more
// networks. doctor finds nothing on the healthy host; after nat DOCKER and
// filter DOCKER are flushed, `doctor --fix` puts back exactly Docker's
// rules but those of the two-network container's port (left, exit 1, the
// findings name that port only) and the TCP port 65534 answers again. SCTP is left to repair's fakes:
// Docker 28 binds the host port, which needs the kernel's sctp module
// (loading one would change the test machine).
func TestFixOddStateOnRealDocker(t *testing.T) {
	h := startDockerHost(t, "reliabodd", "28.5", "nft", "off")
	start := time.Now()
	h.docker(t, "network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd00:77::/64", "v6only")
	for i := 0; i < 40; i++ {
		// Explicit subnets: Docker's default pools hold about 30 networks.
		h.docker(t, "network", "create", "--subnet", fmt.Sprintf("10.77.%d.0/24", i), fmt.Sprintf("many%02d", i))
	}
	long := "odd-" + strings.Repeat("x", 120)
	h.docker(t, "run", "-d", "--name", long, "-p", "1:1/udp", "-p", "65535:65535/udp", "-p", "65534:80", "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	// A container with a published port on two networks: which one
	// Docker programs its port for is not in its API, so --fix leaves
	// that port's rules (exit 1, named) and repairs the rest.
	h.docker(t, "run", "-d", "--name", "twonets", "-p", "65532:80", "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	h.docker(t, "network", "connect", "appnet", "twonets")
	twoIPs := strings.Fields(string(h.docker(t, "container", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "twonets")))
	h.docker(t, "run", "-d", "--name", "v6", "--network", "v6only", "-p", "65533:80", "bb:local", "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	t.Logf("odd state set up in %s", time.Since(start).Round(time.Second))

	if rep, code, stderr := h.doctor(t, ""); code != 0 {
		for _, f := range rep.Findings {
			t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
		}
		t.Errorf("doctor on the healthy odd host: exit %d (%s)", code, stderr)
	}
	healthy := h.saveV4(t)
	for _, want := range []string{"-p udp -m udp --dport 1 -j DNAT", "-p udp -m udp --dport 65535 -j DNAT"} {
		if !strings.Contains(healthy, want) {
			t.Errorf("Docker wrote no %q", want)
		}
	}
	h.ipt(t, "iptables", "-t", "nat", "-F", "DOCKER")
	h.ipt(t, "iptables", "-t", "filter", "-F", "DOCKER")
	out, stderr, code := h.fix(t, t.TempDir())
	if code != 1 || !strings.Contains(stderr, "remain (dnat-missing, forward-accept-missing)") {
		t.Fatalf("doctor --fix: exit %d, want 1 naming what is left of twonets' port\n%s\n%s", code, out, stderr)
	}
	rep, _, _ := h.doctor(t, "")
	for _, f := range rep.Findings {
		data, _ := json.Marshal(f)
		if !strings.Contains(string(data), "65532") {
			t.Errorf("after --fix, a finding not about twonets' port: %s %s", f.ID, f.Title)
		}
	}
	without := func(save string) string {
		var b strings.Builder
		for _, l := range strings.Split(save, "\n") {
			port := false
			for _, ip := range twoIPs {
				port = port || strings.Contains(l, "-d "+ip+"/32 ") && strings.Contains(l, "--dport 80 -j ACCEPT") || strings.Contains(l, "--to-destination "+ip+":80")
			}
			if !port {
				b.WriteString(l + "\n")
			}
		}
		return b.String()
	}
	compareChains(t, without(healthy), without(h.saveV4(t)))
	h.requireProbe(t)
	env, _ := h.script("env")
	netx := regexp.MustCompile(`NETX=['"]?(\d+)`).FindStringSubmatch(env)
	if netx == nil {
		t.Fatalf("no NETX in the host's env:\n%s", env)
	}
	url := "http://198.18." + netx[1] + ".1:65534/"
	if !waitUntil(t, "port 65534 answers on "+url, probeDeadline, func() bool {
		return exec.Command("nsenter", "--net=/var/run/netns/"+h.Name+"-c", "curl", "-fsS", "-o", "/dev/null", "--connect-timeout", "3", url).Run() == nil
	}) {
		t.Errorf("%s does not answer after the repair", url)
	}
}
