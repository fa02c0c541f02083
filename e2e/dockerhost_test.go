package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script is the testbed library that runs real dockerd in namespaces.
var script, _ = filepath.Abs("testbed/dockerhost.sh")

// dockerHost is one running throwaway Docker host made by
// testbed/dockerhost.sh: a "docker host" namespace with containerd and
// dockerd, and a client namespace joined to it by a veth pair.
type dockerHost struct {
	Name, Version, Backend, Proxy string
	State                         string // testbed state folder
	NetNS                         string // /var/run/netns/NAME
	Socket                        string // the daemon's unix socket
	// DaemonExtra are more daemon.json members (dockerhost.sh DAEMON_EXTRA).
	DaemonExtra string
	// Firewall is Docker 29's firewall backend (dockerhost.sh FIREWALL):
	// "" or "iptables", or "nftables".
	Firewall string
}

// versions under test on both backends with the proxy on and off:
// Debian 12's docker.io, Debian unstable's, and Docker 29.8.1 built from
// source by testbed/build-docker29.sh (cached per machine; .ci/run builds
// it before the tests).
var versions = []string{"20.10", "28.5", "29"}

// since28 reports whether a version writes the 28+ layout: filter
// DOCKER-FORWARD, the raw table's per-endpoint DROPs, DOCKER's per-bridge
// DROP. Docker 29's iptables backend is 28's without the ISOLATION chains
// (docker-facts.md §2.4).
func since28(version string) bool {
	return strings.HasPrefix(version, "28.") || version == "29" || strings.HasPrefix(version, "29.")
}

// probeDeadline bounds every wait for a port, a container or a daemon to
// answer. Generous on purpose: on a healthy host these waits end in
// milliseconds, and only a loaded machine (CI shares its CPUs) comes near
// it; each wait logs what it waited for and how long it took.
const probeDeadline = 90 * time.Second

