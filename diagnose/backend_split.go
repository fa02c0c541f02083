package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/snapshot"
)

// backendSplit: Docker's chains are in both iptables backends (the old set
// still filters packets), or in the backend the host's `iptables` does not
// use (admins and their tools do not see them).
var backendSplit = Check{
	ID:       "backend-split",
	Title:    "Docker's rules are split between the nft and legacy iptables backends",
	Severity: SeverityError,
	Repair:   Repair{Manual: "which iptables backend is the right one is the administrator's decision: remove the other backend's Docker rules by hand (docs/checks/backend-split.md)"},
	Needs:    "the rules of both iptables backends",
	Run: func(env *Env) []Finding {
		s := env.S
		var ev []string
		for _, d := range s.Rules {
			if d.Ruleset == nil || d.Family != snapshot.FamilyIPv4 {
				continue
			}
			for _, t := range d.Ruleset.Tables {
				for _, c := range t.Chains {
					if c.Name == ChainDocker || c.Name == ChainDockerUser || c.Name == ChainDockerFwd {
						ev = append(ev, fmt.Sprintf("iptables-%s-save: %s %s (%d rules)", d.Backend, t.Name, c.Name, len(c.Rules)))
					}
				}
			}
		}
		switch {
		case s.DockerBackend == snapshot.BackendBoth:
			return []Finding{{
				ID:       "backend-split",
				Severity: SeverityError,
				Title:    "Docker's chains exist in both the nft and the legacy iptables backends",
				Detail: "Both rulesets apply to every packet. Typically the daemon was switched from one backend to the other: " +
					"the old rules (and the old FORWARD DROP policy) are still there and drop traffic the new rules accept, and " +
					"they point at container addresses that may be reused.",
				Evidence: ev,
				Fix: "Decide which backend Docker uses (the `iptables` first in dockerd's PATH; `update-alternatives --display iptables`). " +
					"Remove Docker's chains from the other one after checking nothing else lives there (e.g. `iptables-legacy-save` " +
					"shows only Docker's rules, then flush its filter and nat tables and set `iptables-legacy -P FORWARD ACCEPT`), then " +
					"`systemctl restart docker`.",
			}}
		case s.IptablesBackend != "" && (s.DockerBackend == snapshot.BackendNFT || s.DockerBackend == snapshot.BackendLegacy) &&
			s.IptablesBackend != s.DockerBackend:
			return []Finding{{
				ID:       "backend-split",
				Severity: SeverityWarning,
				Title:    fmt.Sprintf("Docker writes to the %s backend but `iptables` on this host is %s", s.DockerBackend, s.IptablesBackend),
				Detail: "Admins, firewall scripts and tools like ufw that run `iptables` see and change the other ruleset: rules " +
					"they add to DOCKER-USER or FORWARD do not apply where Docker's rules are, and Docker's rules look absent.",
				Evidence: append(ev, "iptables -V: "+s.IptablesBackend),
				Fix: "Use one backend for everything: point the iptables alternative at iptables-" + s.DockerBackend +
					" (`update-alternatives --set iptables /usr/sbin/iptables-" + s.DockerBackend + "`) or make dockerd's PATH use the host's, then restart docker.",
			}}
		}
		return nil
	},
}
