package snapshot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestNftablesPartRoundTrips: the Docker 29 nftables-backend bundles hold
// the captured ruleset, which Load parses; encoding and loading again
// keeps it.
func TestNftablesPartRoundTrips(t *testing.T) {
	dirs, _ := filepath.Glob("../fixtures/docker-29-nftables-*")
	if len(dirs) == 0 {
		t.Fatal("no docker-29-nftables fixtures")
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d)+" keeps its nftables ruleset", func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(d, "bundle.json"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Load(data)
			if err != nil {
				t.Fatal(err)
			}
			if !s.NftRead() || s.Nftables.Error != "" {
				t.Fatalf("nftables part not read: %+v", s.Nftables)
			}
			out, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if s2.Nftables.Ruleset.Text() != s.Nftables.Ruleset.Text() || s2.Nftables.Text != s.Nftables.Text {
				t.Error("the ruleset changed in a round trip")
			}
		})
	}
	t.Run("a bundle without the part has none", func(t *testing.T) {
		s, err := Load([]byte(`{"schema": "` + Schema + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if s.NftRead() || s.NftTable("ip", "docker-bridges") != nil {
			t.Error("a bundle from before nftables was read claims a ruleset")
		}
	})
}
