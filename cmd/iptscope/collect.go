package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/iptscope/iptscope/collect"
)

type collectOptions struct {
	output     string
	netns      string
	dockerHost string
}

func newCollectCmd(g *globals) *cobra.Command {
	o := &collectOptions{}
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Write one JSON bundle of everything iptscope looks at on this host",
		Long: `Collect, in one consistent snapshot, what an on-call engineer would
otherwise gather by hand with a dozen commands:

  - iptables-save -c and ip6tables-save -c of each backend present (nft and
    legacy), which backend "iptables" uses and which one holds Docker's chains
  - links (bridges, veths with their peers), addresses, routes, neighbours
  - sysctls: ip_forward, IPv6 forwarding, route_localnet and forwarding of
    each bridge, bridge-nf-call-ip(6)tables (absent without br_netfilter)
  - docker-proxy processes of the namespace, with their arguments and memory
  - the Docker Engine API: version, info, networks, containers, their
    endpoints with the host-side veth, and published ports

Each part that cannot be read records why (no Docker, daemon stopped, no
privileges, no legacy tools); the rest is still collected. Run it as root.
Every other command reads the bundle with --from, on any machine.

--netns reads another network namespace: a name under /var/run/netns or any
namespace file such as /proc/PID/ns/net.`,
		Example: `  sudo iptscope collect -o host.json
  sudo iptscope collect --netns /proc/$(pidof dockerd)/ns/net -o host.json
  iptscope graph --from host.json -t nat`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCollect(cmd, g, o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "-", "write the bundle to FILE (- for standard output)")
	cmd.Flags().StringVar(&o.netns, "netns", "", "collect from this network namespace (NAME under /var/run/netns, or a path)")
	cmd.Flags().StringVar(&o.dockerHost, "docker-host", "", "Docker Engine API endpoint (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	return cmd
}

func runCollect(cmd *cobra.Command, g *globals, o *collectOptions) error {
	opts := collect.Options{NetNS: o.netns, DockerHost: o.dockerHost}
	if g.isTTY(g.stdout) || g.isTTY(g.stderr) {
		opts.Progress = func(step string) { fmt.Fprintf(g.stderr, "\r\033[Kcollecting: %s", step) }
	}
	snap := collect.Collect(cmd.Context(), opts)
	if opts.Progress != nil {
		fmt.Fprint(g.stderr, "\r\033[K")
	}
	for _, e := range snap.Errors {
		fmt.Fprintf(g.stderr, "iptscope: warning: %s: %s\n", e.Part, e.Error)
	}
	data, err := json.MarshalIndent(snap, "", " ")
	if err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("encoding the bundle: %w", err)}
	}
	data = append(data, '\n')
	if o.output == "-" {
		_, err = g.stdout.Write(data)
		return err
	}
	if err := os.WriteFile(o.output, data, 0o600); err != nil {
		return &exitError{code: exitUnknown, err: fmt.Errorf("writing the bundle: %w", err)}
	}
	fmt.Fprintf(g.stderr, "iptscope: wrote %s (%d bytes)\n", o.output, len(data))
	return nil
}
