package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

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

// globals are the flags every command shares.
type globals struct {
	noColor bool
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// renderOptions decides how output looks: colour and boxes on a terminal,
// plain text otherwise; NO_COLOR and --no-color turn colour off.
func (g *globals) renderOptions() render.Options {
	term := isTerminal(g.stdout)
	_, noColorEnv := os.LookupEnv("NO_COLOR")
	return render.Options{Terminal: term, NoColor: g.noColor || noColorEnv}
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "iptscope",
		Short: "Find out why a Docker container's published port is dead",
		Long: `iptscope reads a host's netfilter rules (iptables-save, or the
"iptables -L -n -v" text pasted into a ticket), parses the chains into a graph
and shows what a packet really meets on its way to a container.

Every command reads the live host by default (as root) or a saved dump with
--from FILE, so you can look at a host you cannot log in to.`,
		Example: `  # What is in the NAT table, and how do the chains connect?
  sudo iptscope dump -t nat
  sudo iptscope graph -t nat

  # Work on a dump from a ticket
  iptscope graph --from ticket-1234.txt --format dot | dot -Tsvg > chains.svg`,
		Version:       buildinfo.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&g.noColor, "no-color", false, "never colour the output (NO_COLOR in the environment does the same)")
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.AddCommand(newDumpCmd(g), newGraphCmd(g), newCollectCmd(g), newDoctorCmd(g), newRestoreCmd(g),
		newChecksCmd(g), newExplainCmd(g), newVersionCmd(g))
	return root
}

// run executes the command line and maps its error to an exit code. It
// is the only place that decides exit codes.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "iptscope: "+err.Error())
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Usage errors (unknown flag, bad argument) and everything else:
	// nothing could be checked.
	return exitUnknown
}
