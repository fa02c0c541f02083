package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
	"github.com/iptscope/iptscope/repair"
	"github.com/iptscope/iptscope/snapshot"
)

type restoreOptions struct {
	netns  string
	dryRun bool
	yes    bool
}

// restoreBackup puts a backup back; tests replace it so that nothing
// touches the host's rules.
var restoreBackup = restoreLive

// restoreLive refuses a backup of another backend than the one holding
// the host's rules now (repair.ErrBackupMismatch), then restores it.
func restoreLive(ctx context.Context, path string, o repair.Options) ([]string, error) {
	b, err := repair.ReadBackup(path)
	if err != nil {
		return nil, err
	}
	netns := o.NetNS
	if netns == "" {
		netns = b.NetNS()
	}
	s := collectLive(ctx, collect.Options{NetNS: netns})
	switch {
	case s.DockerBackend == snapshot.BackendNFT || s.DockerBackend == snapshot.BackendLegacy:
		o.Backend = s.DockerBackend
	case s.IptablesBackend == snapshot.BackendNFT || s.IptablesBackend == snapshot.BackendLegacy:
		o.Backend = s.IptablesBackend
	}
	return repair.Restore(ctx, path, o)
}

func newRestoreCmd(g *globals) *cobra.Command {
	o := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Put back a backup that `iptscope doctor --fix` wrote",
		Long: `Put back the tables saved in a backup written by "iptscope doctor --fix"
(under /var/lib/iptscope/backups by default). Each table in the backup is
replaced as a whole by its saved content (iptables-restore without
--noflush, one table at a time); tables not in the backup are left alone.
The backup records when it was taken, the iptables backend, the network
namespace, its families and tables and the plan it was taken for; --netns
overrides the namespace. A backup of another backend than the one holding
the host's rules now, or whose sections contradict its header or family, is
refused.

What would be replaced is shown first (family, table, chains and rules of
the backup); --dry-run stops there. On a terminal it asks before changing
anything; --yes answers for scripts (without a terminal and without --yes
nothing is changed), as "doctor --fix" does.

Exit codes: 0 restored (or, with --dry-run, the backup is readable), 2
nothing changed (not root, bad file, not confirmed, refused).`,
		Example: `  sudo iptscope restore /var/lib/iptscope/backups/20250101T120000.000000000Z-host.rules
  iptscope restore backup.rules --dry-run
  sudo iptscope restore backup.rules --netns dockerhost --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), g, o, args[0])
		},
	}
	cmd.Flags().StringVar(&o.netns, "netns", "", "restore into this network namespace (default: the one recorded in the backup)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "show what would be restored and stop")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "do not ask for confirmation (scripts)")
	return cmd
}

func runRestore(ctx context.Context, g *globals, o *restoreOptions, path string) error {
	// ReadBackup first: its errors (not a backup, no table) are the ones
	// Restore would give, before anything is shown or asked.
	if _, err := repair.ReadBackup(path); err != nil {
		return &exitError{code: exitUnknown, err: err}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("reading the backup: %w", err)}
	}
	sum := summarizeBackup(data)
	netns := sum.netns
	if o.netns != "" {
		netns = o.netns
	}
	where := "the current network namespace"
	if netns != "" {
		where = "network namespace " + netns
	}
	backend := sum.backend
	if backend == "" {
		backend = "default"
	}
	fmt.Fprintf(g.stdout, "Restore plan: %s into %s (backend %s)\n", path, where, backend)
	if sum.time != "" {
		fmt.Fprintf(g.stdout, "  taken %s, before a plan of %s\n", sum.time, nOf(sum.plan, "operation"))
	}
	for _, s := range sum.sections {
		fmt.Fprintf(g.stdout, "  replace %s %s with its backup: %s, %s\n", s.family, s.table, nOf(s.chains, "chain"), nOf(s.rules, "rule"))
	}
	if o.dryRun {
		fmt.Fprintln(g.stdout, "dry run: nothing changed")
		return nil
	}
	if !o.yes {
		if err := confirm(g, "Restore these tables?", "add --yes to restore without asking"); err != nil {
			return err
		}
	}
	tables, err := restoreBackup(ctx, path, repair.Options{NetNS: o.netns})
	if err != nil {
		return &exitError{code: exitUnknown, err: err}
	}
	for _, t := range tables {
		fmt.Fprintf(g.stdout, "restored %s from %s\n", t, path)
	}
	return nil
}

// confirm asks question on stderr and reads the answer from stdin. Without
// a terminal on both it refuses with "not a terminal: nothing changed;
// HINT", so that a script never changes the host without --yes. Any
// answer but y or yes is a no.
func confirm(g *globals, question, hint string) error {
	if !g.isTTY(g.stdin) || !g.isTTY(g.stderr) {
		return &exitError{code: exitUnknown, err: fmt.Errorf("not a terminal: nothing changed; %s", hint)}
	}
	fmt.Fprint(g.stderr, question+" [y/N] ")
	line, _ := bufio.NewReader(g.stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return &exitError{code: exitUnknown, err: fmt.Errorf("not confirmed: nothing changed")}
	}
	return nil
}

// backupSummary is what a backup holds, for the restore plan.
type backupSummary struct {
	netns, backend, time string
	plan                 int
	sections             []backupSection
}

type backupSection struct {
	family, table string
	chains, rules int
}

// summarizeBackup reads the header and the sections of a backup that
// repair.ReadBackup has accepted (the format is documented in
// repair/backup.go): the "# netns:" and "# backend:" lines, and per
// "# section: FAMILY TABLE" its chain declarations and rules.
func summarizeBackup(data []byte) backupSummary {
	var b backupSummary
	var cur *backupSection
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "# section: "):
			fam, table, _ := strings.Cut(strings.TrimPrefix(line, "# section: "), " ")
			b.sections = append(b.sections, backupSection{family: fam, table: table})
			cur = &b.sections[len(b.sections)-1]
		case cur == nil && strings.HasPrefix(line, "# netns: "):
			b.netns = strings.TrimPrefix(line, "# netns: ")
		case cur == nil && strings.HasPrefix(line, "# backend: "):
			b.backend = strings.TrimPrefix(line, "# backend: ")
		case cur == nil && strings.HasPrefix(line, "# time: "):
			b.time = strings.TrimPrefix(line, "# time: ")
		case cur == nil && strings.HasPrefix(line, "# plan: "):
			b.plan++
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			cur.chains++
		case strings.HasPrefix(line, "-A "), strings.HasPrefix(line, "[") && strings.Contains(line, "] -A "):
			cur.rules++
		}
	}
	return b
}

// nOf is "1 rule", "3 rules".
func nOf(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
