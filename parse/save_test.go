package parse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// saveInputs returns the real iptables-save captures: parse/testdata/save
// and, when present, fixtures/*/ip{,6}tables-save.txt.
func saveInputs(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{
		"testdata/save/*.txt",
		"../fixtures/*/iptables-save.txt",
		"../fixtures/*/ip6tables-save.txt",
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no iptables-save inputs found")
	}
	return files
}

// ruleText returns what follows "-A CHAIN " in a save line, without the
// counters prefix.
func ruleText(raw string) string {
	s := raw
	if strings.HasPrefix(s, "[") {
		s = s[strings.IndexByte(s, ']')+2:]
	}
	s = strings.TrimPrefix(s, "-A ")
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[i+1:]
	}
	return ""
}

// lineDiff reports the first differing line of two texts.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g || i >= len(wl) || i >= len(gl) {
			return fmt.Sprintf("line %d:\n-want %q\n+got  %q", i+1, w, g)
		}
	}
	return "(texts are equal)"
}

func TestParseSaveRoundTripsEveryCapture(t *testing.T) {
	for _, file := range saveInputs(t) {
		t.Run(file+" prints back byte for byte and every rule's Spec matches its text", func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				t.Skip("empty capture (no IPv6 rules on that host)")
			}
			rs, err := ParseSave(data)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := rs.WriteSave(&out); err != nil {
				t.Fatal(err)
			}
			if out.String() != string(data) {
				t.Errorf("WriteSave differs from input at %s", lineDiff(string(data), out.String()))
			}
			for _, tb := range rs.Tables {
				for _, c := range tb.Chains {
					for i, r := range c.Rules {
						if r.Position != i+1 || r.Table != tb.Name || r.Chain != c.Name {
							t.Errorf("line %d: position/table/chain = %d/%s/%s, want %d/%s/%s",
								r.Line, r.Position, r.Table, r.Chain, i+1, tb.Name, c.Name)
						}
						if got, want := r.Spec(), ruleText(r.Raw); got != want {
							t.Errorf("line %d: Spec()\n got %q\nwant %q", r.Line, got, want)
						}
						if sp, ok, _ := r.RawSpec(nil); !ok || sp != r.Spec() {
							t.Errorf("line %d: RawSpec() = %q, %v; want Spec() from the line", r.Line, sp, ok)
						}
						if len(r.Unparsed) > 0 {
							t.Errorf("line %d: unparsed tokens %q", r.Line, r.Unparsed)
						}
					}
				}
			}
		})
	}
}

func TestRawSpecIsSpecAsPartOfTheLine(t *testing.T) {
	tests := []struct {
		name, line string
		fromLine   bool // Spec() is the end of the line
	}{
		{"a save line with counters", `[3:180] -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT`, true},
		{"a quoted comment", `-A INPUT -m comment --comment "a b" -j ACCEPT`, true},
		{"an implicit match, which Spec writes back without -m", `-A INPUT -p tcp --dport 22 -j ACCEPT`, true},
		{"options in another order than iptables-save's", `-A INPUT -j ACCEPT -p tcp`, false},
		{"a value quoted that needs no quotes", `-A INPUT -s "10.0.0.1" -j ACCEPT`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseSave([]byte("*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n" + tt.line + "\nCOMMIT\n"))
			if err != nil {
				t.Fatal(err)
			}
			var r *Rule
			for _, c := range rs.Tables[0].Chains {
				if len(c.Rules) > 0 {
					r = c.Rules[0]
				}
			}
			buf := []byte("junk from an earlier call")
			sp, ok, buf := r.RawSpec(buf)
			if string(buf) != r.Spec() {
				t.Errorf("buffer holds %q, want Spec() %q", buf, r.Spec())
			}
			if ok != tt.fromLine || ok && (sp != r.Spec() || !strings.HasSuffix(r.Raw, sp)) {
				t.Errorf("RawSpec() = %q, %v; Spec() = %q, want ok %v", sp, ok, r.Spec(), tt.fromLine)
			}
		})
	}
}

