package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	t.Run("the text form names the build and its toolchain", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "version")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if want := "iptscope " + buildinfo.Version(); !strings.HasPrefix(out, want) {
			t.Errorf("got %q, want it to start with %q", out, want)
		}
	})
	t.Run("the JSON form carries its schema and the build info", func(t *testing.T) {
		out, errOut, code := iptscope(t, "", "version", "-o", "json")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var doc struct {
			Schema    string `json:"schema"`
			Version   string `json:"version"`
			GoVersion string `json:"go_version"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Schema != "iptscope.version/v1" || doc.Version != buildinfo.Version() || doc.GoVersion == "" {
			t.Errorf("got %+v", doc)
		}
	})
	t.Run("--version on the root says the same version", func(t *testing.T) {
		out, _, code := iptscope(t, "", "--version")
		if code != exitOK || !strings.Contains(out, buildinfo.Version()) {
			t.Errorf("exit %d: %q", code, out)
		}
	})
	t.Run("an unknown output format is refused", func(t *testing.T) {
		if _, _, code := iptscope(t, "", "version", "-o", "yaml"); code != exitUnknown {
			t.Errorf("exit %d", code)
		}
	})
}

func TestChecksListsEveryCheck(t *testing.T) {
	out, errOut, code := iptscope(t, "", "checks", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Schema string `json:"schema"`
		Checks []struct {
			ID, Severity, Title, Doc string
			Repairable               bool
			NotRepairedReason        string `json:"not_repaired_reason"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	all := diagnose.All()
	if doc.Schema != "iptscope.checks/v1" || len(doc.Checks) != len(all) {
		t.Fatalf("schema %q, %d checks, want %d", doc.Schema, len(doc.Checks), len(all))
	}
	for i, c := range all {
		got := doc.Checks[i]
		if got.ID != c.ID || got.Severity != string(c.Severity) || got.Title != c.Title || got.Repairable != c.Repairable() {
			t.Errorf("check %d: got %+v, want %s %s %q repairable=%v", i, got, c.ID, c.Severity, c.Title, c.Repairable())
		}
		if !got.Repairable && got.NotRepairedReason == "" {
			t.Errorf("%s: not repairable and no reason", c.ID)
		}
		if _, err := os.Stat(filepath.Join("../..", got.Doc)); err != nil {
			t.Errorf("%s: its doc path: %v", c.ID, err)
		}
	}

	table, _, code := iptscope(t, "", "checks")
	if code != exitOK {
		t.Fatalf("checks: exit %d", code)
	}
	for _, c := range all {
		if !strings.Contains(table, c.ID+" ") {
			t.Errorf("the table lacks %s", c.ID)
		}
	}
	if strings.Contains(table, "\x1b[") || strings.Contains(table, " \n") {
		t.Error("plain table has colour escapes or trailing spaces")
	}
}

func TestExplain(t *testing.T) {
	for _, c := range diagnose.All() {
		t.Run(c.ID+" prints its page byte for byte", func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("../../docs/checks", c.ID+".md"))
			if err != nil {
				t.Fatal(err)
			}
			out, errOut, code := iptscope(t, "", "explain", c.ID)
			if code != exitOK || out != string(want) {
				t.Errorf("exit %d, stderr %q, page differs: %v", code, errOut, out != string(want))
			}
		})
	}
	t.Run("every page under docs/checks belongs to a check", func(t *testing.T) {
		pages, _ := filepath.Glob("../../docs/checks/*.md")
		ids := map[string]bool{"README": true}
		for _, id := range checkIDs() {
			ids[id] = true
		}
		for _, p := range pages {
			if id := strings.TrimSuffix(filepath.Base(p), ".md"); !ids[id] {
				t.Errorf("%s has no check", p)
			}
		}
	})
	t.Run("an unknown ID exits 2 and lists the IDs", func(t *testing.T) {
		_, errOut, code := iptscope(t, "", "explain", "dnat-mising")
		if code != exitUnknown || !strings.Contains(errOut, `unknown check "dnat-mising" (did you mean dnat-missing? checks: docker-unreachable, `) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("an ID far from every check gets no guess", func(t *testing.T) {
		_, errOut, _ := iptscope(t, "", "explain", "firewall")
		if strings.Contains(errOut, "did you mean") {
			t.Errorf("stderr %s", errOut)
		}
	})
	t.Run("no ID is a usage error", func(t *testing.T) {
		if _, _, code := iptscope(t, "", "explain"); code != exitUnknown {
			t.Errorf("exit %d", code)
		}
	})
}
