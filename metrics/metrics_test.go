package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iptscope/iptscope/diagnose"
)

func sampleMetricsState() State {
	return State{
		Up: true,
		Report: &diagnose.Report{
			Findings: []diagnose.Finding{
				{ID: "docker-chain-missing", Severity: diagnose.SeverityError},
				{ID: "proxy-fallback", Severity: diagnose.SeverityWarning},
				{ID: "proxy-fallback", Severity: diagnose.SeverityWarning},
			},
			Ports: []diagnose.PortReport{
				{HostIP: "0.0.0.0", HostPort: 8080, Proto: "tcp", Container: "web", Path: diagnose.PathProxyOnly},
				{HostIP: "127.0.0.1", HostPort: 9090, Proto: "tcp", Container: "admin", Path: diagnose.PathLocalOnly},
				{HostIP: "0.0.0.0", HostPort: 5353, Proto: "udp", Container: "dns", Path: diagnose.PathBroken},
				{HostIP: "0.0.0.0", HostPort: 7070, Proto: "tcp", Container: "odd", Path: diagnose.PathUnknown},
			},
		},
		LastRun:     time.Unix(1764558000, 250e6),
		Repairs:     map[string]int{"ok": 2, "limited": 1},
		DriftEvents: 3,
		Checks:      map[string]int{"chains": 7, "full": 2},
	}
}

func TestMetricsSayTheHostsHealth(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, NewRegistry(sampleMetricsState)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE iptscope_up gauge\niptscope_up 1\n",
		`iptscope_findings{check="docker-chain-missing",severity="error"} 1`,
		`iptscope_findings{check="proxy-fallback",severity="warning"} 2`,
		`iptscope_findings{check="dnat-missing",severity="error"} 0`,
		`iptscope_port_reachable{container="web",host_ip="0.0.0.0",host_port="8080",proto="tcp"} 1`,
		`iptscope_checks_total{read="chains"} 7`,
		`iptscope_checks_total{read="full"} 2`,
		`iptscope_port_reachable{container="admin",host_ip="127.0.0.1",host_port="9090",proto="tcp"} 1`,
		`iptscope_port_reachable{container="dns",host_ip="0.0.0.0",host_port="5353",proto="udp"} 0`,
		"iptscope_last_run_timestamp_seconds 1.76455800025e+09\n",
		`iptscope_repairs_total{result="ok"} 2`,
		`iptscope_repairs_total{result="failed"} 0`,
		`iptscope_repairs_total{result="limited"} 1`,
		"# TYPE iptscope_drift_events_total counter\niptscope_drift_events_total 3\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, `container="odd"`) {
		t.Error("a port whose path is unknown got a sample")
	}
	if strings.Contains(out, "go_") || strings.Contains(out, "process_") {
		t.Error("Go or process metrics exported")
	}
}

func TestMetricsBeforeTheFirstCheckAreOnlyUpAndTheCounters(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, NewRegistry(func() State { return State{} })); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "iptscope_up 0\n") || strings.Contains(out, "iptscope_findings{") || strings.Contains(out, "iptscope_last_run") {
		t.Errorf("unexpected metrics before the first check:\n%s", out)
	}
}
