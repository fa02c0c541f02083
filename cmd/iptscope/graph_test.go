package main

import (
	"path/filepath"
	"regexp"
	"testing"
)

// toolVersion is the "tool_version" of a JSON document, which goldens
// hold as "TOOL_VERSION" (it is the build's, not the input's).
var toolVersion = regexp.MustCompile(`"tool_version": "[^"]*"`)

func normalizeJSON(s string) string {
	return toolVersion.ReplaceAllString(s, `"tool_version": "TOOL_VERSION"`)
}

func TestGraphJSONGolden(t *testing.T) {
	dir := "../../fixtures/docker-28.5-nft"
	for _, c := range []struct{ file, input string }{
		{"graph.json", "iptables-save.txt"},
		{"graph-nat-list.json", "nat.list.txt"},
	} {
		t.Run(c.file, func(t *testing.T) {
			out, errOut, code := iptscope(t, "", "graph", "--from", filepath.Join(dir, c.input), "--format", "json")
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

func TestGraphOutputFlagIsFormat(t *testing.T) {
	save := "../../fixtures/docker-28.5-nft/iptables-save.txt"
	for _, format := range []string{"tree", "dot", "mermaid", "json"} {
		t.Run(format, func(t *testing.T) {
			want, _, code := iptscope(t, "", "graph", "--from", save, "--format", format)
			if code != 0 {
				t.Fatalf("--format %s: exit %d", format, code)
			}
			for _, flag := range []string{"-o", "--output"} {
				got, errOut, code := iptscope(t, "", "graph", "--from", save, flag, format)
				if code != 0 || got != want {
					t.Errorf("graph %s %s: exit %d (%s), output differs from --format %s", flag, format, code, errOut, format)
				}
			}
		})
	}
}
