package diagnose

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iptscope/iptscope/snapshot"
)

// probe is one line of fixtures/<dir>/probe.txt: whether a port answered
// a real HTTP request from the client machine or from the host itself.
type probe struct {
	port     int
	from     string
	answered bool
}

func readProbes(t *testing.T, dir string) []probe {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, dir, "probe.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []probe
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var p probe
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "port":
				p.port, _ = strconv.Atoi(v)
			case "from":
				p.from = v
			case "answered":
				p.answered = v == "yes"
			}
		}
		out = append(out, p)
	}
	return out
}

// TestPortPathsMatchWhatAnsweredFromTheClient: reality wins. For every
// bundle, the IPv4 ports whose path is nat or proxy-only are exactly the
// ports that answered a request from another machine; ports bound to
// 127.0.0.1 are local-only and did not answer from outside.
func TestPortPathsMatchWhatAnsweredFromTheClient(t *testing.T) {
	for _, b := range bundles(t) {
		t.Run(b.dir+" paths match the probes", func(t *testing.T) {
			reports := Ports(b.snap)
			var want, got []int
			local := map[int]bool{}
			for _, p := range readProbes(t, b.dir) {
				if p.from == "client" && p.answered {
					want = append(want, p.port)
				}
			}
			for _, r := range reports {
				if strings.Contains(r.HostIP, ":") {
					continue // the probes are IPv4
				}
				switch r.Path {
				case PathNAT, PathProxyOnly:
					got = append(got, r.HostPort)
				case PathLocalOnly:
					local[r.HostPort] = true
				case PathUnknown:
					t.Errorf("%s of %s: path unknown: %s", r.HostAddr(), r.Container, r.Reason)
				}
			}
			sort.Ints(want)
			sort.Ints(got)
			if diff := cmp.Diff(want, got); diff != "" {
				for _, r := range reports {
					t.Logf("%s -> %s: %s (%s)", r.HostAddr(), r.Container, r.Path, r.Reason)
				}
				t.Errorf("ports answering from the client (-probe +doctor):\n%s", diff)
			}
			for _, p := range readProbes(t, b.dir) {
				if local[p.port] && p.from == "client" && p.answered {
					t.Errorf("port %d is local-only but answered from the client", p.port)
				}
			}
			if len(local) == 0 {
				t.Errorf("no local-only port: the fixtures publish 127.0.0.1:9090")
			}
		})
	}
}

func TestPortsOfHealthyHostsAllTakeTheNATPath(t *testing.T) {
	for name, s := range healthySnapshots(t) {
		t.Run(name+" publishes every port through NAT", func(t *testing.T) {
			for _, r := range Ports(s) {
				if r.Path != PathNAT && r.Path != PathLocalOnly {
					t.Errorf("%s -> %s: %s (%s)", r.HostAddr(), r.Container, r.Path, r.Reason)
				}
			}
		})
	}
}

func TestPortsWithoutDockerViewAreNotListed(t *testing.T) {
	t.Run("a snapshot with no Docker section gives no ports", func(t *testing.T) {
		if got := Ports(&snapshot.Snapshot{}); len(got) != 0 {
			t.Errorf("got %v", got)
		}
	})
}

func TestIPv6BindingIsFoldedIntoItsIPv4Row(t *testing.T) {
	for _, b := range bundles(t) {
		if !strings.Contains(b.dir, "proxy-on-healthy") {
			continue
		}
		t.Run(b.dir+" lists [::] bindings once, on the 0.0.0.0 row", func(t *testing.T) {
			for _, r := range Ports(b.snap) {
				if r.HostIP == "::" {
					t.Errorf("separate IPv6 row %s", r.HostAddr())
				}
				if r.HostIP == "0.0.0.0" && !r.AlsoIPv6 {
					t.Errorf("%s: also_ipv6 not set", r.HostAddr())
				}
			}
		})
	}
}
