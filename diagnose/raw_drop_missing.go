package diagnose

import (
	"fmt"
	"strings"

	"github.com/iptscope/iptscope/parse"
)

// rawDropMissing: one of Docker 28's raw PREROUTING DROPs is missing
// (docker-facts.md §2.3, field failures 5 and 8):
//
//	raw PREROUTING -d CIP/32 ! -i BRIDGE -j DROP                  (28.2+, per endpoint)
//	raw PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp --dport HPORT -j DROP
//
// Without the first, neighbours that route the container subnet to the
// host reach every port of the container, published or not; without the
// second, a port published on 127.0.0.1 answers other machines. Nothing
// stops working, so the finding is a warning.
//
// Docker writes none of them with --allow-direct-routing or
// DOCKER_INSECURE_NO_IPTABLES_RAW=1, which the snapshot does not show. So
// a missing rule is a warning (and repaired) only when Docker demonstrably
// writes raw rules here (rawWanted: another of them is present, or a
// reload wiped Docker's chains); when none is present (a flushed raw table
// looks the same as those settings) one info finding says so.
var rawDropMissing = Check{
	ID:       "raw-drop-missing",
	Title:    "A raw-table DROP that protects containers from direct access is missing",
	Severity: SeverityWarning,
	Run:      withNft(perFamily(rawDropMissingOf), nftRawDropMissing),
	Repair:   Repair{Auto: true},
	Claims:   rawDropClaims,
}

// rawDropClaims: the raw DROPs; one cause per family.
func rawDropClaims(a analysis, er ExpectedRule) (Subject, bool) {
	if er.Kind != KindRawEndpoint && er.Kind != KindRawLoopback || a.missingChain(er) {
		return Subject{}, false
	}
	return Subject{Family: a.family(), Table: parse.TableRaw, Chain: parse.ChainPrerouting}, true
}

func rawDropMissingOf(_ *Env, a analysis) []Finding {
	causes, groups := claimedBy(a, rawDropClaims)
	if len(causes) == 0 {
		return nil
	}
	cause := causes[0]
	missing := groups[cause]
	f := Finding{
		ID:       "raw-drop-missing",
		Key:      KeyOf("raw-drop-missing", cause),
		Subject:  cause,
		Affected: affectedOf(a, missing),
		Evidence: missingEvidence(a, missing, 10),
		Rules:    missingRefs(a, missing),
	}
	if !rawWanted(a) {
		f.Severity = SeverityInfo
		f.Title = fmt.Sprintf("None of Docker %s's %d raw-table DROPs is present%s", a.exp.Version, len(missing), a.famTitle())
		f.Detail = "Docker 28 drops, in raw PREROUTING, packets that reach a container's address directly from outside its " +
			"bridge, and remote packets to ports published on 127.0.0.1. None of these rules is here: either the daemon runs " +
			"with --allow-direct-routing or DOCKER_INSECURE_NO_IPTABLES_RAW=1 (then this is intended), or the raw table was " +
			"flushed. In the second case machines that route the containers' subnets to this host reach every container " +
			"port, published or not."
		f.Fix = "If the daemon runs without those settings, restart Docker so that it rebuilds them " +
			"(`systemctl restart docker`), or add them by hand. iptscope does not add them: it cannot tell from the " +
			"rules whether Docker wants them here."
		f.Evidence = missingEvidence(a, missing, 3)
		return []Finding{f}
	}
	f.Severity = SeverityWarning
	f.Fix = restoreFix(a, missing, a.addLine)
	loopback, endpoint := 0, 0
	for _, er := range missing {
		if er.Kind == KindRawLoopback {
			loopback++
		} else {
			endpoint++
		}
	}
	switch er := missing[0]; {
	case len(missing) == 1 && loopback == 1:
		f.Subject = subjectOfRule(a, er)
		f.Title = fmt.Sprintf("Port %s of container %s answers other machines%s", portName(er.Port), er.Container, a.famTitle())
	case len(missing) == 1:
		f.Subject = subjectOfRule(a, er)
		f.Title = fmt.Sprintf("Container %s on %s is reachable directly from other machines%s", er.Container, er.Network, a.famTitle())
	default:
		f.Title = fmt.Sprintf("%d of Docker's raw-table DROPs are missing%s", len(missing), a.famTitle())
	}
	if endpoint > 0 {
		f.Detail = "Docker's raw DROP for packets to " + count(endpoint, "a container's address", "%d containers' addresses") + " from outside " +
			"its bridge is gone: machines that route the network's subnet to this host reach every port of the container, published or not."
	}
	if loopback > 0 {
		f.Detail = strings.TrimSpace(f.Detail + " " + count(loopback, "A port", "%d ports") + " published on a loopback address lost Docker's raw DROP for " +
			"remote packets: a neighbour that sends packets for 127.0.0.1 to this host reaches the container (moby/moby#45610).")
	}
	return []Finding{f}
}

// rawWanted reports whether Docker demonstrably writes raw DROPs on this
// host: one of them is present, or a chain of Docker's nat or filter
// layout is missing (a reload wiped everything; then absence says
// nothing). Why: with --allow-direct-routing or
// DOCKER_INSECURE_NO_IPTABLES_RAW Docker writes none, and adding them
// would cut off direct routing.
func rawWanted(a analysis) bool {
	for _, er := range a.exp.RulesOf(parse.TableRaw, parse.ChainPrerouting) {
		if a.diff.Got(er) != nil {
			return true
		}
	}
	for _, t := range []parse.TableName{parse.TableNAT, parse.TableFilter} {
		for _, c := range a.exp.Chains[t] {
			if !a.chainExists(t, c) {
				return true
			}
		}
	}
	return false
}