func TestTableWriteSaveRegeneratesWhatIptablesSavePrints(t *testing.T) {
	for _, file := range saveInputs(t) {
		t.Run(file+" regenerated from the model parses to the same rules", func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) == 0 {
				t.Skip("empty capture (no IPv6 rules on that host)")
			}
			rs, err := ParseSave(data)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			for _, tb := range rs.Tables {
				if err := tb.WriteSave(&out, true); err != nil {
					t.Fatal(err)
				}
			}
			// Without comments, the regenerated text is the input's
			// non-comment lines (iptables-save prints [0:0] rule
			// counters with -c, and none without).
			var want strings.Builder
			for l := range strings.Lines(string(data)) {
				if !strings.HasPrefix(l, "#") {
					want.WriteString(l)
				}
			}
			if out.String() != want.String() {
				t.Errorf("regenerated text differs at %s", lineDiff(want.String(), out.String()))
			}
			rs2, err := ParseSave(out.Bytes())
			if err != nil {
				t.Fatalf("regenerated text does not parse: %v", err)
			}
			if a, b := summary(rs), summary(rs2); a != b {
				t.Errorf("model differs after regeneration at %s", lineDiff(a, b))
			}
		})
	}
}

// summary renders a ruleset's model (not its raw text) for comparison.
func summary(rs *Ruleset) string {
	var b strings.Builder
	for _, tb := range rs.Tables {
		fmt.Fprintf(&b, "table %s\n", tb.Name)
		for _, c := range tb.Chains {
			fmt.Fprintf(&b, "chain %s builtin=%v policy=%s ctr=%v\n", c.Name, c.Builtin, c.Policy, c.Counters)
			for _, r := range c.Rules {
				fmt.Fprintf(&b, "  %d %v %s\n", r.Position, r.Counters, r.Spec())
			}
		}
	}
	return b.String()
}

func TestParseSaveBuildsTheModel(t *testing.T) {
	data, err := os.ReadFile("testdata/save/docker28-nft-c.txt")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseSave(data)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Format != FormatSave {
		t.Errorf("Format = %q", rs.Format)
	}
	var names []TableName
	for _, tb := range rs.Tables {
		names = append(names, tb.Name)
	}
	if got := fmt.Sprint(names); got != "[raw filter nat]" {
		t.Errorf("tables = %s, want [raw filter nat] (nft order)", got)
	}
	raw := rs.Table(TableRaw)
	if raw.Line != 2 {
		t.Errorf("raw table line = %d, want 2", raw.Line)
	}
	pre := raw.Chain(ChainPrerouting)
	if !pre.Builtin || pre.Policy != TargetAccept || pre.References != -1 || pre.Line != 3 ||
		pre.Counters == nil || *pre.Counters != (Counters{Packets: 1200, Bytes: 98000}) {
		t.Errorf("raw PREROUTING = %+v (counters %v)", pre, pre.Counters)
	}
	filter := rs.Table(TableFilter)
	user := filter.Chain("DOCKER-CT")
	if user.Builtin || user.Policy != "" || user.Counters == nil || len(user.Rules) != 2 {
		t.Errorf("DOCKER-CT = %+v", user)
	}
	r := user.Rules[1]
	if r.Position != 2 || r.Counters == nil || r.Counters.Packets != 800 || r.Counters.Bytes != 900000 ||
		r.Raw != "[800:900000] -A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" ||
		r.OutIface.Value != "docker0" || r.Target != TargetAccept || r.CTState().Value != "RELATED,ESTABLISHED" {
		t.Errorf("DOCKER-CT rule 2 = %+v", r)
	}
	if filter.Chain(ChainForward).Policy != TargetDrop {
		t.Error("filter FORWARD policy is not DROP")
	}
}

