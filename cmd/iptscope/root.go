package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/iptscope/iptscope/internal/buildinfo"
	"github.com/iptscope/iptscope/render"
)

// Exit codes, the same as node-problem-detector's plugin protocol (see
// docs/exit-codes.md).
const (
	exitOK       = 0 // nothing at or above the failure threshold
	exitProblems = 1 // problems found
	exitUnknown  = 2 // could not check: bad input, no privileges, nothing to inspect
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Colour modes of --color.
const (
	colorAuto   = "auto"
	colorAlways = "always"
	colorNever  = "never"
)

// globals are the flags every command shares and what the commands know
// of their surroundings. The functions are the real ones in run; tests
// replace them to act as a terminal of a given width.
type globals struct {
	color   string // --color: auto, always or never
	noColor bool   // --no-color, deprecated: --color never
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer

	getenv func(string) string // os.Getenv
	isTTY  func(any) bool      // is this reader or writer a terminal?
	width  func(any) int       // the columns of that terminal, 0 if unknown
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool { return isTTYFile(w) }

// isTTYFile reports whether v (a reader or writer) is a terminal.
func isTTYFile(v any) bool {
	f, ok := v.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// termWidth returns the columns of the terminal v is, 0 when unknown.
func termWidth(v any) int {
	f, ok := v.(*os.File)
	if !ok {
		return 0
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}

// colorMode is --color with --no-color folded in.
func (g *globals) colorMode() string {
	if g.noColor {
		return colorNever
	}
	return g.color
}

// renderOptions decides how output to stdout looks:
//
//   - a terminal gets box tables, rounded counters and colour, and
//     tables and text fit its width; anything else plain, stable text of
//     unlimited width (what scripts and golden files see);
//   - colour: --color always forces it, --color never (or the deprecated
//     --no-color) turns it off; in auto mode a non-empty NO_COLOR
//     (no-color.org: an empty one does not count) or TERM=dumb turns it
//     off on a terminal;
//   - COLUMNS, when a positive number, is the width, terminal or not
//     (`COLUMNS=100 iptscope doctor > report.txt`).
func (g *globals) renderOptions() render.Options {
	tty := g.isTTY(g.stdout)
	o := render.Options{Terminal: tty}
	switch g.colorMode() {
	case colorAlways:
		o.ForceColor = true
	case colorNever:
		o.NoColor = true
	default:
		o.NoColor = g.getenv("NO_COLOR") != "" || g.getenv("TERM") == "dumb"
	}
	if tty {
		o.Width = g.width(g.stdout)
	}
	if c, err := strconv.Atoi(g.getenv("COLUMNS")); err == nil && c > 0 {
		o.Width = c
	}
	return o
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "iptscope",
		Short: "Find out why a Docker container's published port is dead",
		Long: `iptscope reads a host's netfilter rules (iptables-save, or the
"iptables -L -n -v" text pasted into a ticket), parses the chains into a graph
and shows what a packet really meets on its way to a container.

Every command reads the live host by default (as root) or a saved dump with
--from FILE, so you can look at a host you cannot log in to.

Output adapts to where it goes: on a terminal, colour and box tables that
fit its width; otherwise plain, stable text. --color always|never overrides
the colour; NO_COLOR (non-empty) and TERM=dumb turn it off; COLUMNS sets the
width. Exit codes: 0 ok, 1 problems found, 2 could not check
(docs/exit-codes.md).`,
		Example: `  # What is in the NAT table, and how do the chains connect?
  sudo iptscope dump -t nat
  sudo iptscope graph -t nat

  # Work on a dump from a ticket
  iptscope graph --from ticket-1234.txt --format dot | dot -Tsvg > chains.svg

  # What is broken, and what each finding means
  sudo iptscope doctor
  iptscope explain dnat-missing`,
		Version:       buildinfo.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.preRun(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.color, "color", colorAuto, "colour the output: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always or never")
	// Why not MarkDeprecated: pflag prints its notice to the flag set's
	// output, which cobra sends to a buffer of its own; preRun says it.
	pf.BoolVar(&g.noColor, "no-color", false, "deprecated: use --color never")
	_ = pf.MarkHidden("no-color")
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	// The help lists the commands in three groups, in this order.
	root.AddGroup(
		&cobra.Group{ID: "diagnose", Title: "Diagnose and repair:"},
		&cobra.Group{ID: "inspect", Title: "Look at the rules:"},
		&cobra.Group{ID: "about", Title: "About iptscope:"},
	)
	for _, grp := range []struct {
		id   string
		cmds []*cobra.Command
	}{
		{"diagnose", []*cobra.Command{newDoctorCmd(g), newTraceCmd(g), newWatchCmd(g), newRestoreCmd(g), newCollectCmd(g)}},
		{"inspect", []*cobra.Command{newDumpCmd(g), newGraphCmd(g)}},
		{"about", []*cobra.Command{newChecksCmd(g), newExplainCmd(g), newVersionCmd(g)}},
	} {
		for _, c := range grp.cmds {
			c.GroupID = grp.id
			root.AddCommand(c)
		}
	}
	root.AddCommand(newManCmd(g))
	root.SetCompletionCommandGroupID("about")
	root.SetHelpCommandGroupID("about")
	registerCompletions(root)
	return root
}

// preRun checks the shared flags and, when a command is about to read
// standard input typed at a terminal, says so on stderr: otherwise
// `iptscope dump --from -` looks hung.
func (g *globals) preRun(cmd *cobra.Command) error {
	switch g.color {
	case colorAuto, colorAlways, colorNever:
	default:
		return &exitError{code: exitUnknown, err: fmt.Errorf("unknown colour mode %q for --color (use auto, always or never)", g.color)}
	}
	if g.noColor {
		fmt.Fprintln(g.stderr, "iptscope: --no-color is deprecated: use --color never")
	}
	if f := cmd.Flags().Lookup("from"); f != nil && f.Value.String() == "-" && g.isTTY(g.stdin) {
		fmt.Fprintln(g.stderr, "iptscope: reading the rules from standard input: paste them, then press Ctrl-D (or pass --from FILE)")
	}
	return nil
}

// run executes the command line and maps its error to an exit code. It
// is the only place that decides exit codes.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(&globals{
		stdin: stdin, stdout: stdout, stderr: stderr,
		getenv: os.Getenv, isTTY: isTTYFile, width: termWidth,
	}, args)
}

// runWith is run with the surroundings given in g.
func runWith(g *globals, args []string) int {
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(g.stderr, "iptscope: "+err.Error())
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Usage errors (unknown flag, bad argument) and everything else:
	// nothing could be checked.
	return exitUnknown
}
