package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/snapshot"
)

// masqueradeMissing: a Docker network's subnet has no MASQUERADE (or SNAT)
// in nat POSTROUTING: its containers' outbound packets leave with private
// source addresses and replies never come back.
var masqueradeMissing = Check{
	ID:       "masquerade-missing",
	Title:    "A Docker network has no outbound MASQUERADE",
	Severity: SeverityError,
	Run: func(s *snapshot.Snapshot) []Finding {
		var out []Finding
		for _, a := range analyses(s) {
			for _, er := range a.diff.MissingOf(KindMasquerade) {
				out = append(out, Finding{
					ID:       "masquerade-missing",
					Severity: SeverityError,
					Title:    fmt.Sprintf("Network %s (%s) has no outbound MASQUERADE%s", er.Network, er.Bridge, a.famTitle()),
					Detail: "Containers on this network send packets to the outside world with their private source address; " +
						"upstream routers drop them or the replies never find their way back, so containers have no egress " +
						"(DNS, package downloads, APIs). Published ports may still answer: inbound DNAT does not need this rule.",
					Subject:  Subject{Table: "nat", Chain: "POSTROUTING", Network: er.Network, Family: a.family()},
					Evidence: []string{"missing: " + a.evLine(er)},
					Fix:      restartFix(a) + " Or add the rule Docker would have written: `" + a.ipt() + " " + ruleLine(er) + "`.",
				})
			}
		}
		return out
	},
}
