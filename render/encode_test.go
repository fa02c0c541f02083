package render

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/synth"
	"github.com/iptscope/iptscope/snapshot"
)

func stdIndented(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestFastJSONMatchesEncodingJSON: the doctor's and the fix's JSON are
// the bytes encoding/json writes, on every fixture bundle and on a
// synthetic host with nat DOCKER flushed (see writeIndented).
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	files, _ := filepath.Glob("../fixtures/*/bundle.json")
	if len(files) < 100 {
		t.Fatalf("only %d fixture bundles", len(files))
	}
	snaps := map[string]*snapshot.Snapshot{
		"synthetic 1000 ports, nat DOCKER flushed": synth.DockerSnapshot(1000, synth.FlushChain(synth.DockerHost(1000), "nat", "DOCKER"), "nft"),
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := snapshot.Load(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		snaps[f] = s
	}
	for name, s := range snaps {
		r := diagnose.NewReport(s, diagnose.ReportOptions{})
		r.ToolVersion = "test <&> \u2028"
		fix := NewFix(r.Plan(s), []PlanPayload{{Family: "ipv4", Table: "nat", Text: "*nat\n-A DOCKER -j RETURN\nCOMMIT\n"}, {Family: "ipv4", Table: "filter", Text: "*filter\nCOMMIT\n"}}, "v1")
		for what, v := range map[string]any{"report": r, "fix": fix} {
			var got bytes.Buffer
			if err := writeIndented(&got, v); err != nil {
				t.Fatal(err)
			}
			if want := stdIndented(t, v); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s: %s JSON differs from encoding/json's (%d against %d bytes)", name, what, got.Len(), len(want))
			}
		}
	}
}

// TestFastJSONFallsBack: a value goccy cannot encode is written by
// encoding/json, with its error.
func TestFastJSONFallsBack(t *testing.T) {
	var b bytes.Buffer
	err := writeIndented(&b, map[string]any{"f": func() {}})
	if err == nil {
		t.Fatal("a func encoded without error")
	}
	if _, ok := err.(*json.UnsupportedTypeError); !ok {
		t.Errorf("error %T %v, want encoding/json's", err, err)
	}
}
