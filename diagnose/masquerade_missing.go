package diagnose

import (
	"fmt"

	"github.com/iptscope/iptscope/parse"
)

// masqueradeMissing: Docker networks' subnets have no MASQUERADE (or SNAT)
// in nat POSTROUTING: their containers' outbound packets leave with private
// source addresses and replies never come back. One finding per family.
var masqueradeMissing = Check{
	ID:       "masquerade-missing",
	Title:    "A Docker network has no outbound MASQUERADE",
	Severity: SeverityError,
	Run:      withNft(perFamily(masqueradeMissingOf), nftMasqMissing),
	Repair:   Repair{Auto: true},
	Claims:   masqueradeClaims,
}

func masqueradeClaims(a analysis, er ExpectedRule) (Subject, bool) {
	if er.Kind != KindMasquerade || a.missingChain(er) {
		return Subject{}, false
	}
	return Subject{Family: a.family(), Table: parse.TableNAT, Chain: parse.ChainPostrouting}, true
}

func masqueradeMissingOf(_ *Env, a analysis) []Finding {
	causes, groups := claimedBy(a, masqueradeClaims)
	var out []Finding
	for _, cause := range causes {
		ers := groups[cause]
		var nets []string
		for _, er := range ers {
			nets = append(nets, fmt.Sprintf("%s (%s)", er.Network, er.Bridge))
		}
		f := Finding{
			ID:       "masquerade-missing",
			Key:      KeyOf("masquerade-missing", cause),
			Severity: SeverityError,
			Subject:  cause,
			Affected: affectedOf(a, ers),
			Title:    fmt.Sprintf("Network%s %s ha%s no outbound MASQUERADE%s", plural(len(ers)), capList(nets, 4), hasHave(len(ers)), a.famTitle()),
			Detail: "Containers on " + map[bool]string{true: "this network", false: "these networks"}[len(ers) == 1] + " send packets to the outside world with their private source address; " +
				"upstream routers drop them or the replies never find their way back, so containers have no egress " +
				"(DNS, package downloads, APIs). Published ports may still answer: inbound DNAT does not need this rule.",
			Evidence: missingEvidence(a, ers, 10),
			Rules:    missingRefs(a, ers),
			Fix:      restoreFix(a, ers, a.addLine),
		}
		if len(ers) == 1 {
			f.Subject.Network = ers[0].Network
		}
		out = append(out, f)
	}
	return out
}

func hasHave(n int) string {
	if n == 1 {
		return "s"
	}
	return "ve"
}
