package diagnose

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

var updateLayouts = flag.Bool("update-layouts", false, "rewrite testdata/layouts/*.rules from the fixtures")

// layoutGoldens: for each modelled layout, real healthy captures whose
// expected rules are pinned in testdata/layouts (proxy on and off: the
// hairpin and OUTPUT rules differ). That the same rules are exactly the
// capture's is TestExpectedMatchesHealthyFixtures.
var layoutGoldens = map[Era][]string{
	EraClassic: {"docker-20.10-nft-proxy-on-healthy", "docker-26.1-nft-proxy-off-healthy"},
	Era28:      {"docker-28.5-nft-proxy-on-healthy", "docker-28.5-nft-proxy-off-healthy"},
	Era29:      {"docker-29-nft-proxy-on-healthy", "docker-29-nft-proxy-off-healthy"},
}

// TestLayoutGoldens: the expected rules of each layout, rule by rule
// with its intent (kind, network, container, port), as the golden files
// say. Run with -update-layouts after a deliberate change of a builder.
func TestLayoutGoldens(t *testing.T) {
	for _, l := range Layouts() {
		if l.Backend == BackendIPTables && l.Modelled() && len(layoutGoldens[l.Era]) == 0 {
			t.Errorf("layout %s has no golden capture", l.Era)
		}
	}
	for era, dirs := range layoutGoldens {
		for _, dir := range dirs {
			t.Run(string(era)+" "+dir, func(t *testing.T) {
				s := loadBundle(t, dir)
				var b strings.Builder
				fmt.Fprintf(&b, "# expected rules of layout %s for fixtures/%s (Docker %s); regenerate with go test ./diagnose -run TestLayoutGoldens -update-layouts\n", era, dir, s.Docker.Version)
				for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
					e, err := Expect(s, fam)
					if err != nil {
						t.Fatal(err)
					}
					if fam == snapshot.FamilyIPv4 && e.Era != era {
						t.Fatalf("Docker %s: layout %s, want %s", s.Docker.Version, e.Era, era)
					}
					if !e.Modelled {
						fmt.Fprintf(&b, "%s: not modelled (%s)\n", fam, strings.Join(e.Notes, "; "))
						continue
					}
					for _, t := range parse.KnownTables {
						if cs := e.Chains[t]; len(cs) > 0 {
							fmt.Fprintf(&b, "%s %s chains: %v\n", fam, t, cs)
						}
					}
					for _, er := range e.All() {
						fmt.Fprintf(&b, "%s -t %s -A %s %s  # %s", fam, er.Table, er.Chain, er.Spec(), er.Kind)
						for _, w := range []string{er.Network, er.Container, portName(er.Port), er.Alt} {
							if w != "" {
								fmt.Fprintf(&b, " %s", w)
							}
						}
						b.WriteByte('\n')
					}
				}
				path := filepath.Join("testdata", "layouts", dir+".rules")
				if *updateLayouts {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update-layouts)", err)
				}
				if got := b.String(); got != string(want) {
					t.Errorf("expected rules of %s differ from %s:\n%s", dir, path, lineDiff(string(want), got))
				}
			})
		}
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLayoutFor: every version from 20.10 on has exactly one layout per
// backend; the eras meet without a gap; a version newer than the newest
// era is judged with it and said to be an assumption; an older one has
// none.
func TestLayoutFor(t *testing.T) {
	for _, tc := range []struct {
		v, backend string
		want       Era
		ok         bool
		assumed    bool
	}{
		{"19.03.15", BackendIPTables, "", false, false},
		{"20.10.0", BackendIPTables, EraClassic, true, false},
		{"27.5.1", BackendIPTables, EraClassic, true, false},
		{"28.0.0", BackendIPTables, Era2800, true, false},
		{"28.0.1", BackendIPTables, Era28, true, false},
		{"28.5.2", BackendIPTables, Era28, true, false},
		{"29.0.0", BackendIPTables, Era29, true, false},
		{"29.8.1", BackendIPTables, Era29, true, false},
		{"30.0.0", BackendIPTables, Era29, true, true},
		{"31.2.0", BackendIPTables, Era29, true, true},
		{"29.8.1", BackendNftables, Era29Nftables, true, false},
		{"30.1.0", BackendNftables, Era29Nftables, true, true},
		{"28.5.2", BackendNftables, "", false, false},
	} {
		v, err := ParseVersion(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		l, assumed, ok := LayoutFor(v, tc.backend)
		if l.Era != tc.want || ok != tc.ok || (assumed != "") != tc.assumed {
			t.Errorf("LayoutFor(%s, %s) = %s, %q, %v; want %s, assumed %v, %v", tc.v, tc.backend, l.Era, assumed, ok, tc.want, tc.assumed, tc.ok)
		}
	}
	for _, l := range layouts {
		if l.Modelled() == (l.Era == Era2800) {
			t.Errorf("layout %s: modelled %v", l.Era, l.Modelled())
		}
	}
	for _, backend := range []string{BackendIPTables, BackendNftables} {
		var prev *Layout
		for _, l := range layouts {
			if l.Backend != backend {
				continue
			}
			if prev != nil && prev.Until != l.From {
				t.Errorf("%s: layout %s ends at %s, %s starts at %s", backend, prev.Era, prev.Until, l.Era, l.From)
			}
			prev = &l
		}
		if prev == nil || prev.Until != (Version{}) {
			t.Errorf("%s: the newest layout must be open-ended", backend)
		}
	}
}

// TestNewerDockerIsAnAssumption: a Docker 30 host is judged with the 29
// layout, and the report says it was assumed, never silently.
func TestNewerDockerIsAnAssumption(t *testing.T) {
	s := loadBundle(t, "docker-29-nft-proxy-on-healthy")
	s.Docker.Version = "30.0.0"
	e, err := Expect(s, snapshot.FamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if e.Era != Era29 || !e.Assumed || !e.Modelled {
		t.Fatalf("Docker 30: era %s, assumed %v, modelled %v", e.Era, e.Assumed, e.Modelled)
	}
	r := NewReport(s, ReportOptions{})
	found := false
	for _, n := range r.Notes {
		found = found || strings.Contains(n, "Docker 30.0.0 is newer than every layout")
	}
	if !found {
		t.Errorf("the report does not say the layout was assumed: %q", r.Notes)
	}
	for _, f := range r.Findings {
		if f.Severity != SeverityInfo {
			t.Errorf("a healthy 29 host relabelled 30 gives %s %s", f.Severity, f.ID)
		}
	}
}
