package render

import (
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
)

func TestNPDLineIsOneShortLine(t *testing.T) {
	long := strings.Repeat("the nat DOCKER chain is missing, so every published port ", 3)
	for _, c := range []struct {
		name string
		rep  diagnose.Report
		want string
	}{
		{"a healthy host", diagnose.Report{Status: diagnose.StatusOK, FailOn: diagnose.SeverityWarning, Ports: []diagnose.PortReport{{Path: diagnose.PathNAT}, {Path: diagnose.PathLocalOnly}}},
			"OK: Docker's rules are healthy (2 published ports reachable)"},
		{"a broken host names the worst finding and counts the rest", diagnose.Report{Status: diagnose.StatusProblems, FailOn: diagnose.SeverityWarning, Findings: []diagnose.Finding{
			{ID: "docker-chain-missing", Severity: diagnose.SeverityError, Title: "nat DOCKER is missing"},
			{ID: "proxy-fallback", Severity: diagnose.SeverityWarning, Title: "8080 answers through docker-proxy only"},
			{ID: "proxy-overhead", Severity: diagnose.SeverityInfo, Title: "below the threshold"},
		}}, "docker-chain-missing: nat DOCKER is missing (+1 more)"},
		{"a long title is cut to 80 bytes", diagnose.Report{Status: diagnose.StatusProblems, FailOn: diagnose.SeverityWarning, Findings: []diagnose.Finding{
			{ID: "dnat-missing", Severity: diagnose.SeverityError, Title: long},
			{ID: "dnat-missing", Severity: diagnose.SeverityError, Title: long},
		}}, "dnat-missing: the nat DOCKER chain is missing, so every published p... (+1 more)"},
		{"a partial check says why", diagnose.Report{Status: diagnose.StatusUnknown, FailOn: diagnose.SeverityWarning, Notes: []string{"guessed", "partial: Docker's API did not answer"}},
			"UNKNOWN: partial: Docker's API did not answer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := NPDLine(&c.rep)
			if len(got) > NPDMaxLine || strings.Contains(got, "\n") {
				t.Errorf("%d bytes or several lines: %q", len(got), got)
			}
			if c.want != "" && got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}
