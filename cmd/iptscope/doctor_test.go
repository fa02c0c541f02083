package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
	"github.com/iptscope/iptscope/snapshot"
)

// bundleFixtures lists fixtures/*/bundle.json.
func bundleFixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../fixtures/*/bundle.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bundle fixtures: %v", err)
	}
	return files
}

// fixtureState is the part of a fixture folder after "-proxy-on-" or
// "-proxy-off-": "healthy", "stale-dnat", ...
func fixtureState(dir string) string {
	for _, sep := range []string{"-proxy-on-", "-proxy-off-"} {
		if i := strings.Index(dir, sep); i >= 0 {
			return dir[i+len(sep):]
		}
	}
	return "healthy"
}

// doctorWantIDs are the IDs each broken state must report at warning or
// above (the diagnose package checks the exact sets).
var doctorWantIDs = map[string][]string{
	"nat-docker-flushed":      {"dnat-missing"},
	"nat-docker-deleted":      {"docker-chain-missing"},
	"prerouting-jump-deleted": {"docker-jump-missing"},
	"ip-forward-off":          {"ip-forward-disabled"},
	"stale-dnat":              {"dnat-stale"},
	"backend-split":           {"backend-split"},
	"legacy-leftovers":        {"backend-split"},
	"firewall-reload":         {"docker-chain-missing", "masquerade-missing"},
	"saved-rules-restored":    {"docker-rule-duplicated"},
	"dnat-repointed":          {"dnat-missing", "dnat-stale"},
}

func decodeReport(t *testing.T, out string) diagnose.Report {
	t.Helper()
	var r diagnose.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor -o json is not JSON: %v\n%s", err, out)
	}
	if r.Schema != "iptscope.doctor/v1" {
		t.Errorf("schema %q", r.Schema)
	}
	return r
}

func TestDoctorGolden(t *testing.T) {
	for _, bundle := range bundleFixtures(t) {
		dir := filepath.Base(filepath.Dir(bundle))
		state := fixtureState(dir)
		t.Run(dir+" text report matches its golden file", func(t *testing.T) {
			out, _, _ := iptscope(t, "", "doctor", "--from", bundle)
			golden(t, filepath.Join("doctor", dir+".txt"), out)
		})
		t.Run(dir+" json report matches its golden file and exit code", func(t *testing.T) {
			out, errOut, code := iptscope(t, "", "doctor", "--from", bundle, "-o", "json")
			golden(t, filepath.Join("doctor", dir+".json"), out)
			r := decodeReport(t, out)
			var got []string
			for _, f := range r.Findings {
				if f.Severity.Rank() >= diagnose.SeverityWarning.Rank() && !slices.Contains(got, f.ID) {
					got = append(got, f.ID)
				}
			}
			if strings.Contains(dir, "-nftables-") {
				// Docker 29's nftables backend: table docker-bridges is
				// judged (the IDs per state: diagnose's
				// TestNftablesBackendBundles); a user's own table's drop
				// is info, as DOCKER-USER's.
				want := exitProblems
				if state == "healthy" || state == "nft-user-table-drop" {
					want = exitOK
				}
				if code != want || r.Partial || !slices.ContainsFunc(r.Findings, func(f diagnose.Finding) bool { return f.ID == "nftables-backend" }) {
					t.Errorf("nftables backend: exit %d (want %d), partial %v, findings %v: %s", code, want, r.Partial, got, errOut)
				}
				return
			}
			if state == "healthy" {
				if code != exitOK || r.Status != diagnose.StatusOK || len(got) > 0 {
					t.Errorf("healthy host: exit %d, status %s, findings %v: %s", code, r.Status, got, errOut)
				}
				return
			}
			want, ok := doctorWantIDs[state]
			if !ok {
				t.Fatalf("no expected IDs for state %q", state)
			}
			if strings.HasPrefix(dir, "docker-20.10-") && state == "firewall-reload" {
				want = append(want, "forward-accept-missing")
			}
			if code != exitProblems || r.Status != diagnose.StatusProblems {
				t.Errorf("exit %d, status %s (want 1, problems): %s", code, r.Status, errOut)
			}
			for _, id := range want {
				if !slices.Contains(got, id) {
					t.Errorf("missing finding %s (got %v)", id, got)
				}
			}
		})
	}
}

func TestDoctorFlagsAndInputs(t *testing.T) {
	flushed := "../../fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json"
	healthy := "../../fixtures/docker-28.5-nft-proxy-on-healthy/bundle.json"
	raw := "../../fixtures/docker-28.5-nft-proxy-off-healthy/iptables-save.txt"
	rawBroken := "../../fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/iptables-save.txt"

	t.Run("an unknown --skip ID exits 2 and lists the IDs", func(t *testing.T) {
		_, errOut, code := iptscope(t, "", "doctor", "--from", flushed, "--skip", "no-such-check")
		if code != exitUnknown || !strings.Contains(errOut, "dnat-missing") || !strings.Contains(errOut, "no-such-check") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("skipping the only failing check exits 0", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "doctor", "--from", healthy, "--fail-on", "info", "--skip", "proxy-overhead", "-o", "json")
		r := decodeReport(t, out)
		if code != exitOK || r.Status != diagnose.StatusOK {
			t.Errorf("exit %d, status %s: %s", code, r.Status, errOut)
		}
		if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "skipped checks: proxy-overhead") }) {
			t.Errorf("no note about the skipped check: %v", r.Notes)
		}
	})
	t.Run("skipping a check never makes a broken port look fine", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "doctor", "--from", flushed, "--skip", "dnat-missing", "-o", "json")
		r := decodeReport(t, out)
		if code != exitProblems || r.Status != diagnose.StatusProblems {
			t.Errorf("exit %d, status %s: %s", code, r.Status, errOut)
		}
		broken := 0
		for _, p := range r.Ports {
			if p.Path == diagnose.PathBroken {
				broken++
			}
		}
		if broken != 5 {
			t.Errorf("%d broken ports, want 5 (every published non-loopback port of a proxy-off host with nat DOCKER flushed): %+v", broken, r.Ports)
		}
		if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "broken") }) {
			t.Errorf("no note about the broken ports: %v", r.Notes)
		}
	})
	t.Run("a raw dump of a broken host names the cause and exits 1", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "doctor", "--from", rawBroken, "-o", "json")
		r := decodeReport(t, out)
		if code != exitProblems || !r.Partial || len(r.Findings) == 0 || r.Findings[0].ID != "dnat-missing" || len(r.Findings[0].Affected) != 6 {
			t.Errorf("exit %d, partial %v: %+v %s", code, r.Partial, r.Findings, errOut)
		}
		if len(r.NotChecked) == 0 || !strings.HasPrefix(r.Next, "next: ") {
			t.Errorf("want not_checked and next, got %+v / %q", r.NotChecked, r.Next)
		}
	})
	t.Run("--fail-on error ignores warnings and --fail-on info counts infos", func(t *testing.T) {
		// The healthy proxy-on host has one info finding (proxy-overhead).
		if _, errOut, code := iptscope(t, "", "doctor", "--from", healthy, "--fail-on", "error"); code != exitOK {
			t.Errorf("--fail-on error: exit %d: %s", code, errOut)
		}
		if _, errOut, code := iptscope(t, "", "doctor", "--from", healthy, "--fail-on", "info"); code != exitProblems {
			t.Errorf("--fail-on info: exit %d: %s", code, errOut)
		}
	})
	t.Run("an unknown --fail-on or -o exits 2", func(t *testing.T) {
		if _, _, code := iptscope(t, "", "doctor", "--from", healthy, "--fail-on", "fatal"); code != exitUnknown {
			t.Errorf("--fail-on fatal: exit %d", code)
		}
		if _, _, code := iptscope(t, "", "doctor", "--from", healthy, "-o", "yaml"); code != exitUnknown {
			t.Errorf("-o yaml: exit %d", code)
		}
	})
	t.Run("a raw dump gives a partial report with status unknown and exit 2", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "doctor", "--from", raw, "-o", "json")
		r := decodeReport(t, out)
		if code != exitUnknown || r.Status != diagnose.StatusUnknown || !r.Partial {
			t.Errorf("exit %d, status %s, partial %v: %s", code, r.Status, r.Partial, errOut)
		}
		if len(r.Findings) == 0 || r.Findings[0].ID != "docker-unreachable" || r.Findings[0].Severity != diagnose.SeverityInfo {
			t.Errorf("want a docker-unreachable info finding, got %+v", r.Findings)
		}
		if !strings.Contains(errOut, "partial") {
			t.Errorf("stderr does not say the check is partial: %s", errOut)
		}
	})
	t.Run("a raw dump on stdin reads the same as from a file", func(t *testing.T) {
		data, err := os.ReadFile(raw)
		if err != nil {
			t.Fatal(err)
		}
		out, _, code := iptscope(t, string(data), "doctor", "--from", "-")
		if code != exitUnknown || !strings.HasPrefix(out, "unknown: docker layout 28 (inferred from the rules)") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("an empty or missing file exits 2", func(t *testing.T) {
		if _, _, code := iptscope(t, "", "doctor", "--from", "-"); code != exitUnknown {
			t.Errorf("empty stdin: exit %d", code)
		}
		if _, _, code := iptscope(t, "", "doctor", "--from", "no/such/file"); code != exitUnknown {
			t.Errorf("missing file: exit %d", code)
		}
	})
	t.Run("--netns does not combine with --from", func(t *testing.T) {
		if _, _, code := iptscope(t, "", "doctor", "--from", healthy, "--netns", "x"); code != exitUnknown {
			t.Errorf("exit %d", code)
		}
	})
}

func TestOneLoaderForEveryFrom(t *testing.T) {
	v4 := "../../fixtures/docker-28.5-nft-proxy-off-healthy/iptables-save.txt"
	t.Run("-6 with an IPv4 dump says so", func(t *testing.T) {
		_, errOut, code := iptscope(t, "", "dump", "--from", v4, "-6")
		if code != exitUnknown || !strings.Contains(errOut, "IPv4 dump") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("a malformed dump names the line for doctor as for dump", func(t *testing.T) {
		bad := "*nat\n-A DOCKER -j\nCOMMIT\n"
		_, e1, c1 := iptscope(t, bad, "doctor", "--from", "-")
		_, e2, c2 := iptscope(t, bad, "dump", "--from", "-")
		if c1 != exitUnknown || c2 != exitUnknown || e1 != e2 {
			t.Errorf("doctor: exit %d %q; dump: exit %d %q", c1, e1, c2, e2)
		}
	})
	t.Run("doctor FILE suggests --from FILE", func(t *testing.T) {
		_, errOut, code := iptscope(t, "", "doctor", v4)
		if code != exitUnknown || !strings.Contains(errOut, "did you mean --from "+v4) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("--yes without --fix is an error", func(t *testing.T) {
		for _, flag := range []string{"--yes", "--persist", "--backup-dir=/tmp/x"} {
			if _, errOut, code := iptscope(t, "", "doctor", "--from", v4, flag); code != exitUnknown || !strings.Contains(errOut, "add --fix") {
				t.Errorf("%s: exit %d: %s", flag, code, errOut)
			}
		}
	})
	t.Run("--port narrows the report to the port asked for", func(t *testing.T) {
		out, _, _ := iptscope(t, "", "doctor", "--from", "../../fixtures/docker-28.5-nft-proxy-off-stale-dnat/bundle.json", "--port", "7000", "-o", "json")
		r := decodeReport(t, out)
		if len(r.Findings) != 0 || len(r.Ports) != 1 || r.Ports[0].HostPort != 7000 {
			t.Errorf("--port 7000: findings %v, ports %+v", r.Findings, r.Ports)
		}
		out, _, code := iptscope(t, "", "doctor", "--from", "../../fixtures/docker-28.5-nft-proxy-off-stale-dnat/bundle.json", "--port", "8080/tcp", "-o", "json")
		r = decodeReport(t, out)
		if code != exitProblems || len(r.Findings) != 1 || r.Findings[0].ID != "dnat-stale" || len(r.Ports) != 1 {
			t.Errorf("--port 8080/tcp: exit %d, findings %v, ports %+v", code, r.Findings, r.Ports)
		}
		out, _, _ = iptscope(t, "", "doctor", "--from", "../../fixtures/docker-28.5-nft-proxy-off-stale-dnat/bundle.json", "--container", "multi", "-o", "json")
		r = decodeReport(t, out)
		if len(r.Ports) != 4 {
			t.Errorf("--container multi: ports %+v", r.Ports)
		}
		if _, errOut, code := iptscope(t, "", "doctor", "--from", v4, "--port", "http"); code != exitUnknown {
			t.Errorf("--port http: exit %d: %s", code, errOut)
		}
	})
}

// TestMemoryBudget: doctor's soft memory limit is the minimum while the
// input is read and grows with the input's rules, and the limit of before
// comes back when the run ends; GOMEMLIMIT wins.
func TestMemoryBudget(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	env := func(v string) *globals {
		return &globals{getenv: func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		}}
	}
	bigDump := func(rules int) *snapshot.Snapshot {
		c := &parse.Chain{Name: "DOCKER", Rules: make([]*parse.Rule, rules)}
		rs := &parse.Ruleset{Tables: []*parse.Table{{Name: parse.TableNAT, Chains: []*parse.Chain{c}}}}
		return &snapshot.Snapshot{Rules: []snapshot.RuleDump{{Ruleset: rs}}}
	}

	t.Run("GOMEMLIMIT set: no budget", func(t *testing.T) {
		b := budgetMemory(env("1GiB"))
		if b != nil || limit() != before {
			t.Fatalf("budget %v, limit %d: want none and %d", b, limit(), before)
		}
	})
	t.Run("the minimum while reading, the rules' budget after, the limit of before at the end", func(t *testing.T) {
		b := budgetMemory(env(""))
		if b == nil || limit() != budgetMinimum {
			t.Fatalf("limit %d, want %d", limit(), budgetMinimum)
		}
		if again := budgetMemory(env("")); again != nil {
			t.Fatal("a second budget while one runs")
		}
		b.fit(bigDump(10))
		if limit() != budgetMinimum {
			t.Errorf("10 rules: limit %d, want the minimum %d", limit(), budgetMinimum)
		}
		b.fit(bigDump(200000))
		if want := int64(200000 * budgetPerRule); limit() != want {
			t.Errorf("200,000 rules: limit %d, want %d", limit(), want)
		}
		b.stop()
		if limit() != before {
			t.Errorf("stopped: limit %d, want %d", limit(), before)
		}
		if b := budgetMemory(env("")); b == nil {
			t.Error("no budget after the last one stopped")
		} else {
			b.stop()
		}
	})
}

// TestMemoryBudgetLiftsOnlyWhenTheHeapStaysNearIt: a live heap within
// budgetHeadroom of the limit at one collection, then under it at the
// next, keeps the budget (what a busy machine's collection sometimes
// reports); near it at budgetNearRuns collections in a row lifts it.
func TestMemoryBudgetLiftsOnlyWhenTheHeapStaysNearIt(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	b := budgetMemory(&globals{getenv: func(string) string { return "" }})
	if b == nil {
		t.Fatal("no budget")
	}
	defer b.stop()
	// Only the test's own collections: none while it fills the heap.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b.mu.Lock()
	b.limit = 48 << 20 // what the watch compares with; the runtime's stays higher
	b.mu.Unlock()
	// collect runs one collection and waits for the watch to have seen it.
	seen := func() (int, bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.near, b.lifted
	}
	collect := func(wantNear int) {
		t.Helper()
		runtime.GC()
		deadline := time.Now().Add(10 * time.Second)
		for {
			near, lifted := seen()
			if near == wantNear || lifted {
				return
			}
			if time.Now().After(deadline) {
				live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
				metrics.Read(live)
				t.Fatalf("the watch saw %d collections near the limit, want %d (live heap %d MiB, limit %d MiB)", near, wantNear, live[0].Value.Uint64()>>20, 48)
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
	}
	fill := func() {
		budgetTestHeap = nil
		for range 44 {
			budgetTestHeap = append(budgetTestHeap, make([]byte, 1<<20))
		}
	}
	fill()
	collect(1)
	if _, lifted := seen(); lifted {
		t.Fatal("lifted after one collection near the limit")
	}
	budgetTestHeap = nil
	collect(0)
	fill()
	collect(1)
	if _, lifted := seen(); lifted {
		t.Fatal("lifted though the collection between found the heap well under the limit")
	}
	collect(2)
	if _, lifted := seen(); !lifted {
		t.Fatal("not lifted after two collections in a row near the limit")
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("lifted: limit %d, want the limit of before, %d", got, before)
	}
	budgetTestHeap = nil
}

// budgetTestHeap is the live heap of TestMemoryBudgetLiftsOnlyWhenTheHeapStaysNearIt
// (a package variable: a local's value is dead to the collector once the
// function no longer reads it).
var budgetTestHeap [][]byte
