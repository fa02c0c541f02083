package nft

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors are *Error,
// and that what it accepts prints back (JSON) into a ruleset with the
// same text.
//
// Seeds: testdata/fuzz/FuzzParse (a healthy Docker 29 nftables capture
// trimmed, a user table) plus every fixture's nft-ruleset.json.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "t", "handle": 1}}]}`))
	files, _ := filepath.Glob("../../fixtures/docker-29-nftables-proxy-o*-healthy/nft-ruleset.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile("testdata/extra.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		text := rs.Text()
		rs2, err := Parse(rs.JSON())
		if err != nil {
			t.Fatalf("JSON() does not parse: %v", err)
		}
		if got := rs2.Text(); got != text {
			t.Fatalf("text after a JSON round trip differs:\n%s\n---\n%s", got, text)
		}
	})
}
