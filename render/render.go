// Package render turns rules, graphs and (later) findings into text for
// people and machines: tables, trees, JSON, DOT and Mermaid. It is pure:
// it writes to the io.Writer it is given and reads nothing else.
//
// Output adapts to where it goes: on a terminal, colour and box tables;
// otherwise plain, stable text that scripts and golden tests can rely on.
// NO_COLOR (https://no-color.org) turns colour off even on a terminal.
package render

import (
	"strconv"
	"strings"

	"github.com/fatih/color"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Options says how output should look.
type Options struct {
	// Terminal is true when the output is a terminal: box tables, rounded
	// counters and (unless NoColor) colour.
	Terminal bool
	// NoColor turns colour off (set it from NO_COLOR or --no-color).
	NoColor bool
}

func (o Options) color() bool { return o.Terminal && !o.NoColor }

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
// space-separated columns otherwise (stable for scripts and tests).
func newTable(w interface{ Write([]byte) (int, error) }, o Options) *tablewriter.Table {
	cfg := tablewriter.WithHeaderAutoFormat(tw.Off)
	align := tablewriter.WithRowAlignment(tw.AlignLeft)
	halign := tablewriter.WithHeaderAlignment(tw.AlignLeft)
	if o.Terminal {
		return tablewriter.NewTable(w, cfg, align, halign)
	}
	plain := renderer.NewBlueprint(tw.Rendition{
		Borders: tw.BorderNone,
		Symbols: tw.NewSymbols(tw.StyleNone),
		Settings: tw.Settings{
			Separators: tw.Separators{ShowHeader: tw.Off, ShowFooter: tw.Off, BetweenRows: tw.Off, BetweenColumns: tw.Off},
			Lines:      tw.Lines{ShowTop: tw.Off, ShowBottom: tw.Off, ShowHeaderLine: tw.Off, ShowFooterLine: tw.Off},
		},
	})
	return tablewriter.NewTable(w, cfg, align, halign, tablewriter.WithRenderer(plain),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
		tablewriter.WithTrimSpace(tw.Off))
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
