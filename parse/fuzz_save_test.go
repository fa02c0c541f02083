package parse

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseSave checks that ParseSave never panics, that whatever it
// accepts WriteSave prints back byte for byte, and that the ruleset
// regenerated from the model (Table.WriteSave) parses again.
//
// The seed corpus is in testdata/fuzz/FuzzParseSave (the real captures
// under testdata/save, the restore inputs and the bad-input cases).
func FuzzParseSave(f *testing.F) {
	f.Add([]byte("*filter\n:INPUT ACCEPT [0:0]\n[1:2] -A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"))
	// Issue 13: CRLF (all lines, some lines), a line just over MaxLine.
	f.Add([]byte("# pasted\r\n*filter\r\n:INPUT ACCEPT [0:0]\r\n[1:2] -A INPUT -p tcp --dport 22 -j ACCEPT\r\nCOMMIT\r\n"))
	f.Add([]byte("*nat\r\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DOCKER\r\n:DOCKER - [0:0]\nCOMMIT\r\n\r\n"))
	f.Add([]byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment " + strings.Repeat("x", MaxLine) + " -j ACCEPT\nCOMMIT\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseSave(data)
		if err != nil {
			if _, ok := err.(*Error); !ok && err != ErrEmpty {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var out bytes.Buffer
		if err := rs.WriteSave(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("WriteSave differs from input:\n got %q\nwant %q", out.Bytes(), data)
		}
		out.Reset()
		for _, tb := range rs.Tables {
			if err := tb.WriteSave(&out, true); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ParseSave(out.Bytes()); err != nil {
			t.Fatalf("regenerated text does not parse: %v\n%s", err, out.Bytes())
		}
	})
}
