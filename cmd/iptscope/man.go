package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

//go:generate go run . man ../../docs/man

// manSection is the manual section of iptscope's pages: system
// administration (it reads and repairs a host's firewall as root).
const manSection = "8"

func newManCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write the manual pages of every command into DIR",
		Long: `Write one manual page per command (iptscope.8, iptscope-doctor.8, ...)
into DIR, made from the commands' own help text. The repository keeps them
in docs/man ("go generate ./cmd/iptscope" rewrites them; a test fails when
they are out of date). The pages carry no date, so that they change only
when the commands do.`,
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pages, err := manPages(cmd.Root())
			if err != nil {
				return &exitError{code: exitUnknown, err: err}
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return &exitError{code: exitUnknown, err: fmt.Errorf("writing the manual pages: %w", err)}
			}
			for name, text := range pages {
				if err := os.WriteFile(filepath.Join(args[0], name), text, 0o644); err != nil {
					return &exitError{code: exitUnknown, err: fmt.Errorf("writing the manual pages: %w", err)}
				}
			}
			fmt.Fprintf(g.stderr, "iptscope: wrote %d manual pages to %s\n", len(pages), args[0])
			return nil
		},
	}
}

// manPages renders the page of every available command under root
// (hidden ones and help left out), keyed by file name: "iptscope.8",
// "iptscope-doctor.8", "iptscope-completion-bash.8".
func manPages(root *cobra.Command) (map[string][]byte, error) {
	pages := map[string][]byte{}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != root || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		// Why: cobra stamps each page with today's month unless a date is
		// given, and adds an "Auto generated" history with the day; the
		// pages in the repository would change every month. A zero date is
		// blanked below, the history is turned off.
		c.DisableAutoGenTag = true
		zero := time.Time{}
		header := &doc.GenManHeader{Section: manSection, Date: &zero, Source: "iptscope", Manual: "iptscope manual"}
		var b bytes.Buffer
		if err := doc.GenMan(c, header, &b); err != nil {
			return fmt.Errorf("rendering the manual page of %q: %w", c.CommandPath(), err)
		}
		text := bytes.Replace(b.Bytes(), []byte(`"`+zero.Format("Jan 2006")+`"`), []byte(`""`), 1)
		pages[strings.ReplaceAll(c.CommandPath(), " ", "-")+"."+manSection] = text
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return pages, walk(root)
}
