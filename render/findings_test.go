package render

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/iptscope/iptscope/diagnose"
	"github.com/iptscope/iptscope/internal/synth"
)

func TestDoctorText(t *testing.T) {
	rep := &diagnose.Report{
		Status: diagnose.StatusProblems,
		Host:   diagnose.ReportHost{DockerVersion: "28.5.2+dfsg4", DockerBackend: "nft", UserlandProxy: "off"},
		Findings: []diagnose.Finding{{ID: "dnat-missing", Severity: diagnose.SeverityError, Title: "Port 8080/tcp has no DNAT rule",
			Detail: "it does not answer", Subject: diagnose.Subject{Table: "nat", Chain: "DOCKER", Port: "8080/tcp"},
			Evidence: []string{"missing: -t nat -A DOCKER ..."}, Fix: "restart docker"}},
		Ports: []diagnose.PortReport{{HostIP: "0.0.0.0", HostPort: 8080, Proto: "tcp", Container: "web", ContainerIP: "172.17.0.2",
			ContainerPort: 80, Network: "bridge", Path: diagnose.PathBroken, Reason: "no DNAT"}},
	}
	t.Run("plain output has the summary, both tables and the fix, without colour or trailing spaces", func(t *testing.T) {
		var b bytes.Buffer
		if err := DoctorText(&b, rep, Options{}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{"problems: docker 28.5.2 (nft, userland-proxy off), 1 published port: 1 error\n",
			"dnat-missing  error", "0.0.0.0:8080/tcp", "web 172.17.0.2:80", "broken", "fix: restart docker"} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
		if strings.Contains(out, "\x1b[") || strings.Contains(out, " \n") {
			t.Errorf("colour or trailing spaces in plain output:\n%q", out)
		}
	})
	t.Run("a terminal gets the severity in colour unless NoColor", func(t *testing.T) {
		var b bytes.Buffer
		_ = DoctorText(&b, rep, Options{Terminal: true})
		if !strings.Contains(b.String(), "\x1b[31merror") {
			t.Errorf("no red severity")
		}
		b.Reset()
		_ = DoctorText(&b, rep, Options{Terminal: true, NoColor: true})
		if strings.Contains(b.String(), "\x1b[") {
			t.Errorf("colour despite NoColor")
		}
	})
}

// TestFlushedNATOnAThousandPortsFitsOneScreen: nat DOCKER flushed on a
// 1,000-port host is a handful of findings above the ports table (one
// screen), while the JSON still lists every affected port.
func TestFlushedNATOnAThousandPortsFitsOneScreen(t *testing.T) {
	s := synth.DockerSnapshot(1000, synth.FlushChain(synth.DockerHost(1000), "nat", "DOCKER"), "nft")
	r := diagnose.NewReport(s, diagnose.ReportOptions{})
	var b strings.Builder
	if err := DoctorText(&b, r, Options{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "HOST ") })
	if at < 0 || at > 60 {
		t.Errorf("the ports table starts at line %d, want within the first 60", at+1)
	}
	if len(r.Findings) > 5 {
		t.Errorf("%d findings, want one per cause", len(r.Findings))
	}
	dnat := r.Findings[0]
	if dnat.ID != "dnat-missing" || len(dnat.Affected) != 1000 || len(dnat.Rules) != 1000 {
		t.Errorf("first finding %s affects %d ports with %d rules, want dnat-missing with 1000 of each", dnat.ID, len(dnat.Affected), len(dnat.Rules))
	}
	if !strings.HasPrefix(lines[len(lines)-2], "next: `sudo iptscope doctor --fix` repairs") {
		t.Errorf("the report does not end with what to do next: %q", lines[len(lines)-2])
	}
}
