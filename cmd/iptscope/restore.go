package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/repair"
)

type restoreOptions struct {
	netns string
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
The backup records the iptables backend and the network namespace; --netns
overrides the namespace.

Exit codes: 0 restored, 2 nothing changed (not root, bad file, refused).`,
		Example: `  sudo iptscope restore /var/lib/iptscope/backups/20250101T120000.000000000Z-host.rules
  sudo iptscope restore backup.rules --netns dockerhost`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tables, err := repair.Restore(cmd.Context(), args[0], repair.Options{NetNS: o.netns})
			if err != nil {
				return &exitError{code: exitUnknown, err: err}
			}
			for _, t := range tables {
				fmt.Fprintf(g.stdout, "restored %s from %s\n", t, args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.netns, "netns", "", "restore into this network namespace (default: the one recorded in the backup)")
	return cmd
}
