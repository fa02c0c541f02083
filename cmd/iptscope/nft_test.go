package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNftDumpAndGraph: -t NAME with a name iptables does not know selects
// native nftables tables, from a bundle or a file of nft -j output; the
// graph follows verdict-map elements (a deleted element leaves its chain
// unreached).
func TestNftDumpAndGraph(t *testing.T) {
	dir := "../../fixtures/docker-29-nftables-proxy-off-nft-vmap-element-deleted"
	bundle := filepath.Join(dir, "bundle.json")
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"dump-docker-bridges.txt", []string{"dump", "--from", bundle, "-t", "docker-bridges"}},
		{"dump-docker-bridges-save.txt", []string{"dump", "--from", bundle, "-t", "docker-bridges", "-o", "save"}},
		{"dump-nft-json-chain.txt", []string{"dump", "--from", filepath.Join(dir, "nft-ruleset.json"), "--chain", "nat-prerouting-and-output"}},
		{"graph-docker-bridges.txt", []string{"graph", "--from", bundle, "-t", "docker-bridges"}},
		{"graph-docker-bridges.dot", []string{"graph", "--from", bundle, "-t", "docker-bridges", "-o", "dot"}},
	} {
		t.Run(strings.Join(c.args[:1], " ")+" "+c.golden, func(t *testing.T) {
			out, errOut, code := iptscope(t, "", c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, filepath.Join("docker-29-nftables-proxy-off-nft-vmap-element-deleted", c.golden), out)
		})
	}
	t.Run("the unreached in-chain is named", func(t *testing.T) {
		out, _, _ := iptscope(t, "", "graph", "--from", bundle, "-t", "docker-bridges")
		if !strings.Contains(out, "chains nothing enters: filter-forward-in__docker0") {
			t.Errorf("graph does not name filter-forward-in__docker0 as unreached:\n%s", out)
		}
	})
	t.Run("an unknown table lists the nftables tables there are", func(t *testing.T) {
		_, errOut, code := iptscope(t, "", "dump", "--from", bundle, "-t", "nope")
		if code == 0 || !strings.Contains(errOut, "ip docker-bridges, ip6 docker-bridges") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("iptables and nftables tables at once are refused", func(t *testing.T) {
		if _, _, code := iptscope(t, "", "dump", "--from", bundle, "-t", "nat,docker-bridges"); code == 0 {
			t.Error("exit 0")
		}
	})
}
