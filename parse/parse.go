package parse

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
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
func DetectFormat(data []byte) Format { return detectFormat(data) }

func detectFormat[T string | []byte](data T) Format {
	for len(data) > 0 {
		line := data
		if i := indexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = data[len(data):]
		}
		// Only the lines before the first meaningful one are converted.
		trimmed := strings.TrimSpace(string(line))
		if len(trimmed) == 0 || trimmed[0] == '#' || trimmed[0] == '$' {
			continue
		}
		// A pasted shell prompt with the command ("root@host:~# iptables
		// -L -nv") says nothing about the format: look further.
		if c := trimmed[0]; c != '*' && c != ':' && c != '-' && c != '[' && strings.Contains(trimmed, "tables") {
			continue
		}
		if strings.HasPrefix(trimmed, "Chain ") {
			return FormatList
		}
		return FormatSave
	}
	return FormatSave
}

func indexByte[T string | []byte](data T, c byte) int {
	for i := 0; i < len(data); i++ {
		if data[i] == c {
			return i
		}
	}
	return -1
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

// ParseString is Parse of text held in a string. The rules of a save
// dump are substrings of s: the input is not copied (a bundle's dumps and
// a pasted file are held as strings anyway; Parse would hold a second
// copy of each).
func ParseString(s string) (*Ruleset, error) {
	if detectFormat(s) == FormatList {
		return ParseList([]byte(s))
	}
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return nil, checkText([]byte(s)) // names the bad line
	}
	return parseSaveText(s)
}
