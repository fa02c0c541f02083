package diagnose

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// fixtureDir is the repository's fixtures folder.
const fixtureDir = "../fixtures"

// healthyCaptures are the older capture folders: real healthy daemons with
// iptables-save.txt and Docker JSON, no bundle.json.
func healthyCaptures(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(fixtureDir, "docker-*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "bundle.json")); err == nil {
			continue // a bundle: read by bundles()
		}
		if _, err := os.Stat(filepath.Join(d, "iptables-save.txt")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "docker-network-inspect.json")); err == nil {
				out = append(out, d)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no capture folders under " + fixtureDir)
	}
	return out
}

// bundleFixture is one fixtures/<dir>/bundle.json and the state it shows.
type bundleFixture struct {
	dir, state string
	snap       *snapshot.Snapshot
}

// nftablesFixture reports whether a fixture folder is of Docker 29's
// nftables firewall backend. Its rules are native nftables tables, which
// diagnose does not model yet (issue 14): bundles leaves those folders out
// of the iptables tests, and TestNftablesBackendBundlesSayNotInspected pins
// what doctor says of them today.
func nftablesFixture(dir string) bool { return strings.Contains(dir, "-nftables-") }

// bundles returns the bundle fixtures of the iptables backends, listed by
// fixtures/index.tsv when it exists, else found by glob. The state is the part of the folder name
// after "-proxy-on-" / "-proxy-off-" ("healthy", "stale-dnat", ...).
func bundles(t *testing.T) []bundleFixture {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "docker-*", "bundle.json"))
	var out []bundleFixture
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Base(filepath.Dir(f))
		if nftablesFixture(dir) {
			continue
		}
		s, err := snapshot.Load(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		state := dir
		for _, sep := range []string{"-proxy-on-", "-proxy-off-"} {
			if i := strings.Index(dir, sep); i >= 0 {
				state = dir[i+len(sep):]
			}
		}
		out = append(out, bundleFixture{dir: dir, state: state, snap: s})
	}
	return out
}

