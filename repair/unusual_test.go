package repair

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/render"
	"github.com/iptscope/iptscope/snapshot"
)

// Unusual but legal Docker state: the view grows something Docker allows
// but the fixtures do not have, its rules are missing (as after a flush),
// and the plan must put them back so that the host is healthy and a
// second plan is empty. The rules come from the fake firewall, the view
// from the test.

func (h *churnHost) addNetwork(name, bridge, subnet, gateway string) {
	h.base.Docker.Networks = append(h.base.Docker.Networks, snapshot.Network{
		ID: fmt.Sprintf("%064x", len(h.base.Docker.Networks)+1000), Name: name, Driver: "bridge", BridgeName: bridge,
		Subnets: []string{subnet}, Gateways: []string{gateway}, EnableIPv6: strings.Contains(subnet, ":"),
	})
	h.base.Links = append(h.base.Links, snapshot.Link{Name: bridge, Index: 1000 + len(h.base.Links), Kind: "bridge", Up: true, OperState: "up", MTU: 1500})
	bits := "/24"
	if strings.Contains(subnet, ":") {
		bits = "/64"
	}
	h.base.Addrs = append(h.base.Addrs, snapshot.Addr{Link: bridge, Family: familyOfAddr(gateway), CIDR: gateway + bits})
	for _, k := range []string{"forwarding", "route_localnet"} {
		h.base.Sysctls["net.ipv4.conf."+bridge+"."+k] = snapshot.Sysctl{Value: "1", Present: true}
	}
}

func familyOfAddr(a string) string {
	if strings.Contains(a, ":") {
		return snapshot.FamilyIPv6
	}
	return snapshot.FamilyIPv4
}

func (h *churnHost) container(name string) *snapshot.Container {
	for i := range h.base.Docker.Containers {
		if h.base.Docker.Containers[i].Name == name {
			return &h.base.Docker.Containers[i]
		}
	}
	h.t.Fatalf("no container %s", name)
	return nil
}

// repairAndCheck plans, applies, and checks the host is healthy afterwards
// and a second plan is empty; it returns the plan applied.
func (h *churnHost) repairAndCheck(t *testing.T) *diagnose.Plan {
	t.Helper()
	s, p := h.plan()
	if err := ValidatePlan(p); err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		o := h.options()
		o.Planned = s
		if _, err := Apply(context.Background(), p, o); err != nil {
			t.Fatal(err)
		}
	}
	after := h.snap()
	fs := diagnose.Run(after, diagnose.Options{})
	for _, f := range fs {
		if f.Severity != diagnose.SeverityInfo {
			t.Errorf("after the repair: %s %s: %s", f.Severity, f.ID, f.Title)
		}
	}
	if p2 := diagnose.NewPlan(after, fs); !p2.Empty() {
		t.Errorf("a second plan is not empty: %v", lines(p2))
	}
	var out bytes.Buffer
	if err := render.DoctorText(&out, diagnose.NewReport(after, diagnose.ReportOptions{}), render.Options{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnusualButLegalDockerStateIsRepaired(t *testing.T) {
	const fixture = "docker-28.5-nft-proxy-off-healthy"
	t.Run("UDP and SCTP ports, ports 1 and 65535", func(t *testing.T) {
		h := newChurnHost(t, fixture)
		web := h.container("web")
		web.Ports = append(web.Ports,
			snapshot.PortBinding{HostIP: "0.0.0.0", HostPort: 1, ContainerPort: 1, Proto: "udp"},
			snapshot.PortBinding{HostIP: "0.0.0.0", HostPort: 65535, ContainerPort: 65535, Proto: "sctp"})
		p := h.repairAndCheck(t)
		got := strings.Join(lines(p), "\n")
		for _, want := range []string{"-p udp -m udp --dport 1 -j DNAT --to-destination 172.17.0.2:1", "-p sctp -m sctp --dport 65535 -j DNAT --to-destination 172.17.0.2:65535"} {
			if !strings.Contains(got, want) {
				t.Errorf("the plan lacks %q:\n%s", want, got)
			}
		}
	})
	t.Run("long and non-ASCII container and network names", func(t *testing.T) {
		h := newChurnHost(t, fixture)
		h.container("web").Name = "wéb-日本語-" + strings.Repeat("x", 200)
		for i := range h.base.Docker.Networks {
			if h.base.Docker.Networks[i].Name == "appnet" {
				h.base.Docker.Networks[i].Name = "réseau-☃-" + strings.Repeat("n", 100)
			}
		}
		for i := range h.base.Docker.Containers {
			for j := range h.base.Docker.Containers[i].Endpoints {
				if e := &h.base.Docker.Containers[i].Endpoints[j]; e.Network == "appnet" {
					e.Network = "réseau-☃-" + strings.Repeat("n", 100)
				}
			}
		}
		h.fw.tables["ipv4 nat"].chains["DOCKER"] = nil // nat DOCKER flushed
		h.repairAndCheck(t)
	})
	t.Run("a container on several networks", func(t *testing.T) {
		h := newChurnHost(t, fixture)
		web := h.container("web")
		web.Endpoints = append(web.Endpoints, snapshot.Endpoint{Network: "appnet", NetworkID: h.base.Docker.Networks[0].ID, IP: "172.18.0.9", IPPrefixLen: 16, Gateway: "172.18.0.1"})
		// Its ports keep their rules on the network Docker chose
		// (bridge); the second endpoint gets its raw DROP (28.2+ writes
		// one per endpoint) and no port rule.
		p := h.repairAndCheck(t)
		for _, l := range lines(p) {
			if strings.Contains(l, "172.18.0.9") && (strings.Contains(l, "DNAT") || strings.Contains(l, "--dport")) {
				t.Errorf("a port rule for the second network: %s", l)
			}
		}
	})
	t.Run("hundreds of networks", func(t *testing.T) {
		h := newChurnHost(t, fixture)
		for i := 0; i < 300; i++ {
			h.addNetwork(fmt.Sprintf("net%03d", i), fmt.Sprintf("br-h%011d", i), fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250), fmt.Sprintf("10.%d.%d.1", 100+i/250, i%250))
		}
		p := h.repairAndCheck(t)
		t.Logf("300 networks: %d operations", len(p.Ops))
		if len(p.Ops) < 300 {
			t.Errorf("%d operations for 300 networks' rules", len(p.Ops))
		}
	})
	t.Run("an IPv6-only network", func(t *testing.T) {
		h := newChurnHost(t, fixture)
		h.addNetwork("v6only", "br-v6only", "fd00:6::/64", "fd00:6::1")
		p := h.repairAndCheck(t)
		for _, op := range p.Ops {
			if op.Family == snapshot.FamilyIPv4 && strings.Contains(op.Spec, "br-v6only") && strings.Contains(op.Spec, "MASQUERADE") {
				t.Errorf("an IPv4 MASQUERADE for an IPv6-only network: %s", op.Line())
			}
		}
	})
}
