package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestMain keeps the output independent of the shell the tests run in:
// COLUMNS would set the width of the plain output the goldens hold, and
// NO_COLOR and TERM the colour of the terminal tests.
func TestMain(m *testing.M) {
	for _, v := range []string{"COLUMNS", "NO_COLOR", "TERM"} {
		os.Unsetenv(v)
	}
	os.Exit(m.Run())
}

// iptscope runs the command line in-process and returns stdout, stderr and
// the exit code.
func iptscope(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// fixtureDirs lists the real captures under fixtures/ whose iptables-save
// is not empty (backend-split captures show the host's empty backend).
func fixtureDirs(t *testing.T) []string { return listFixtures(t, false) }

// allFixtureDirs lists every capture, empty dumps included.
func allFixtureDirs(t *testing.T) []string { return listFixtures(t, true) }

func listFixtures(t *testing.T, all bool) []string {
	t.Helper()
	dirs, err := filepath.Glob("../../fixtures/*/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no fixtures found under fixtures/")
	}
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.Size() > 0 || all {
			out = append(out, filepath.Dir(d))
		}
	}
	return out
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/iptscope -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	for _, dir := range allFixtureDirs(t) {
		name := filepath.Base(dir)
		save := filepath.Join(dir, "iptables-save.txt")
		if st, err := os.Stat(save); err == nil && st.Size() == 0 {
			// backend-split: the host's own iptables shows nothing.
			t.Run(name+" empty dump", func(t *testing.T) {
				if _, errOut, code := iptscope(t, "", "graph", "--from", save); code != exitUnknown || !strings.Contains(errOut, "no iptables rules") {
					t.Errorf("exit %d: %s", code, errOut)
				}
			})
			continue
		}
		cases := []struct {
			file string
			args []string
		}{
			{"graph.txt", []string{"graph", "--from", save}},
		}
		// Every output format once per Docker version and backend; the
		// tree for every captured state.
		if !strings.Contains(name, "-proxy-") {
			cases = append(cases, []struct {
				file string
				args []string
			}{
				{"graph-nat.dot", []string{"graph", "--from", save, "-t", "nat", "--format", "dot"}},
				{"graph-filter.mmd", []string{"graph", "--from", save, "-t", "filter", "--format", "mermaid"}},
				{"dump.txt", []string{"dump", "--from", save}},
				{"dump-nat-list.txt", []string{"dump", "--from", filepath.Join(dir, "nat.list.txt")}},
			}...)
		}
		for _, c := range cases {
			t.Run(name+" "+strings.Join(c.args[:1], " ")+" "+c.file, func(t *testing.T) {
				out, errOut, code := iptscope(t, "", c.args...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				golden(t, filepath.Join(name, c.file), out)
			})
		}
	}
}

func TestDumpSavePrintsTheInputBack(t *testing.T) {
	for _, dir := range allFixtureDirs(t) {
		for _, f := range []string{"iptables-save.txt", "ip6tables-save.txt"} {
			path := filepath.Join(dir, f)
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(path, func(t *testing.T) {
				if len(want) == 0 {
					// ip6tables off (Docker 20.10): an empty dump is refused as
					// nothing to inspect.
					_, errOut, code := iptscope(t, "", "dump", "--from", path, "-o", "save")
					if code != exitUnknown || !strings.Contains(errOut, "no iptables rules") {
						t.Errorf("empty dump: exit %d, %s", code, errOut)
					}
					return
				}
				out, errOut, code := iptscope(t, "", "dump", "--from", path, "-o", "save")
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				if out != string(want) {
					t.Errorf("dump -o save is not byte-identical to %s", path)
				}
			})
		}
	}
}

func TestListAndSaveFormsRegenerateTheSameRules(t *testing.T) {
	for _, dir := range fixtureDirs(t) {
		for _, table := range []string{"nat", "filter", "raw"} {
			list := filepath.Join(dir, table+".list.txt")
			if _, err := os.Stat(list); err != nil {
				continue
			}
			t.Run(list, func(t *testing.T) {
				fromSave, errOut, code := iptscope(t, "", "dump", "--from", filepath.Join(dir, "iptables-save.txt"), "-t", table, "-o", "save")
				if code != 0 {
					if strings.Contains(errOut, "is not in the input") {
						// The backend had no such table (nft creates raw only when used):
						// then the -L text must list no rules either.
						fromList, _, _ := iptscope(t, "", "dump", "--from", list, "-o", "save")
						if strings.Contains(fromList, "\n-A ") || strings.Contains(fromList, "] -A ") {
							t.Fatalf("save has no %s table but -L lists rules:\n%s", table, fromList)
						}
						return
					}
					t.Fatalf("exit %d: %s", code, errOut)
				}
				fromList, errOut, code := iptscope(t, "", "dump", "--from", list, "-o", "save")
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				if diff := cmp.Diff(rulesOnly(fromSave), rulesOnly(fromList)); diff != "" {
					t.Errorf("-L and save forms differ (-save +list):\n%s", diff)
				}
			})
		}
	}
}