// captureSnapshot builds a snapshot from an older capture folder the way
// `iptscope collect` would have: rules, Docker networks and containers,
// docker-proxy command lines, sysctls and links.
func captureSnapshot(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	backend := snapshot.BackendNFT
	if strings.HasSuffix(dir, "-legacy") {
		backend = snapshot.BackendLegacy
	}
	s := &snapshot.Snapshot{
		Schema:          snapshot.Schema,
		IptablesBackend: backend,
		DockerBackend:   backend,
		Sysctls:         map[string]snapshot.Sysctl{},
		Rules: []snapshot.RuleDump{
			{Backend: backend, Family: snapshot.FamilyIPv4, Raw: string(read("iptables-save.txt"))},
			{Backend: backend, Family: snapshot.FamilyIPv6, Raw: string(read("ip6tables-save.txt"))},
		},
	}
	s.ParseRules()

	var ver struct{ Server struct{ Version string } }
	mustJSON(t, read("docker-version.json"), &ver)
	d := &snapshot.Docker{Version: ver.Server.Version, Info: &snapshot.DockerInfo{ServerVersion: ver.Server.Version, UserlandProxy: snapshot.ProxyUnknown}}
	s.Docker = d

	var nets []struct {
		Name       string
		ID         string `json:"Id"`
		Driver     string
		Internal   bool
		EnableIPv6 bool
		IPAM       struct {
			Config []struct{ Subnet, Gateway string }
		}
		Options map[string]string
	}
	mustJSON(t, read("docker-network-inspect.json"), &nets)
	for _, n := range nets {
		name, id, driver := n.Name, n.ID, n.Driver
		sn := snapshot.Network{ID: id, Name: name, Driver: driver, Internal: n.Internal, EnableIPv6: n.EnableIPv6, Options: n.Options}
		if driver == "bridge" {
			switch {
			case n.Options["com.docker.network.bridge.name"] != "":
				sn.BridgeName = n.Options["com.docker.network.bridge.name"]
			case name == "bridge":
				sn.BridgeName = "docker0"
			default:
				sn.BridgeName = "br-" + id[:12]
			}
		}
		for _, c := range n.IPAM.Config {
			sn.Subnets = append(sn.Subnets, c.Subnet)
			if c.Gateway != "" {
				sn.Gateways = append(sn.Gateways, c.Gateway)
			}
		}
		d.Networks = append(d.Networks, sn)
	}

	var cts []struct {
		ID    string `json:"Id"`
		Name  string
		State struct {
			Status  string
			Running bool
			Pid     int
		}
		NetworkSettings struct {
			SandboxKey string
			Ports      map[string][]struct{ HostIp, HostPort string }
			Networks   map[string]struct {
				NetworkID, IPAddress, GlobalIPv6Address, MacAddress, Gateway string
				IPPrefixLen                                                  int
			}
		}
	}
	mustJSON(t, read("docker-container-inspect.json"), &cts)
	for _, c := range cts {
		sc := snapshot.Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), State: c.State.Status, Running: c.State.Running, Pid: c.State.Pid, SandboxKey: c.NetworkSettings.SandboxKey}
		for name, ep := range c.NetworkSettings.Networks {
			sc.Endpoints = append(sc.Endpoints, snapshot.Endpoint{Network: name, NetworkID: ep.NetworkID, IP: ep.IPAddress, IPPrefixLen: ep.IPPrefixLen, IPv6: ep.GlobalIPv6Address, MAC: ep.MacAddress, Gateway: ep.Gateway})
		}
		sort.Slice(sc.Endpoints, func(i, j int) bool { return sc.Endpoints[i].Network < sc.Endpoints[j].Network })
		for key, bs := range c.NetworkSettings.Ports {
			num, proto, _ := strings.Cut(key, "/")
			cp, _ := strconv.Atoi(num)
			for _, b := range bs {
				hp, _ := strconv.Atoi(b.HostPort)
				sc.Ports = append(sc.Ports, snapshot.PortBinding{HostIP: b.HostIp, HostPort: hp, ContainerPort: cp, Proto: proto})
			}
		}
		d.Containers = append(d.Containers, sc)
	}

	for _, line := range strings.Split(strings.TrimSpace(string(read("docker-proxy.txt"))), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p := snapshot.Proxy{Args: f}
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "-proto":
				p.Proto = f[i+1]
			case "-host-ip":
				p.HostIP = f[i+1]
			case "-host-port":
				p.HostPort, _ = strconv.Atoi(f[i+1])
			case "-container-ip":
				p.ContainerIP = f[i+1]
			case "-container-port":
				p.ContainerPort, _ = strconv.Atoi(f[i+1])
			}
		}
		s.Proxies = append(s.Proxies, p)
	}

	for _, line := range strings.Split(string(read("sysctl.txt")), "\n") {
		k, v, ok := strings.Cut(line, " = ")
		if ok {
			s.Sysctls[strings.TrimSpace(k)] = snapshot.Sysctl{Value: strings.TrimSpace(v), Present: true}
		}
	}

	var links []struct {
		IfName    string `json:"ifname"`
		IfIndex   int    `json:"ifindex"`
		Flags     []string
		OperState string `json:"operstate"`
		Master    string `json:"master"`
		LinkType  string `json:"link_type"`
	}
	mustJSON(t, read("ip-addr.json"), &links)
	for _, l := range links {
		up := false
		for _, f := range l.Flags {
			if f == "UP" {
				up = true
			}
		}
		kind := "device"
		switch {
		case l.IfName == "docker0" || strings.HasPrefix(l.IfName, "br-"):
			kind = "bridge"
		case strings.HasPrefix(l.IfName, "veth"):
			kind = "veth"
		}
		s.Links = append(s.Links, snapshot.Link{Name: l.IfName, Index: l.IfIndex, Kind: kind, Master: l.Master, OperState: l.OperState, Up: up})
	}
	return s
}

func mustJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// healthySnapshots returns every healthy fixture: the capture folders and
// the bundles whose state is "healthy".
func healthySnapshots(t *testing.T) map[string]*snapshot.Snapshot {
	out := map[string]*snapshot.Snapshot{}
	for _, d := range healthyCaptures(t) {
		out[filepath.Base(d)] = captureSnapshot(t, d)
	}
	for _, b := range bundles(t) {
		if b.state == "healthy" {
			out[b.dir] = b.snap
		}
	}
	return out
}
