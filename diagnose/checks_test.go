package diagnose

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHealthyHostsGiveNoErrorOrWarning: a false alarm is as serious a bug
// as a missed problem.
func TestHealthyHostsGiveNoErrorOrWarning(t *testing.T) {
	for name, s := range healthySnapshots(t) {
		t.Run(name+" is healthy", func(t *testing.T) {
			for _, f := range Run(s, Options{}) {
				if f.Severity.Rank() >= SeverityWarning.Rank() {
					t.Errorf("%s %s: %s\n  %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, "\n  "))
				}
			}
		})
	}
}

// wantIDs are the error/warning IDs each broken state must give (sorted,
// unique). Info findings (proxy-overhead) are not part of the contract.
var wantIDs = map[string][]string{
	"nat-docker-flushed":      {"dnat-missing"},
	"nat-docker-deleted":      {"docker-chain-missing"},
	"prerouting-jump-deleted": {"docker-jump-missing"},
	"ip-forward-off":          {"ip-forward-disabled"},
	"stale-dnat":              {"dnat-stale"},
	"backend-split":           {"backend-split"},
	"legacy-leftovers":        {"backend-split"},
	"firewall-reload":         {"docker-chain-missing", "forward-accept-missing", "masquerade-missing"},
	// `iptables-save | iptables-restore --noflush`: built-in chains hold
	// every rule twice.
	"saved-rules-restored": {"docker-rule-duplicated"},
	// Docker's 8080 DNAT replaced by one to the same container's port 81.
	"dnat-repointed": {"dnat-missing", "dnat-stale"},
}

// wantIDsByVersion overrides wantIDs for one Docker version ("docker-28.5").
// Why firewall-reload differs: after the flush 28.5's DOCKER-FORWARD is gone
// too, so its per-network rules are docker-chain-missing's finding, while
// 20.10's per-network rules live in the built-in FORWARD chain and are
// reported one by one (FORWARD policy ACCEPT after the flush: warnings);
// 28.5 also lost its raw DROPs (raw-drop-missing).
var wantIDsByVersion = map[string]map[string][]string{
	"docker-28.5": {"firewall-reload": {"docker-chain-missing", "masquerade-missing", "raw-drop-missing"}},
	"docker-29":   {"firewall-reload": {"docker-chain-missing", "masquerade-missing", "raw-drop-missing"}},
}

// withProxyOnByVersion overrides wantWithProxyOn for one Docker version.
// Why: Docker 29 writes no nat "DOCKER -i BRIDGE -j RETURN" (docker-facts
// §2.4), so flushing nat DOCKER takes only the DNATs.
var withProxyOnByVersion = map[string]map[string][]string{
	"docker-29": {"nat-docker-flushed": {"proxy-fallback"}},
}

// wantWithProxyOn are the IDs a broken state adds with userland-proxy on:
// the NAT path is broken but docker-proxy still relays the ports (the
// fixtures' probe.txt shows them answering from the client).
var wantWithProxyOn = map[string][]string{
	// The flush also takes nat DOCKER's "-i BRIDGE -j RETURN" rules, which
	// the proxy-on layout needs (docker-rule-missing).
	"nat-docker-flushed":      {"docker-rule-missing", "proxy-fallback"},
	"nat-docker-deleted":      {"proxy-fallback"},
	"prerouting-jump-deleted": {"proxy-fallback"},
	"firewall-reload":         {"proxy-fallback"},
}

// wantWithProxyOff are the IDs a broken state adds with userland-proxy
// off: a reload also wipes the proxy-off hairpin MASQUERADEs, which then
// matter (docker-rule-missing).
var wantWithProxyOff = map[string][]string{
	"firewall-reload": {"docker-rule-missing"},
}

// TestBrokenFixturesGiveExpectedFindings is the golden test over every
// bundle whose state is not "healthy". A state with no entry in wantIDs
// fails until one is written.
func TestBrokenFixturesGiveExpectedFindings(t *testing.T) {
	for _, b := range bundles(t) {
		if b.state == "healthy" {
			continue
		}
		t.Run(b.dir+" reports "+b.state, func(t *testing.T) {
			want, ok := wantIDs[b.state]
			for prefix, m := range wantIDsByVersion {
				if w, has := m[b.state]; has && strings.HasPrefix(b.dir, prefix+"-") {
					want = w
				}
			}
			if !ok {
				t.Fatalf("no expected findings written for state %q", b.state)
			}
			if strings.Contains(b.dir, "-proxy-on-") {
				add := wantWithProxyOn[b.state]
				for prefix, m := range withProxyOnByVersion {
					if w, has := m[b.state]; has && strings.HasPrefix(b.dir, prefix+"-") {
						add = w
					}
				}
				want = append(slices.Clone(want), add...)
				sort.Strings(want)
			} else {
				want = append(slices.Clone(want), wantWithProxyOff[b.state]...)
				sort.Strings(want)
			}
			var got []string
			for _, f := range Run(b.snap, Options{}) {
				if f.Severity.Rank() >= SeverityWarning.Rank() && !slices.Contains(got, f.ID) {
					got = append(got, f.ID)
				}
			}
			sort.Strings(got)
			if diff := cmp.Diff(want, got); diff != "" {
				for _, f := range Run(b.snap, Options{}) {
					t.Logf("%s %s: %s | %s", f.Severity, f.ID, f.Title, strings.Join(f.Evidence, " | "))
				}
				t.Errorf("finding IDs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEveryCheckHasADocPage: docs/checks/<id>.md exists for each check.
func TestEveryCheckHasADocPage(t *testing.T) {
	for _, c := range All() {
		if _, err := os.Stat(filepath.Join("..", "docs", "checks", c.ID+".md")); err != nil {
			t.Errorf("check %s has no page: %v", c.ID, err)
		}
	}
}

// TestFixesWorkAsWritten: on every real bundle, a repairable finding's
// fix starts with `sudo iptscope doctor --fix`, and no fix asks for a rule
// in a chain the same report says is missing.
func TestFixesWorkAsWritten(t *testing.T) {
	for _, b := range bundles(t) {
		r := NewReport(b.snap, ReportOptions{})
		missing := map[string]bool{}
		for _, f := range r.Findings {
			if f.ID == "docker-chain-missing" {
				for _, a := range append(f.Affected, f.Subject) {
					if a.Chain != "" {
						missing[string(a.Table)+" "+string(a.Chain)] = true
					}
				}
			}
		}
		for _, f := range r.Findings {
			if f.Repairable && !strings.HasPrefix(f.Fix, fixCommand) {
				t.Errorf("%s: %s: fix does not start with the command: %s", b.dir, f.Key, f.Fix)
			}
			if f.ID == "docker-chain-missing" {
				continue
			}
			for tc := range missing {
				tbl, ch, _ := strings.Cut(tc, " ")
				if strings.Contains(f.Fix, "-t "+tbl+" -A "+ch+" ") || strings.Contains(f.Fix, "-t "+tbl+" -I "+ch+" ") {
					t.Errorf("%s: %s: fix adds a rule to %s, which is missing: %s", b.dir, f.Key, tc, f.Fix)
				}
			}
		}
	}
}
