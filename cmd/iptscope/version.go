package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/internal/buildinfo"
)

// versionSchema is the "schema" value of `iptscope version -o json`.
const versionSchema = "iptscope.version/v1"

type versionOptions struct {
	output string
}

func newVersionCmd(g *globals) *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Long: `Print the version of this build: the module version when installed with
"go install ...@vX.Y.Z", else "devel+REVISION" (with "-dirty" for a tree with
uncommitted changes) when the build recorded its VCS revision, else "devel";
and the Go toolchain that built it.

-o json prints the same as one JSON document (schema iptscope.version/v1):
version, revision, time, modified and go_version, the empty ones left out.`,
		Example: `  iptscope version
  iptscope version -o json | jq -r .version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(g, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func runVersion(g *globals, o *versionOptions) error {
	info := buildinfo.Get()
	switch o.output {
	case "text":
		line := "iptscope " + info.Version
		if info.GoVersion != "" {
			line += " (" + info.GoVersion + ")"
		}
		_, err := fmt.Fprintln(g.stdout, line)
		return err
	case "json":
		doc := struct {
			Schema string `json:"schema"`
			buildinfo.Info
		}{versionSchema, info}
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	return &exitError{code: exitUnknown, err: fmt.Errorf("unknown output format %q (use text or json)", o.output)}
}
