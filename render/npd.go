package render

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/iptscope/iptscope/diagnose"
)

// NPDMaxLine is node-problem-detector's default max_output_length: the
// custom plugin protocol keeps that much of a plugin's stdout as the
// condition's message.
const NPDMaxLine = 80

// NPDLine is `doctor -o npd`: one line of at most NPDMaxLine bytes for
// node-problem-detector's custom plugin protocol (the exit code, 0 ok, 1
// problem, 2 unknown, is the command's). It names the worst finding first
// (the report's order) and how many more there are:
//
//	OK: Docker's rules are healthy (3 published ports reachable)
//	docker-chain-missing: nat DOCKER chain is missing (+2 more)
//	UNKNOWN: partial check: no Docker view (...)
func NPDLine(rep *diagnose.Report) string {
	var line string
	var failing []diagnose.Finding
	for _, f := range rep.Findings {
		if f.Severity.Rank() >= rep.FailOn.Rank() {
			failing = append(failing, f)
		}
	}
	switch {
	case rep.Status == diagnose.StatusProblems && len(failing) > 0:
		f := failing[0]
		more := ""
		if len(failing) > 1 {
			more = fmt.Sprintf(" (+%d more)", len(failing)-1)
		}
		head := f.ID + ": "
		line = head + clipBytes(npdOneLine(f.Title), NPDMaxLine-len(head)-len(more)) + more
	case rep.Status == diagnose.StatusProblems:
		line = "PROBLEM: " + npdOneLine(rep.Next)
	case rep.Status == diagnose.StatusUnknown:
		why := "partial check"
		for _, n := range rep.Notes {
			if strings.HasPrefix(n, "partial: ") {
				why = n
				break
			}
		}
		line = "UNKNOWN: " + npdOneLine(why)
	default:
		reach := 0
		for _, p := range rep.Ports {
			if p.Path == diagnose.PathNAT || p.Path == diagnose.PathLocalOnly {
				reach++
			}
		}
		line = fmt.Sprintf("OK: Docker's rules are healthy (%d published port%s reachable)", reach, pluralS(reach))
	}
	return clipBytes(line, NPDMaxLine)
}

// NPDText writes NPDLine and a newline.
func NPDText(w io.Writer, rep *diagnose.Report) error {
	_, err := fmt.Fprintln(w, NPDLine(rep))
	return err
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// npdOneLine folds newlines and runs of spaces into single spaces.
func npdOneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clipBytes shortens s to at most n bytes, ending in "..." when cut, at a
// rune boundary.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 3 {
		return s[:0]
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " ") + "..."
}

// NPDUnknownLine is the line for a check that could not run at all (exit
// 2): "UNKNOWN: " and the error, cut to NPDMaxLine bytes.
func NPDUnknownLine(err error) string {
	return clipBytes("UNKNOWN: "+npdOneLine(err.Error()), NPDMaxLine)
}
