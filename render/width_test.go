package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFit(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		width          int
	}{
		{"a width of 0 changes nothing", "  " + strings.Repeat("word ", 40) + "\n", "  " + strings.Repeat("word ", 40) + "\n", 0},
		{"a line that fits passes unchanged", "a  b   c\n", "a  b   c\n", 8},
		{"a paragraph wraps at spaces and keeps its indent",
			"  Connections to 8081/tcp are not translated to the container\n",
			"  Connections to\n  8081/tcp are not\n  translated to the\n  container\n", 20},
		{"a word longer than the width stays whole",
			"    -A DOCKER ! -i docker0 -p tcp --to-destination=172.17.0.2:80\n",
			"    -A DOCKER ! -i\n    docker0 -p tcp\n    --to-destination=172.17.0.2:80\n", 20},
		{"a tree branch continues under its parent",
			"│   ├── [3 pkts] ! -i docker0 tcp dpt:8080 -> DNAT\n└── [0 pkts] -i docker0 -> RETURN to the caller\n",
			"│   ├── [3 pkts] !\n│   │   -i docker0\n│   │   tcp dpt:8080\n│   │   -> DNAT\n└── [0 pkts] -i\n    docker0 ->\n    RETURN to the\n    caller\n", 20},
		{"colour escapes take no room", "\x1b[31merror\x1b[0m dnat-missing: no rule\n", "\x1b[31merror\x1b[0m dnat-missing: no rule\n", 27},
		{"a last line without a newline is written on Close", "one two three", "one two\nthree", 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			w := Fit(&b, c.width)
			// Byte by byte: lines arrive in pieces from fmt.Fprint.
			for i := range len(c.in) {
				if _, err := w.Write([]byte{c.in[i]}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestTableFitsTheWidth(t *testing.T) {
	rows := [][]string{
		{"route-localnet-disabled", "warning", "A Docker bridge has route_localnet=0 while userland-proxy is off"},
		{"x", "info", "short"},
	}
	render := func(o Options) string {
		var b bytes.Buffer
		tw := &trimWriter{w: &b}
		tbl := newTable(tw, o)
		tbl.Header("ID", "SEVERITY", "TITLE")
		for _, r := range rows {
			if err := tbl.Append(append([]string(nil), r...)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tbl.Render(); err != nil {
			t.Fatal(err)
		}
		tw.Flush()
		return b.String()
	}
	for _, terminal := range []bool{false, true} {
		unlimited := render(Options{Terminal: terminal})
		natural := 0
		for _, l := range strings.Split(unlimited, "\n") {
			natural = max(natural, visibleWidth(l))
		}
		for _, width := range []int{40, 50, 60, 80, natural, natural + 20} {
			out := render(Options{Terminal: terminal, Width: width})
			for _, l := range strings.Split(out, "\n") {
				if visibleWidth(l) > width {
					t.Errorf("terminal=%v width %d: line of %d columns:\n%s", terminal, width, visibleWidth(l), out)
					break
				}
			}
			if width >= natural && out != unlimited {
				t.Errorf("terminal=%v width %d: a table that fits was changed:\n%s", terminal, width, out)
			}
			// 60 columns leave room for every column's longest word: the
			// long title wraps, no word is cut.
			if width >= 60 && !strings.Contains(out, "route-localnet-disabled") {
				t.Errorf("terminal=%v width %d: a word was cut:\n%s", terminal, width, out)
			}
		}
	}
	t.Run("no narrower than the headings", func(t *testing.T) {
		out := render(Options{Width: 10})
		if !strings.HasPrefix(out, "ID  SEVERITY  TITLE\n") {
			t.Errorf("got:\n%s", out)
		}
	})
}