func TestParseSaveKeepsEverythingForWriteSave(t *testing.T) {
	tests := []struct {
		name, in string
		tables   int
		trailer  []string
	}{
		{"a dump without final newline prints back without one",
			"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT", 1, nil},
		{"comments and blank lines before, between and after tables are kept",
			"# hello\n\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n# Completed\n\n# Generated\n*filter\n# inside\n\n:INPUT DROP [1:2]\nCOMMIT\n# Completed on x\n\n",
			2, []string{"# Completed on x\n", "\n"}},
		{"iptables-nft's legacy warning on top is a comment",
			"# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n*raw\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", 1, nil},
		{"a hand-written restore file with rules on undeclared built-in chains, -I and blanks with spaces",
			"*filter\n  \t\n-A INPUT -j ACCEPT\n-I INPUT -j DROP\n-I INPUT 2 -p tcp --dport 22 -j ACCEPT\n  -A INPUT -j LOG\nCOMMIT   \n", 1, nil},
		{"tabs between fields are accepted",
			"*filter\n:INPUT\tACCEPT\t[0:0]\n[1:2]\t-A\tINPUT\t-j\tDROP\nCOMMIT\n", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseSave([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(rs.Tables) != tt.tables {
				t.Errorf("%d tables, want %d", len(rs.Tables), tt.tables)
			}
			if fmt.Sprintf("%q", rs.Trailer) != fmt.Sprintf("%q", tt.trailer) {
				t.Errorf("Trailer = %q, want %q", rs.Trailer, tt.trailer)
			}
			var out bytes.Buffer
			if err := rs.WriteSave(&out); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.in {
				t.Errorf("WriteSave differs at %s", lineDiff(tt.in, out.String()))
			}
		})
	}
}

func TestParseSaveInsertsAtPosition(t *testing.T) {
	in := "*filter\n-A INPUT -j A1\n-A INPUT -j A2\n-I INPUT -j I1\n-I INPUT 3 -j I3\n--insert INPUT 5 -j I5\nCOMMIT\n"
	rs, err := ParseSave([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Table(TableFilter).Chain(ChainInput)
	var got []string
	for i, r := range c.Rules {
		got = append(got, fmt.Sprintf("%d:%s@%d", r.Position, r.Target, r.Line))
		if r.Position != i+1 {
			t.Errorf("rule %d has Position %d", i, r.Position)
		}
	}
	if want := "[1:I1@4 2:A1@2 3:I3@5 4:A2@3 5:I5@6]"; fmt.Sprint(got) != want {
		t.Errorf("rules = %v, want %s", got, want)
	}
	if !c.Builtin || c.Line != 2 || c.Policy != "" {
		t.Errorf("undeclared built-in chain = %+v", c)
	}
	var out bytes.Buffer
	if err := rs.Table(TableFilter).WriteSave(&out, false); err != nil {
		t.Fatal(err)
	}
	want := "*filter\n:INPUT - [0:0]\n-A INPUT -j I1\n-A INPUT -j A1\n-A INPUT -j I3\n-A INPUT -j A2\n-A INPUT -j I5\nCOMMIT\n"
	if out.String() != want {
		t.Errorf("Table.WriteSave differs at %s", lineDiff(want, out.String()))
	}
}

func TestParseSaveRefusesLinesLongerThanMaxLine(t *testing.T) {
	long := strings.Repeat("x", 10<<20)
	tests := []struct {
		name, in string
		line     int
	}{
		{"a 10 MB comment line", "# " + long + "\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", 1},
		{"a rule with a 10 MB comment", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment " + long + " -j ACCEPT\nCOMMIT\n", 3},
		{"a line one byte too long", "*filter\n:INPUT ACCEPT [0:0]\n#" + strings.Repeat("x", MaxLine) + "\nCOMMIT\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSave([]byte(tt.in))
			var pe *Error
			if !errors.As(err, &pe) || pe.Line != tt.line || !strings.Contains(pe.Msg, "bytes") || len(pe.Text) > maxShown+40 {
				t.Fatalf("err = %.300v; want an *Error at line %d naming the length", err, tt.line)
			}
		})
	}
	t.Run("a line of MaxLine bytes is read", func(t *testing.T) {
		in := "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment " + strings.Repeat("x", MaxLine-len("-A INPUT -m comment --comment  -j ACCEPT")) + " -j ACCEPT\nCOMMIT\n"
		rs, err := ParseSave([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := rs.WriteSave(&out); err != nil || out.String() != in {
			t.Errorf("WriteSave differs from input (err %v)", err)
		}
	})
}

func TestParseSaveReadsCRLFAsLF(t *testing.T) {
	for _, name := range []string{"docker28-nft-c.txt", "kube-nft.txt", "quoting-nft.txt"} {
		t.Run(name, func(t *testing.T) {
			lf, err := os.ReadFile(filepath.Join("testdata", "save", name))
			if err != nil {
				t.Fatal(err)
			}
			crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
			want, err := ParseSave(lf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSave(crlf)
			if err != nil {
				t.Fatalf("CRLF: %v", err)
			}
			if !got.CRLF || want.CRLF {
				t.Errorf("CRLF = %v for CRLF input, %v for LF", got.CRLF, want.CRLF)
			}
			// The same model: same rules, same raw text, same lines.
			if diff := cmp.Diff(want.Tables, got.Tables, cmpopts.IgnoreUnexported(Table{})); diff != "" {
				t.Errorf("CRLF model differs (-LF +CRLF):\n%s", diff)
			}
			var out bytes.Buffer
			if err := got.WriteSave(&out); err != nil || !bytes.Equal(out.Bytes(), crlf) {
				t.Errorf("WriteSave of CRLF input is not the input (err %v)", err)
			}
			out.Reset()
			var wantOut bytes.Buffer
			for i, tb := range got.Tables {
				tb.WriteSave(&out, true)
				want.Tables[i].WriteSave(&wantOut, true)
			}
			if out.String() != wantOut.String() {
				t.Error("save text regenerated from the CRLF model differs from the LF one")
			}
		})
	}
	t.Run("mixed line endings", func(t *testing.T) {
		rs, err := ParseSave([]byte("*filter\r\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\r\nCOMMIT\n"))
		if err != nil {
			t.Fatal(err)
		}
		if r := rs.Tables[0].Chains[0].Rules[0]; r.Raw != "-A INPUT -j ACCEPT" || r.Target != TargetAccept {
			t.Errorf("rule = %q -> %q", r.Raw, r.Target)
		}
	})
}

func TestParseSaveRejectsBadInput(t *testing.T) {
	const ok = "*filter\n:INPUT ACCEPT [0:0]\n:FOO - [0:0]\n-A INPUT -j FOO\n"
	tests := []struct {
		name, in string
		line     int
		msg      string // substring of the message
	}{
		{"a truncated dump without COMMIT names the last line", ok + "-A FOO -j ACC", 5, "without COMMIT"},
		{"a dump cut after the last rule", ok, 4, "truncated dump"},
		{"garbage before any table", "hello world\n", 1, "expected a *table header"},
		{"garbage inside a table", ok + "hello\nCOMMIT\n", 5, "unexpected line"},
		{"a NUL byte", ok + "-A FOO \x00\x01\x02\nCOMMIT\n", 5, "NUL"},
		{"invalid UTF-8", ok + "# \xff\xfe\nCOMMIT\n", 5, "UTF-8"},
		{"an unknown table", "*bogus\nCOMMIT\n", 1, "unknown table"},
		{"a rule before any table", "-A INPUT -j ACCEPT\n", 1, "rule before any *table"},
		{"a chain before any table", ":INPUT ACCEPT [0:0]\n", 1, "before any *table"},
		{"a rule on an undeclared user chain", "*filter\n:INPUT ACCEPT [0:0]\n-A BAR -j ACCEPT\nCOMMIT\n", 3, "does not declare"},
		{"a chain declared twice", ok + ":FOO - [0:0]\nCOMMIT\n", 5, "declared twice (first at line 3)"},
		{"a rule after COMMIT", ok + "COMMIT\n-A INPUT -j ACCEPT\n", 6, "after COMMIT"},
		{"garbage after COMMIT", ok + "COMMIT\n\n# fine\nfoo\n", 8, "after COMMIT"},
		{"a duplicate table", ok + "COMMIT\n*filter\nCOMMIT\n", 6, "appears twice"},
		{"a new table before COMMIT", ok + "*nat\nCOMMIT\n", 5, "not closed with COMMIT"},
		{"text after the table name", "*filter nat\nCOMMIT\n", 1, "after table name"},
		{"a chain without policy", "*filter\n:FOO\nCOMMIT\n", 2, "without a policy"},
		{"a user chain with a policy", "*filter\n:FOO ACCEPT [0:0]\nCOMMIT\n", 2, "cannot have policy"},
		{"a bad built-in policy", "*filter\n:INPUT REJECT [0:0]\nCOMMIT\n", 2, "bad policy"},
		{"bad chain counters", "*filter\n:INPUT ACCEPT [x:0]\nCOMMIT\n", 2, "bad counters"},
		{"bad rule counters", ok + "[1:] -A INPUT\nCOMMIT\n", 5, "bad counters"},
		{"counters without a rule", ok + "[1:2]\nCOMMIT\n", 5, "counters without a rule"},
		{"another iptables command", ok + "-N BAR\nCOMMIT\n", 5, "unsupported command -N"},
		{"-A without chain", ok + "-A\nCOMMIT\n", 5, "without a chain"},
		{"an insert past the end", ok + "-I INPUT 3 -j ACCEPT\nCOMMIT\n", 5, "cannot insert at position 3"},
		{"an unterminated quote", ok + "-A INPUT -m comment --comment \"abc\nCOMMIT\n", 5, "unterminated quote"},
		{"an option without its value", ok + "-A INPUT -j\nCOMMIT\n", 5, "needs a value"},
		{"a line of binary garbage", ok + "\x8a\x93\xc3\x28\xfa\x01\nCOMMIT\n", 5, "binary data"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is an error at line "+fmt.Sprint(tt.line), func(t *testing.T) {
			rs, err := ParseSave([]byte(tt.in))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("ParseSave = %v, %v; want *Error", rs, err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error %q at line %d; want line %d and %q", pe.Msg, pe.Line, tt.line, tt.msg)
			}
		})
	}
}

func TestParseSaveOfNothingIsErrEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "\n\n", "# Generated by nothing\n", "   \n# x"} {
		t.Run(fmt.Sprintf("input %q gives ErrEmpty", in), func(t *testing.T) {
			if _, err := ParseSave([]byte(in)); !errors.Is(err, ErrEmpty) {
				t.Errorf("err = %v, want ErrEmpty", err)
			}
		})
	}
}

func TestRulesetWriteSaveGeneratesTablesWithoutLines(t *testing.T) {
	rs := &Ruleset{Format: FormatList, Tables: []*Table{{
		Name: TableNAT,
		Chains: []*Chain{
			{Name: ChainPrerouting, Builtin: true, Policy: TargetAccept, Counters: &Counters{Packets: 3, Bytes: 180},
				Rules: []*Rule{{Chain: ChainPrerouting, Counters: &Counters{Packets: 1, Bytes: 60},
					Matches: []Match{{Name: "addrtype", Options: []Option{{Name: "dst-type", Values: []string{"LOCAL"}}}}},
					Target:  "DOCKER"}}},
			{Name: "DOCKER", References: 2},
		},
	}}, Trailer: []string{"# ignored for list format\n"}}
	var out bytes.Buffer
	if err := rs.WriteSave(&out); err != nil {
		t.Fatal(err)
	}
	want := "*nat\n:PREROUTING ACCEPT [3:180]\n:DOCKER - [0:0]\n[1:60] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\nCOMMIT\n"
	if out.String() != want {
		t.Errorf("WriteSave differs at %s", lineDiff(want, out.String()))
	}
	out.Reset()
	if err := rs.Tables[0].WriteSaveChains(&out, false, "DOCKER"); err != nil {
		t.Fatal(err)
	}
	if want := "*nat\n:DOCKER - [0:0]\nCOMMIT\n"; out.String() != want {
		t.Errorf("WriteSaveChains(DOCKER) = %q, want %q", out.String(), want)
	}
	if err := rs.Tables[0].WriteSaveChains(&out, false, "NOPE"); err == nil {
		t.Error("WriteSaveChains of a missing chain succeeded")
	}
	out.Reset()
	if err := rs.Tables[0].Chains[0].WriteSave(&out, false); err != nil {
		t.Fatal(err)
	}
	if want := ":PREROUTING ACCEPT [3:180]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"; out.String() != want {
		t.Errorf("Chain.WriteSave = %q, want %q", out.String(), want)
	}
}

func TestWriteSaveEndsAnOpenLineBeforeGeneratedText(t *testing.T) {
	rs, err := ParseSave([]byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT"))
	if err != nil {
		t.Fatal(err)
	}
	rs.Tables = append(rs.Tables, &Table{Name: TableRaw})
	var out bytes.Buffer
	if err := rs.WriteSave(&out); err != nil {
		t.Fatal(err)
	}
	if want := "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n*raw\nCOMMIT\n"; out.String() != want {
		t.Errorf("WriteSave = %q, want %q", out.String(), want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteSaveReportsWriteErrors(t *testing.T) {
	rs, err := ParseSave([]byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.WriteSave(failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteSave to a failing writer = %v", err)
	}
}

// genDump writes a kube-proxy and Docker style nat and filter dump with
// about n rules, with counters.
func genDump(n int) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by iptables-nft-save v1.8.9 (nf_tables) on Wed Nov 25 20:50:24 2026\n*nat\n")
	b.WriteString(":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	b.WriteString(":DOCKER - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	svcs := n / 8
	for i := range svcs {
		fmt.Fprintf(&b, ":KUBE-SVC-%016X - [0:0]\n:KUBE-SEP-%016XA - [0:0]\n:KUBE-SEP-%016XB - [0:0]\n", i, i, i)
	}
	b.WriteString("[10:600] -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	b.WriteString("[10:600] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n")
	b.WriteString("[0:0] -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	rules := 3
	for i := 0; rules < n; i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", 96+i>>16&0xff, i>>8&0xff, i&0xff)
		ep := fmt.Sprintf("10.%d.%d.%d", 200+i>>16&0xff, i>>8&0xff, i&0xff)
		name := fmt.Sprintf("ns%d/svc%d:http", i%50, i)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j KUBE-SVC-%016X\n", ip, name, i)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SVC-%016X ! -s 10.244.0.0/16 -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n", i, ip, name)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SVC-%016X -m comment --comment \"%s -> %s:8080\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-%016XA\n", i, name, ep, i)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SVC-%016X -m comment --comment \"%s -> %s:8080\" -j KUBE-SEP-%016XB\n", i, name, ep, i)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SEP-%016XA -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ\n", i, ep, name)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SEP-%016XA -p tcp -m comment --comment \"%s\" -m tcp -j DNAT --to-destination %s:8080\n", i, name, ep)
		fmt.Fprintf(&b, "[12:720] -A DOCKER ! -i docker0 -p tcp -m tcp --dport %d -j DNAT --to-destination 172.17.%d.%d:80\n", 1024+i%60000, i>>8&0xff, i&0xff)
		fmt.Fprintf(&b, "[0:0] -A KUBE-SEP-%016XB -p tcp -m tcp -j DNAT --to-destination %s:8080\n", i, ep)
		rules += 8
	}
	b.WriteString("COMMIT\n# Completed on Wed Nov 25 20:50:24 2026\n")
	return b.Bytes()
}

func TestGeneratedBenchmarkDumpRoundTrips(t *testing.T) {
	data := genDump(2000)
	rs, err := ParseSave(data)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rs.WriteSave(&out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Error("WriteSave differs from the generated dump")
	}
	for _, c := range rs.Tables[0].Chains {
		for _, r := range c.Rules {
			if r.Spec() != ruleText(r.Raw) {
				t.Fatalf("line %d: Spec %q", r.Line, r.Spec())
			}
		}
	}
}

// BenchmarkParseSave parses a generated 100k-rule kube-proxy/Docker dump.
//
//	go test ./parse -run XXX -bench ParseSave -benchmem -count 6 | tee new.txt; benchstat old.txt new.txt
func BenchmarkParseSave(b *testing.B) {
	data := genDump(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	// Go 1.26.8 crashes compiling some b.Loop bodies: keep b.N.
	for i := 0; i < b.N; i++ {
		if _, err := ParseSave(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteSave writes the same dump back from its stored lines.
func BenchmarkWriteSave(b *testing.B) {
	data := genDump(100_000)
	rs, err := ParseSave(data)
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	out.Grow(len(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out.Reset()
		if err := rs.WriteSave(&out); err != nil {
			b.Fatal(err)
		}
	}
}
