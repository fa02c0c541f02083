package snapshot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iptscope/iptscope/parse"
)

// TestFastDecodeMatchesEncodingJSON: Load's fast decoder gives exactly
// what encoding/json gives, on every fixture's bundle and on documents
// that stress the difference between the two (case of keys, duplicate
// keys, escapes, invalid UTF-8, nulls).
func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	bundles, err := filepath.Glob("../fixtures/*/bundle.json")
	if err != nil || len(bundles) < 50 {
		t.Fatalf("fixtures: %d bundles, %v", len(bundles), err)
	}
	docs := map[string][]byte{}
	for _, b := range bundles {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(filepath.Dir(b))] = data
	}
	docs["odd keys and values"] = []byte(`{"SCHEMA":"x","schema":"iptscope.snapshot/v1","host":{"hostname":"a\u0000b\ud800\u001b[31m","Hostname":"dup"},` +
		`"rules":[{"backend":"nft","family":"ipv4","raw":"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n","reader":"netlink"}],"proxies":null,` +
		`"docker":{"version":"28.5.1","containers":[{"name":"w` + "\xff\xfe" + `","ports":[{"host_port":65535,"container_port":1,"proto":"tcp"}]}]},"host":{"hostname":"last"}}`)
	ignore := cmpopts.IgnoreTypes(&parse.Ruleset{})
	for name, data := range docs {
		var want Snapshot
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", name, err)
		}
		got, err := Load(data)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		want.ParseRules()
		if d := cmp.Diff(&want, got, ignore); d != "" {
			t.Errorf("%s: Load differs from encoding/json (-want +got):\n%s", name, d)
		}
	}
}

// TestLoadErrorsReadAsEncodingJSON: a document the decoders refuse gets
// encoding/json's message (the fast decoder's never shows); the field
// path may differ (Load decodes the rules on their own).
func TestLoadErrorsReadAsEncodingJSON(t *testing.T) {
	for _, doc := range []string{
		`{"schema":"iptscope.snapshot/v1","rules":[{"raw":5}]}`,
		`{"schema":"iptscope.snapshot/v1","host":[]}`,
		`{"schema":"iptscope.snapshot/v1",`,
	} {
		var s Snapshot
		want := json.Unmarshal([]byte(doc), &s)
		_, err := Load([]byte(doc))
		if want == nil || err == nil {
			t.Fatalf("%s: want an error, encoding/json %v, Load %v", doc, want, err)
		}
		w := want.Error()
		if i := strings.Index(w, " Go struct field "); i > 0 {
			w = w[:i]
		}
		if got := err.Error(); !strings.HasPrefix(got, "reading snapshot: ") || !strings.Contains(got, w) {
			t.Errorf("%s: Load says %q, encoding/json %q", doc, got, want)
		}
	}
}

// FuzzLoad: Load never panics, and whenever encoding/json accepts a
// document that passes Validate, Load gives the same snapshot.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"schema":"iptscope.snapshot/v1","rules":[{"backend":"nft","family":"ipv4","raw":"*nat\nCOMMIT\n"}]}`))
	f.Add([]byte(`{"schema":"iptscope.snapshot/v1","docker":{"containers":[{"name":"\u00e9","ports":[{"host_port":1}]}]}}`))
	f.Add([]byte(`{"schema":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Load(data)
		var want Snapshot
		if json.Unmarshal(data, &want) != nil || want.Schema != Schema || want.Validate() != nil {
			return
		}
		if err != nil {
			t.Fatalf("encoding/json accepts it, Load says %v", err)
		}
		want.ParseRules()
		if d := cmp.Diff(&want, got, cmpopts.IgnoreTypes(&parse.Ruleset{})); d != "" {
			t.Fatalf("Load differs from encoding/json:\n%s", d)
		}
	})
}

// TestUnquoteJSONIsEncodingJSONOrRefuses: the dumps' own unescaper gives
// what encoding/json gives, or leaves the literal to it.
func TestUnquoteJSONIsEncodingJSONOrRefuses(t *testing.T) {
	for _, tt := range []struct {
		lit  string
		take bool
	}{
		{`""`, true},
		{`"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"`, true},
		{`"-m comment --comment \"a \\ b\" \/ \t\r\b\f"`, true},
		{`"\u003c\u00e9\u20ac x"`, true},
		{`"é€ plain UTF-8"`, true},
		{`"\u0000"`, true},
		{`"\ud83d\ude00"`, false}, // a surrogate pair
		{`"\ud800"`, false},       // a lone surrogate: encoding/json writes U+FFFD
		{"\"\xff\"", false},       // invalid UTF-8: encoding/json writes U+FFFD
		{"\"a\nb\"", false},       // a raw control character: an error
		{`"\x"`, false},
		{`"\u12"`, false},
		{`"a\"`, false},
		{`5`, false},
		{`"a"b"`, false},
	} {
		got, ok := unquoteJSON([]byte(tt.lit))
		if ok != tt.take {
			t.Errorf("unquoteJSON(%s): ok %v, want %v", tt.lit, ok, tt.take)
			continue
		}
		if !ok {
			continue
		}
		var want string
		if err := json.Unmarshal([]byte(tt.lit), &want); err != nil {
			t.Errorf("encoding/json refuses %s: %v", tt.lit, err)
		} else if got != want {
			t.Errorf("unquoteJSON(%s) = %q, encoding/json gives %q", tt.lit, got, want)
		}
	}
}