// waitUntil polls cond every 200 ms until it holds or deadline passes and
// reports whether it held; either way it logs what was awaited and how
// long the wait took.
func waitUntil(t *testing.T, what string, deadline time.Duration, cond func() bool) bool {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			if d := time.Since(start); d > time.Second {
				t.Logf("%s after %s", what, d.Round(10*time.Millisecond))
			}
			return true
		}
		if time.Since(start) >= deadline {
			t.Logf("%s: not seen within %s", what, deadline)
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nftVersions run only on the nft backend (proxy on and off) in the
// doctor and --fix matrices: Debian 13's docker.io 26.1, the era between
// the two above (DOCKER-USER for both families, no ip6tables by default).
// Its legacy hosts cost a minute more and were checked by hand with
// IPTSCOPE_E2E_VERSIONS=26.1.
var nftVersions = []string{"26.1"}

// matrixHost is one daemon of a real-Docker matrix.
type matrixHost struct{ version, backend, proxy string }

// dockerMatrix lists the hosts of the doctor and --fix matrices, proxy
// modes in the order given: every backend for versions, nft only for
// nftVersions. IPTSCOPE_E2E_VERSIONS (comma-separated, e.g. "26.1" or
// "29") replaces both lists with those versions on every backend.
func dockerMatrix(proxies ...string) []matrixHost {
	full, nftOnly := versions, nftVersions
	if env := os.Getenv("IPTSCOPE_E2E_VERSIONS"); env != "" {
		full, nftOnly = strings.Split(env, ","), nil
	}
	var hosts []matrixHost
	add := func(vs, backends []string) {
		for _, v := range vs {
			for _, b := range backends {
				for _, p := range proxies {
					hosts = append(hosts, matrixHost{v, b, p})
				}
			}
		}
	}
	add(full, []string{"nft", "legacy"})
	add(nftOnly, []string{"nft"})
	return hosts
}

// startDockerHost brings up a host with the standard layout (see
// dockerhost.sh layout). Its teardown is registered before it starts, so
// a failure half-way still removes every process, mount and namespace.
func startDockerHost(t *testing.T, name, version, backend, proxy string) *dockerHost {
	t.Helper()
	return startDockerHostWith(t, name, version, backend, proxy, "")
}

// startDockerHostWith is startDockerHost with more daemon.json members
// (e.g. `"iptables": false`).
func startDockerHostWith(t *testing.T, name, version, backend, proxy, daemonExtra string) *dockerHost {
	t.Helper()
	return startDockerHostFull(t, &dockerHost{Name: name, Version: version, Backend: backend, Proxy: proxy, DaemonExtra: daemonExtra})
}

// startDockerHostFull starts the host h describes (Name, Version, Backend,
// Proxy, and optionally DaemonExtra and Firewall) with the standard layout.
func startDockerHostFull(t *testing.T, h *dockerHost) *dockerHost {
	t.Helper()
	name, version, backend, proxy := h.Name, h.Version, h.Backend, h.Proxy
	requireRoot(t, "nsenter", "ip", "busybox", "curl", "iptables-nft", "iptables-legacy")
	if version == "20.10" {
		_, err := exec.LookPath("dockerd")
		require(t, err == nil, "dockerd (apt-get install docker.io) is not installed")
	}
	root := os.Getenv("TESTBED_ROOT")
	if root == "" {
		root = "/tmp/iptscope-testbed"
	}
	h.State, h.NetNS = filepath.Join(root, name), "/var/run/netns/"+name
	h.Socket = filepath.Join(h.State, "docker.sock")
	t.Cleanup(func() {
		if out, err := h.script("down"); err != nil {
			t.Errorf("dockerhost.sh down %s: %v\n%s", name, err, out)
		}
	})
	start := time.Now()
	if out, err := h.script("up"); err != nil {
		t.Fatalf("dockerhost.sh up %s: %v\n%s", name, err, out)
	}
	if out, err := h.script("layout"); err != nil {
		t.Fatalf("dockerhost.sh layout %s: %v\n%s", name, err, out)
	}
	fw := ""
	if h.Firewall != "" {
		fw = ", firewall " + h.Firewall
	}
	t.Logf("docker %s (%s%s, proxy %s) up with its layout in %s", version, backend, fw, proxy, time.Since(start).Round(time.Second))
	return h
}

// script runs a dockerhost.sh subcommand for the host.
func (h *dockerHost) script(sub string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{script, sub, h.Name}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER="+h.Version, "BACKEND="+h.Backend, "PROXY="+h.Proxy, "DAEMON_EXTRA="+h.DaemonExtra, "FIREWALL="+h.Firewall)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docker runs the docker CLI against the host and returns stdout.
func (h *dockerHost) docker(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script, "docker", h.Name}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// hostEnv is the environment of a command run for this host from the
// root namespace: the host's iptables backend first in PATH and its own
// xtables lock.
func (h *dockerHost) hostEnv() []string {
	return append(os.Environ(),
		"PATH="+filepath.Join(h.State, "bin")+":"+os.Getenv("PATH"),
		"XTABLES_LOCKFILE="+filepath.Join(h.State, "xtables.lock"))
}

// ipt runs a command inside the host's namespace with its backend.
func (h *dockerHost) ipt(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{script, "ipt", h.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipt %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// iptscope runs the iptscope binary from the root namespace in the host's
// environment and returns stdout, stderr and the exit code.
func (h *dockerHost) iptscope(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(iptscopeBin, args...)
	cmd.Env = h.hostEnv()
	return runCmd(t, cmd)
}

// collectBundle runs `iptscope collect --netns` for the host from the root
// namespace and returns the bundle's path and bytes.
func (h *dockerHost) collectBundle(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bundle.json")
	start := time.Now()
	_, stderr, code := h.iptscope(t, "collect", "--netns", h.Name, "--docker-host", "unix://"+h.Socket, "-o", path)
	if code != 0 {
		t.Fatalf("iptscope collect: exit %d: %s", code, stderr)
	}
	t.Logf("collect took %s", time.Since(start).Round(time.Millisecond))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

// inspect is the part of `docker inspect` the tests compare with.
type inspect struct {
	ID    string
	Name  string
	State struct {
		Running bool
		Pid     int
	}
	NetworkSettings struct {
		Ports    map[string][]struct{ HostIp, HostPort string }
		Networks map[string]struct {
			NetworkID  string
			IPAddress  string
			MacAddress string
		}
	}
}

func (h *dockerHost) inspectContainers(t *testing.T) []inspect {
	t.Helper()
	ids := strings.Fields(string(h.docker(t, "ps", "-aq")))
	require(t, len(ids) > 0, "the host has no containers")
	var out []inspect
	if err := json.Unmarshal(h.docker(t, append([]string{"inspect"}, ids...)...), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

type netInspect struct {
	ID       string
	Name     string
	Driver   string
	Internal bool
	Options  map[string]string
	IPAM     struct {
		Config []struct{ Subnet, Gateway string }
	}
}

func (h *dockerHost) inspectNetworks(t *testing.T) []netInspect {
	t.Helper()
	ids := strings.Fields(string(h.docker(t, "network", "ls", "-q")))
	var out []netInspect
	if err := json.Unmarshal(h.docker(t, append([]string{"network", "inspect"}, ids...)...), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// netnsInode is the inode of a namespace file, its identity.
func netnsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st fileStat
	if err := statInode(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.ino
}

// proxiesIn lists the docker-proxy processes living in the namespace, by
// reading /proc directly (independently of iptscope), as
// "proto host-ip:host-port -> container-ip:container-port".
func proxiesIn(t *testing.T, nsPath string) []string {
	t.Helper()
	want := netnsInode(t, nsPath)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(p + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte("docker-proxy")) {
			continue
		}
		var st fileStat
		if statInode(p+"/ns/net", &st) != nil || st.ino != want {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		flag := map[string]string{}
		for i := 0; i+1 < len(args); i++ {
			if strings.HasPrefix(args[i], "-") {
				flag[strings.TrimLeft(args[i], "-")] = args[i+1]
			}
		}
		out = append(out, fmt.Sprintf("%s %s:%s -> %s:%s", flag["proto"], flag["host-ip"], flag["host-port"], flag["container-ip"], flag["container-port"]))
	}
	return out
}
