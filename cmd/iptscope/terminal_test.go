package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// surroundings describes the surroundings of a run for iptscopeAt: which streams
// are terminals, how wide, and the environment.
type surroundings struct {
	stdoutTTY, stdinTTY bool
	width               int
	env                 map[string]string
}

// iptscopeAt runs the command line in-process as iptscope does, with the
// terminal and environment of tm instead of the real ones.
func iptscopeAt(t *testing.T, tm surroundings, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	in := strings.NewReader(stdin)
	g := &globals{
		stdin: in, stdout: &out, stderr: &errb,
		getenv: func(k string) string { return tm.env[k] },
		isTTY: func(v any) bool {
			switch v {
			case any(&out):
				return tm.stdoutTTY
			case any(in):
				return tm.stdinTTY
			}
			return false
		},
		width: func(any) int { return tm.width },
	}
	code := runWith(g, args)
	return out.String(), errb.String(), code
}

func TestColour(t *testing.T) {
	for _, c := range []struct {
		name   string
		tm     surroundings
		args   []string
		colour bool
	}{
		{"a terminal gets colour", surroundings{stdoutTTY: true}, nil, true},
		{"a pipe gets none", surroundings{}, nil, false},
		{"--color always colours a pipe", surroundings{}, []string{"--color", "always"}, true},
		{"--color never turns it off on a terminal", surroundings{stdoutTTY: true}, []string{"--color", "never"}, false},
		{"the deprecated --no-color still turns it off", surroundings{stdoutTTY: true}, []string{"--no-color"}, false},
		{"a non-empty NO_COLOR turns it off", surroundings{stdoutTTY: true, env: map[string]string{"NO_COLOR": "1"}}, nil, false},
		{"an empty NO_COLOR does not count", surroundings{stdoutTTY: true, env: map[string]string{"NO_COLOR": ""}}, nil, true},
		{"TERM=dumb turns it off", surroundings{stdoutTTY: true, env: map[string]string{"TERM": "dumb"}}, nil, false},
		{"--color always wins over NO_COLOR", surroundings{stdoutTTY: true, env: map[string]string{"NO_COLOR": "1"}}, []string{"--color", "always"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := iptscopeAt(t, c.tm, "", append([]string{"checks"}, c.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got := strings.Contains(out, "\x1b["); got != c.colour {
				t.Errorf("colour %v, want %v:\n%s", got, c.colour, out)
			}
		})
	}
	t.Run("--no-color says it is deprecated", func(t *testing.T) {
		_, errOut, _ := iptscopeAt(t, surroundings{}, "", "checks", "--no-color")
		if !strings.Contains(errOut, "--color never") {
			t.Errorf("stderr %q", errOut)
		}
	})
	t.Run("an unknown colour mode is refused", func(t *testing.T) {
		_, errOut, code := iptscopeAt(t, surroundings{}, "", "checks", "--color", "sometimes")
		if code != exitUnknown || !strings.Contains(errOut, `unknown colour mode "sometimes"`) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
}

var escapes = regexp.MustCompile("\x1b\\[[0-9;]*m")

// widest returns the widest line of s in columns, and that line.
func widest(s string) (int, string) {
	n, line := 0, ""
	for _, l := range strings.Split(s, "\n") {
		if w := utf8.RuneCountInString(escapes.ReplaceAllString(l, "")); w > n {
			n, line = w, l
		}
	}
	return n, line
}

func TestOutputFitsTheTerminal(t *testing.T) {
	bundle := filepath.Join("../../fixtures/docker-28.5-nft-proxy-off-nat-docker-flushed/bundle.json")
	for _, c := range []struct {
		name  string
		tm    surroundings
		args  []string
		width int
	}{
		{"the check list on a 60-column terminal", surroundings{stdoutTTY: true, width: 60}, []string{"checks"}, 60},
		{"doctor's tables on an 80-column terminal", surroundings{stdoutTTY: true, width: 80}, []string{"doctor", "--from", bundle}, 80},
		{"dump's rule tables on an 80-column terminal", surroundings{stdoutTTY: true, width: 80}, []string{"dump", "--from", filepath.Join(filepath.Dir(bundle), "iptables-save.txt")}, 80},
		{"the graph tree on an 80-column terminal", surroundings{stdoutTTY: true, width: 80}, []string{"graph", "--from", filepath.Join(filepath.Dir(bundle), "iptables-save.txt"), "-t", "nat"}, 80},
		{"a check's page on a 72-column terminal", surroundings{stdoutTTY: true, width: 72}, []string{"explain", "dnat-missing"}, 72},
		{"COLUMNS sets the width of a pipe", surroundings{env: map[string]string{"COLUMNS": "64"}}, []string{"checks"}, 64},
		{"COLUMNS wins over the terminal's size", surroundings{stdoutTTY: true, width: 200, env: map[string]string{"COLUMNS": "70"}}, []string{"checks"}, 70},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := iptscopeAt(t, c.tm, "", c.args...)
			if code == exitUnknown {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if n, line := widest(tablesOnly(c.args[0], out)); n > c.width {
				t.Errorf("a line is %d columns wide, more than %d:\n%s", n, c.width, line)
			}
		})
	}
	t.Run("a pipe without COLUMNS is not wrapped", func(t *testing.T) {
		narrow, _, _ := iptscopeAt(t, surroundings{width: 40}, "", "checks")
		plain, _, _ := iptscope(t, "", "checks")
		if narrow != plain {
			t.Error("output to a pipe changed with the terminal's width")
		}
		if n, _ := widest(plain); n <= 80 {
			t.Errorf("the plain check list is only %d columns: the test needs a wider one", n)
		}
	})
}

// tablesOnly returns what of a command's output must fit: all of it,
// without the colour escapes.
func tablesOnly(_ string, out string) string { return escapes.ReplaceAllString(out, "") }

func TestStdinAtATerminalSaysItIsWaiting(t *testing.T) {
	rules := "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
	_, errOut, code := iptscopeAt(t, surroundings{stdinTTY: true}, rules, "dump", "--from", "-")
	if code != exitOK || !strings.Contains(errOut, "reading the rules from standard input") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	_, errOut, _ = iptscopeAt(t, surroundings{}, rules, "dump", "--from", "-")
	if errOut != "" {
		t.Errorf("a pipe on stdin got a message: %q", errOut)
	}
}
