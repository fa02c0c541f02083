package parse

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sameParse requires ParseString(string(data)) to give what Parse(data)
// gives: the same rules, or the same error.
func sameParse(t *testing.T, name string, data []byte) {
	t.Helper()
	want, werr := Parse(data)
	got, gerr := ParseString(string(data))
	if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
		t.Fatalf("%s: ParseString error %v, Parse error %v", name, gerr, werr)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(Ruleset{}, Table{}, Chain{}, Rule{}, bodyLine{})); diff != "" {
		t.Fatalf("%s: ParseString differs from Parse (-Parse +ParseString):\n%s", name, diff)
	}
}

// TestParseStringIsParse: over every fixture dump and the parser's own
// inputs, save and list, plus text that is not text.
func TestParseStringIsParse(t *testing.T) {
	var files []string
	for _, g := range []string{"../fixtures/*/*.txt", "testdata/save/*.txt", "testdata/list/*.txt"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if len(files) < 100 {
		t.Fatalf("only %d inputs", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sameParse(t, f, data)
	}
	for name, s := range map[string]string{
		"NUL":      "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT \x00-j ACCEPT\nCOMMIT\n",
		"not UTF8": "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \xff -j ACCEPT\nCOMMIT\n",
		"empty":    "",
		"prompt":   "root@h:~# iptables -t nat -L -n -v\nChain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target     prot opt in     out     source               destination\n",
	} {
		sameParse(t, name, []byte(s))
	}
}

func FuzzParseString(f *testing.F) {
	f.Add([]byte("*filter\n:INPUT ACCEPT [0:0]\n[1:2] -A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"))
	f.Add([]byte("# c\r\n\r\nChain INPUT (policy ACCEPT)\ntarget prot opt source destination\nACCEPT all -- 0.0.0.0/0 0.0.0.0/0\n"))
	f.Fuzz(func(t *testing.T, data []byte) { sameParse(t, "fuzz", data) })
}
