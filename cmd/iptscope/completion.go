package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/parse"
)

// netnsDir is where `ip netns` keeps its named namespaces; tests point it
// elsewhere.
var netnsDir = "/var/run/netns"

// outputFormats are the values of each command's -o flag (collect's -o is
// a file and completes as one).
var outputFormats = map[string][]string{
	"doctor":  {"table\tfindings and ports for people", "json\tiptscope.doctor/v1 (iptscope.fix/v1 with --fix)"},
	"dump":    {"table\tone table per chain", "json\tthe rule model, iptscope.rules/v1", "save\tiptables-save text"},
	"checks":  {"table\tone row per check", "json\tiptscope.checks/v1"},
	"version": {"text\tone line", "json\tiptscope.version/v1"},
}

// flagValues are the values of flags that mean the same wherever they
// appear.
var flagValues = map[string][]string{
	"fail-on": {"error", "warning", "info"},
	"backend": {"auto\tthe backend holding Docker's chains, else the one iptables uses", "nft", "legacy"},
	"format":  {"tree\tthe chains a packet follows, with counters", "dot\tGraphviz", "mermaid\ta Mermaid flowchart", "json\tiptscope.graph/v1"},
	"color":   {colorAuto + "\tcolour on a terminal", colorAlways, colorNever},
}

// registerCompletions adds value completion to the flags of every command
// under root, found by name after the commands are built (so that the
// command files need not know about completion): check IDs for --skip,
// the fixed values of -o, --fail-on, --format, --backend, -t and --color,
// and the names under /var/run/netns for --netns. Flags without values to
// offer (files, endpoints) keep the shell's default.
func registerCompletions(root *cobra.Command) {
	completionCmd(root)
	fixed := func(vals []string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vals, cobra.ShellCompDirectiveNoFileComp
		}
	}
	// Persistent flags belong to root alone: register them once.
	for name, vals := range flagValues {
		if root.PersistentFlags().Lookup(name) != nil {
			_ = root.RegisterFlagCompletionFunc(name, fixed(vals))
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		has := func(name string) bool { return c.LocalNonPersistentFlags().Lookup(name) != nil }
		for name, vals := range flagValues {
			if has(name) {
				_ = c.RegisterFlagCompletionFunc(name, fixed(vals))
			}
		}
		if vals, ok := outputFormats[c.Name()]; ok && has("output") {
			_ = c.RegisterFlagCompletionFunc("output", fixed(vals))
		}
		if has("skip") {
			_ = c.RegisterFlagCompletionFunc("skip", completeCheckIDs)
		}
		if has("table") {
			var tables []string
			for _, t := range parse.KnownTables {
				tables = append(tables, string(t))
			}
			_ = c.RegisterFlagCompletionFunc("table", fixed(tables))
		}
		if has("netns") {
			_ = c.RegisterFlagCompletionFunc("netns", completeNetNS)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, sub := range root.Commands() {
		walk(sub)
	}
}

// completeNetNS offers the named network namespaces (`ip netns list`);
// a path such as /proc/PID/ns/net completes as a file.
func completeNetNS(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.HasPrefix(toComplete, "/") || strings.HasPrefix(toComplete, ".") {
		return nil, cobra.ShellCompDirectiveDefault
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completionCmd adds cobra's `completion bash|zsh|fish|powershell` now
// rather than at Execute, with how to install each script, and makes an
// unknown shell an error: without a Run of its own cobra prints the help
// and exits 0 for `iptscope completion bsh`.
func completionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Long = `Write the completion script of iptscope for a shell to standard output.
Besides commands and flags it completes flag values: check IDs for --skip
and explain, severities for --fail-on, each command's -o formats, tables for
-t, graph's formats, backends, --color modes, and the names of network
namespaces (/var/run/netns) for --netns.`
		c.Example = `  source <(iptscope completion bash)
  iptscope completion bash > /etc/bash_completion.d/iptscope
  iptscope completion zsh > "${fpath[1]}/_iptscope"
  iptscope completion fish > ~/.config/fish/completions/iptscope.fish
  iptscope completion powershell | Out-String | Invoke-Expression`
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}
