// Package render turns rules, graphs and (later) findings into text for
// people and machines: tables, trees, JSON, DOT and Mermaid. It is pure:
// it writes to the io.Writer it is given and reads nothing else.
//
// Output adapts to where it goes: on a terminal, colour and box tables
// that fit its width; otherwise plain, stable text that scripts and golden
// tests can rely on. The caller decides (Options): the command line maps
// --color, NO_COLOR (https://no-color.org), TERM=dumb and COLUMNS to it.
package render

import (
	"io"
	"strconv"
	"strings"

	"github.com/fatih/color"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Options says how output should look. The zero value is plain text of
// unlimited width, the stable form scripts and golden files rely on.
type Options struct {
	// Terminal is true when the output is a terminal: box tables, rounded
	// counters and (unless NoColor) colour.
	Terminal bool
	// NoColor turns colour off (--color never, NO_COLOR, TERM=dumb).
	NoColor bool
	// ForceColor turns colour on even when the output is not a terminal
	// (--color always, for a pager such as less -R). NoColor wins.
	ForceColor bool
	// Width is the number of columns the output must fit: tables are
	// capped to it (long cells wrap inside their column) and free text
	// written through Fit wraps at spaces. 0 means unlimited: nothing is
	// wrapped, lines are as long as their content.
	Width int
}

func (o Options) color() bool { return (o.Terminal || o.ForceColor) && !o.NoColor }

// palette holds the colour functions for one output; with colour off each
// returns its input unchanged.
type palette struct {
	bold, dim, red, green, yellow, cyan, magenta func(a ...any) string
}

func newPalette(o Options) palette {
	mk := func(attrs ...color.Attribute) func(a ...any) string {
		c := color.New(attrs...)
		if o.color() {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c.SprintFunc()
	}
	return palette{
		bold:    mk(color.Bold),
		dim:     mk(color.Faint),
		red:     mk(color.FgRed),
		green:   mk(color.FgGreen),
		yellow:  mk(color.FgYellow),
		cyan:    mk(color.FgCyan),
		magenta: mk(color.FgMagenta),
	}
}

// newTable returns a table writer: a box table on a terminal, plain
// space-separated columns otherwise (stable for scripts and tests). With
// o.Width set the table fits that many columns (see table.Render).
func newTable(w io.Writer, o Options) *table {
	cfg := tablewriter.WithHeaderAutoFormat(tw.Off)
	align := tablewriter.WithRowAlignment(tw.AlignLeft)
	halign := tablewriter.WithHeaderAlignment(tw.AlignLeft)
	t := &table{width: o.Width, boxed: o.Terminal}
	if o.Terminal {
		t.tw = tablewriter.NewTable(w, cfg, align, halign)
		return t
	}
	plain := renderer.NewBlueprint(tw.Rendition{
		Borders: tw.BorderNone,
		Symbols: tw.NewSymbols(tw.StyleNone),
		Settings: tw.Settings{
			Separators: tw.Separators{ShowHeader: tw.Off, ShowFooter: tw.Off, BetweenRows: tw.Off, BetweenColumns: tw.Off},
			Lines:      tw.Lines{ShowTop: tw.Off, ShowBottom: tw.Off, ShowHeaderLine: tw.Off, ShowFooterLine: tw.Off},
		},
	})
	t.tw = tablewriter.NewTable(w, cfg, align, halign, tablewriter.WithRenderer(plain),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
		tablewriter.WithTrimSpace(tw.Off))
	return t
}

// table collects a header and rows and renders them with tablewriter,
// first narrowing the columns to the width when one is set. (Why not
// tablewriter's own WithMaxWidth: v1.1 gives every column the same share
// of the width, so a table with one long column wraps it far narrower
// than needed and still overflows when the short columns do not fit their
// share.)
type table struct {
	tw     *tablewriter.Table
	width  int  // 0: unlimited
	boxed  bool // borders and one space of padding each side
	header []string
	rows   [][]string
}

// Header sets the column names.
func (t *table) Header(cells ...string) { t.header = cells }

// Append adds a row; it never fails (the error is Render's).
func (t *table) Append(row []string) error {
	t.rows = append(t.rows, row)
	return nil
}

// Render writes the table. With a width, the widest columns are narrowed
// one column at a time until the table fits, first down to each column's
// longest word, then if need be down to its heading; cells wrap at spaces
// inside their column (a word longer than its column is cut, unless it is
// coloured).
func (t *table) Render() error {
	if t.width > 0 {
		t.fit()
	}
	hdr := make([]any, len(t.header))
	for i, h := range t.header {
		hdr[i] = h
	}
	t.tw.Header(hdr...)
	for _, r := range t.rows {
		if err := t.tw.Append(r); err != nil {
			return err
		}
	}
	return t.tw.Render()
}

func (t *table) fit() {
	n := len(t.header)
	for _, r := range t.rows {
		n = max(n, len(r))
	}
	if n == 0 {
		return
	}
	// widths: what each column needs; words: its longest word; heads:
	// its heading.
	widths, words, heads := make([]int, n), make([]int, n), make([]int, n)
	for i, h := range t.header {
		widths[i], words[i], heads[i] = visibleWidth(h), visibleWidth(h), max(visibleWidth(h), 1)
	}
	for _, r := range t.rows {
		for i, c := range r {
			for _, l := range strings.Split(c, "\n") {
				widths[i] = max(widths[i], visibleWidth(l))
			}
			for _, wd := range strings.Fields(c) {
				words[i] = max(words[i], visibleWidth(wd))
			}
		}
	}
	// Box: "│ " before each cell, " " after, and a closing "│". Plain: two
	// spaces after each cell but the last.
	overhead := 3*n + 1
	if !t.boxed {
		overhead = 2 * (n - 1)
	}
	total := overhead
	for _, w := range widths {
		total += w
	}
	// Narrow the widest column first, down to its longest word (cells
	// wrap between words); only then, if the table is still too wide,
	// down to its heading (words are cut).
	narrowed := false
	for _, mins := range [][]int{words, heads} {
		for total > t.width {
			widest := -1
			for i, w := range widths {
				if w > mins[i] && (widest < 0 || w > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
			total--
			narrowed = true
		}
	}
	if !narrowed {
		return
	}
	for _, r := range t.rows {
		for i, c := range r {
			r[i] = wrapCell(c, widths[i])
		}
	}
}

// wrapCell wraps a cell's text at spaces to width columns; a word longer
// than the width is cut unless it carries colour escapes.
func wrapCell(s string, width int) string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		if visibleWidth(para) <= width {
			out = append(out, para)
			continue
		}
		line := ""
		for _, wd := range strings.Fields(para) {
			for visibleWidth(wd) > width && !strings.Contains(wd, "\x1b") {
				if line != "" {
					out, line = append(out, line), ""
				}
				r := []rune(wd)
				out, wd = append(out, string(r[:width])), string(r[width:])
			}
			switch {
			case line == "":
				line = wd
			case visibleWidth(line)+1+visibleWidth(wd) <= width:
				line += " " + wd
			default:
				out, line = append(out, line), wd
			}
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// HumanCount formats a counter the way `iptables -L -v` does: exact below
// 100000, then K, M, G, T in units of 1000.
func HumanCount(n uint64) string {
	units := []string{"", "K", "M", "G", "T", "P"}
	i := 0
	for n > 99999 && i < len(units)-1 {
		n /= 1000
		i++
	}
	return strconv.FormatUint(n, 10) + units[i]
}

// count formats a counter for output: rounded on a terminal, exact
// otherwise.
func count(n uint64, o Options) string {
	if o.Terminal {
		return HumanCount(n)
	}
	return strconv.FormatUint(n, 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine makes s safe for a single-line cell or label.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
}
