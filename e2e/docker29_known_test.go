package e2e

import (
	"slices"
	"testing"
)

// knownGap is one case where iptscope's diagnose is known to give a wrong
// answer on a real daemon: an expected failure, kept in this one table
// instead of being skipped. The case still runs: check passes while
// doctor gives exactly today's answer, and fails both when doctor gets it
// right (the gap is closed: delete the entry, the case then checks the
// truth) and when it gives yet another answer.
type knownGap struct {
	// test is the e2e test: "breakages", "doctor", "fix", "variants".
	test string
	// version, backend, proxy select the hosts ("" matches any).
	version, backend, proxy string
	// kind is the dockerhost.sh break KIND ("healthy" for the healthy host).
	kind string
	// today is what doctor reports now: the error/warning IDs, sorted.
	today []string
	// why starts with "known: diagnose does not yet ..." and names the
	// rules and findings involved.
	why string
}

// knownGaps: where diagnose is wrong on a real daemon, consulted by
// TestBreakagesOnRealDocker ("breakages") and TestDoctorOnRealDocker
// ("doctor"). The lead flips an entry by fixing diagnose and deleting it.
//
// Empty: on real Docker 29.8.1 with its iptables firewall backend (nft and
// legacy, proxy on and off) every case of the breakages, doctor, --fix and
// variants tests gives the right answer (measured 2026-12-01, including
// 29's own internal-flushed). Docker 29's nftables backend, which diagnose
// does not read yet, keeps its expectations in nftablesStates.
var knownGaps = []knownGap{}

// findGap returns the known gap of a test's case on a host, or nil.
func findGap(test string, hh matrixHost, kind string) *knownGap {
	for i, g := range knownGaps {
		if g.test == test && g.kind == kind &&
			(g.version == "" || g.version == hh.version) &&
			(g.backend == "" || g.backend == hh.backend) &&
			(g.proxy == "" || g.proxy == hh.proxy) {
			return &knownGaps[i]
		}
	}
	return nil
}

// check compares doctor's error/warning IDs with the truth (want) and with
// the gap's record of today's answer.
func (g *knownGap) check(t *testing.T, got, want []string) {
	t.Helper()
	switch {
	case slices.Equal(got, want):
		t.Errorf("known gap closed: doctor now reports %v, which is right; delete this case from knownGaps (it said: %s)", got, g.why)
	case slices.Equal(got, g.today):
		t.Logf("expected failure (knownGaps): doctor reports %v, the truth is %v; %s", got, want, g.why)
	default:
		t.Errorf("doctor reports %v: neither the truth %v nor the known gap's %v; update knownGaps (%s)", got, want, g.today, g.why)
	}
}
