package diagnose

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// ruleDecidable are the checks whose findings the rules alone can prove:
// what a raw dump must report when the bundle of the same host does.
var ruleDecidable = []string{
	"docker-chain-missing", "docker-jump-missing", "dnat-missing", "dnat-stale", "forward-accept-missing",
	"masquerade-missing", "raw-drop-missing", "docker-rule-missing", "docker-rule-duplicated",
	"docker-user-drop", "forward-blocked",
}

// rawReport diagnoses a raw dump as `doctor --from FILE` does.
func rawReport(t *testing.T, path string) *Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := parse.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return NewReport(snapshot.FromDump(string(data), rs, path), ReportOptions{RulesOnly: true})
}

// pastedList is what a ticket holds: `iptables -t nat -L -n -v`, then
// -t filter and -t raw, concatenated as pasted.
func pastedList(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{"nat.list.txt", "filter.list.txt", "raw.list.txt"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		b.Write(data)
	}
	if b.Len() == 0 {
		t.Skipf("%s has no -L captures", dir)
	}
	p := filepath.Join(t.TempDir(), "pasted.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRawDumpsFindWhatTheBundleFinds: on every real capture, the
// rule-only doctor over the save dump and over the pasted -L text (nat,
// filter and raw) reports exactly the rule-decidable IDs the bundle of
// the same host reports: the same problems where the rules show them, no
// false alarm where they cannot (ip_forward off, a killed proxy), and
// nothing on a healthy host.
//
// Where the rules cannot show what the bundle shows, the state says why:
//   - firewall-reload: every Docker chain and rule is gone; nothing in the
//     dump says Docker ran (a note says so);
//   - backend-split, legacy-leftovers: the dump is of the backend
//     `iptables` on PATH uses; which backend Docker writes to is not in it.
func TestRawDumpsFindWhatTheBundleFinds(t *testing.T) {
	silent := map[string]string{
		"firewall-reload":  "no Docker rule is left to infer from",
		"backend-split":    "the other backend's dump",
		"legacy-leftovers": "one backend's dump",
	}
	n := 0
	for _, b := range bundles(t) {
		want := []string{}
		for _, id := range problemIDs(NewReport(b.snap, ReportOptions{})) {
			if slices.Contains(ruleDecidable, id) {
				want = append(want, id)
			}
		}
		if why := silent[b.state]; why != "" {
			want = []string{}
		}
		dir := filepath.Join(fixtureDir, b.dir)
		for _, form := range []struct{ name, path string }{
			{"iptables-save", filepath.Join(dir, "iptables-save.txt")},
			{"pasted -L text", ""},
		} {
			t.Run(b.dir+" "+form.name+" reports what the bundle reports", func(t *testing.T) {
				path := form.path
				if path == "" {
					path = pastedList(t, dir)
				}
				if form.name == "iptables-save" && b.state == "backend-split" {
					// The other backend's dump is empty: doctor must say so.
					data, _ := os.ReadFile(path)
					if _, err := parse.Parse(data); err == nil || !strings.Contains(err.Error(), "no iptables rules") {
						t.Fatalf("want a parse error naming the empty input, got %v", err)
					}
					return
				}
				r := rawReport(t, path)
				n++
				got := problemIDs(r)
				if got == nil {
					got = []string{}
				}
				if d := cmp.Diff(want, got); d != "" {
					for _, f := range r.Findings {
						t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
					}
					t.Errorf("IDs (-bundle +raw dump):\n%s", d)
				}
				if !r.Partial || r.Status == StatusOK {
					t.Errorf("a raw dump's report must be partial, not ok: status %s", r.Status)
				}
				for _, f := range r.Findings {
					if f.Repairable {
						t.Errorf("%s is marked repairable on a raw dump", f.Key)
					}
				}
				if len(r.NotChecked) == 0 || !strings.Contains(r.Next, "sudo iptscope collect") {
					t.Errorf("the report must say what was not checked and how to collect it: %v / %q", r.NotChecked, r.Next)
				}
			})
		}
	}
	if n < 100 {
		t.Errorf("only %d raw dumps compared", n)
	}
}

// TestPastedNATTableNamesTheCause: the seed case, `iptables -t nat -L -n
// -v` alone from a broken real host, names the cause.
func TestPastedNATTableNamesTheCause(t *testing.T) {
	for _, c := range []struct {
		dir, id, title string
	}{
		{"docker-28.5-nft-proxy-off-nat-docker-flushed", "dnat-missing", "nat DOCKER has lost all its DNATs: 6 published container ports get no traffic"},
		{"docker-20.10-nft-proxy-on-nat-docker-flushed", "dnat-missing", "nat DOCKER has lost all its DNATs: 6 published container ports get no traffic"},
		{"docker-28.5-nft-proxy-off-stale-dnat", "dnat-stale", "DNAT for port 8080/tcp points at 172.17.0.250:80, which none of Docker's other rules names"},
		{"docker-28.5-nft-proxy-on-stale-dnat", "dnat-stale", "Port 8080/tcp has two DNATs: rule 1 (to 172.17.0.250:80) wins, rule 4 (to 172.17.0.2:80) never matches"},
		{"docker-28.5-legacy-proxy-off-prerouting-jump-deleted", "docker-jump-missing", "nat PREROUTING no longer jumps to DOCKER"},
		{"docker-28.5-nft-proxy-off-nat-docker-deleted", "docker-chain-missing", "Chain DOCKER of table nat is missing"},
		// The hairpin MASQUERADEs (proxy off) name the container's port 80:
		// the DNAT to its port 81 is a leftover, port 80's DNAT is gone.
		{"docker-28.5-nft-proxy-off-dnat-repointed", "dnat-missing", "1 published container port has no DNAT in nat DOCKER: 172.17.0.2:80/tcp"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			r := rawReport(t, filepath.Join(fixtureDir, c.dir, "nat.list.txt"))
			if len(r.Findings) == 0 || r.Findings[0].ID != c.id || r.Findings[0].Title != c.title {
				for _, f := range r.Findings {
					t.Logf("%s %s: %s", f.Severity, f.ID, f.Title)
				}
				t.Fatalf("first finding is not %s %q", c.id, c.title)
			}
		})
	}
}

// TestRawDumpsOfHealthyShapesAreQuiet: the rules of every healthy-shapes
// capture (two host ports to one container port, one port on two host
// addresses, IPv6-only networks, routed and nat-unprotected gateway
// modes, a 28+ option on an older daemon), pasted as iptables-save and
// ip6tables-save text, give no error or warning.
func TestRawDumpsOfHealthyShapesAreQuiet(t *testing.T) {
	for name, s := range shapeBundles(t) {
		for _, fam := range []string{snapshot.FamilyIPv4, snapshot.FamilyIPv6} {
			d, err := s.PickDump(snapshot.BackendAuto, fam)
			if err != nil || d.Ruleset == nil || len(d.Ruleset.Tables) == 0 {
				continue
			}
			t.Run(name+" "+fam, func(t *testing.T) {
				r := NewReport(snapshot.FromDump(d.Raw, d.Ruleset, "test"), ReportOptions{RulesOnly: true})
				for _, f := range r.Findings {
					if f.Severity.Rank() >= SeverityWarning.Rank() {
						t.Errorf("false alarm on a healthy host's %s rules: %s %s: %s\n  %s", fam, f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
					}
				}
			})
		}
	}
}