// rulesOnly keeps the -A lines without counters (the -L text was taken a
// moment after the save text, so counters may differ).
func rulesOnly(save string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "[") {
			if i := strings.Index(l, "] "); i > 0 {
				l = l[i+2:]
			}
		}
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return out
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("*nat\n:PREROUTING ACCEPT [0:0]\n-A DOCKER -j RETURN\nCOMMIT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fx := filepath.Join(fixtureDirs(t)[0], "iptables-save.txt")
	for _, c := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a rule for an undeclared chain names its line", []string{"dump", "--from", bad}, "line 3"},
		{"a missing file is named", []string{"graph", "--from", filepath.Join(dir, "nope.txt")}, "nope.txt"},
		{"an unknown output format is refused", []string{"dump", "--from", fx, "-o", "yaml"}, `unknown output format "yaml"`},
		{"an unknown graph format is refused", []string{"graph", "--from", fx, "--format", "png"}, `unknown graph format "png"`},
		{"an unknown table is refused", []string{"dump", "--from", fx, "-t", "nta"}, `unknown table "nta"`},
		{"a missing chain lists the chains there are", []string{"dump", "--from", fx, "--chain", "NOPE"}, "nat/DOCKER"},
		{"an unknown flag is a usage error", []string{"dump", "--frm", fx}, "unknown flag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := iptscope(t, "", c.args...)
			if code != exitUnknown {
				t.Errorf("exit %d, want %d", code, exitUnknown)
			}
			if !strings.Contains(errOut, c.wantErr) || !strings.HasPrefix(errOut, "iptscope: ") {
				t.Errorf("stderr %q lacks %q", errOut, c.wantErr)
			}
		})
	}
}

func TestReadsStdin(t *testing.T) {
	fx, err := os.ReadFile(filepath.Join(fixtureDirs(t)[0], "nat.list.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := iptscope(t, string(fx), "graph", "--from", "-", "--format", "json")
	if code != 0 || !strings.Contains(out, `"schema": "iptscope.graph/v1"`) {
		t.Fatalf("exit %d, stderr %s, out %s", code, errOut, out)
	}
}

func TestDOTOfEveryFixtureRendersWithGraphviz(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("IPTSCOPE_E2E") != "" {
			t.Fatal("dot is required here: apt-get install graphviz")
		}
		t.Skip("dot not installed (apt-get install graphviz)")
	}
	for _, dir := range fixtureDirs(t) {
		t.Run(dir, func(t *testing.T) {
			out, errOut, code := iptscope(t, "", "graph", "--from", filepath.Join(dir, "iptables-save.txt"), "--format", "dot")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			cmd := exec.Command(dot, "-Tsvg", "-o", os.DevNull)
			cmd.Stdin = strings.NewReader(out)
			if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
				t.Fatalf("dot: %v: %s", err, msg)
			}
		})
	}
}

func TestBundleGivesBackTheRulesOfEachBackend(t *testing.T) {
	bundles, _ := filepath.Glob("../../fixtures/*/bundle.json")
	if len(bundles) == 0 {
		t.Fatal("no bundle fixtures under fixtures/*/bundle.json")
	}
	for _, b := range bundles {
		dir := filepath.Dir(b)
		for _, backend := range []string{"nft", "legacy"} {
			for _, fam := range []struct{ flag, file string }{{"", "iptables-save"}, {"-6", "ip6tables-save"}} {
				want, err := os.ReadFile(filepath.Join(dir, fam.file+"."+backend+".txt"))
				if err != nil {
					continue // captured before per-backend dumps were kept
				}
				name := filepath.Base(dir) + " " + backend + " " + fam.file
				t.Run(name, func(t *testing.T) {
					args := []string{"dump", "--from", b, "--backend", backend, "-o", "save"}
					if fam.flag != "" {
						args = append(args, fam.flag)
					}
					out, errOut, code := iptscope(t, "", args...)
					if len(want) == 0 {
						if code != exitUnknown || !strings.Contains(errOut, "empty") {
							t.Errorf("empty dump: exit %d, stderr %s", code, errOut)
						}
						return
					}
					if code != 0 {
						t.Fatalf("exit %d: %s", code, errOut)
					}
					if rulesOf(out) != rulesOf(string(want)) {
						t.Errorf("bundle's %s rules differ from %s.%s.txt", backend, fam.file, backend)
					}
				})
			}
		}
	}
}

// rulesOf drops "#" comment lines (they carry the time of each save).
func rulesOf(save string) string {
	var b strings.Builder
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
