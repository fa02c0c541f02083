package diagnose

import (
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// warnings returns "ID" of each error/warning finding.
func warnings(s *snapshot.Snapshot) []string {
	var out []string
	for _, f := range Run(s, Options{}) {
		if f.Severity.Rank() >= SeverityWarning.Rank() {
			out = append(out, f.ID)
		}
	}
	return out
}

// TestProxyOffPrerequisites: on real healthy captures, turning off what
// userland-proxy=false needs (route_localnet on the bridge, br_netfilter,
// hairpin on web's port) gives exactly its finding on proxy-off hosts,
// with the plan setting the sysctls back (not the link, not a missing
// module); proxy-on hosts give nothing.
func TestProxyOffPrerequisites(t *testing.T) {
	for _, dir := range []string{"docker-20.10-legacy-proxy-off-healthy", "docker-28.5-nft-proxy-off-healthy", "docker-28.5-legacy-proxy-on-healthy"} {
		off := strings.Contains(dir, "-proxy-off-")
		t.Run(dir, func(t *testing.T) {
			check := func(name string, edit func(s *snapshot.Snapshot), want string, sysctl string) {
				t.Helper()
				s := loadBundle(t, dir)
				edit(s)
				got := strings.Join(warnings(s), ",")
				if !off {
					want, sysctl = "", ""
				}
				if got != want {
					t.Errorf("%s: errors/warnings %q, want %q", name, got, want)
				}
				p := NewPlan(s, Run(s, Options{}))
				var ops []string
				for _, o := range p.SysctlOps() {
					ops = append(ops, o.Name+"="+o.Value)
				}
				if strings.Join(ops, ",") != sysctl {
					t.Errorf("%s: sysctl ops %q, want %q", name, ops, sysctl)
				}
			}
			check("route_localnet 0", func(s *snapshot.Snapshot) {
				s.Sysctls["net.ipv4.conf.docker0.route_localnet"] = snapshot.Sysctl{Value: "0", Present: true}
			}, "route-localnet-disabled", "net.ipv4.conf.docker0.route_localnet=1")
			check("bridge-nf-call-iptables 0", func(s *snapshot.Snapshot) {
				s.Sysctls["net.bridge.bridge-nf-call-iptables"] = snapshot.Sysctl{Value: "0", Present: true}
			}, "br-netfilter-disabled", "net.bridge.bridge-nf-call-iptables=1")
			check("br_netfilter not loaded", func(s *snapshot.Snapshot) {
				s.Sysctls["net.bridge.bridge-nf-call-iptables"] = snapshot.Sysctl{Present: false}
			}, "br-netfilter-disabled", "")
			check("web's hairpin off", func(s *snapshot.Snapshot) {
				for _, c := range s.Docker.Containers {
					if c.Name != "web" {
						continue
					}
					for i := range s.Links {
						if s.Links[i].Name == c.Endpoints[0].HostVeth {
							f := false
							s.Links[i].Hairpin = &f
						}
					}
				}
			}, "hairpin-mode-off", "")
			check("hairpin unknown", func(s *snapshot.Snapshot) {
				for i := range s.Links {
					s.Links[i].Hairpin = nil
				}
			}, "", "")
		})
	}
}

// TestBrNetfilterForIccFalse: an icc=false network with two running
// containers needs br_netfilter whatever the proxy mode.
func TestBrNetfilterForIccFalse(t *testing.T) {
	s := loadBundle(t, "docker-28.5-legacy-proxy-on-healthy")
	for i := range s.Docker.Networks {
		if s.Docker.Networks[i].Name == "bridge" {
			if s.Docker.Networks[i].Options == nil {
				s.Docker.Networks[i].Options = map[string]string{}
			}
			s.Docker.Networks[i].Options["com.docker.network.bridge.enable_icc"] = "false"
		}
	}
	s.Sysctls["net.bridge.bridge-nf-call-iptables"] = snapshot.Sysctl{Value: "0", Present: true}
	fs := brNetfilterDisabled.Run(NewEnv(s))
	if len(fs) != 1 || !strings.Contains(strings.Join(fs[0].Evidence, "\n"), "network bridge: icc=false with 2 containers") {
		t.Errorf("findings %+v", fs)
	}
}
