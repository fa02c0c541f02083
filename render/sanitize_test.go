package render

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/parse"
)

func TestSanitizeShowsWhatATerminalWouldActOn(t *testing.T) {
	for in, want := range map[string]string{
		"web":               "web",
		"日本語 é ☃":           "日本語 é ☃",
		"a\tb\nc":           "a\tb\nc",
		"web\x1b]0;owned\a": `web\x1b]0;owned\x07`,
		"\x1b[2J\x1b[H":     `\x1b[2J\x1b[H`,
		"c1\u009b31m":       `c1\x9b31m`,
		"evil\u202egnp.exe": `evil\u202egnp.exe`,
		"bad\xffutf8":       `bad\xffutf8`,
		"del\x7f":           `del\x7f`,
		"line\u2028sep":     `line\u2028sep`,
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextOutputNeverCarriesEscapesFromNames(t *testing.T) {
	evil := "web\x1b]0;owned\a\x1b[2J"
	rep := &diagnose.Report{Findings: []diagnose.Finding{{ID: "dnat-missing", Title: "container " + evil + " lost its DNAT", Severity: diagnose.SeverityError}}}
	var b bytes.Buffer
	if err := DoctorText(&b, rep, Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(b.String(), 0x1b) || strings.ContainsRune(b.String(), 0x07) {
		t.Errorf("escape sequences reached the output:\n%q", b.String())
	}
	if !strings.Contains(b.String(), `web\x1b]0;owned\x07`) {
		t.Errorf("the name is not shown escaped:\n%s", b.String())
	}
	if rep.Findings[0].Title != "container "+evil+" lost its DNAT" {
		t.Error("DoctorText changed the report")
	}
	rs, err := parse.Parse([]byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"\x1b]8;;http://x\x1b\\\\\" -j ACCEPT\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {Terminal: true, NoColor: true}} {
		b.Reset()
		if err := Tree(&b, rs.Tables, o); err != nil {
			t.Fatal(err)
		}
		if err := RulesTable(&b, rs.Tables, "", o); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsRune(b.String(), 0x1b) {
			t.Errorf("a comment's escape reached the output (%+v):\n%q", o, b.String())
		}
	}
}

// TestDirtyTablesIsTheReflectiveWalk: the typed look at parsed tables
// finds exactly what the reflective one finds, on a clean dump and on
// one dirty string in each place a rule keeps text.
func TestDirtyTablesIsTheReflectiveWalk(t *testing.T) {
	base := "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -s 10.0.0.0/8 -i eth0 -p tcp -m tcp --dport 80 -m comment --comment \"admin\" -j DROP\nCOMMIT\n"
	for _, tc := range []struct{ name, dump string }{
		{"clean", base},
		{"chain name", strings.Replace(base, "DOCKER-USER", "DOCKER-USER\x1b[2J", -1)},
		{"comment", strings.Replace(base, "admin", "ad\x1bmin", 1)},
		{"interface", strings.Replace(base, "eth0", "eth\u202e0", 1)},
		{"control in a value", strings.Replace(base, "10.0.0.0/8", "10.0.0.0/8\x07", 1)},
	} {
		rs, err := parse.Parse([]byte(tc.dump))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := dirty(reflect.ValueOf(&rs.Tables).Elem(), map[uintptr]bool{})
		if got := dirtyTables(rs.Tables); got != want {
			t.Errorf("%s: typed %v, reflective %v", tc.name, got, want)
		}
		if tc.name != "clean" && !want {
			t.Errorf("%s: not found dirty", tc.name)
		}
	}
}
