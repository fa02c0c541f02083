// Package metrics is iptscope's Prometheus metrics of a host's health
// (iptscope watch): a collector over the last doctor report and the
// repairs, and their text exposition. It stays out of render, which is
// pure: client_golang brings net/http.
package metrics

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/iptscope/iptscope/diagnose"
)

// State is what iptscope's Prometheus metrics say (docs/fleet.md
// lists each metric and its labels).
type State struct {
	// Up is true when the last check read the host and judged it.
	Up bool
	// Report is the last check's report; nil before the first one (then
	// only iptscope_up and the counters are exported).
	Report *diagnose.Report
	// LastRun is when the last check finished; zero before the first.
	LastRun time.Time
	// Repairs counts repairs by result ("ok", "failed", "limited").
	Repairs map[string]int
	// DriftEvents counts the drift events emitted.
	DriftEvents int
	// Checks counts the checks by what they read ("chains": only the
	// chains a change touched, "full": the whole host).
	Checks map[string]int
}

var (
	descUp       = prometheus.NewDesc("iptscope_up", "1 when the last check read the host and judged it, 0 when it could not.", nil, nil)
	descFindings = prometheus.NewDesc("iptscope_findings", "Findings of the last check, by check ID and severity (0 for every check that found nothing).", []string{"check", "severity"}, nil)
	descPort     = prometheus.NewDesc("iptscope_port_reachable", "1 when connections from other machines reach the published port's container (the nat, proxy-only or local-only path), 0 when broken.", []string{"host_ip", "host_port", "proto", "container"}, nil)
	descLastRun  = prometheus.NewDesc("iptscope_last_run_timestamp_seconds", "Unix time the last check finished.", nil, nil)
	descRepairs  = prometheus.NewDesc("iptscope_repairs_total", "Repairs by result: ok (applied and verified), failed (refused, failed or rolled back), limited (due but refused by the rate limit).", []string{"result"}, nil)
	descDrift    = prometheus.NewDesc("iptscope_drift_events_total", "Drift events: the host's rules went from healthy (or other findings) to findings that Docker's own work does not explain.", nil, nil)
	descChecks   = prometheus.NewDesc("iptscope_checks_total", "Checks by what they read: chains (only the chains a change touched, iptables-nft 1.8.5+) or full (the whole host).", []string{"read"}, nil)
)

// CheckReads are the values of iptscope_checks_total's read label,
// always exported (0 when none).
var CheckReads = []string{"chains", "full"}

// RepairResults are the values of iptscope_repairs_total's result label,
// always exported (0 when none).
var RepairResults = []string{"ok", "failed", "limited"}

// metricsCollector is a prometheus.Collector over a State getter.
type metricsCollector struct{ get func() State }

// NewRegistry returns a registry holding iptscope's metrics, read
// from get at each scrape (get must be safe to call from the HTTP
// server's goroutines). It holds no Go or process metrics: what it
// exports is the host's health, not iptscope's.
func NewRegistry(get func() State) *prometheus.Registry {
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(metricsCollector{get: get})
	return r
}

func (c metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descFindings, descPort, descLastRun, descRepairs, descDrift, descChecks} {
		ch <- d
	}
}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.get()
	up := 0.0
	if s.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, r := range RepairResults {
		ch <- prometheus.MustNewConstMetric(descRepairs, prometheus.CounterValue, float64(s.Repairs[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(descDrift, prometheus.CounterValue, float64(s.DriftEvents))
	for _, r := range CheckReads {
		ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(s.Checks[r]), r)
	}
	if !s.LastRun.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastRun, prometheus.GaugeValue, float64(s.LastRun.UnixMilli())/1000)
	}
	if s.Report == nil {
		return
	}
	type key struct{ check, sev string }
	n := map[key]int{}
	for _, chk := range diagnose.All() {
		n[key{chk.ID, string(chk.Severity)}] = 0
	}
	for _, f := range s.Report.Findings {
		n[key{f.ID, string(f.Severity)}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(descFindings, prometheus.GaugeValue, float64(v), k.check, k.sev)
	}
	seen := map[[4]string]bool{}
	for _, p := range s.Report.Ports {
		var v float64
		switch p.Path {
		case diagnose.PathNAT, diagnose.PathProxyOnly, diagnose.PathLocalOnly:
			v = 1
		case diagnose.PathBroken:
			v = 0
		default:
			continue // not judged: no sample rather than a guess
		}
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		l := [4]string{ip, strconv.Itoa(p.HostPort), p.Proto, p.Container}
		if seen[l] {
			continue
		}
		seen[l] = true
		ch <- prometheus.MustNewConstMetric(descPort, prometheus.GaugeValue, v, l[0], l[1], l[2], l[3])
	}
}

// Write writes what g gathers in the Prometheus text format (the
// textfile collector's and `promtool check metrics`' input), families in
// name order and samples in label order, so that the output is stable.
func Write(w io.Writer, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("writing metrics: %w", err)
		}
	}
	return nil
}
