package diagnose

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateNftExpected = flag.Bool("update-nft-expected", false, "rewrite testdata/nft-expected/*.txt from the fixtures")

// TestNftExpectedIsWhatDocker29Writes: on the real healthy captures of
// Docker 29.8.1's nftables backend (proxy on and off) every rule, chain
// and map element of table ip docker-bridges is one ExpectNft derives from
// Docker's view, and every expected one is there. The expected rules are
// also kept as a golden file per capture (testdata/nft-expected/), the
// layout's data: go test ./diagnose -run NftExpected -update-nft-expected.
func TestNftExpectedIsWhatDocker29Writes(t *testing.T) {
	for _, proxy := range []string{"on", "off"} {
		dir := "docker-29-nftables-proxy-" + proxy + "-healthy"
		t.Run(dir+" holds exactly Docker's expected table", func(t *testing.T) {
			s := loadBundle(t, dir)
			as := nftAnalyses(NewEnv(s))
			if len(as) == 0 {
				t.Fatal("no nftables comparison")
			}
			a := as[0]
			if a.table == nil {
				t.Fatal("no table ip docker-bridges")
			}
			for _, c := range a.table.Chains {
				for _, r := range c.Rules {
					if !a.isDockers(r) {
						t.Errorf("rule Docker wrote that is not expected: %s: %s", c.Name, r.Spec())
					}
				}
			}
			if m := a.missingChains(); len(m) > 0 {
				t.Errorf("missing chains %v", m)
			}
			if m := a.missingRules(); len(m) > 0 {
				t.Errorf("missing rules %v", m)
			}
			if m := a.missingElements(); len(m) > 0 {
				t.Errorf("missing elements %v", m)
			}
			nExp := len(a.exp.Elements)
			nHave := 0
			for _, m := range a.table.Sets {
				nHave += len(m.Elements)
			}
			if nHave != nExp {
				t.Errorf("%d map elements, %d expected", nHave, nExp)
			}
			var b strings.Builder
			for _, c := range a.exp.Chains {
				b.WriteString(strings.TrimPrefix(c.Decl(a.exp.Family), "add ") + "\n")
				for _, r := range a.exp.RulesOf(c.Name) {
					intent := string(r.Kind)
					for _, x := range []string{r.Network, r.Container, nftPortName(r.Port)} {
						if x != "" {
							intent += " " + x
						}
					}
					b.WriteString("  [" + intent + "] " + r.Spec + "\n")
				}
			}
			for _, el := range a.exp.Elements {
				b.WriteString("element " + el.Map + " " + el.Key + " : jump " + el.Target + "\n")
			}
			got := b.String()
			// Bridge names are random per capture.
			for _, n := range s.Docker.Networks {
				if strings.HasPrefix(n.BridgeName, "br-") {
					got = strings.ReplaceAll(got, n.BridgeName, "br-"+n.Name)
				}
			}
			path := filepath.Join("testdata", "nft-expected", dir+".txt")
			if *updateNftExpected {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("expected table (-golden +now):\n%s", d)
			}
		})
	}
}

// TestNftExpectedMatchesEveryShape: on the real capture of every shape of
// e2e/testbed/shapes.sh on Docker 29.8.1's nftables backend (icc=false,
// ip-masq=false, host SNAT, routed, nat-unprotected, trusted host
// interfaces, internal networks, a container on two networks, IPv6 and
// IPv6-only networks), in both families, table docker-bridges holds
// exactly the expected chains, map elements and rules.
func TestNftExpectedMatchesEveryShape(t *testing.T) {
	n := 0
	for name, s := range shapeBundles(t) {
		if !nftablesFixture(name) {
			continue
		}
		n++
		for _, a := range nftAnalyses(NewEnv(s)) {
			t.Run(name+" "+a.family()+" holds exactly Docker's expected table", func(t *testing.T) {
				if a.table == nil {
					t.Fatal("no table docker-bridges")
				}
				for _, c := range a.table.Chains {
					for _, r := range c.Rules {
						if !a.isDockers(r) {
							t.Errorf("rule Docker wrote that is not expected: %s: %s", c.Name, r.Spec())
						}
					}
				}
				if m := a.missingChains(); len(m) > 0 {
					t.Errorf("missing chains %v", m)
				}
				for _, m := range a.missingRules() {
					t.Errorf("missing rule %s: %s (%s)", m.Chain, m.Spec, m.Kind)
				}
				if m := a.missingElements(); len(m) > 0 {
					t.Errorf("missing elements %v", m)
				}
				for _, note := range a.exp.Notes {
					if strings.Contains(note, "not modelled") {
						t.Errorf("a shape is not modelled: %s", note)
					}
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no healthy-shapes capture of the nftables backend")
	}
}
