package synth

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// ListText renders a ruleset the way `iptables -L -n -v -x` prints it, for
// the rule shapes DockerHost generates (interfaces, addresses, tcp ports,
// addrtype, conntrack, DNAT). It exists to benchmark the -L parser on a
// large input; it is not a general -L printer.
func ListText(rs *parse.Ruleset) []byte {
	var b bytes.Buffer
	for _, t := range rs.Tables {
		fmt.Fprintf(&b, "# iptables -t %s -L -n -v -x\n", t.Name)
		refs := map[parse.ChainName]int{}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				refs[parse.ChainName(r.Target)]++
			}
		}
		for i, c := range t.Chains {
			if i > 0 {
				b.WriteByte('\n')
			}
			if c.Builtin {
				var p, by uint64
				if c.Counters != nil {
					p, by = c.Counters.Packets, c.Counters.Bytes
				}
				fmt.Fprintf(&b, "Chain %s (policy %s %d packets, %d bytes)\n", c.Name, c.Policy, p, by)
			} else {
				fmt.Fprintf(&b, "Chain %s (%d references)\n", c.Name, refs[c.Name])
			}
			b.WriteString("    pkts      bytes target     prot opt in     out     source               destination         \n")
			for _, r := range c.Rules {
				var p, by uint64
				if r.Counters != nil {
					p, by = r.Counters.Packets, r.Counters.Bytes
				}
				prot := "0"
				if r.Protocol.Value == "tcp" {
					prot = "6"
				}
				iface := func(n parse.Negatable) string {
					if n.IsZero() {
						return "*"
					}
					return n.String()
				}
				addr := func(n parse.Negatable) string {
					if n.IsZero() {
						return "0.0.0.0/0"
					}
					return strings.TrimSuffix(n.String(), "/32")
				}
				var extra []string
				for _, m := range r.Matches {
					switch m.Name {
					case "tcp":
						extra = append(extra, "tcp dpt:"+m.Option("dport").Value())
					case "addrtype":
						extra = append(extra, "ADDRTYPE match dst-type "+m.Option("dst-type").Value())
					case "conntrack":
						extra = append(extra, "ctstate "+m.Option("ctstate").Value())
					}
				}
				if o := r.TargetOption("to-destination"); o != nil {
					extra = append(extra, "to:"+o.Value())
				}
				fmt.Fprintf(&b, "%8d %10d %-10s %-4s --  %-6s %-6s  %-20s %-20s %s\n", p, by, r.Target, prot,
					iface(r.InIface), iface(r.OutIface), addr(r.Source), addr(r.Destination), strings.Join(extra, " "))
			}
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
