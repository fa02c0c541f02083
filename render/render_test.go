package render

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/parse"
)

const dockerNAT = `*nat
:PREROUTING ACCEPT [10:600]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:KUBE-"ODD" - [0:0]
[4:240] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
[0:0] -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
[2:120] -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
[0:0] -A DOCKER -i docker0 -j RETURN
[3:180] -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
[0:0] -A DOCKER -m comment --comment "a \"quoted\" | <label>" -j MISSING
COMMIT
`

func tables(t *testing.T) []*parse.Table {
	t.Helper()
	rs, err := parse.ParseSave([]byte(dockerNAT))
	if err != nil {
		t.Fatal(err)
	}
	return rs.Tables
}

func TestTree(t *testing.T) {
	var b bytes.Buffer
	if err := Tree(&b, tables(t), Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"nat PREROUTING (policy ACCEPT 10 packets, 600 bytes)\n└── [4 pkts] dst-type LOCAL -> DOCKER\n    ├── [0 pkts] -i docker0 -> RETURN\n    ├── [3 pkts] ! -i docker0 tcp dpt:8080 -> DNAT to:172.17.0.2:80\n",
		"-> MISSING (missing chain)",
		"nat OUTPUT (policy ACCEPT 0 packets, 0 bytes)\n└── [0 pkts] ! -d 127.0.0.0/8 dst-type LOCAL -> DOCKER\n",
		"chains nothing jumps to: KUBE-\"ODD\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q\n--- got:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("plain output has colour escapes")
	}
}

func TestTreeColourOnTerminal(t *testing.T) {
	var b bytes.Buffer
	if err := Tree(&b, tables(t), Options{Terminal: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[") {
		t.Error("terminal output has no colour")
	}
	b.Reset()
	if err := Tree(&b, tables(t), Options{Terminal: true, NoColor: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("NO_COLOR output has colour")
	}
}

// requireTool finds a tool the test needs. Outside CI a missing tool skips
// the test; in CI (CI or IPTSCOPE_E2E set) it fails, so nothing is
// silently left untested there.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" || os.Getenv("IPTSCOPE_E2E") != "" {
		t.Fatalf("%s is required here: apt-get install %s", name, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	return ""
}

func TestDOTRendersWithGraphviz(t *testing.T) {
	dot := requireTool(t, "dot", "graphviz")
	var b bytes.Buffer
	if err := DOT(&b, tables(t)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = &b
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	svg, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("dot: %v: %s\n%s", err, stderr.String(), b.String())
	}
	for _, want := range []string{"DOCKER", "MISSING", "<svg"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("svg lacks %q", want)
		}
	}
}

func TestMermaid(t *testing.T) {
	var b bytes.Buffer
	if err := Mermaid(&b, tables(t)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "flowchart LR\n") {
		t.Fatalf("not a flowchart:\n%s", out)
	}
	if !strings.Contains(out, `nat_PREROUTING -->|"dst-type LOCAL"| nat_DOCKER`) {
		t.Errorf("missing PREROUTING edge:\n%s", out)
	}
	// Labels must not carry raw quotes, pipes or angle brackets.
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, `|"`); i >= 0 {
			label := line[i+2 : strings.LastIndex(line, `"|`)]
			if strings.ContainsAny(label, `"|<>`) {
				t.Errorf("unescaped label %q", label)
			}
		}
	}
}

func TestGraphJSON(t *testing.T) {
	var b bytes.Buffer
	if err := GraphJSON(&b, tables(t)); err != nil {
		t.Fatal(err)
	}
	var doc GraphDoc
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	nat := doc.Tables[0]
	if doc.Schema != GraphSchema || nat.Table != "nat" || len(nat.Dangling) != 1 || nat.Dangling[0].To != "MISSING" {
		t.Errorf("doc = %+v", doc)
	}
	if got := nat.VisitOrder["PREROUTING"]; len(got) != 1 || got[0] != "DOCKER" {
		t.Errorf("visit order = %v", got)
	}
}

func TestRulesTable(t *testing.T) {
	var b bytes.Buffer
	if err := RulesTable(&b, tables(t), "", Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"nat DOCKER (2 references)", "DNAT to:172.17.0.2:80", "! -i docker0 tcp dpt:8080", "(no rules)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q\n%s", want, out)
		}
	}
}

func TestHumanCount(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 99999: "99999", 100000: "100K", 123456789: "123M", 5e12: "5000G"} {
		if got := HumanCount(n); got != want {
			t.Errorf("HumanCount(%d) = %q, want %q", n, got, want)
		}
	}
}
