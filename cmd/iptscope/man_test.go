package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestManPagesAreUpToDate regenerates the manual pages and compares them
// with docs/man: a command whose help changed needs `go generate
// ./cmd/iptscope` (or this test with -update).
func TestManPagesAreUpToDate(t *testing.T) {
	const dir = "../../docs/man"
	tmp := t.TempDir()
	if _, errOut, code := iptscope(t, "", "man", tmp); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if *update {
		old, _ := filepath.Glob(filepath.Join(dir, "*.8"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		if _, errOut, code := iptscope(t, "", "man", dir); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		return
	}
	names := func(d string) []string {
		files, _ := filepath.Glob(filepath.Join(d, "*.8"))
		var out []string
		for _, f := range files {
			out = append(out, filepath.Base(f))
		}
		slices.Sort(out)
		return out
	}
	got, want := names(tmp), names(dir)
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v, docs/man has %v (run go generate ./cmd/iptscope)", got, want)
	}
	for _, name := range got {
		g, _ := os.ReadFile(filepath.Join(tmp, name))
		w, _ := os.ReadFile(filepath.Join(dir, name))
		if diff := cmp.Diff(string(w), string(g)); diff != "" {
			t.Errorf("docs/man/%s is out of date (run go generate ./cmd/iptscope) (-docs +now):\n%s", name, diff)
		}
	}
	for _, want := range []string{"iptscope.8", "iptscope-doctor.8", "iptscope-explain.8", "iptscope-completion-bash.8"} {
		if !slices.Contains(got, want) {
			t.Errorf("no page %s", want)
		}
	}
	t.Run("the pages carry no date and the hidden man command has none", func(t *testing.T) {
		root, _ := os.ReadFile(filepath.Join(tmp, "iptscope.8"))
		if !strings.Contains(string(root), `.TH "IPTSCOPE" "8" "" "iptscope" "iptscope manual"`) {
			t.Errorf("header: %.120s", root)
		}
		if slices.Contains(got, "iptscope-man.8") {
			t.Error("the hidden man command has a page")
		}
	})
}
