package render

import (
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Fit returns w when width is 0 (unlimited); otherwise a writer that
// wraps every line longer than width columns at spaces. A continuation
// line keeps the line's indent (its leading spaces and tree glyphs, with
// "├──" and "└──" continued as "│" and blank), so a paragraph stays a
// paragraph and a tree stays a tree. A word longer than the room left is
// never broken (rules and commands stay copyable); its line is simply
// longer. Colour escapes count as no width. Lines that fit, which
// includes tables capped with Options.Width, pass through unchanged.
//
// Each line is written when its newline arrives; Close writes a last line
// that has none.
func Fit(w io.Writer, width int) io.WriteCloser {
	if width <= 0 {
		return nopCloser{w}
	}
	return &fitWriter{w: w, width: width}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

type fitWriter struct {
	w     io.Writer
	width int
	buf   []byte
	err   error
}

func (f *fitWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && f.err == nil {
		i := strings.IndexByte(string(p), '\n')
		if i < 0 {
			f.buf = append(f.buf, p...)
			break
		}
		f.buf = append(f.buf, p[:i]...)
		f.emit(string(f.buf), true)
		f.buf = f.buf[:0]
		p = p[i+1:]
	}
	if f.err != nil {
		return 0, f.err
	}
	return n, nil
}

// Close writes a last line that had no newline.
func (f *fitWriter) Close() error {
	if len(f.buf) > 0 && f.err == nil {
		f.emit(string(f.buf), false)
		f.buf = f.buf[:0]
	}
	return f.err
}

func (f *fitWriter) emit(line string, nl bool) {
	out := strings.Join(wrapLine(line, f.width), "\n")
	if nl {
		out += "\n"
	}
	_, f.err = io.WriteString(f.w, out)
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// visibleWidth counts the columns a string takes: runes, without colour
// escapes. (iptscope's output is ASCII plus box-drawing glyphs, one column
// each.)
func visibleWidth(s string) int {
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = ansi.ReplaceAllString(s, "")
	}
	return utf8.RuneCountInString(s)
}

// wrapLine splits one line (no newline in it) into lines of at most width
// columns where spaces allow; see Fit.
func wrapLine(line string, width int) []string {
	if visibleWidth(line) <= width {
		return []string{line}
	}
	indent := leadingIndent(line)
	cont := continuation(indent)
	words := strings.Fields(line[len(indent):])
	if len(words) == 0 {
		return []string{line}
	}
	var out []string
	cur, curW := indent+words[0], visibleWidth(indent+words[0])
	for _, wd := range words[1:] {
		ww := visibleWidth(wd)
		if curW+1+ww > width {
			out = append(out, cur)
			cur, curW = cont+wd, visibleWidth(cont)+ww
			continue
		}
		cur += " " + wd
		curW += 1 + ww
	}
	return append(out, cur)
}

// leadingIndent is the line's prefix of spaces and tree glyphs.
func leadingIndent(line string) string {
	for i, r := range line {
		if !strings.ContainsRune(" │├└─", r) {
			return line[:i]
		}
	}
	return line
}

// continuation turns an indent into the indent of a continuation line: a
// tree branch ("├── ", "└── ") continues as "│   " or blank.
func continuation(indent string) string {
	return strings.NewReplacer("├", "│", "└", " ", "─", " ").Replace(indent)
}
