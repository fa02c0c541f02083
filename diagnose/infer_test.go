package diagnose

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/snapshot"
)

// unreachable returns a copy of s whose Docker API "could not be read":
// what collect records when the socket does not answer.
func unreachable(s *snapshot.Snapshot) *snapshot.Snapshot {
	c := *s
	c.Docker = &snapshot.Docker{Host: "unix:///nonexistent/docker.sock",
		Error: "dial unix /nonexistent/docker.sock: connect: no such file or directory"}
	return &c
}

// problemIDs returns the distinct IDs of error and warning findings.
func problemIDs(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity.Rank() >= SeverityWarning.Rank() && !slices.Contains(out, f.ID) {
			out = append(out, f.ID)
		}
	}
	sort.Strings(out)
	return out
}

// TestInferWithoutTheDockerAPI strips the Docker view from every real
// bundle, as when the API does not answer, and checks what doctor still
// says from the host alone: never an ID the full view does not give (no
// false alarm from guessing), the healthy hosts nothing but
// docker-unreachable, and the breakages the host's own traces show.
func TestInferWithoutTheDockerAPI(t *testing.T) {
	// state -> IDs the inferred view must still report, per proxy mode.
	mustFind := map[string]map[string][]string{
		"on": {
			// docker-proxy's arguments tell the published ports.
			"nat-docker-flushed":      {"dnat-missing", "proxy-fallback"},
			"nat-docker-deleted":      {"docker-chain-missing"},
			"prerouting-jump-deleted": {"docker-jump-missing"},
			"ip-forward-off":          {"ip-forward-disabled"},
			"backend-split":           {"backend-split"},
		},
		"off": {
			"prerouting-jump-deleted": {"docker-jump-missing"},
			"ip-forward-off":          {"ip-forward-disabled"},
			"backend-split":           {"backend-split"},
		},
	}
	for _, b := range bundles(t) {
		proxy := "on"
		if strings.Contains(b.dir, "-proxy-off-") {
			proxy = "off"
		}
		t.Run(b.dir+" without the Docker API reports only what the host shows", func(t *testing.T) {
			full := NewReport(b.snap, ReportOptions{Source: "test"})
			r := NewReport(unreachable(b.snap), ReportOptions{Source: "test"})
			got := problemIDs(r)
			if !r.Partial || r.Status == StatusOK {
				t.Errorf("partial %v, status %q; want partial and not ok", r.Partial, r.Status)
			}
			if !slices.Contains(got, "docker-unreachable") {
				t.Errorf("docker-unreachable not reported: %v", got)
			}
			for _, id := range got {
				if id != "docker-unreachable" && !slices.Contains(problemIDs(full), id) {
					t.Errorf("false alarm: %s is reported from the inferred view but not from the full one (%v)", id, problemIDs(full))
				}
			}
			for _, id := range mustFind[proxy][b.state] {
				if !slices.Contains(got, id) {
					t.Errorf("%s not reported from the inferred view; got %v", id, got)
				}
			}
			if b.state == "healthy" {
				if !slices.Equal(got, []string{"docker-unreachable"}) {
					t.Errorf("healthy host: got %v, want only docker-unreachable", got)
				}
				want := string(EraClassic)
				switch {
				case strings.HasPrefix(b.dir, "docker-28"):
					want = string(Era28)
				case strings.HasPrefix(b.dir, "docker-29"):
					want = string(Era29)
				}
				if r.Host.Layout != want {
					t.Errorf("layout %q inferred, want %q", r.Host.Layout, want)
				}
				inferred := false
				for _, n := range r.Notes {
					inferred = inferred || strings.Contains(n, "inferred from the host")
				}
				if !inferred {
					t.Errorf("no note says the view was inferred: %v", r.Notes)
				}
			}
			if t.Failed() {
				for _, f := range r.Findings {
					t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
				}
				t.Logf("notes: %v", r.Notes)
			}
		})
	}
}

// TestInferFindsPortsFromProxies checks the inferred view of a healthy
// proxy-on host: every published IPv4 port docker-proxy serves is there,
// on the right container address.
func TestInferFindsPortsFromProxies(t *testing.T) {
	for _, b := range bundles(t) {
		if b.state != "healthy" || !strings.Contains(b.dir, "-proxy-on-") {
			continue
		}
		t.Run(b.dir, func(t *testing.T) {
			dk, why := Infer(unreachable(b.snap))
			if dk == nil {
				t.Fatalf("nothing inferred: %s", why)
			}
			have := map[string]bool{}
			for _, c := range dk.Containers {
				for _, p := range c.Ports {
					have[c.Endpoints[0].IP+" "+portName(&p)] = true
				}
			}
			for _, c := range b.snap.Docker.Containers {
				if !c.Running {
					continue
				}
				for _, p := range c.Ports {
					if p.HostIP == "::" || len(c.Endpoints) == 0 {
						continue
					}
					if k := c.Endpoints[0].IP + " " + portName(&p); !have[k] {
						t.Errorf("port %s of %s not inferred (have %v)", portName(&p), c.Name, have)
					}
				}
			}
		})
	}
}

// TestDualHomedContainerDNATMissing: a container published on appnet and
// then connected to a second network (real Docker 28.5 capture,
// testdata/dual-homed-nat-docker-flushed.json, nat DOCKER flushed). Its
// filter ACCEPT is still there; its DNAT is not, and must be reported:
// the ACCEPT found for the binding must not stand in for the DNAT.
func TestDualHomedContainerDNATMissing(t *testing.T) {
	data, err := os.ReadFile("testdata/dual-homed-nat-docker-flushed.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReport(s, ReportOptions{Source: "test"})
	var ports []string
	for _, f := range r.Findings {
		if f.ID == "dnat-missing" {
			ports = append(ports, f.Subject.Container+" "+f.Subject.Port)
		}
	}
	if !slices.Equal(ports, []string{"dual 8086/tcp"}) {
		t.Errorf("dnat-missing for %v, want exactly [dual 8086/tcp]", ports)
	}
	if !slices.Contains(problemIDs(r), "proxy-fallback") {
		t.Errorf("proxy-fallback not reported: %v", problemIDs(r))
	}
}
