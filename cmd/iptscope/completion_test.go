package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// complete asks the command tree what completes the last word of args, as
// the shell scripts do (`iptscope __complete ARGS...`), and returns the
// candidates without their descriptions.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	out, errOut, code := iptscope(t, "", append([]string{"__complete"}, args...)...)
	if code != exitOK {
		t.Fatalf("__complete %v: exit %d: %s", args, code, errOut)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, ":") {
			break // the directive
		}
		id, _, _ := strings.Cut(l, "\t")
		got = append(got, id)
	}
	return got
}

func TestCompletion(t *testing.T) {
	ns := t.TempDir()
	for _, n := range []string{"dockerhost", "dh2"} {
		if err := os.WriteFile(filepath.Join(ns, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := netnsDir
	netnsDir = ns
	t.Cleanup(func() { netnsDir = old })

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"--skip offers the check IDs with that prefix", []string{"doctor", "--skip", "dnat-"}, []string{"dnat-missing", "dnat-stale"}},
		{"--skip leaves out the IDs already skipped", []string{"doctor", "--skip", "dnat-stale", "--skip", "dnat-"}, []string{"dnat-missing"}},
		{"explain offers the check IDs", []string{"explain", "proxy-"}, []string{"proxy-fallback", "proxy-missing", "proxy-overhead"}},
		{"explain takes one ID only", []string{"explain", "dnat-missing", ""}, nil},
		{"--fail-on offers the severities", []string{"doctor", "--fail-on", ""}, []string{"error", "warning", "info"}},
		{"doctor -o offers table and json", []string{"doctor", "-o", ""}, []string{"table", "json"}},
		{"dump -o offers save as well", []string{"dump", "-o", ""}, []string{"table", "json", "save"}},
		{"checks -o", []string{"checks", "-o", ""}, []string{"table", "json"}},
		{"version -o", []string{"version", "-o", ""}, []string{"text", "json"}},
		{"-t offers the tables iptables knows", []string{"graph", "-t", ""}, []string{"raw", "mangle", "nat", "filter", "security"}},
		{"--format offers graph's formats", []string{"graph", "--format", ""}, []string{"tree", "dot", "mermaid", "json"}},
		{"--backend offers auto, nft and legacy", []string{"dump", "--backend", ""}, []string{"auto", "nft", "legacy"}},
		{"--color offers its modes on any command", []string{"dump", "--color", ""}, []string{"auto", "always", "never"}},
		{"--netns offers the named namespaces", []string{"doctor", "--netns", ""}, []string{"dh2", "dockerhost"}},
		{"collect --netns too", []string{"collect", "--netns", ""}, []string{"dh2", "dockerhost"}},
		{"restore --netns too", []string{"restore", "backup.rules", "--netns", ""}, []string{"dh2", "dockerhost"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := complete(t, c.args...)
			slices.Sort(got)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}

	t.Run("an unknown shell is an error", func(t *testing.T) {
		_, errOut, code := iptscope(t, "", "completion", "bsh")
		if code != exitUnknown || !strings.Contains(errOut, `unknown command "bsh"`) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run("completion "+shell+" writes a script", func(t *testing.T) {
			out, errOut, code := iptscope(t, "", "completion", shell)
			if code != exitOK || !strings.Contains(out, "iptscope") || len(out) < 1000 {
				t.Errorf("exit %d, %d bytes, stderr %s", code, len(out), errOut)
			}
		})
	}
}
