package parse

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrEmpty is returned when the input holds no table, chain or rule.
var ErrEmpty = errors.New("no iptables rules found in input")

// maxShown bounds how much of an offending line an error shows.
const maxShown = 120

// MaxLine is the longest line either parser reads, in bytes (without its
// line ending). No real dump comes near it: iptables caps a comment at 256
// bytes, a chain name at 28, and the longest rules Docker, kube-proxy or
// firewalld write are a few hundred bytes. A longer line means the input is
// not iptables text (a binary, a minified JSON file, a log).
const MaxLine = 64 << 10

// longLine is the error for a line longer than MaxLine.
func longLine(n int, line string) *Error {
	return newError(n, []byte(line[:maxShown]), "line of %d bytes, longer than any iptables dump has (at most %d): not iptables text?", len(line), MaxLine)
}

// Error is a parse error at one line of the input. It names the line
// number (1-based) and shows the line, truncated when very long.
type Error struct {
	Line int    // 1-based line number
	Text string // the offending line, possibly truncated
	Msg  string // what is wrong
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// newError builds an Error, truncating the line shown.
func newError(line int, text []byte, format string, args ...any) *Error {
	shown := text
	suffix := ""
	if len(shown) > maxShown {
		shown = shown[:maxShown]
		suffix = fmt.Sprintf("... (%d bytes)", len(text))
	}
	return &Error{Line: line, Text: string(shown) + suffix, Msg: fmt.Sprintf(format, args...)}
}

// DetectFormat tells which format data is in: list format when the first
// line that is neither blank nor a "#" comment starts with "Chain ",
// save format otherwise. It does not validate the rest.
func DetectFormat(data []byte) Format {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, "\r")
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' || trimmed[0] == '$' {
			continue
		}
		// A pasted shell prompt with the command ("root@host:~# iptables
		// -L -nv") says nothing about the format: look further.
		if c := trimmed[0]; c != '*' && c != ':' && c != '-' && c != '[' && bytes.Contains(trimmed, []byte("tables")) {
			continue
		}
		if bytes.HasPrefix(trimmed, []byte("Chain ")) {
			return FormatList
		}
		return FormatSave
	}
	return FormatSave
}

// Parse parses data in either format, detected with DetectFormat.
// It returns an *Error for malformed input and ErrEmpty when there is
// nothing to parse.
func Parse(data []byte) (*Ruleset, error) {
	if DetectFormat(data) == FormatList {
		return ParseList(data)
	}
	return ParseSave(data)
}
