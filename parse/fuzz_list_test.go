package parse

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseList checks that ParseList never panics and that, when it
// succeeds, every rule points at the input line it came from.
// Seeds: testdata/fuzz/FuzzParseList plus every real -L sample.
func FuzzParseList(f *testing.F) {
	files, _ := filepath.Glob("testdata/list/*.L-*.txt")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	// Issue 13: listed without -n, rounded counters, CRLF, a huge line.
	head := "Chain INPUT (policy ACCEPT 12K packets, 3M bytes)\r\n pkts bytes target     prot opt in     out     source               destination\r\n"
	f.Add([]byte(head + "  12K  720K ACCEPT     all  --  lo     *       anywhere             anywhere\r\n"))
	f.Add([]byte(head + "    0     0 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:http\r\n"))
	f.Add([]byte(head + "    0     0 DROP       all  --  *      *       db.example.com       0.0.0.0/0\n"))
	f.Add([]byte(head + "    1     2 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0            /* " + strings.Repeat("x", MaxLine) + " */\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseList(data)
		if err != nil {
			if _, ok := err.(*Error); !ok && err != ErrEmpty {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		lines := bytes.Split(data, []byte("\n"))
		for _, tb := range rs.Tables {
			for _, c := range tb.Chains {
				for _, r := range c.Rules {
					if r.Line < 1 || r.Line > len(lines) {
						t.Fatalf("rule line %d outside the input (%d lines)", r.Line, len(lines))
					}
					if got := string(bytes.TrimSuffix(lines[r.Line-1], []byte("\r"))); got != r.Raw {
						t.Fatalf("line %d is %q, rule Raw is %q", r.Line, got, r.Raw)
					}
					if r.Table != tb.Name || r.Chain != c.Name {
						t.Fatalf("line %d: rule says %s/%s, listed in %s/%s", r.Line, r.Table, r.Chain, tb.Name, c.Name)
					}
				}
			}
		}
	})
}
