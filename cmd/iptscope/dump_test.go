package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDumpJSONGolden(t *testing.T) {
	dir := "../../fixtures/docker-28.5-nft"
	for _, c := range []struct {
		file string
		args []string
	}{
		{"dump-nat.json", []string{"--from", filepath.Join(dir, "iptables-save.txt"), "-t", "nat"}},
		{"dump-nat-list.json", []string{"--from", filepath.Join(dir, "nat.list.txt")}},
	} {
		t.Run(c.file, func(t *testing.T) {
			out, errOut, code := iptscope(t, "", append([]string{"dump", "-o", "json"}, c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !toolVersion.MatchString(out) {
				t.Errorf("no tool_version in:\n%s", out)
			}
			golden(t, filepath.Join("docker-28.5-nft", c.file), normalizeJSON(out))
		})
	}
}

// TestDumpAndGraphJSONNameTablesAlike: both say "table" for a table's name.
func TestDumpAndGraphJSONNameTablesAlike(t *testing.T) {
	save := "../../fixtures/docker-28.5-nft/iptables-save.txt"
	dump, _, _ := iptscope(t, "", "dump", "--from", save, "-o", "json")
	graph, _, _ := iptscope(t, "", "graph", "--from", save, "-o", "json")
	for name, out := range map[string]string{"dump": dump, "graph": graph} {
		if !strings.Contains(out, "\n      \"table\": \"nat\",\n") {
			t.Errorf("%s -o json does not name its nat table with \"table\"", name)
		}
		if strings.Contains(out, "\n      \"name\": \"nat\"") {
			t.Errorf("%s -o json names a table with \"name\"", name)
		}
	}
}
